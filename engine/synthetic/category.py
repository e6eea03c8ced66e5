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

    python main.py category make-synthetic --out DIR [--template MESH] [--instances N] [--size PX] [--seed S]
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
import torch

from engine.category.template import (
    DEMO_TEMPLATE,
    CategoryTemplate,
    axis_vector,
    category_template,
)
from engine.core.errors import DataError, ImageSetError, InputError
from engine.core.progress import ProgressFn
from engine.io.files import write_text_atomic
from engine.io.image_sets import save_image_set
from engine.io.mesh import load_mesh, save_mesh
from engine.synthetic.skeleton import Skeleton, fit_skeleton, pose, random_motion

#: Version of the generator: part of the cache key, so changing the generator regenerates.
GENERATOR_VERSION = 3
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


# ------------------------------------------------------------------------------- generation


def _surface_colours(vertices: np.ndarray, up: str, front: str) -> np.ndarray:
    """(N,3) colours in [0,1]: stripes along the body, bands along the height, and spots, fixed
    to the template so they move with the surface."""
    lo, hi = vertices.min(0), vertices.max(0)
    u = (vertices - lo) / np.maximum(hi - lo, 1e-12)
    along = u @ np.abs(axis_vector(front))
    height = u @ np.abs(axis_vector(up))
    side = u @ np.abs(np.cross(axis_vector(up), axis_vector(front)))
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


def generate_category(
    template: CategoryTemplate,
    *,
    instances: int,
    size: int,
    seed: int = 0,
    frames_per_video: int = DEFAULT_FRAMES_PER_VIDEO,
    skeleton: Skeleton | None = None,
    name_prefix: str = "",
    progress: ProgressFn | None = None,
) -> dict:
    """Render ``instances`` images of posed copies of the template (see the module docstring).

    Args:
        template: the template, its keypoints and axes.
        instances: I >= 1 images, in videos of ``frames_per_video`` frames (the last video may be
            shorter).
        size: image side in pixels (square images).
        seed: all randomness (poses, cameras) follows from it.
        name_prefix: put before every image and video name (splits get distinct names).

    Returns:
        The arguments of :func:`engine.io.image_sets.save_image_set`: ``names``, ``masks``
        (I,S,S) bool, ``images`` (I,S,S,3) uint8, ``keypoints`` (I,P,3) (x, y pixels,
        visible), ``keypoint_names``, ``sequences``, ``flow`` (I,S,S,2) pixels to the next frame
        (zero for last frames), ``cameras`` (I,7) in pixels, ``ground_truth`` with
        ``vertices`` (I,N,3) posed template coordinates, ``vertices2d`` (I,N,2) pixels and
        ``faces``.
    """
    from engine.render.cameras import make_cameras, project, view_rotation
    from engine.render.preview import shade
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
        posed = pose(sk, angles, mesh.vertices)  # (L,N,3) template units
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
        # The stored cameras project the stored (uncentred) vertices: the translation takes
        # the centre's image s (R c)_xy off the shift.
        centre_t = torch.as_tensor(centre)[None, None].expand(length, 1, 3)
        cams[:, 1:3] -= project(centre_t, cams)[:, 0, :2] - cams[:, 1:3]
        verts = torch.as_tensor(posed)
        screen = project(verts, cams)
        frags = rasterize(screen, faces, settings)
        mask = frags.mask.numpy()
        image = shade(frags, posed, mesh.faces, cams.numpy(), colours, BACKGROUND)
        visible = vertex_visibility(frags, screen, faces).numpy()  # (L,N)
        kp_xy = screen[:, template.keypoint_vertices, :2].numpy()
        kp_vis = visible[:, template.keypoint_vertices].astype(np.float32)
        # Frame t's flow carries its visible surface to frame t+1; the last frame's is zero.
        following = torch.cat([screen[1:], screen[-1:]])
        flow = render_flow(frags, screen, following, faces)[0].numpy().astype(np.float32)
        names = [f"{name_prefix}v{video:04d}_f{t:02d}" for t in range(length)]
        sequences[f"{name_prefix}v{video:04d}"] = names
        out["names"] += names
        out["masks"].append(mask)
        out["images"].append(image)
        out["keypoints"].append(np.concatenate([kp_xy, kp_vis[..., None]], -1))
        out["flow"].append(flow)
        out["cameras"].append(cams.numpy())
        out["verts"].append(posed)
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
    name_prefix: str = "",
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
    data = generate_category(
        tmpl, instances=instances, size=size, seed=seed, name_prefix=name_prefix, progress=progress
    )
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
        name_prefix="test_" if options["split"] == "test" else "",
        overwrite=True,
        progress=progress,
    )
