"""A category's template: the mesh, its keypoint vertices and its axes.

Keypoints come from a JSON ``{name: vertex index}`` (given, or ``STEM_keypoints.json`` beside
the mesh), else from a skeleton fitted to the mesh (:mod:`engine.synthetic.skeleton`): each limb
tip and the surface vertex nearest each joint.

Axes: the up axis is the signed coordinate axis at whose low end most limb tips lie (legs stand
on the ground); the front axis is the longest remaining horizontal extent, signed towards the
highest limb tip (the head). Both can be given explicitly; they place the cameras of the
multiplex and the synthetic set, and ``up x front`` is the left-right axis that mirroring
reflects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.io.mesh import Mesh, load_mesh
from engine.synthetic.skeleton import Skeleton, fit_skeleton

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_TEMPLATE = REPO_ROOT / "assets" / "demo_template.ply"


@dataclass(frozen=True)
class CategoryTemplate:
    """A template with what the generator and the training need to know about it.

    Attributes:
        mesh: the template mesh (vertices (N,3), faces (F,3)).
        keypoint_names: P names.
        keypoint_vertices: (P,) int64 vertex ids of the keypoints.
        up_axis, front_axis: signed axis names (``"z"``, ``"-x"``) of the template.
    """

    mesh: Mesh
    keypoint_names: list[str]
    keypoint_vertices: np.ndarray
    up_axis: str
    front_axis: str

    @property
    def left_axis(self) -> str:
        """``up x front`` as a signed axis name: the left-right axis of the template."""
        left = np.cross(axis_vector(self.up_axis), axis_vector(self.front_axis))
        i = int(np.argmax(np.abs(left)))
        return ("-" if left[i] < 0 else "") + "xyz"[i]


def category_template(
    path: str | Path | None = None,
    keypoints: str | Path | None = None,
    *,
    up_axis: str | None = None,
    front_axis: str | None = None,
    skeleton: Skeleton | None = None,
) -> CategoryTemplate:
    """Load a template and its keypoints, and find its up and front axes.

    Keypoints come from ``keypoints`` (a JSON ``{name: vertex index}``), else from a
    ``STEM_keypoints.json`` beside the mesh, else from the fitted skeleton: each limb tip and the
    surface vertex nearest each joint.
    """
    from engine.io.image_sets import load_template_keypoints

    path = Path(path) if path is not None else DEMO_TEMPLATE
    mesh = load_mesh(path)
    sk = skeleton if skeleton is not None else fit_skeleton(mesh.vertices, mesh.faces)
    sidecar = path.with_name(f"{path.stem}_keypoints.json")
    if keypoints is None and sidecar.is_file():
        keypoints = sidecar
    if keypoints is not None:
        names, ids = load_template_keypoints(keypoints, mesh.num_vertices)
    else:
        names, ids = _skeleton_keypoints(mesh, sk)
    up = up_axis or _guess_up(mesh.vertices, sk)
    front = front_axis or _guess_front(mesh.vertices, sk, up)
    return CategoryTemplate(mesh, list(names), np.asarray(ids, dtype=np.int64), up, front)


def axis_vector(name: str) -> np.ndarray:
    """(3,) unit vector of a signed axis name such as ``"-y"``."""
    sign = -1.0 if name.startswith("-") else 1.0
    out = np.zeros(3)
    out["xyz".index(name.lstrip("+-"))] = sign
    return out


def _guess_up(vertices: np.ndarray, sk: Skeleton) -> str:
    if sk.num_chains == 0:
        return "z"
    lo, hi = vertices.min(0), vertices.max(0)
    extent = np.maximum(hi - lo, 1e-12)
    best, best_score = "z", -1.0
    for axis in range(3):
        for sign, name in ((1.0, "xyz"[axis]), (-1.0, "-" + "xyz"[axis])):
            # "Up" along +axis means the tips rest near the axis's low end.
            height = (sk.tip_points[:, axis] - lo[axis]) / extent[axis]
            if sign < 0:
                height = 1.0 - height
            score = float((height < 0.15).sum()) + 1e-3 * axis  # ties: prefer z, then y
            if score > best_score:
                best, best_score = name, score
    return best


def _guess_front(vertices: np.ndarray, sk: Skeleton, up: str) -> str:
    up_index = "xyz".index(up.lstrip("+-"))
    others = [a for a in range(3) if a != up_index]
    extent = np.ptp(vertices, axis=0)
    axis = max(others, key=lambda a: extent[a])
    if sk.num_chains == 0:
        return "xyz"[axis]
    head = sk.tip_points[np.argmax(sk.tip_points @ axis_vector(up))]
    centre = 0.5 * (vertices.min(0) + vertices.max(0))
    return "xyz"[axis] if head[axis] >= centre[axis] else "-" + "xyz"[axis]


def _skeleton_keypoints(mesh: Mesh, sk: Skeleton) -> tuple[list[str], np.ndarray]:
    names, ids = [], []
    for c, tip in enumerate(sk.tips):
        names.append(f"limb{c}_tip")
        ids.append(int(tip))
    for j in range(1, sk.num_joints):
        names.append(f"limb{int(sk.chains[j])}_joint{(j - 1) % _joints_per_chain(sk)}")
        ids.append(int(np.argmin(np.linalg.norm(mesh.vertices - sk.joints[j], axis=1))))
    if not ids:  # no limbs (a sphere): the extreme vertices along the axes
        for axis in range(3):
            for name, fn in (("min", np.argmin), ("max", np.argmax)):
                names.append(f"{'xyz'[axis]}_{name}")
                ids.append(int(fn(mesh.vertices[:, axis])))
    return names, np.asarray(ids, dtype=np.int64)


def _joints_per_chain(sk: Skeleton) -> int:
    return max((sk.num_joints - 1) // max(sk.num_chains, 1), 1)
