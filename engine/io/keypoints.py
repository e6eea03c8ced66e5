"""The one loader and writer of keypoint sequences (2D observations, optional 3D ground truth).

Everything that reads point sets (the PRN trainer, the CLI, the GUI, benchmarks) goes through
:func:`load_keypoints` / :func:`load_dataset`, so every file problem ends in one
:class:`~engine.core.errors.DataError` naming the file, the field and what was expected.

Accepted files:

* NRSfM ``.mat`` (MATLAB v4/v5/v7, as ``scipy.io.loadmat`` reads them) with ``X`` of shape
  ``3 x P x F``: 3D points in the camera frame, ``X[:2]`` is the orthographic 2D observation.
* Akhter's ``.mat`` layout with ``W`` (``2F x P``; rows ``2f`` and ``2f+1`` are x and y of frame
  ``f``) and optionally ``S`` (``3F x P``; rows ``3f..3f+2`` are x, y, z of frame ``f``). When
  ``S`` is in a world frame and ``Rs`` (``2F x 3`` or ``3F x 3`` camera rotations) is present,
  ``S`` is rotated into the camera frame; otherwise ``S`` must already project onto ``W``.
* ``.npz`` with ``points2d (F,P,2)``, optional ``points3d (F,P,3)``, ``visibility (F,P)``,
  ``names (P,)`` and ``edges (E,2)`` (the project's own format, written by
  :func:`save_keypoints`).

Missing points: ``visibility[f, p] == False``. Their 2D values are meaningless; NaN is allowed
there and replaced by 0 on load. NaN or inf anywhere else is an error.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

from engine.core.errors import DataError
from engine.io.files import write_bytes_atomic

MIN_POINTS = 3
SYNTHETIC_PREFIX = "synthetic"
DEFAULT_SYNTHETIC_SEQUENCES = 100
DEFAULT_SYNTHETIC_LENGTH = 200
#: The synthetic set of PRN's learned setting: 500 motion clips of 200 frames (100,000 frames;
#: README, "PRN on held-out synthetic human motion"). The plain spec keeps 100 clips, so older
#: checkpoints reload the data they were trained on.
LEARNED_SYNTHETIC_SPEC = "synthetic:human?sequences=500"


@dataclass
class KeypointSequence:
    """A sequence of 2D keypoint observations, with optional 3D ground truth.

    Construction validates and converts the arrays (raises :class:`DataError` with the field name).

    Attributes:
        points2d: (F, P, 2) float64, camera-frame orthographic 2D points (any units). Entries of
            missing points are 0.
        points3d: (F, P, 3) float64 ground truth in the same camera frame and units, or None.
        visibility: (F, P) bool, False = missing 2D point, or None (all visible).
        names: P point names, or None.
        edges: (E, 2) int64 point-index pairs (bones) for drawing, or None.
        description: JSON-able dict saying where the data came from (``source``, ``path``,
            ``kind``, ``seed``, ``spec``...).
    """

    points2d: np.ndarray
    points3d: np.ndarray | None = None
    visibility: np.ndarray | None = None
    names: list[str] | None = None
    edges: np.ndarray | None = None
    description: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        p2 = _as_float_array(self.points2d, "points2d")
        if p2.ndim != 3 or p2.shape[2] != 2:
            raise DataError(f"expected shape (F, P, 2), got {p2.shape}", field="points2d")
        num_frames, num_points = p2.shape[:2]
        if num_frames < 1:
            raise DataError("expected at least 1 frame, got 0", field="points2d")
        if num_points < MIN_POINTS:
            raise DataError(
                f"expected at least {MIN_POINTS} points per frame, got {num_points}",
                field="points2d",
            )
        vis = None
        if self.visibility is not None:
            vis = np.asarray(self.visibility)
            if vis.shape != (num_frames, num_points):
                raise DataError(
                    f"expected shape {(num_frames, num_points)} to match points2d, got {vis.shape}",
                    field="visibility",
                )
            if vis.dtype != np.bool_:
                if not np.issubdtype(vis.dtype, np.number) or not np.isin(vis, (0, 1)).all():
                    raise DataError("expected booleans (or 0/1)", field="visibility")
                vis = vis.astype(bool)
            p2 = p2.copy()
            bad = ~np.isfinite(p2[vis])
            if bad.any():
                raise DataError(
                    f"{int(bad.any(axis=-1).sum())} visible 2D points are NaN or infinite "
                    "(mark missing points False in visibility)",
                    field="points2d",
                )
            # Missing points carry no information; zero them so downstream arrays stay finite.
            p2[~vis] = np.where(np.isfinite(p2[~vis]), p2[~vis], 0.0)
        elif not np.isfinite(p2).all():
            raise DataError(
                f"{int((~np.isfinite(p2)).any(axis=-1).sum())} 2D points are NaN or infinite "
                "(give a visibility array to mark missing points)",
                field="points2d",
            )
        p3 = None
        if self.points3d is not None:
            p3 = _as_float_array(self.points3d, "points3d")
            if p3.shape != (num_frames, num_points, 3):
                raise DataError(
                    f"expected shape {(num_frames, num_points, 3)} to match points2d, got {p3.shape}",
                    field="points3d",
                )
            if not np.isfinite(p3).all():
                raise DataError(
                    f"{int((~np.isfinite(p3)).any(axis=-1).sum())} 3D points are NaN or infinite",
                    field="points3d",
                )
        names = None
        if self.names is not None:
            names = [str(n) for n in np.asarray(self.names).reshape(-1)]
            if len(names) != num_points:
                raise DataError(
                    f"expected {num_points} names (one per point), got {len(names)}", field="names"
                )
        edges = None
        if self.edges is not None:
            e = np.asarray(self.edges)
            if e.size == 0:
                e = e.reshape(0, 2)
            if e.ndim != 2 or e.shape[1] != 2:
                raise DataError(f"expected shape (E, 2), got {e.shape}", field="edges")
            if not np.issubdtype(e.dtype, np.integer):
                if not np.issubdtype(e.dtype, np.floating) or not np.all(e == np.round(e)):
                    raise DataError("expected integer point indices", field="edges")
            edges = e.astype(np.int64)
            if edges.size and (edges.min() < 0 or edges.max() >= num_points):
                raise DataError(f"point indices must lie in [0, {num_points - 1}]", field="edges")
        self.points2d = p2
        self.points3d = p3
        self.visibility = vis
        self.names = names
        self.edges = edges
        self.description = dict(self.description)

    @property
    def num_frames(self) -> int:
        """F, the number of frames."""
        return int(self.points2d.shape[0])

    @property
    def num_points(self) -> int:
        """P, the number of points per frame."""
        return int(self.points2d.shape[1])

    @property
    def missing_ratio(self) -> float:
        """Fraction of 2D points marked missing (0.0 when there is no visibility array)."""
        if self.visibility is None:
            return 0.0
        return float(1.0 - self.visibility.mean())

    def subset(self, frames: slice | np.ndarray | list[int]) -> KeypointSequence:
        """The sequence restricted to ``frames`` (a slice, integer indices or an (F,) bool mask).

        Names, edges and description are kept; ``description["subset_of_frames"]`` records the
        original frame count.
        """
        if not isinstance(frames, slice):
            frames = np.asarray(frames)
            if frames.dtype == np.bool_ and frames.shape != (self.num_frames,):
                raise DataError(
                    f"expected a ({self.num_frames},) bool mask, got shape {frames.shape}",
                    field="frames",
                )
        description = dict(self.description)
        description.setdefault("subset_of_frames", self.num_frames)
        return KeypointSequence(
            points2d=self.points2d[frames],
            points3d=None if self.points3d is None else self.points3d[frames],
            visibility=None if self.visibility is None else self.visibility[frames],
            names=self.names,
            edges=self.edges,
            description=description,
        )


def _as_float_array(value: object, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"expected a numeric array, got dtype {arr.dtype}", field=name)
    return arr.astype(np.float64)


def with_missing(seq: KeypointSequence, ratio: float, seed: int = 0) -> KeypointSequence:
    """Remove a random fraction of the visible 2D points (seed 000, Table 1).

    Exactly ``round(ratio * visible)`` points are chosen uniformly among the visible ones, marked
    False in ``visibility`` and their 2D set to 0. Every frame keeps at least 2 visible points
    (a frame with fewer cannot be normalised), so near ``ratio = 1`` slightly fewer are removed.
    Ground truth ``points3d`` is kept complete.

    Args:
        seq: the sequence (not modified).
        ratio: fraction in [0, 1).
        seed: random seed; the same seed removes the same points.

    Returns:
        A new :class:`KeypointSequence`; ``description["missing_ratio"]`` and
        ``description["missing_seed"]`` record the request.
    """
    if not (isinstance(ratio, int | float) and 0.0 <= ratio < 1.0):
        raise DataError(f"expected a missing ratio in [0, 1), got {ratio!r}", field="missing_ratio")
    vis = (
        np.ones((seq.num_frames, seq.num_points), bool)
        if seq.visibility is None
        else seq.visibility.copy()
    )
    rng = np.random.default_rng(seed)
    visible_idx = np.flatnonzero(vis)
    count = round(ratio * visible_idx.size)
    vis.flat[rng.choice(visible_idx, size=count, replace=False)] = False
    # Give back random points in frames left with fewer than two.
    min_visible = min(2, seq.num_points)
    for f in np.flatnonzero(vis.sum(axis=1) < min_visible):
        hidden = np.flatnonzero(~vis[f])
        need = min_visible - int(vis[f].sum())
        vis[f, rng.choice(hidden, size=need, replace=False)] = True
    points2d = np.where(vis[..., None], seq.points2d, 0.0)
    description = dict(seq.description, missing_ratio=float(ratio), missing_seed=int(seed))
    return replace(seq, points2d=points2d, visibility=vis, description=description)


# ----------------------------------------------------------------------------------------------
# Files


def load_keypoints(path: str | Path) -> KeypointSequence:
    """Read a keypoint file (``.mat`` NRSfM ``X`` or Akhter ``W``/``S``/``Rs`` layout, or ``.npz``).

    Args:
        path: the file.

    Returns:
        A validated :class:`KeypointSequence`, ``description`` = ``{"source": "file",
        "path": ..., "kind": "mat-X" | "mat-W" | "npz", "spec": path}``.

    Raises:
        DataError: naming the file and field for a missing file, an unknown suffix, a corrupt
            file, missing fields, wrong shapes, NaN/inf, mismatched counts, F < 1 or P < 3.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found" if not path.exists() else "not a file", path=path)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        loader = _load_mat
    elif suffix == ".npz":
        loader = _load_npz
    else:
        raise DataError(
            f"unsupported file type '{path.suffix}': expected a .mat or .npz keypoint file",
            path=path,
        )
    try:
        return loader(path)
    except DataError as exc:
        if exc.path is not None:
            raise
        raise DataError(exc.problem, path=path, field=exc.field) from None


def _load_mat(path: Path) -> KeypointSequence:
    import scipy.io

    try:
        with open(path, "rb") as fh:
            head = fh.read(128)
        if b"MATLAB 7.3" in head:
            raise DataError("MATLAB v7.3 (HDF5) files are not supported: save with -v7", path=path)
        data = scipy.io.loadmat(str(path))
    except DataError:
        raise
    except Exception as exc:  # scipy raises many types for damaged files
        raise DataError(
            f"cannot read as a MATLAB .mat file ({type(exc).__name__}: {exc})", path=path
        ) from None
    description = {"source": "file", "path": str(path), "spec": str(path)}
    if "X" in data:
        x = _mat_array(data["X"], "X")
        if x.ndim != 3 or x.shape[0] != 3:
            raise DataError(f"expected shape (3, P, F), got {x.shape}", field="X")
        if not np.isfinite(x).all():
            raise DataError(
                f"{int((~np.isfinite(x)).any(axis=0).sum())} points are NaN or infinite", field="X"
            )
        points3d = np.transpose(x, (2, 1, 0))
        return KeypointSequence(
            points3d[..., :2], points3d, description=dict(description, kind="mat-X")
        )
    if "W" in data:
        return _load_akhter(data, description)
    fields = sorted(k for k in data if not k.startswith("__"))
    raise DataError(
        f"expected a variable 'X' (3 x P x F) or 'W' (2F x P), found {fields or 'no variables'}",
        field="X",
    )


def _mat_array(value: object, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise DataError(f"expected a numeric matrix, got {arr.dtype}", field=name)
    return arr.astype(np.float64)


def _load_akhter(data: dict, description: dict) -> KeypointSequence:
    w = _mat_array(data["W"], "W")
    if w.ndim != 2 or w.shape[0] % 2 or w.shape[0] < 2:
        raise DataError(
            f"expected shape (2F, P) with an even, non-zero row count, got {w.shape}", field="W"
        )
    num_frames, num_points = w.shape[0] // 2, w.shape[1]
    points2d = w.reshape(num_frames, 2, num_points).transpose(0, 2, 1)
    points3d = None
    if "S" in data:
        s = _mat_array(data["S"], "S")
        if s.shape != (3 * num_frames, num_points):
            raise DataError(
                f"expected shape {(3 * num_frames, num_points)} (3F x P, matching W), got {s.shape}",
                field="S",
            )
        if not np.isfinite(s).all():
            raise DataError("3D points are NaN or infinite", field="S")
        s = s.reshape(num_frames, 3, num_points)
        points3d = _akhter_camera_frame(points2d, s, data.get("Rs"))
    return KeypointSequence(points2d, points3d, description=dict(description, kind="mat-W"))


def _akhter_camera_frame(points2d: np.ndarray, s: np.ndarray, rs: object) -> np.ndarray:
    """(F,P,3) camera-frame 3D from Akhter's ``S`` (F,3,P), using ``Rs`` when S is in a world frame."""
    num_frames = s.shape[0]

    def agrees(cam: np.ndarray) -> bool:
        a = cam[:, :2, :] - cam[:, :2, :].mean(axis=2, keepdims=True)
        b = points2d.transpose(0, 2, 1)
        b = b - b.mean(axis=2, keepdims=True)
        with np.errstate(invalid="ignore"):
            return bool(
                np.isfinite(b).all() and np.abs(a - b).max() <= 1e-6 * max(1.0, np.abs(b).max())
            )

    if agrees(s):
        return s.transpose(0, 2, 1)
    if rs is None:
        raise DataError(
            "S does not project onto W and there is no Rs to rotate it into the camera frame",
            field="S",
        )
    r = _mat_array(rs, "Rs")
    if r.shape == (2 * num_frames, 3):
        r = r.reshape(num_frames, 2, 3)
        r = np.concatenate([r, np.cross(r[:, 0], r[:, 1])[:, None, :]], axis=1)
    elif r.shape == (3 * num_frames, 3):
        r = r.reshape(num_frames, 3, 3)
    else:
        raise DataError(
            f"expected shape (2F, 3) or (3F, 3) with F = {num_frames}, got {r.shape}", field="Rs"
        )
    cam = r @ s
    if not agrees(cam):
        raise DataError("S rotated by Rs does not project onto W (up to translation)", field="S")
    # Put the camera-frame shape where the 2D observations are (S may be centred differently).
    shift = points2d.mean(axis=1) - cam[:, :2, :].mean(axis=2)
    cam[:, :2, :] += shift[:, :, None]
    return cam.transpose(0, 2, 1)


def _load_npz(path: Path) -> KeypointSequence:
    try:
        with np.load(str(path), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        raise DataError(
            f"cannot read the .npz file (object arrays are not allowed: {exc})", path=path
        ) from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise DataError(
            f"cannot read as a .npz archive ({type(exc).__name__}: {exc})", path=path
        ) from None
    if "points2d" not in arrays:
        raise DataError(
            f"missing required array (found {sorted(arrays) or 'none'})",
            path=path,
            field="points2d",
        )
    description = {"source": "file", "path": str(path), "spec": str(path), "kind": "npz"}
    if "description" in arrays:
        try:
            stored = json.loads(str(arrays["description"]))
        except (json.JSONDecodeError, TypeError):
            raise DataError(
                "expected a JSON object string", path=path, field="description"
            ) from None
        if not isinstance(stored, dict):
            raise DataError("expected a JSON object string", path=path, field="description")
        description = {**stored, **description}
    names = arrays.get("names")
    if names is not None and names.dtype.kind not in "US":
        raise DataError(f"expected strings, got {names.dtype}", path=path, field="names")
    return KeypointSequence(
        points2d=arrays["points2d"],
        points3d=arrays.get("points3d"),
        visibility=arrays.get("visibility"),
        names=None if names is None else [str(n) for n in names.reshape(-1)],
        edges=arrays.get("edges"),
        description=description,
    )


def save_keypoints(path: str | Path, seq: KeypointSequence) -> None:
    """Write ``seq`` as a ``.npz`` (the project's convention), atomically.

    Stores ``points2d``, and when present ``points3d``, ``visibility``, ``names`` (unicode),
    ``edges`` and ``description`` (a JSON string).

    Raises:
        DataError: the path does not end in ``.npz``, or the description is not JSON-able.
        OSError: the file cannot be written.
    """
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise DataError("keypoint files are written as .npz: give a path ending in .npz", path=path)
    arrays: dict[str, np.ndarray] = {"points2d": seq.points2d}
    if seq.points3d is not None:
        arrays["points3d"] = seq.points3d
    if seq.visibility is not None:
        arrays["visibility"] = seq.visibility
    if seq.names is not None:
        arrays["names"] = np.asarray(seq.names, dtype=str)
    if seq.edges is not None:
        arrays["edges"] = seq.edges
    try:
        arrays["description"] = np.asarray(json.dumps(seq.description))
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"description is not JSON-able ({exc})", path=path, field="description"
        ) from None
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


# ----------------------------------------------------------------------------------------------
# Data specs


def load_dataset(spec: str, *, seed: int = 0) -> KeypointSequence:
    """Load a dataset named by ``spec``: a built-in synthetic set or a keypoint file.

    Specs:

    * ``"synthetic:human"`` (or ``"synthetic"``): the default training set, 100 sequences of 200
      frames (20,000 frames) of the 17-joint synthetic human
      (:func:`engine.synthetic.human.synthetic_human`) with seed ``seed``.
    * Options after ``?``, joined by ``&``: ``frames`` (total frames; sequences are added and the
      last one cut to reach it), ``sequences``, ``length`` (frames per sequence), ``seed``
      (overrides the argument), ``split=train|test`` (``test`` uses seed + 1000, the held-out
      convention :data:`engine.synthetic.human.TEST_SEED_OFFSET`). Example:
      ``"synthetic:human?frames=2000&seed=3"``.
    * Anything else is a file path for :func:`load_keypoints`.

    Returns:
        The sequence; ``description["spec"]`` holds a spec that reloads it.

    Raises:
        DataError: unknown synthetic kind or option, bad option value, or any file problem.
    """
    spec = str(spec).strip()
    if spec.split("?", 1)[0].split(":", 1)[0] == SYNTHETIC_PREFIX:
        return _load_synthetic(spec, seed)
    return load_keypoints(spec)


def _load_synthetic(spec: str, seed: int) -> KeypointSequence:
    from engine.synthetic.human import TEST_SEED_OFFSET, synthetic_human

    head, _, query = spec.partition("?")
    kind = head.partition(":")[2] or "human"
    if kind != "human":
        raise DataError(
            f"unknown synthetic set '{kind}' in '{spec}': expected 'synthetic:human'", field="spec"
        )
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
    known = {"frames", "sequences", "length", "seed", "split"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise DataError(
            f"unknown option(s) {unknown} in '{spec}': expected some of {sorted(known)}",
            field="spec",
        )

    def integer(name: str, default: int, minimum: int) -> int:
        if name not in options:
            return default
        try:
            value = int(options[name])
        except ValueError:
            raise DataError(
                f"option {name}={options[name]!r} in '{spec}' is not an integer", field="spec"
            ) from None
        if value < minimum:
            raise DataError(f"option {name}={value} in '{spec}' must be >= {minimum}", field="spec")
        return value

    split = options.get("split", "train")
    if split not in ("train", "test"):
        raise DataError(
            f"option split={split!r} in '{spec}': expected 'train' or 'test'", field="spec"
        )
    base_seed = integer("seed", int(seed), 0)
    length = integer("length", DEFAULT_SYNTHETIC_LENGTH, 1)
    if "frames" in options:
        frames = integer("frames", 0, 1)
        sequences = integer("sequences", math.ceil(frames / length), 1)
        if sequences * length < frames:
            raise DataError(
                f"{sequences} sequences of {length} frames cannot make frames={frames} in '{spec}'",
                field="spec",
            )
    else:
        sequences = integer("sequences", DEFAULT_SYNTHETIC_SEQUENCES, 1)
        frames = sequences * length
    gen_seed = base_seed + (TEST_SEED_OFFSET if split == "test" else 0)
    seq = synthetic_human(sequences, length, gen_seed)
    if frames < seq.num_frames:
        seq = seq.subset(slice(0, frames))
    canonical = f"synthetic:human?sequences={sequences}&length={length}&frames={frames}&seed={base_seed}&split={split}"
    seq.description.pop("subset_of_frames", None)
    seq.description.update(spec=canonical, split=split, num_frames=frames)
    return seq


def skeleton_edges(sequence: KeypointSequence) -> np.ndarray | None:
    """Bones (E, 2) int64 to draw a keypoint sequence's shapes: its own ``edges``, else the
    Human3.6M skeleton for the built-in synthetic human, else None (points only)."""
    if getattr(sequence, "edges", None) is not None:
        return np.asarray(sequence.edges, dtype=np.int64).reshape(-1, 2)
    description = getattr(sequence, "description", None) or {}
    if "synthetic" in str(description.get("source", "")) and sequence.num_points == 17:
        from engine.synthetic.human import H36M_EDGES

        return np.asarray(H36M_EDGES, dtype=np.int64).reshape(-1, 2)
    return None
