"""The one loader (and writer) of image sets: a user's folder of masks, images and annotations.

Learning a category from images (seed 001) reads every instance through
:func:`load_image_set`, which crops a square around each object, resizes it to ``size x size``
and re-expresses every annotation (keypoints, optical flow, cameras, ground truth) in the crop's
pixels. Every defect ends in one :class:`~engine.core.errors.ImageSetError` naming the file and
what was expected, and nothing is returned half-loaded. :func:`save_image_set` writes the same
layout (the synthetic generator uses it).

Layout of an image set folder ``DIR``::

    DIR/masks/NAME.png       required: the object where the value is > 127 (see below)
    DIR/images/NAME.png|jpg  optional (all or none): RGB of the same size as the mask
    DIR/keypoints.json       optional: {"names": [...], "points": {"NAME": [[x, y, visible], ...]}}
    DIR/sequences.json       optional: {"VIDEO": ["NAME", ...]} frames in temporal order
    DIR/flow/NAME.npy        optional: (H, W, 2) float flow in pixels from NAME to the next
                             frame of its video (one file for every frame that has a next frame)
    DIR/cameras.npz          optional: names (I,), cameras (I, 7) in the source image's pixels
    DIR/ground_truth.npz     optional (synthetic sets): names (I,), vertices (I, N, 3),
                             vertices2d (I, N, 2) pixels, faces (F, 3)

Conventions:

* Pixels follow :mod:`engine.render.cameras`: x right, y down, origin at the top-left corner of
  the top-left pixel, pixel (row i, column j) centred at (j + 0.5, i + 0.5). Keypoints,
  ``vertices2d`` and camera translations are in pixels of the source image; flow vectors in
  pixels, stored per pixel (``flow[i, j]`` is the motion of the centre of pixel (i, j)).
* Masks: a grey PNG is the object where the value is > 127 (16-bit: > 127/255 of full scale);
  a grey+alpha or RGBA PNG uses its alpha channel (unless the alpha is the same everywhere, then
  the colour); an RGB PNG uses the mean of its three channels. A 1-bit PNG is used as is.
* Keypoints: ``visible`` is 0 or 1; an image missing from ``points`` has all points invisible
  at (0, 0). Every entry must have ``len(names)`` points of 3 finite numbers.
* Every image must have a mask, and when ``images/`` is non-empty every mask an image; a frame
  is in at most one video; cameras and ground truth, when present, cover every image.
* Cameras: rows ``[s, tx, ty, qw, qx, qy, qz]`` as in :mod:`engine.render.cameras`;
  quaternions are normalised on load.

Optical flow: a set with ``sequences.json`` but no ``flow/`` folder gets its flow computed by
OpenCV's DIS optical flow (medium preset) between consecutive frames, on grey images (on the
masks when the set has no images), at source resolution. It is cached in ``DIR/.flow_cache/``
(or, when ``DIR`` is not writable, ``$XDG_CACHE_HOME/shapebench/flow/<hash of DIR>/``, by default
under ``~/.cache``) beside a JSON key of the source files' sizes and modification times, so an
edited frame is recomputed.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np
import torch
from scipy import ndimage

from engine.core.errors import ImageSetError
from engine.core.progress import ProgressFn
from engine.io.files import write_bytes_atomic
from engine.render.cameras import CAMERA_DIM, crop_resize_cameras, crop_resize_points

MASKS_DIR = "masks"
IMAGES_DIR = "images"
FLOW_DIR = "flow"
FLOW_CACHE_DIR = ".flow_cache"
KEYPOINTS_FILE = "keypoints.json"
SEQUENCES_FILE = "sequences.json"
CAMERAS_FILE = "cameras.npz"
GROUND_TRUTH_FILE = "ground_truth.npz"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FLOW_MODES = ("auto", "none", "dis")
#: DIS refuses images whose width and height are both below this.
DIS_MIN_SIDE = 12
_FLOW_CACHE_VERSION = 1


@dataclass
class ImageSet:
    """Cropped, resized instances of an image set, with annotations in crop pixels.

    Row ``k`` of every array is image ``names[k]``; ``I`` images, each cropped to ``S x S``.

    Attributes:
        names: I image names (mask file stems), sorted (Python string order).
        size: S, the side of every cropped image in pixels.
        masks: (I, S, S) float32 in [0, 1] (1 = object; fractional at resized edges).
        crops: (I, 3) float64 ``[x0, y0, side]``: the square ``[x0, x0+side] x [y0, y0+side]``
            of the source image (pixels) that became the crop; it may leave the source image,
            where masks, images and flow are padded with zeros. Map points with
            :func:`engine.render.cameras.crop_resize_points` / ``uncrop_resize_points``.
        source_sizes: (I, 2) int64 ``(H, W)`` of the source images.
        next_index: (I,) int64 row of the next frame of the same video, -1 for none.
        root: the folder it was loaded from.
        images: (I, S, S, 3) float32 RGB in [0, 1], or None (a masks-only set).
        keypoints: (I, P, 3) float32 ``(x, y, visible)``, x and y in crop pixels (points outside
            the crop keep their coordinates and flag), visible 0 or 1; or None.
        keypoint_names: P names, or None.
        sequences: video name -> frame names in temporal order (empty without sequences.json).
        flow: (I, S, S, 2) float32 crop pixels: ``flow[k, i, j]`` moves the centre of crop pixel
            (i, j) of frame k to its position in the crop of frame ``next_index[k]``; zero where
            ``next_index == -1``. None when the set has no consecutive frames or flow was skipped.
        cameras: (I, 7) float32 cameras of the crops (pixels of the S x S crop), or None.
        ground_truth: ``{"vertices": (I, N, 3) float64 world units, "vertices2d": (I, N, 2)
            float64 crop pixels, "faces": (F, 3) int64}``, or None.
    """

    names: list[str]
    size: int
    masks: np.ndarray
    crops: np.ndarray
    source_sizes: np.ndarray
    next_index: np.ndarray
    root: str
    images: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    keypoint_names: list[str] | None = None
    sequences: dict[str, list[str]] = field(default_factory=dict)
    flow: np.ndarray | None = None
    cameras: np.ndarray | None = None
    ground_truth: dict | None = None

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Row of image ``name`` (``KeyError`` if it is not in the set)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(name) from None

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageSet:
        """The images ``indices`` (rows, in that order) as a new set.

        ``sequences`` keeps each video's remaining frames in order; ``next_index`` and ``flow``
        only link frames that are consecutive in this set's videos (a link to a dropped frame
        becomes -1 with zero flow).
        """
        rows = np.asarray(indices, dtype=np.int64).reshape(-1)
        position = {int(old): new for new, old in enumerate(rows)}
        next_index = np.array(
            [position.get(int(self.next_index[old]), -1) for old in rows], dtype=np.int64
        )
        names = [self.names[old] for old in rows]
        kept = set(names)
        sequences = {
            video: [frame for frame in frames if frame in kept]
            for video, frames in self.sequences.items()
        }
        flow = None
        if self.flow is not None:
            flow = self.flow[rows].copy()
            flow[next_index < 0] = 0
        ground_truth = None
        if self.ground_truth is not None:
            ground_truth = {
                "vertices": self.ground_truth["vertices"][rows],
                "vertices2d": self.ground_truth["vertices2d"][rows],
                "faces": self.ground_truth["faces"],
            }
        return ImageSet(
            names=names,
            size=self.size,
            masks=self.masks[rows],
            crops=self.crops[rows],
            source_sizes=self.source_sizes[rows],
            next_index=next_index,
            root=self.root,
            images=None if self.images is None else self.images[rows],
            keypoints=None if self.keypoints is None else self.keypoints[rows],
            keypoint_names=self.keypoint_names,
            sequences={video: frames for video, frames in sequences.items() if frames},
            flow=flow,
            cameras=None if self.cameras is None else self.cameras[rows],
            ground_truth=ground_truth,
        )


# --------------------------------------------------------------------------- loading


def load_image_set(
    path: str | Path,
    *,
    size: int = 64,
    margin: float = 0.1,
    flow: str = "auto",
    progress: ProgressFn | None = None,
) -> ImageSet:
    """Load the image set folder ``path`` (layout in the module docstring).

    Each instance is cropped to the square around its mask's bounding box, grown by ``margin``
    times the box's larger side on each side (rounded to whole source pixels), centred on the box,
    and resized to ``size x size`` (area interpolation when shrinking, bilinear when enlarging;
    masks resized as float). Keypoints, flow, cameras and ground truth follow the crop.

    Args:
        path: the folder, or a built-in synthetic category spec
            (``synthetic:quadruped[?instances=N&size=PX&split=train|test&seed=S]``, see
            :mod:`engine.synthetic.category`), generated once and read through this same loader.
        size: S, side of the cropped images in pixels.
        margin: extra context around the box, a fraction of its larger side, on each side.
        flow: ``"auto"`` (``flow/`` when present, else DIS flow when the set has sequences),
            ``"dis"`` (always compute DIS flow, ignoring ``flow/``) or ``"none"`` (no flow).
        progress: ``progress(fraction, message)`` callback.

    Raises:
        ImageSetError: naming the file (and field) for any defect of the folder.
    """
    if str(path).startswith("synthetic:"):
        from engine.synthetic.category import synthetic_folder

        path = synthetic_folder(str(path), progress=progress)
    root = Path(path)
    if not isinstance(size, int) or size < 1:
        raise ImageSetError(f"expected a positive integer size, got {size!r}", field="size")
    if not (margin >= 0 and math.isfinite(margin)):
        raise ImageSetError(f"expected a margin >= 0, got {margin!r}", field="margin")
    if flow not in FLOW_MODES:
        raise ImageSetError(f"expected one of {FLOW_MODES}, got {flow!r}", field="flow")
    if not root.is_dir():
        raise ImageSetError("expected an image set folder (with masks/NAME.png)", path=root)
    report = progress or (lambda fraction, message: None)

    mask_files = _list_masks(root)
    names = sorted(mask_files)
    image_files = _list_images(root, mask_files)
    keypoint_names, raw_keypoints = _read_keypoints(root, names)
    sequences = _read_sequences(root, names)
    next_index = _next_index(names, sequences)
    raw_cameras = _read_cameras(root, names)
    raw_ground_truth = _read_ground_truth(root, names)
    use_flow_files = flow == "auto" and (root / FLOW_DIR).is_dir()
    has_pairs = bool((next_index >= 0).any())
    if use_flow_files and not sequences:
        raise ImageSetError(
            f"flow needs {SEQUENCES_FILE} to say which frame follows which", path=root / FLOW_DIR
        )
    flow_files = _list_flow_files(root, names, next_index) if use_flow_files else {}

    count = len(names)
    flow_share = 0.5 if flow != "none" and has_pairs else 0.0
    masks = np.empty((count, size, size), np.float32)
    images = None if image_files is None else np.empty((count, size, size, 3), np.float32)
    crops = np.empty((count, 3), np.float64)
    source_sizes = np.empty((count, 2), np.int64)
    for k, name in enumerate(names):
        report((1 - flow_share) * k / count, f"reading {name}")
        mask = _read_mask(mask_files[name])
        box = _crop_box(mask, margin)
        crops[k] = box
        source_sizes[k] = mask.shape
        masks[k] = np.clip(_crop_resize(mask.astype(np.float32), box, size), 0.0, 1.0)
        if images is not None:
            image = _read_picture(image_files[name], "image")
            if image.shape[:2] != mask.shape:
                raise ImageSetError(
                    f"expected the size of its mask {_hw(mask.shape)}, got {_hw(image.shape)}",
                    path=image_files[name],
                )
            cropped = _crop_resize(_as_rgb(image), box, size).astype(np.float32)
            images[k] = np.clip(cropped / _full_scale(image.dtype), 0.0, 1.0)

    crop_tensor = torch.from_numpy(crops)
    keypoints = None
    if raw_keypoints is not None:
        keypoints = raw_keypoints.copy()
        xy = crop_resize_points(torch.from_numpy(raw_keypoints[..., :2]), crop_tensor, size)
        keypoints[..., :2] = xy.numpy()
        keypoints = keypoints.astype(np.float32)
    cameras = None
    if raw_cameras is not None:
        cameras = crop_resize_cameras(torch.from_numpy(raw_cameras), crop_tensor, size)
        cameras = cameras.numpy().astype(np.float32)
    ground_truth = None
    if raw_ground_truth is not None:
        vertices2d = crop_resize_points(
            torch.from_numpy(raw_ground_truth["vertices2d"]), crop_tensor, size
        )
        ground_truth = {**raw_ground_truth, "vertices2d": vertices2d.numpy()}

    flow_out = None
    if flow != "none" and has_pairs:
        flow_out = np.zeros((count, size, size, 2), np.float32)
        cache = _FlowCache(root) if not use_flow_files else None
        pairs = np.flatnonzero(next_index >= 0)
        for step, k in enumerate(pairs):
            report(1 - flow_share + flow_share * step / len(pairs), f"flow of {names[k]}")
            j = int(next_index[k])
            if use_flow_files:
                source_size = (int(source_sizes[k, 0]), int(source_sizes[k, 1]))
                source_flow = _read_flow_file(flow_files[names[k]], source_size)
            elif image_files is not None:
                source_flow = cache.flow(image_files, names[k], names[j], is_mask=False)
            else:
                source_flow = cache.flow(mask_files, names[k], names[j], is_mask=True)
            flow_out[k] = _crop_flow(source_flow, crops[k], crops[j], size)
    report(1.0, "image set loaded")
    return ImageSet(
        names=names,
        size=size,
        masks=masks,
        crops=crops,
        source_sizes=source_sizes,
        next_index=next_index,
        root=str(root),
        images=images,
        keypoints=keypoints,
        keypoint_names=keypoint_names,
        sequences=sequences,
        flow=flow_out,
        cameras=cameras,
        ground_truth=ground_truth,
    )


def load_template_keypoints(path: str | Path, num_vertices: int) -> tuple[list[str], np.ndarray]:
    """Read a template's keypoint file: a JSON object ``{name: vertex index}``.

    Returns ``(names, indices)``: the P names in file order and ``(P,) int64`` 0-based vertex
    indices, each in ``[0, num_vertices)``. Raises :class:`ImageSetError` (file, line for JSON
    syntax, field = the keypoint name) for anything else, duplicate names included.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not data:
        raise ImageSetError('expected a non-empty JSON object {"name": vertex index}', path=path)
    names, indices = [], []
    for name, index in data.items():
        if not name:
            raise ImageSetError("expected non-empty keypoint names", path=path)
        if isinstance(index, bool) or not isinstance(index, int):
            raise ImageSetError(
                f"expected an integer vertex index, got {index!r}", path=path, field=name
            )
        if not 0 <= index < num_vertices:
            raise ImageSetError(
                f"expected a vertex index in [0, {num_vertices}), got {index}",
                path=path,
                field=name,
            )
        names.append(name)
        indices.append(index)
    return names, np.asarray(indices, dtype=np.int64)


# --------------------------------------------------------------------------- folder contents


def _visible_entries(folder: Path) -> list[Path]:
    # Hidden files (.DS_Store, editor swap files) are never part of a set.
    return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))


def _list_masks(root: Path) -> dict[str, Path]:
    folder = root / MASKS_DIR
    if not folder.is_dir():
        raise ImageSetError(f"expected a {MASKS_DIR}/ folder holding NAME.png masks", path=root)
    masks: dict[str, Path] = {}
    for entry in _visible_entries(folder):
        if not entry.is_file() or entry.suffix.lower() != ".png":
            raise ImageSetError("expected only NAME.png mask files in masks/", path=entry)
        if entry.stem in masks:
            raise ImageSetError(f"two masks named {entry.stem!r}", path=entry)
        masks[entry.stem] = entry
    if not masks:
        raise ImageSetError("expected at least one NAME.png mask", path=folder)
    return masks


def _list_images(root: Path, masks: Mapping[str, Path]) -> dict[str, Path] | None:
    folder = root / IMAGES_DIR
    if not folder.is_dir():
        return None
    images: dict[str, Path] = {}
    for entry in _visible_entries(folder):
        if not entry.is_file() or entry.suffix.lower() not in IMAGE_SUFFIXES:
            raise ImageSetError("expected only NAME.png or NAME.jpg images in images/", path=entry)
        if entry.stem not in masks:
            raise ImageSetError(
                f"image without a mask: expected {MASKS_DIR}/{entry.stem}.png", path=entry
            )
        if entry.stem in images:
            raise ImageSetError(f"two images named {entry.stem!r}", path=entry)
        images[entry.stem] = entry
    if not images:
        return None
    for name, mask_path in masks.items():
        if name not in images:
            raise ImageSetError(
                f"mask without an image: expected {IMAGES_DIR}/{name}.png or .jpg "
                "(images/ holds the images of other masks)",
                path=mask_path,
            )
    return images


def _list_flow_files(root: Path, names: list[str], next_index: np.ndarray) -> dict[str, Path]:
    folder = root / FLOW_DIR
    has_next = {name for name, nxt in zip(names, next_index, strict=True) if nxt >= 0}
    files: dict[str, Path] = {}
    for entry in _visible_entries(folder):
        if not entry.is_file() or entry.suffix.lower() != ".npy":
            raise ImageSetError("expected only NAME.npy flow files in flow/", path=entry)
        if entry.stem not in names:
            raise ImageSetError(
                f"flow for an unknown image: expected {MASKS_DIR}/{entry.stem}.png", path=entry
            )
        if entry.stem not in has_next:
            raise ImageSetError(
                f"flow for a frame that has no next frame in {SEQUENCES_FILE}", path=entry
            )
        files[entry.stem] = entry
    for name in names:
        if name in has_next and name not in files:
            raise ImageSetError(
                f"expected {FLOW_DIR}/{name}.npy: frame {name!r} has a next frame", path=folder
            )
    return files


# --------------------------------------------------------------------------- pictures


def _hw(shape: tuple[int, ...]) -> str:
    return f"{shape[1]} x {shape[0]} pixels"


def _read_picture(path: Path, kind: str) -> np.ndarray:
    try:
        array = np.asarray(iio.imread(path, plugin="pillow"))
    except Exception as err:  # imageio raises whatever its plugins raise
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ImageSetError(
            f"cannot read this {kind} (expected a PNG or JPEG file): {reason}", path=path
        ) from None
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise ImageSetError(
            f"expected a grey, grey+alpha, RGB or RGBA {kind}, got an array of shape {array.shape}",
            path=path,
        )
    if array.dtype not in (np.bool_, np.uint8, np.uint16):
        raise ImageSetError(f"expected an 8- or 16-bit {kind}, got {array.dtype}", path=path)
    if min(array.shape[:2]) < 1:
        raise ImageSetError(f"expected a non-empty {kind}", path=path)
    return array


def _full_scale(dtype: np.dtype) -> float:
    return 1.0 if dtype == np.bool_ else float(np.iinfo(dtype).max)


def _read_mask(path: Path) -> np.ndarray:
    """(H, W) bool: the object pixels of a mask file (rules in the module docstring)."""
    array = _read_picture(path, "mask")
    if array.dtype == np.bool_:
        grey = array if array.ndim == 2 else array[..., -1]
        return np.ascontiguousarray(grey)
    if array.ndim == 2:
        grey = array
    else:
        alpha = array[..., -1] if array.shape[2] in (2, 4) else None
        colour = array[..., 0] if array.shape[2] == 2 else array[..., :3].mean(axis=2)
        uniform_alpha = alpha is None or int(alpha.min()) == int(alpha.max())
        grey = colour if uniform_alpha else alpha
    # 127 of 255 at the picture's own bit depth (127 * 257 for 16-bit).
    mask = grey > 127 * (np.iinfo(array.dtype).max // 255)
    if not mask.any():
        hint = " (a 0/1 mask? expected 0 and 255)" if int(np.max(grey)) > 0 else ""
        raise ImageSetError(f"empty mask: no pixel > 127{hint}", path=path)
    return mask


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.bool_:
        image = image.astype(np.uint8)
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 2:
        return np.repeat(image[..., :1], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def _crop_box(mask: np.ndarray, margin: float) -> np.ndarray:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    # Pixel-edge bounds of the object: columns cols[0]..cols[-1] span [cols[0], cols[-1] + 1].
    x_min, x_max, y_min, y_max = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
    larger = max(x_max - x_min, y_max - y_min)
    side = max(1, math.ceil(larger * (1 + 2 * margin) - 1e-9))
    x0 = math.floor((x_min + x_max - side) / 2 + 0.5)
    y0 = math.floor((y_min + y_max - side) / 2 + 0.5)
    return np.array([x0, y0, side], dtype=np.float64)


def _crop_resize(array: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """The square ``box`` of ``array (H, W[, C])`` (zeros outside), resized to size x size."""
    x0, y0, side = (int(v) for v in box)
    height, width = array.shape[:2]
    canvas = np.zeros((side, side, *array.shape[2:]), dtype=array.dtype)
    sx0, sx1 = max(x0, 0), min(x0 + side, width)
    sy0, sy1 = max(y0, 0), min(y0 + side, height)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = array[sy0:sy1, sx0:sx1]
    if side == size:
        return canvas
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interpolation)


# --------------------------------------------------------------------------- annotations


class _DuplicateKeyError(Exception):
    pass


def _unique_object(pairs: list[tuple[str, object]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _read_json(path: Path) -> object:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as err:
        raise ImageSetError(f"cannot read: {err.strerror or err}", path=path) from None
    except UnicodeDecodeError:
        raise ImageSetError("expected a UTF-8 JSON file", path=path) from None
    try:
        return json.loads(text, object_pairs_hook=_unique_object)
    except json.JSONDecodeError as err:
        raise ImageSetError(
            f"invalid JSON: {err.msg} (column {err.colno})", path=path, line=err.lineno
        ) from None
    except _DuplicateKeyError as err:
        raise ImageSetError(f"duplicate key {err.args[0]!r}", path=path) from None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _read_keypoints(root: Path, names: list[str]) -> tuple[list[str] | None, np.ndarray | None]:
    """``(names, (I, P, 3) float64 in source pixels)`` from keypoints.json, or (None, None)."""
    path = root / KEYPOINTS_FILE
    if not path.exists():
        return None, None
    data = _read_json(path)
    if not isinstance(data, dict) or set(data) != {"names", "points"}:
        raise ImageSetError(
            'expected an object with exactly the keys "names" and "points"', path=path
        )
    point_names = data["names"]
    if (
        not isinstance(point_names, list)
        or not point_names
        or not all(isinstance(n, str) and n for n in point_names)
    ):
        raise ImageSetError("expected a non-empty list of names", path=path, field="names")
    if len(set(point_names)) != len(point_names):
        raise ImageSetError("expected unique keypoint names", path=path, field="names")
    points = data["points"]
    if not isinstance(points, dict):
        raise ImageSetError('expected an object {"NAME": [[x, y, visible], ...]}', path=path)
    row_of = {name: k for k, name in enumerate(names)}
    count = len(point_names)
    keypoints = np.zeros((len(names), count, 3), np.float64)
    for image_name, entries in points.items():
        where = f"points.{image_name}"
        if image_name not in row_of:
            raise ImageSetError(
                f"keypoints for an unknown image: expected {MASKS_DIR}/{image_name}.png",
                path=path,
                field=where,
            )
        if not isinstance(entries, list) or len(entries) != count:
            got = len(entries) if isinstance(entries, list) else type(entries).__name__
            raise ImageSetError(
                f"expected {count} points (one per name), got {got}", path=path, field=where
            )
        for p, entry in enumerate(entries):
            if (
                not isinstance(entry, list)
                or len(entry) != 3
                or not all(_is_number(v) for v in entry[:2])
                or not math.isfinite(entry[0])
                or not math.isfinite(entry[1])
                or entry[2] not in (0, 1)
            ):
                raise ImageSetError(
                    f"expected [x, y, visible] with finite x, y and visible 0 or 1, got {entry!r}",
                    path=path,
                    field=f"{where}[{p}]",
                )
        keypoints[row_of[image_name]] = np.asarray(entries, dtype=np.float64)
    return point_names, keypoints


def _read_sequences(root: Path, names: list[str]) -> dict[str, list[str]]:
    path = root / SEQUENCES_FILE
    if not path.exists():
        return {}
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ImageSetError('expected an object {"VIDEO": ["NAME", ...]}', path=path)
    known = set(names)
    video_of: dict[str, str] = {}
    for video, frames in data.items():
        if not isinstance(frames, list) or not frames:
            raise ImageSetError("expected a non-empty list of frame names", path=path, field=video)
        for frame in frames:
            if not isinstance(frame, str) or frame not in known:
                raise ImageSetError(
                    f"unknown frame {frame!r}: expected {MASKS_DIR}/{frame}.png",
                    path=path,
                    field=video,
                )
            if frame in video_of:
                other = video_of[frame]
                where = "twice in this video" if other == video else f"also in video {other!r}"
                raise ImageSetError(f"frame {frame!r} is {where}", path=path, field=video)
            video_of[frame] = video
    return {video: list(frames) for video, frames in data.items()}


def _next_index(names: list[str], sequences: Mapping[str, list[str]]) -> np.ndarray:
    row_of = {name: k for k, name in enumerate(names)}
    next_index = np.full(len(names), -1, dtype=np.int64)
    for frames in sequences.values():
        for current, following in itertools.pairwise(frames):
            next_index[row_of[current]] = row_of[following]
    return next_index


def _read_npz(path: Path, required: Sequence[str]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in required if key not in data.files]
            if missing:
                raise ImageSetError(
                    f"expected the arrays {', '.join(required)}; missing {', '.join(missing)}",
                    path=path,
                )
            return {key: np.asarray(data[key]) for key in required}
    except ImageSetError:
        raise
    except Exception as err:  # numpy raises OSError, ValueError, BadZipFile, EOFError...
        raise ImageSetError(f"cannot read this .npz file: {err}", path=path) from None


def _order_rows(path: Path, stored: np.ndarray, names: list[str], what: str) -> np.ndarray:
    """Rows of ``stored`` names (a (I,) string array) in the order of ``names``."""
    if stored.ndim != 1 or stored.dtype.kind not in "US":
        raise ImageSetError(
            f"expected a 1-D array of strings, got {stored.dtype} {stored.shape}",
            path=path,
            field="names",
        )
    listed = [str(n) for n in stored]
    row_of: dict[str, int] = {}
    for row, name in enumerate(listed):
        if name in row_of:
            raise ImageSetError(f"image {name!r} listed twice", path=path, field="names")
        if name not in names:
            raise ImageSetError(
                f"{what} for an unknown image: expected {MASKS_DIR}/{name}.png",
                path=path,
                field="names",
            )
        row_of[name] = row
    missing = [name for name in names if name not in row_of]
    if missing:
        raise ImageSetError(
            f"no {what} for image {missing[0]!r} ({len(missing)} missing): expected every image",
            path=path,
            field="names",
        )
    return np.array([row_of[name] for name in names], dtype=np.int64)


def _finite_float(path: Path, array: np.ndarray, name: str, shape: str, ok: bool) -> np.ndarray:
    if not ok or array.dtype.kind not in "fiu":
        raise ImageSetError(
            f"expected a number array of shape {shape}, got {array.dtype} {array.shape}",
            path=path,
            field=name,
        )
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ImageSetError("expected finite values, found NaN or inf", path=path, field=name)
    return array


def _read_cameras(root: Path, names: list[str]) -> np.ndarray | None:
    path = root / CAMERAS_FILE
    if not path.exists():
        return None
    data = _read_npz(path, ("names", "cameras"))
    cameras = data["cameras"]
    ok = cameras.ndim == 2 and cameras.shape == (len(data["names"]), CAMERA_DIM)
    cameras = _finite_float(path, cameras, "cameras", "(I, 7) matching names", ok)
    rows = _order_rows(path, data["names"], names, "camera")
    cameras = cameras[rows]
    if (cameras[:, 0] <= 0).any():
        raise ImageSetError("expected scales s > 0 (column 0)", path=path, field="cameras")
    norms = np.linalg.norm(cameras[:, 3:], axis=1, keepdims=True)
    if (norms < 1e-8).any():
        raise ImageSetError(
            "expected non-zero quaternions (columns 3-6)", path=path, field="cameras"
        )
    cameras[:, 3:] /= norms
    return cameras


def _read_ground_truth(root: Path, names: list[str]) -> dict | None:
    path = root / GROUND_TRUTH_FILE
    if not path.exists():
        return None
    data = _read_npz(path, ("names", "vertices", "vertices2d", "faces"))
    count = len(data["names"])
    vertices, vertices2d, faces = data["vertices"], data["vertices2d"], data["faces"]
    ok = vertices.ndim == 3 and vertices.shape[0] == count and vertices.shape[2] == 3
    vertices = _finite_float(path, vertices, "vertices", "(I, N, 3) matching names", ok)
    ok = vertices2d.shape == (*vertices.shape[:2], 2)
    vertices2d = _finite_float(path, vertices2d, "vertices2d", "(I, N, 2) matching vertices", ok)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype.kind not in "iu":
        raise ImageSetError(
            f"expected integers of shape (F, 3), got {faces.dtype} {faces.shape}",
            path=path,
            field="faces",
        )
    if faces.size and (faces.min() < 0 or faces.max() >= vertices.shape[1]):
        raise ImageSetError(
            f"expected vertex indices in [0, {vertices.shape[1]})", path=path, field="faces"
        )
    rows = _order_rows(path, data["names"], names, "ground truth")
    return {
        "vertices": vertices[rows],
        "vertices2d": vertices2d[rows],
        "faces": faces.astype(np.int64),
    }


# --------------------------------------------------------------------------- flow


def _read_flow_file(path: Path, source_size: tuple[int, int]) -> np.ndarray:
    try:
        flow = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises OSError, ValueError, EOFError...
        raise ImageSetError(f"cannot read this .npy file: {err}", path=path) from None
    expected = (*source_size, 2)
    if not isinstance(flow, np.ndarray) or flow.shape != expected or flow.dtype.kind != "f":
        got = f"{flow.dtype} {flow.shape}" if isinstance(flow, np.ndarray) else type(flow).__name__
        raise ImageSetError(
            f"expected float flow of shape (H, W, 2) = {expected} (its mask's size), got {got}",
            path=path,
        )
    if not np.isfinite(flow).all():
        raise ImageSetError("expected finite flow, found NaN or inf", path=path)
    return flow.astype(np.float64)


def _crop_flow(
    flow: np.ndarray, crop_from: np.ndarray, crop_to: np.ndarray, size: int
) -> np.ndarray:
    """Source flow ``(H, W, 2)`` of a frame -> ``(S, S, 2)`` flow between the two frames' crops.

    At the centre ``p'`` of each crop pixel: ``p = uncrop_from(p')`` in source pixels, ``q = p +
    flow(p)`` (bilinear; zero outside the source image), and the result is ``crop_to(q) - p'``.
    """
    height, width = flow.shape[:2]
    centres = np.arange(size, dtype=np.float64) + 0.5
    x0, y0, side = crop_from
    px = np.broadcast_to(x0 + centres[None, :] * side / size, (size, size))
    py = np.broadcast_to(y0 + centres[:, None] * side / size, (size, size))
    # map_coordinates indexes pixel centres, which sit at (index + 0.5) in pixel coordinates.
    coords = np.stack((py - 0.5, px - 0.5))
    fx = ndimage.map_coordinates(flow[..., 0], coords, order=1, mode="nearest")
    fy = ndimage.map_coordinates(flow[..., 1], coords, order=1, mode="nearest")
    outside = (px < 0) | (px > width) | (py < 0) | (py > height)
    fx[outside] = 0.0
    fy[outside] = 0.0
    x1, y1, side1 = crop_to
    out_x = (px + fx - x1) * size / side1 - centres[None, :]
    out_y = (py + fy - y1) * size / side1 - centres[:, None]
    return np.stack((out_x, out_y), axis=-1).astype(np.float32)


def _user_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shapebench" / "flow"


def _writable_dir(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


class _FlowCache:
    """DIS flow of consecutive frames at source resolution, cached on disk per frame."""

    def __init__(self, root: Path) -> None:
        self.folder: Path | None = None
        digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
        for candidate in (root / FLOW_CACHE_DIR, _user_cache_root() / digest):
            if _writable_dir(candidate):
                self.folder = candidate
                break
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def flow(
        self, files: Mapping[str, Path], name: str, next_name: str, *, is_mask: bool
    ) -> np.ndarray:
        """(H, W, 2) float64 flow in pixels from frame ``name`` to ``next_name``."""
        key = {
            "version": _FLOW_CACHE_VERSION,
            "method": "DIS medium",
            "opencv": cv2.__version__,
            "next": next_name,
            "sources": [_file_stamp(files[name]), _file_stamp(files[next_name])],
        }
        cached = self._load(name, key)
        if cached is not None:
            return cached
        first = _grey_for_flow(files[name], is_mask)
        second = _grey_for_flow(files[next_name], is_mask)
        if first.shape != second.shape:
            raise ImageSetError(
                f"expected the size of the previous frame {name!r} ({_hw(first.shape)}) to "
                f"compute optical flow, got {_hw(second.shape)}",
                path=files[next_name],
            )
        if max(first.shape) < DIS_MIN_SIDE:
            raise ImageSetError(
                f"too small to compute optical flow (needs a side of {DIS_MIN_SIDE} pixels)",
                path=files[name],
            )
        flow = self.dis.calc(first, second, None).astype(np.float64)
        self._store(name, key, flow)
        return flow

    def _load(self, name: str, key: dict) -> np.ndarray | None:
        if self.folder is None:
            return None
        try:
            if json.loads((self.folder / f"{name}.json").read_text()) != key:
                return None
            flow = np.load(self.folder / f"{name}.npy", allow_pickle=False)
        except (OSError, ValueError):
            return None  # a missing or damaged cache entry is recomputed
        if flow.ndim != 3 or flow.shape[2] != 2 or not np.isfinite(flow).all():
            return None
        return flow.astype(np.float64)

    def _store(self, name: str, key: dict, flow: np.ndarray) -> None:
        if self.folder is None:
            return
        buffer = io.BytesIO()
        np.save(buffer, flow.astype(np.float32))
        try:
            write_bytes_atomic(self.folder / f"{name}.npy", buffer.getvalue())
            # The key goes last, so an interrupted store never validates.
            write_bytes_atomic(self.folder / f"{name}.json", json.dumps(key).encode())
        except OSError:
            pass  # caching is an optimisation: a full disk must not stop loading


def _file_stamp(path: Path) -> list:
    stat = path.stat()
    return [path.name, stat.st_size, stat.st_mtime_ns]


def _grey_for_flow(path: Path, is_mask: bool) -> np.ndarray:
    """(H, W) contiguous uint8 grey picture of a frame, as DIS needs it."""
    if is_mask:
        return np.ascontiguousarray(_read_mask(path).astype(np.uint8) * 255)
    image = _read_picture(path, "image")
    rgb = _as_rgb(image).astype(np.float32) * (255.0 / _full_scale(image.dtype))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(np.clip(np.round(grey), 0, 255).astype(np.uint8))


# --------------------------------------------------------------------------- writing


def save_image_set(
    directory: str | Path,
    names: Sequence[str],
    masks: np.ndarray | Sequence[np.ndarray],
    images: np.ndarray | Sequence[np.ndarray] | None = None,
    keypoints: np.ndarray | None = None,
    keypoint_names: Sequence[str] | None = None,
    sequences: Mapping[str, Sequence[str]] | None = None,
    flow: np.ndarray | Sequence[np.ndarray] | None = None,
    cameras: np.ndarray | None = None,
    ground_truth: Mapping[str, np.ndarray] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write an image set folder (layout in the module docstring) and return its path.

    Everything is written into a temporary sibling folder that is renamed to ``directory`` at the
    end, so a failure leaves no half-written set. ``directory`` must not exist, be empty, or (with
    ``overwrite=True``) be an image set (it has ``masks/``), which is then replaced; any other
    non-empty folder is refused.

    Args:
        names: I image names (file stems: no path separators, not starting with ".").
        masks: I masks (H, W), bool or uint8 0..255 (> 127 is the object); sizes may differ.
        images: I RGB uint8 images (H, W, 3) of their masks' sizes, or None.
        keypoints: (I, P, 3) ``(x, y, visible)`` in source pixels, or None; needs
            ``keypoint_names`` (P names).
        sequences: video -> frame names in temporal order, or None.
        flow: I flows (H, W, 2) in pixels to the next frame; rows of frames without a next frame
            are not written (zeros are fine there). Needs ``sequences``.
        cameras: (I, 7) cameras in source pixels, or None.
        ground_truth: ``{"vertices": (I, N, 3), "vertices2d": (I, N, 2) pixels, "faces": (F, 3)}``
            or None.
    """
    directory = Path(directory)
    names = [str(n) for n in names]
    _check_names_for_saving(names)
    if directory.exists():
        if not directory.is_dir():
            raise ImageSetError("expected a folder for the image set, found a file", path=directory)
        if any(directory.iterdir()) and not (overwrite and (directory / MASKS_DIR).is_dir()):
            raise ImageSetError(
                "folder exists and is not empty (overwrite=True replaces an image set only)",
                path=directory,
            )
    count = len(names)
    mask_arrays = _rows(masks, count, "masks")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        (staging / MASKS_DIR).mkdir()
        for name, mask in zip(names, mask_arrays, strict=True):
            iio.imwrite(staging / MASKS_DIR / f"{name}.png", _mask_to_uint8(mask, name))
        if images is not None:
            (staging / IMAGES_DIR).mkdir()
            for name, image, mask in zip(
                names, _rows(images, count, "images"), mask_arrays, strict=True
            ):
                image = np.asarray(image)
                if image.dtype != np.uint8 or image.shape != (*np.shape(mask), 3):
                    raise ImageSetError(
                        f"expected uint8 RGB of its mask's size {np.shape(mask)}, "
                        f"got {image.dtype} {image.shape}",
                        field=f"images[{name}]",
                    )
                iio.imwrite(staging / IMAGES_DIR / f"{name}.png", image)
        if keypoints is not None:
            _write_keypoints(staging / KEYPOINTS_FILE, names, keypoints, keypoint_names)
        if sequences:
            _check_sequences_for_saving(sequences, names)
            _write_json(staging / SEQUENCES_FILE, {v: list(f) for v, f in sequences.items()})
        if flow is not None:
            _write_flow(staging, names, _rows(flow, count, "flow"), sequences or {}, mask_arrays)
        if cameras is not None:
            cameras = np.asarray(cameras, dtype=np.float64)
            if cameras.shape != (count, CAMERA_DIM):
                raise ImageSetError(f"expected ({count}, 7), got {cameras.shape}", field="cameras")
            np.savez(staging / CAMERAS_FILE, names=np.array(names), cameras=cameras)
        if ground_truth is not None:
            np.savez(
                staging / GROUND_TRUTH_FILE,
                names=np.array(names),
                vertices=np.asarray(ground_truth["vertices"], dtype=np.float64),
                vertices2d=np.asarray(ground_truth["vertices2d"], dtype=np.float64),
                faces=np.asarray(ground_truth["faces"], dtype=np.int64),
            )
        _replace_folder(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _check_names_for_saving(names: list[str]) -> None:
    if not names:
        raise ImageSetError("expected at least one image", field="names")
    for name in names:
        if not name or name.startswith(".") or any(c in name for c in "/\\\0"):
            raise ImageSetError(
                f"expected a file stem (no '/', '\\', not starting with '.'), got {name!r}",
                field="names",
            )
    if len(set(names)) != len(names):
        raise ImageSetError("expected unique names", field="names")


def _check_sequences_for_saving(sequences: Mapping[str, Sequence[str]], names: list[str]) -> None:
    known, seen = set(names), set()
    for video, frames in sequences.items():
        for frame in frames:
            if frame not in known or frame in seen:
                problem = "an unknown" if frame not in known else "a repeated"
                raise ImageSetError(f"{problem} frame {frame!r}", field=f"sequences[{video}]")
            seen.add(frame)


def _rows(arrays, count: int, what: str) -> list[np.ndarray]:
    rows = [np.asarray(row) for row in arrays]
    if len(rows) != count:
        raise ImageSetError(f"expected {count} rows (one per name), got {len(rows)}", field=what)
    return rows


def _mask_to_uint8(mask: np.ndarray, name: str) -> np.ndarray:
    if mask.ndim != 2 or mask.dtype not in (np.bool_, np.uint8):
        raise ImageSetError(
            f"expected a bool or uint8 (H, W) mask, got {mask.dtype} {mask.shape}",
            field=f"masks[{name}]",
        )
    if mask.dtype == np.bool_:
        return mask.astype(np.uint8) * 255
    return mask


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _write_keypoints(
    path: Path, names: list[str], keypoints: np.ndarray, keypoint_names: Sequence[str] | None
) -> None:
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[0] != len(names) or keypoints.shape[2] != 3:
        raise ImageSetError(
            f"expected ({len(names)}, P, 3), got {keypoints.shape}", field="keypoints"
        )
    if keypoint_names is None or len(keypoint_names) != keypoints.shape[1]:
        raise ImageSetError(f"expected {keypoints.shape[1]} keypoint names", field="keypoint_names")
    points = {
        name: [[float(x), float(y), int(v > 0.5)] for x, y, v in rows]
        for name, rows in zip(names, keypoints, strict=True)
    }
    _write_json(path, {"names": [str(n) for n in keypoint_names], "points": points})


def _write_flow(
    staging: Path,
    names: list[str],
    flows: list[np.ndarray],
    sequences: Mapping[str, Sequence[str]],
    masks: list[np.ndarray],
) -> None:
    has_next = {frame for frames in sequences.values() for frame in list(frames)[:-1]}
    if not has_next:
        raise ImageSetError("flow needs sequences with at least two frames", field="flow")
    (staging / FLOW_DIR).mkdir()
    for name, flow, mask in zip(names, flows, masks, strict=True):
        if name not in has_next:
            continue
        if flow.shape != (*mask.shape, 2):
            raise ImageSetError(
                f"expected (H, W, 2) = {(*mask.shape, 2)}, got {flow.shape}", field=f"flow[{name}]"
            )
        np.save(staging / FLOW_DIR / f"{name}.npy", flow.astype(np.float32))


def _replace_folder(staging: Path, directory: Path) -> None:
    if not directory.exists():
        os.replace(staging, directory)
        return
    if not any(directory.iterdir()):
        directory.rmdir()
        os.replace(staging, directory)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.parent))
    os.replace(directory, trash / "set")
    os.replace(staging, directory)
    shutil.rmtree(trash, ignore_errors=True)
