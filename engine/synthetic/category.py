"""A synthetic articulated image category with hidden ground truth (``synthetic:quadruped``).

Instances of a template (the demo quadruped by default, any mesh the loader reads otherwise) are
posed by a skeleton fitted to it automatically and linear-blend skinning
(:mod:`engine.synthetic.skeleton`), never by the Laplacian handle deformer that the category
training learns, so learning is not handed its own model. Each short video is one smooth random
motion seen by one slowly turning camera; videos differ in pose, azimuth (the whole circle),
elevation (+/- 30 degrees), scale and position. The surface carries a colour pattern fixed to the
template (it moves with the skin) under Lambertian shading, so images carry texture and motion
cues as well as the silhouette.

Written in the image-set layout of :mod:`engine.io.image_sets`: images, masks, keypoints (the
template's keypoint vertices, visible where the z-buffer says so), sequences, flow from the true
surface motion, ``cameras.npz`` and ``ground_truth.npz``. Beside them ``template.ply`` and
``template_keypoints.json`` name the template the set was made from, so ``category train`` on
the folder needs no ``--template``.

Template axes: the up axis is the signed coordinate axis at whose low end most limb tips lie
(legs stand on the ground); the front axis is the longest remaining horizontal extent, signed
towards the highest limb tip (the head). Both can be given explicitly.

    python main.py category make-synthetic --out DIR [--template MESH] [--instances N] [--size PX] [--seed S]
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
import torch

from engine.core.errors import DataError, ImageSetError, InputError
from engine.core.progress import ProgressFn
from engine.io.files import write_text_atomic
from engine.io.image_sets import save_image_set
from engine.io.mesh import Mesh, load_mesh, save_mesh
from engine.synthetic.skeleton import Skeleton, fit_skeleton, pose, random_motion

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_TEMPLATE = REPO_ROOT / "assets" / "demo_template.ply"
#: Version of the generator: part of the cache key, so changing the generator regenerates.
GENERATOR_VERSION = 1
#: The test split's seeds are offset by this, so its videos share no motion or camera with
#: any training split's.
TEST_SEED_OFFSET = 1_000_003
#: Elevation range of the cameras, degrees.
ELEVATION_RANGE = 30.0
#: Defaults of the ``synthetic:quadruped`` spec.
DEFAULT_INSTANCES = {"train": 240, "test": 64}
DEFAULT_FRAMES_PER_VIDEO = 4
DEFAULT_SOURCE_SIZE = 128
#: Frames of the skeleton's motion between two frames of a video (the motion's periods are
#: 60-240 frames, so a stride of 4 moves limbs by a few degrees: a few pixels of flow).
MOTION_STRIDE = 4
BACKGROUND = 0.5


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


def _axis(name: str) -> np.ndarray:
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
    head = sk.tip_points[np.argmax(sk.tip_points @ _axis(up))]
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


# ------------------------------------------------------------------------------- generation


def _surface_colours(vertices: np.ndarray, up: str, front: str) -> np.ndarray:
    """(N,3) colours in [0,1]: stripes along the body, bands along the height, and spots, fixed
    to the template so they move with the surface."""
    lo, hi = vertices.min(0), vertices.max(0)
    u = (vertices - lo) / np.maximum(hi - lo, 1e-12)
    along = u @ np.abs(_axis(front))
    height = u @ np.abs(_axis(up))
    side = u @ np.abs(np.cross(_axis(up), _axis(front)))
    hue = (0.08 + 0.5 * along + 0.15 * np.sin(2 * np.pi * 3 * height)) % 1.0
    spots = 0.5 + 0.5 * np.sin(2 * np.pi * 5 * along) * np.sin(2 * np.pi * 4 * side + 1.0)
    value = 0.55 + 0.45 * spots
    return _hsv_to_rgb(hue, np.full_like(hue, 0.65), value)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack(
        [
            np.stack([v, t, p], -1),
            np.stack([q, v, p], -1),
            np.stack([p, v, t], -1),
            np.stack([p, q, v], -1),
            np.stack([t, p, v], -1),
            np.stack([v, p, q], -1),
        ]
    )
    return table[i, np.arange(len(h))]


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(B,N,3) area-weighted vertex normals of (B,N,3) vertices."""
    a, b, c = (vertices[:, faces[:, k]] for k in range(3))
    fn = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, (slice(None), faces[:, k]), fn)
    return normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)


def generate_category(
    template: CategoryTemplate,
    *,
    instances: int,
    size: int,
    seed: int = 0,
    frames_per_video: int = DEFAULT_FRAMES_PER_VIDEO,
    skeleton: Skeleton | None = None,
    progress: ProgressFn | None = None,
) -> dict:
    """Render ``instances`` images of posed copies of the template (see the module docstring).

    Args:
        template: the template, its keypoints and axes.
        instances: I >= 1 images, in videos of ``frames_per_video`` frames (the last video may be
            shorter).
        size: image side in pixels (square images).
        seed: all randomness (poses, cameras) follows from it.

    Returns:
        The arguments of :func:`engine.io.image_sets.save_image_set`: ``names``, ``masks``
        (I,S,S) bool, ``images`` (I,S,S,3) uint8, ``keypoints`` (I,P,3) (x, y pixels,
        visible), ``keypoint_names``, ``sequences``, ``flow`` (I,S,S,2) pixels to the next frame
        (zero for last frames), ``cameras`` (I,7) in pixels, ``ground_truth`` with
        ``vertices`` (I,N,3) posed template coordinates, ``vertices2d`` (I,N,2) pixels and
        ``faces``.
    """
    from engine.render.cameras import make_cameras, project, quaternion_to_matrix, view_rotation
    from engine.render.rasterizer import RasterSettings, rasterize
    from engine.render.shading import render_flow, vertex_visibility

    if instances < 1 or size < 8 or frames_per_video < 1:
        raise InputError(
            f"expected instances >= 1, size >= 8 and frames per video >= 1, got {instances}, "
            f"{size} and {frames_per_video}"
        )
    mesh = template.mesh
    sk = skeleton if skeleton is not None else fit_skeleton(mesh.vertices, mesh.faces)
    rng = np.random.default_rng(seed)
    faces = torch.as_tensor(mesh.faces)
    centre = 0.5 * (mesh.vertices.min(0) + mesh.vertices.max(0))
    rest = mesh.vertices - centre
    radius = float(np.linalg.norm(rest, axis=1).max())
    colours = _surface_colours(mesh.vertices, template.up_axis, template.front_axis)
    settings = RasterSettings(image_size=size)
    light_dir = np.array([0.3, -0.5, -1.0])
    light_dir /= np.linalg.norm(light_dir)

    out = {k: [] for k in ("names", "masks", "images", "keypoints", "flow", "cameras", "verts")}
    out["verts2d"] = []
    sequences: dict[str, list[str]] = {}
    num_videos = math.ceil(instances / frames_per_video)
    for video in range(num_videos):
        length = min(frames_per_video, instances - video * frames_per_video)
        motion_seed = int(rng.integers(2**31))
        start = int(rng.integers(0, 240))
        motion = random_motion(sk, start + MOTION_STRIDE * length, seed=motion_seed)
        angles = motion[start::MOTION_STRIDE][:length]
        posed = pose(sk, angles, mesh.vertices) - centre  # (L,N,3), centred template units
        azimuth0 = rng.uniform(0.0, 360.0)
        elevation = rng.uniform(-ELEVATION_RANGE, ELEVATION_RANGE)
        turn = rng.uniform(-4.0, 4.0)  # degrees per frame
        scale = rng.uniform(0.75, 0.95) * 0.5 * size / radius
        shift = rng.uniform(-0.06, 0.06, size=2) * size + 0.5 * size
        azimuths = azimuth0 + turn * np.arange(length)
        q = view_rotation(
            torch.as_tensor(azimuths),
            torch.full((length,), elevation, dtype=torch.float64),
            template.up_axis,
            template.front_axis,
        )
        cams = make_cameras(
            torch.full((length,), scale, dtype=torch.float64),
            torch.as_tensor(np.tile(shift, (length, 1))),
            q,
        )
        verts = torch.as_tensor(posed)
        screen = project(verts, cams)
        frags = rasterize(screen, faces, settings)
        mask = frags.mask.numpy()
        # Shading: colour and camera-frame normals interpolated with the fragments' barycentrics
        # (the generator needs no gradients, so it reads the fragments directly).
        normals = _vertex_normals(posed, mesh.faces)
        cam_normals = np.einsum("lij,lnj->lni", quaternion_to_matrix(q).numpy(), normals)
        pix = frags.pix_to_face.numpy()
        bary = frags.bary.numpy()
        corner = mesh.faces[np.where(pix >= 0, pix, 0)]  # (L,S,S,3)
        col = np.einsum("lhwk,lhwkc->lhwc", bary, colours[corner])
        frame = np.arange(length)[:, None, None, None]
        nrm = np.einsum("lhwk,lhwkc->lhwc", bary, cam_normals[frame, corner])
        nrm /= np.maximum(np.linalg.norm(nrm, axis=-1, keepdims=True), 1e-12)
        shade = 0.35 + 0.65 * np.abs(nrm @ light_dir)  # two-sided: thin parts lit either way
        image = np.where(mask[..., None], col * shade[..., None], BACKGROUND)
        image = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
        visible = vertex_visibility(frags, screen, faces).numpy()  # (L,N)
        kp_xy = screen[:, template.keypoint_vertices, :2].numpy()
        kp_vis = visible[:, template.keypoint_vertices].astype(np.float32)
        # Frame t's flow carries its visible surface to frame t+1; the last frame's is zero.
        following = torch.cat([screen[1:], screen[-1:]])
        flow = render_flow(frags, screen, following, faces)[0].numpy().astype(np.float32)
        names = [f"v{video:04d}_f{t:02d}" for t in range(length)]
        sequences[f"v{video:04d}"] = names
        out["names"] += names
        out["masks"].append(mask)
        out["images"].append(image)
        out["keypoints"].append(np.concatenate([kp_xy, kp_vis[..., None]], -1))
        out["flow"].append(flow)
        out["cameras"].append(cams.numpy())
        out["verts"].append(posed + centre)
        out["verts2d"].append(screen[..., :2].numpy())
        if progress is not None:
            progress((video + 1) / num_videos, f"rendered video {video + 1} of {num_videos}")
    return {
        "names": out["names"],
        "masks": np.concatenate(out["masks"]),
        "images": np.concatenate(out["images"]),
        "keypoints": np.concatenate(out["keypoints"]).astype(np.float32),
        "keypoint_names": list(template.keypoint_names),
        "sequences": sequences,
        "flow": np.concatenate(out["flow"]),
        "cameras": np.concatenate(out["cameras"]).astype(np.float32),
        "ground_truth": {
            "vertices": np.concatenate(out["verts"]).astype(np.float32),
            "vertices2d": np.concatenate(out["verts2d"]).astype(np.float32),
            "faces": mesh.faces,
        },
    }


# ------------------------------------------------------------------------------ sets on disk

TEMPLATE_FILE = "template.ply"
TEMPLATE_KEYPOINTS_FILE = "template_keypoints.json"


def make_synthetic(
    out: str | Path,
    *,
    template: str | Path | None = None,
    template_keypoints: str | Path | None = None,
    instances: int = DEFAULT_INSTANCES["train"],
    size: int = DEFAULT_SOURCE_SIZE,
    seed: int = 0,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> Path:
    """Generate a synthetic category and write it as an image-set folder (module docstring).

    Returns:
        The folder. Besides the image-set layout it holds ``template.ply`` and
        ``template_keypoints.json``.

    Raises:
        InputError: a bad template or keypoint file, bad sizes, or a non-empty ``out``.
    """
    out = Path(out)
    if not overwrite and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ImageSetError(
            "exists and is not an empty folder: choose a new or empty folder", path=out
        )
    tmpl = category_template(template, template_keypoints)
    data = generate_category(tmpl, instances=instances, size=size, seed=seed, progress=progress)
    folder = save_image_set(out, **data, overwrite=overwrite)
    save_mesh(folder / TEMPLATE_FILE, tmpl.mesh.vertices, tmpl.mesh.faces)
    keypoints = dict(zip(tmpl.keypoint_names, (int(i) for i in tmpl.keypoint_vertices)))
    write_text_atomic(folder / TEMPLATE_KEYPOINTS_FILE, json.dumps(keypoints, indent=1))
    return folder


def parse_spec(spec: str) -> dict:
    """The options of a ``synthetic:quadruped[?instances=N&size=PX&split=train|test&seed=S]``
    spec, with defaults filled in.

    Raises:
        DataError: another kind, an unknown option or a bad value.
    """
    head, _, query = spec.partition("?")
    if head != "synthetic:quadruped":
        raise DataError(f"unknown synthetic category {head!r}: expected synthetic:quadruped")
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = set(options) - {"instances", "size", "split", "seed", "template"}
    if unknown:
        raise DataError(
            f"unknown option(s) {sorted(unknown)} in {spec!r}: expected instances, size, "
            "split, seed, template"
        )
    split = options.get("split", "train")
    if split not in ("train", "test"):
        raise DataError(f"split must be train or test, got {split!r}", field="split")
    try:
        parsed = {
            "split": split,
            "instances": int(options.get("instances", DEFAULT_INSTANCES[split])),
            "size": int(options.get("size", DEFAULT_SOURCE_SIZE)),
            "seed": int(options.get("seed", 0)),
            "template": options.get("template") or None,
        }
    except ValueError as exc:
        raise DataError(f"bad number in {spec!r}: {exc}") from None
    if parsed["instances"] < 1 or not 16 <= parsed["size"] <= 1024:
        raise DataError(
            f"expected instances >= 1 and 16 <= size <= 1024 in {spec!r}", field="instances/size"
        )
    return parsed


def synthetic_folder(spec: str, progress: ProgressFn | None = None) -> Path:
    """The folder holding the set a ``synthetic:quadruped`` spec names, generated on first use
    and cached (``$XDG_CACHE_HOME/shapebench/synthetic/<key>``, ``~/.cache`` by default; the
    key covers the options, the template's content and :data:`GENERATOR_VERSION`)."""
    from engine.io.mesh import mesh_hash

    options = parse_spec(spec)
    template = Path(options["template"]) if options["template"] else DEMO_TEMPLATE
    tmpl_mesh = load_mesh(template)
    key = json.dumps(
        {
            **options,
            "template": mesh_hash(tmpl_mesh.vertices, tmpl_mesh.faces),
            "version": GENERATOR_VERSION,
        },
        sort_keys=True,
    )
    cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = cache_root / "shapebench" / "synthetic" / hashlib.sha256(key.encode()).hexdigest()[:16]
    if (folder / TEMPLATE_KEYPOINTS_FILE).is_file():
        return folder
    seed = options["seed"] + (TEST_SEED_OFFSET if options["split"] == "test" else 0)
    folder.parent.mkdir(parents=True, exist_ok=True)
    return make_synthetic(
        folder,
        template=template,
        instances=options["instances"],
        size=options["size"],
        seed=seed,
        overwrite=True,
        progress=progress,
    )
