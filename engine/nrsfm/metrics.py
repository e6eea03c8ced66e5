"""3D reconstruction metrics for keypoint sequences (DESIGN.md, "Evaluation").

Every frame of the prediction and of the ground truth is centred on its point mean (2D inputs
fix no absolute depth, and the NRSfM literature compares centred shapes). Orthographic
projection cannot tell a shape from its mirror image in depth, so per frame the prediction's
depth sign is flipped when that lowers the frame's squared error ``||gt_f - pred_f||_F``; all
metrics use that same choice (so the per-point errors average to the MPJPE and the shape a
viewer draws is the one scored). No scale or rotation alignment is applied.

Inputs are ``(F, P, 3)`` numpy arrays or torch tensors (converted to float64 numpy); outputs are
Python floats / numpy arrays. Ground truth may be in any units; MPJPE is in those units.
"""

from __future__ import annotations

import numpy as np

from engine.core.errors import DataError


def _as_frames(value: object, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise DataError(
            f"expected an (F, P, 3) array with F, P >= 1, got shape {arr.shape}", field=name
        )
    if not np.isfinite(arr).all():
        raise DataError("contains NaN or infinite values", field=name)
    return arr


def aligned(pred: object, gt: object) -> tuple[np.ndarray, np.ndarray]:
    """Centre both per frame and flip the prediction's depth where that lowers the frame's error.

    Args:
        pred: (F, P, 3) prediction.
        gt: (F, P, 3) ground truth.

    Returns:
        (pred_aligned, gt_centred), both (F, P, 3) float64.

    Raises:
        DataError: shapes differ or are not (F, P, 3), or values are not finite.
    """
    p = _as_frames(pred, "prediction")
    g = _as_frames(gt, "ground truth")
    if p.shape != g.shape:
        raise DataError(
            f"prediction shape {p.shape} differs from ground truth shape {g.shape}",
            field="prediction",
        )
    p = p - p.mean(axis=1, keepdims=True)
    g = g - g.mean(axis=1, keepdims=True)
    flipped = p * np.array([1.0, 1.0, -1.0])
    keep = ((p - g) ** 2).sum(axis=(1, 2)) <= ((flipped - g) ** 2).sum(axis=(1, 2))
    return np.where(keep[:, None, None], p, flipped), g


def per_point_errors(pred: object, gt: object) -> np.ndarray:
    """Euclidean error of every point after alignment.

    Args:
        pred: (F, P, 3) prediction.
        gt: (F, P, 3) ground truth.

    Returns:
        (F, P) float64 distances in ground-truth units.
    """
    p, g = aligned(pred, gt)
    return np.linalg.norm(p - g, axis=-1)


def mpjpe(pred: object, gt: object) -> float:
    """Mean per-joint position error (centred, per-frame depth sign), in ground-truth units."""
    return float(per_point_errors(pred, gt).mean())


def normalized_error(pred: object, gt: object) -> float:
    """``e3D = mean_f ||gt_f - pred_f||_F / ||gt_f||_F`` after alignment (unitless).

    Raises:
        DataError: a ground-truth frame has all points at one place (zero norm).
    """
    p, g = aligned(pred, gt)
    norms = np.linalg.norm(g, axis=(1, 2))
    if np.any(norms <= 0):
        raise DataError(
            f"{int((norms <= 0).sum())} ground-truth frames have zero size (all points coincide)",
            field="ground truth",
        )
    return float((np.linalg.norm(p - g, axis=(1, 2)) / norms).mean())


def evaluate(pred: object, gt: object) -> dict[str, float]:
    """Both metrics: ``{"mpjpe": ground-truth units, "e3d": unitless}``."""
    return {"mpjpe": mpjpe(pred, gt), "e3d": normalized_error(pred, gt)}
