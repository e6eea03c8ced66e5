"""Generated NRSfM sequences: subjects, motions, cameras, point counts, noise and occlusion that
no setting of the project was chosen on.

PRN's automatic settings are rules, and a rule is only validated on sequences it was not made
on. The five shared motion-capture sequences are too few for that, so this module makes as many
more as wanted, each from a seed:

* ``human``: the 17-joint skeleton of :mod:`engine.synthetic.human` playing one of its motions,
  with extra markers fixed to the bones (at a random fraction along a bone, a random 30-90 mm
  off its axis, in the frame of the joint the bone hangs from), as motion-capture markers sit
  on the skin rather than on the joint centres;
* ``animal``: surface vertices of the demo quadruped (farthest-point sampled) posed by the
  automatic skeleton and linear-blend skinning of :mod:`engine.synthetic.skeleton`: another
  body, another kind of deformation.

The camera is orthographic and orbits: its azimuth starts anywhere and turns by a random total
of 20 to 180 degrees over the sequence (the benchmark sequences are filmed by a moving camera or
show a turning subject), at an elevation of -10 to 40 degrees and a small roll. 2D noise is
Gaussian with a standard deviation of ``noise`` times the sequence's RMS point radius; with
``missing`` each 2D point is missing with that probability (at least 3 stay visible per frame).
``points3d`` are in the camera frame and ``points2d`` their x, y (plus noise), as in the
benchmark files.

:func:`generated_sequence` makes one; :func:`sequence_spec` draws the parameters of the i-th of a
generated collection from a seed.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np

from engine.core.errors import DataError
from engine.io.keypoints import KeypointSequence
from engine.synthetic.human import (
    H36M_EDGES,
    H36M_PARENTS,
    MOTIONS,
    euler_to_matrix,
    posed_skeleton,
    sample_motion,
)

KINDS = ("human", "animal")
#: Size ranges of the generated collection (:func:`sequence_spec`).
FRAMES_RANGE = (150, 400)
POINTS_RANGE = {"human": (17, 100), "animal": (20, 100)}


@dataclass(frozen=True)
class SequenceSpec:
    """Everything that makes one generated sequence (module docstring).

    Attributes:
        kind: ``"human"`` or ``"animal"``.
        frames: F >= 10.
        points: P (human: 17 joints plus P - 17 markers, 17 <= P; animal: P >= 4 vertices).
        noise: 2D noise std as a fraction of the RMS point radius (>= 0).
        missing: probability that a 2D point is missing, in [0, 0.5].
        sweep_deg: total azimuth turn of the camera over the sequence, degrees.
        seed: the motion, body, markers and camera.
    """

    kind: str = "human"
    frames: int = 300
    points: int = 41
    noise: float = 0.0
    missing: float = 0.0
    sweep_deg: float = 90.0
    seed: int = 0

    def name(self) -> str:
        """A short unique name, e.g. ``human-s3-f300-p41``."""
        extra = ""
        if self.noise:
            extra += f"-n{self.noise:g}"
        if self.missing:
            extra += f"-m{self.missing:g}"
        return f"{self.kind}-s{self.seed}-f{self.frames}-p{self.points}{extra}"


def sequence_spec(index: int, seed: int = 0) -> SequenceSpec:
    """The parameters of sequence ``index`` of the collection drawn with ``seed``: kind
    alternating human / animal, frames in :data:`FRAMES_RANGE`, points in
    :data:`POINTS_RANGE`, noise 0 (half) or up to 1 %, missing points 0 (two thirds) or up to
    20 %, sweep 20-180 degrees. Collections of different seeds share no sequence."""
    rng = np.random.default_rng([int(seed), int(index), 7919])
    kind = KINDS[index % 2]
    lo, hi = POINTS_RANGE[kind]
    return SequenceSpec(
        kind=kind,
        frames=int(rng.integers(FRAMES_RANGE[0], FRAMES_RANGE[1] + 1)),
        points=int(rng.integers(lo, hi + 1)),
        noise=0.0 if rng.random() < 0.5 else round(float(rng.uniform(0.002, 0.01)), 4),
        missing=0.0 if rng.random() < 2 / 3 else round(float(rng.uniform(0.05, 0.2)), 3),
        sweep_deg=round(float(rng.uniform(20.0, 180.0)), 1),
        seed=int(rng.integers(2**31)),
    )


def generated_sequence(spec: SequenceSpec) -> KeypointSequence:
    """The sequence ``spec`` describes (module docstring).

    Returns:
        :class:`KeypointSequence` with ``points3d`` (F,P,3) in the camera frame (human: mm;
        animal: template units), ``points2d`` (F,P,2), ``visibility`` (F,P) when points are
        missing, and a description holding the spec.

    Raises:
        DataError: a spec outside the documented ranges (the field named).
    """
    _check(spec)
    rng = np.random.default_rng([spec.seed, 104729])
    if spec.kind == "human":
        world, edges = _human(spec, rng)
    else:
        world, edges = _animal(spec, rng)
    world = world - world.mean(axis=1, keepdims=True)
    t = np.linspace(0.0, 1.0, spec.frames)
    azimuth = rng.uniform(0, 360) + spec.sweep_deg * (t if rng.random() < 0.5 else -t)
    elevation = np.full(spec.frames, rng.uniform(-10, 40))
    roll = np.full(spec.frames, rng.uniform(-10, 10))
    zeros = np.zeros(spec.frames)
    yaw = euler_to_matrix(np.stack([zeros, -azimuth, zeros], -1))
    camera = euler_to_matrix(np.stack([elevation, zeros, roll], -1)) @ yaw  # (F,3,3)
    points3d = np.einsum("fij,fpj->fpi", camera, world)
    points2d = points3d[..., :2].copy()
    if spec.noise > 0:
        radius = float(np.sqrt((points2d**2).sum(-1).mean()))
        points2d += rng.normal(0.0, spec.noise * radius, size=points2d.shape)
    visibility = None
    if spec.missing > 0:
        visibility = rng.random(points2d.shape[:2]) >= spec.missing
        for f in np.flatnonzero(visibility.sum(1) < 3):
            visibility[f, rng.choice(spec.points, 3, replace=False)] = True
        points2d[~visibility] = 0.0
    return KeypointSequence(
        points2d=points2d,
        points3d=points3d,
        visibility=visibility,
        edges=edges,
        description={
            "source": "synthetic",
            "kind": f"nrsfm-{spec.kind}",
            "spec": asdict(spec),
            "name": spec.name(),
        },
    )


def _check(spec: SequenceSpec) -> None:
    if spec.kind not in KINDS:
        raise DataError(f"expected a kind in {KINDS}, got {spec.kind!r}", field="kind")
    if spec.frames < 10:
        raise DataError(f"expected at least 10 frames, got {spec.frames}", field="frames")
    least = 17 if spec.kind == "human" else 4
    if spec.points < least:
        raise DataError(
            f"expected at least {least} points for a {spec.kind}, got {spec.points}",
            field="points",
        )
    if not spec.noise >= 0:
        raise DataError(f"expected noise >= 0, got {spec.noise}", field="noise")
    if not 0 <= spec.missing <= 0.5:
        raise DataError(f"expected missing in [0, 0.5], got {spec.missing}", field="missing")


def _human(spec: SequenceSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(F,P,3) world points (mm) of joints and bone markers, and the skeleton's edges."""
    motion = sample_motion(1, spec.frames, int(rng.integers(2**31)))
    positions, rotations, offsets = posed_skeleton(
        motion["angles"], motion["root_yaw"], motion["bone_lengths"]
    )
    positions, rotations, offsets = positions[0], rotations[0], offsets[0]
    markers = spec.points - 17
    bones = np.arange(1, 17)
    child = rng.choice(bones, size=markers)
    parent = np.asarray(H36M_PARENTS)[child]
    frac = rng.uniform(0.15, 0.85, size=markers)
    along = offsets[child] * frac[:, None]  # (M,3) in the parent's frame
    axis = offsets[child] / np.linalg.norm(offsets[child], axis=1, keepdims=True)
    side = rng.normal(size=(markers, 3))
    side -= (side * axis).sum(1, keepdims=True) * axis
    side /= np.maximum(np.linalg.norm(side, axis=1, keepdims=True), 1e-9)
    local = along + side * rng.uniform(30.0, 90.0, size=(markers, 1))
    marker_world = positions[:, parent] + np.einsum("fmij,mj->fmi", rotations[:, parent], local)
    return np.concatenate([positions, marker_world], axis=1), np.asarray(H36M_EDGES)


@functools.lru_cache(maxsize=1)
def _animal_rig():
    from engine.category.template import DEMO_TEMPLATE
    from engine.io.mesh import load_mesh
    from engine.synthetic.skeleton import fit_skeleton

    mesh = load_mesh(DEMO_TEMPLATE)
    return mesh.vertices, fit_skeleton(mesh.vertices, mesh.faces)


def _animal(spec: SequenceSpec, rng: np.random.Generator) -> tuple[np.ndarray, None]:
    """(F,P,3) posed surface points of the demo quadruped (template units)."""
    from engine.synthetic.skeleton import pose, random_motion

    vertices, skeleton = _animal_rig()
    if spec.points > len(vertices):
        raise DataError(
            f"the animal has {len(vertices)} vertices, asked for {spec.points} points",
            field="points",
        )
    chosen = [int(rng.integers(len(vertices)))]
    dist = np.linalg.norm(vertices - vertices[chosen[0]], axis=1)
    for _ in range(spec.points - 1):
        chosen.append(int(dist.argmax()))
        dist = np.minimum(dist, np.linalg.norm(vertices - vertices[chosen[-1]], axis=1))
    angles = random_motion(
        skeleton,
        spec.frames,
        int(rng.integers(2**31)),
        amplitude_deg=float(rng.uniform(20, 40)),
        min_period=float(rng.uniform(40, 120)),
    )
    return pose(skeleton, angles, vertices)[:, chosen], None


__all__ = ["KINDS", "MOTIONS", "SequenceSpec", "generated_sequence", "sequence_spec"]
