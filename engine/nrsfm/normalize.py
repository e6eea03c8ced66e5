"""Per-frame normalisation of keypoints as PRN uses it (seed 000 / DESIGN.md).

Each frame's 2D points are centred on the mean of its visible points and divided by the
Frobenius norm of the centred visible 2D points. The 3D ground truth gets the same centre (x, y),
its own depth mean (z) and the same scale, so predictions made in normalised units can be mapped
back to the input's camera frame and units with :func:`denormalize_3d`.

Degenerate frames (fewer than 2 visible points, or all visible points identical, so the norm is
zero) fall back to scale 1: their normalised points are all 0, which the network sees as "no
information", instead of an error that would stop a whole training run over one frame.
:func:`informative_frames` says which frames are not degenerate; the PRN trainer leaves the
others out of its batches and refuses data in which fewer than 2 frames are informative
(:func:`check_trainable`), e.g. an all-False visibility.

All functions take and return numpy float64 arrays.
"""

from __future__ import annotations

import numpy as np

from engine.core.errors import DataError

# A frame whose centred 2D norm is below this fraction of its coordinate magnitude is degenerate.
_DEGENERATE_RTOL = 1e-12


def checked_points2d(
    points2d: np.ndarray, visibility: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate 2D keypoints and their visibility mask.

    Args:
        points2d: (F, P, 2) float, any units. Values of missing points are ignored (may be NaN).
        visibility: (F, P) bool, False = missing, or None (all visible).

    Returns:
        points: (F, P, 2) float64 with missing points set to 0.
        visibility: (F, P) bool.

    Raises:
        DataError: wrong shapes or non-finite visible points (field named).
    """
    p = np.asarray(points2d, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != 2:
        raise DataError(f"expected shape (F, P, 2), got {p.shape}", field="points2d")
    if visibility is None:
        vis = np.ones(p.shape[:2], bool)
    else:
        vis = np.asarray(visibility, dtype=bool)
        if vis.shape != p.shape[:2]:
            raise DataError(
                f"expected shape {p.shape[:2]} to match points2d, got {vis.shape}",
                field="visibility",
            )
    p = np.where(vis[..., None], p, 0.0)
    if not np.isfinite(p).all():
        raise DataError("visible 2D points must be finite", field="points2d")
    return p, vis


def normalize_2d(
    points2d: np.ndarray, visibility: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre and scale each frame of 2D points.

    Args:
        points2d: (F, P, 2) float, any units. Values of missing points are ignored (may be NaN).
        visibility: (F, P) bool, False = missing, or None (all visible).

    Returns:
        normed: (F, P, 2) float64, centred on the visible mean, unit Frobenius norm over the
            visible points; missing points are 0.
        center: (F, 2) float64 mean of the visible points (input units).
        scale: (F,) float64 Frobenius norm of the centred visible points (input units); 1.0 for
            degenerate frames (see the module docstring).

    Raises:
        DataError: wrong shapes or non-finite visible points.
    """
    p, vis = checked_points2d(points2d, visibility)
    center, centred, scale, degenerate = _frame_stats(p, vis)
    scale = np.where(degenerate, 1.0, scale)
    normed = np.where(degenerate[:, None, None], 0.0, centred / scale[:, None, None])
    return normed, center, scale


def _frame_stats(p: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, ...]:
    """Visible mean (F, 2), centred points (F, P, 2), raw scale (F,), degenerate (F,) bool."""
    w = vis[..., None].astype(np.float64)
    count = vis.sum(axis=1)
    center = (p * w).sum(axis=1) / np.maximum(count, 1)[:, None]
    centred = (p - center[:, None, :]) * w
    scale = np.sqrt((centred**2).sum(axis=(1, 2)))
    magnitude = np.abs(p).max(axis=(1, 2), initial=0.0)
    degenerate = (count < 2) | (scale <= _DEGENERATE_RTOL * np.maximum(magnitude, 1e-300))
    return center, centred, scale, degenerate


def informative_frames(points2d: np.ndarray, visibility: np.ndarray | None = None) -> np.ndarray:
    """Which frames carry information after normalisation.

    Args:
        points2d: (F, P, 2) float, any units (missing points ignored).
        visibility: (F, P) bool, False = missing, or None (all visible).

    Returns:
        (F,) bool: True where the frame has at least 2 visible points that are not all the same
        point; False for the degenerate frames that :func:`normalize_2d` maps to all zeros.

    Raises:
        DataError: wrong shapes or non-finite visible points.
    """
    p, vis = checked_points2d(points2d, visibility)
    return ~_frame_stats(p, vis)[3]


def check_trainable(
    points2d: np.ndarray, visibility: np.ndarray | None = None, *, path: str | None = None
) -> np.ndarray:
    """Refuse 2D data from which nothing can be learned; else return :func:`informative_frames`.

    Args:
        points2d: (F, P, 2) float, any units.
        visibility: (F, P) bool or None.
        path: the file the data came from, named in the error.

    Returns:
        (F,) bool, at least 2 entries True.

    Raises:
        DataError: (field ``visibility``) no point is visible at all (e.g. an all-False
            visibility array), no frame has 2 distinct visible points, or only one frame has.
    """
    p, vis = checked_points2d(points2d, visibility)
    frames = p.shape[0]
    if not vis.any():
        raise DataError(
            f"no point is visible in any of the {frames} frames (visibility is all False): "
            "nothing to train on",
            path=path,
            field="visibility",
        )
    informative = ~_frame_stats(p, vis)[3]
    count = int(informative.sum())
    if count == 0:
        raise DataError(
            f"no frame has 2 or more distinct visible points ({int(vis.sum())} visible points in "
            f"{frames} frames): nothing to train on",
            path=path,
            field="visibility",
        )
    if count < 2:
        raise DataError(
            f"need at least 2 frames with 2 or more distinct visible points to train, got "
            f"{count} of {frames}",
            path=path,
            field="visibility",
        )
    return informative


def _check_frames(points3d: np.ndarray, center: np.ndarray, scale: np.ndarray, name: str) -> tuple:
    x = np.asarray(points3d, dtype=np.float64)
    c = np.asarray(center, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3:
        raise DataError(f"expected shape (F, P, 3), got {x.shape}", field=name)
    if c.shape != (x.shape[0], 2) or s.shape != (x.shape[0],):
        raise DataError(
            f"expected center (F, 2) and scale (F,) with F = {x.shape[0]}, got {c.shape} and {s.shape}",
            field="center",
        )
    return x, c, s


def normalize_3d(points3d: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Apply the 2D normalisation of each frame to its 3D points.

    Args:
        points3d: (F, P, 3) float in the camera frame and units of the 2D input.
        center: (F, 2) from :func:`normalize_2d`.
        scale: (F,) from :func:`normalize_2d`.

    Returns:
        (F, P, 3) float64: x, y minus the 2D centre, z minus its own per-frame mean, all
        divided by ``scale``.
    """
    x, c, s = _check_frames(points3d, center, scale, "points3d")
    out = x.copy()
    out[..., :2] -= c[:, None, :]
    out[..., 2] -= out[..., 2].mean(axis=1, keepdims=True)
    return out / s[:, None, None]


def denormalize_3d(
    points3d_normed: np.ndarray, center: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Map normalised 3D predictions back to the input's camera frame and units.

    Args:
        points3d_normed: (F, P, 3) float in normalised units.
        center: (F, 2) from :func:`normalize_2d`.
        scale: (F,) from :func:`normalize_2d`.

    Returns:
        (F, P, 3) float64: ``x * scale + center`` for x and y; depth ``(z - mean z) * scale``,
        i.e. centred at 0 per frame (orthographic 2D says nothing about absolute depth).
    """
    x, c, s = _check_frames(points3d_normed, center, scale, "points3d")
    out = x * s[:, None, None]
    out[..., :2] += c[:, None, :]
    out[..., 2] -= out[..., 2].mean(axis=1, keepdims=True)
    return out
