"""Evaluation metrics of a learned category model (seed 001): masks, keypoints, shape, cameras.

* :func:`mask_iou`: intersection over union of rendered and data masks, per image.
* :func:`pck`: percentage of correct keypoints, within ``alpha * image_size`` pixels.
* :func:`vertex_error`: mean vertex distance after a similarity alignment
  (:func:`similarity_align`), in units of the ground truth's bounding-box diagonal.
* :func:`camera_rotation_error_deg`: geodesic angle between predicted and true camera rotations.
* :func:`summarise`: the numbers a report shows, None where the data cannot give them.

Inputs are numpy arrays or torch tensors (converted to float64 numpy); outputs are Python floats
or numpy arrays. Image quantities follow :mod:`engine.render.cameras` (pixels). Wrong shapes
raise ``ValueError``; data that cannot be scored (non-finite values, a ground truth without
extent) raises :class:`~engine.core.errors.DataError`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.core.errors import DataError
from engine.render.cameras import quaternion_geodesic


def _numpy(value: object) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _float_array(value: object, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """float64 array of ``shape`` (None entries: any size), finite."""
    arr = _numpy(value).astype(np.float64)
    ok = arr.ndim == len(shape) and all(
        want is None or have == want for have, want in zip(arr.shape, shape)
    )
    if not ok:
        spec = ", ".join("*" if s is None else str(s) for s in shape)
        raise ValueError(f"expected {name} of shape ({spec}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError("contains NaN or infinite values", field=name)
    return arr


def _binary(value: object, name: str) -> np.ndarray:
    arr = _numpy(value)
    if arr.ndim != 3:
        raise ValueError(f"expected {name} of shape (I, H, W), got {arr.shape}")
    return arr if arr.dtype == np.bool_ else arr.astype(np.float64) > 0.5


def mask_iou(pred: object, gt: object) -> np.ndarray:
    """Intersection over union of predicted and data masks, per image.

    Args:
        pred: (I, H, W) bool masks, or soft masks in [0, 1] (on where > 0.5).
        gt: (I, H, W) bool or float masks, the same way.

    Returns:
        (I,) float64 IoU in [0, 1]; 1.0 where both masks are empty.
    """
    p = _binary(pred, "pred")
    g = _binary(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"expected pred and gt of the same shape, got {p.shape} and {g.shape}")
    inter = (p & g).sum(axis=(1, 2))
    union = (p | g).sum(axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def pck(pred: object, keypoints: object, image_size: float, alpha: float = 0.1) -> float | None:
    """Fraction of visible keypoints predicted within ``alpha * image_size`` pixels.

    Args:
        pred: (I, P, 2) predicted keypoints (x, y) in pixels.
        keypoints: (I, P, 3) data keypoints [x, y, visible] in pixels (visible: > 0.5;
            invisible ones may hold any value, NaN included).
        image_size: image side in pixels.
        alpha: threshold as a fraction of the image size (the seed reports 0.1 and 0.15).

    Returns:
        The fraction in [0, 1] over all visible keypoints of all images (a distance equal to
        the threshold counts as correct), or None when no keypoint is visible anywhere.
    """
    kp = _numpy(keypoints).astype(np.float64)
    if kp.ndim != 3 or kp.shape[2] != 3:
        raise ValueError(f"expected keypoints of shape (I, P, 3), got {kp.shape}")
    visible = kp[..., 2] > 0.5
    if not visible.any():
        return None
    p = _float_array(pred, "pred", (*kp.shape[:2], 2))
    if not np.isfinite(kp[visible]).all():
        raise DataError("visible keypoints contain NaN or infinite values", field="keypoints")
    distance = np.linalg.norm(p[visible] - kp[visible][:, :2], axis=-1)
    return float(np.mean(distance <= alpha * float(image_size)))


def similarity_align(pred: object, gt: object) -> np.ndarray:
    """``pred`` moved onto ``gt`` by the least-squares similarity (Umeyama 1991).

    Finds the rotation (a proper one: the sign of the smallest singular direction is flipped
    when the best orthogonal map would be a reflection), uniform scale and translation that
    minimise ``sum |s R p_i + t - g_i|^2``. A prediction with all points equal maps to gt's
    centroid.

    Args:
        pred: (N, 3) points.
        gt: (N, 3) points in correspondence.

    Returns:
        (N, 3) float64 aligned prediction.
    """
    p = _float_array(pred, "pred", (None, 3))
    g = _float_array(gt, "gt", (p.shape[0], 3))
    mean_p, mean_g = p.mean(axis=0), g.mean(axis=0)
    pc, gc = p - mean_p, g - mean_g
    variance = (pc**2).sum() / p.shape[0]
    if variance == 0:
        return np.broadcast_to(mean_g, p.shape).copy()
    U, S, Vt = np.linalg.svd(gc.T @ pc / p.shape[0])
    sign = np.ones(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        sign[-1] = -1.0
    rotation = (U * sign) @ Vt
    scale = (S * sign).sum() / variance
    return scale * pc @ rotation.T + mean_g


def vertex_error(pred: object, gt: object) -> np.ndarray:
    """Mean vertex distance after similarity alignment, relative to the ground truth's size.

    Args:
        pred: (I, N, 3) predicted vertices.
        gt: (I, N, 3) ground-truth vertices in correspondence, any units.

    Returns:
        (I,) float64: per instance, the mean over vertices of ``|align(pred) - gt|`` divided by
        the length of gt's axis-aligned bounding-box diagonal (so unitless, invariant to a
        similarity of either input).
    """
    p = _float_array(pred, "pred", (None, None, 3))
    g = _float_array(gt, "gt", p.shape)
    out = np.empty(p.shape[0])
    for i, (pi, gi) in enumerate(zip(p, g)):
        diagonal = np.linalg.norm(gi.max(axis=0) - gi.min(axis=0))
        if diagonal == 0:
            raise DataError(f"ground truth {i} has all its vertices at one point", field="gt")
        out[i] = np.linalg.norm(similarity_align(pi, gi) - gi, axis=-1).mean() / diagonal
    return out


def camera_rotation_error_deg(pred_cameras: object, gt_cameras: object) -> np.ndarray:
    """Angle in degrees, in [0, 180], between predicted and true camera rotations.

    Args:
        pred_cameras: (I, 7) cameras ``[s, tx, ty, qw, qx, qy, qz]``; quaternions need not be
            unit. Scale and translation are ignored.
        gt_cameras: (I, 7) cameras, the same way.

    Returns:
        (I,) float64 geodesic angles (:func:`engine.render.cameras.quaternion_geodesic`).
    """
    p = _float_array(pred_cameras, "pred_cameras", (None, 7))
    g = _float_array(gt_cameras, "gt_cameras", (p.shape[0], 7))
    angle = quaternion_geodesic(torch.from_numpy(p[:, 3:]), torch.from_numpy(g[:, 3:]))
    return np.degrees(angle.numpy())


def _values(value: object) -> np.ndarray | None:
    if value is None:
        return None
    arr = _numpy(value).astype(np.float64).reshape(-1)
    return arr if arr.size else None


def summarise(
    iou: object | None,
    pck_value: float | None,
    vertex_errors: object | None,
    camera_errors: object | None,
) -> dict[str, float | None]:
    """The report's numbers; each is None when its input is None or empty.

    Args:
        iou: (I,) per-image IoU (:func:`mask_iou`).
        pck_value: :func:`pck`'s result (None without visible keypoints).
        vertex_errors: (I,) :func:`vertex_error` (None without ground-truth shapes).
        camera_errors: (I,) :func:`camera_rotation_error_deg` (None without true cameras).

    Returns:
        ``{"iou_mean", "iou_median", "pck", "vertex_error" (mean), "camera_error_deg"
        (median: a few flipped cameras would dominate a mean)}`` as Python floats or None.
    """
    ious = _values(iou)
    vertex = _values(vertex_errors)
    camera = _values(camera_errors)
    pck_float = None if pck_value is None or math.isnan(pck_value) else float(pck_value)
    return {
        "iou_mean": None if ious is None else float(ious.mean()),
        "iou_median": None if ious is None else float(np.median(ious)),
        "pck": pck_float,
        "vertex_error": None if vertex is None else float(vertex.mean()),
        "camera_error_deg": None if camera is None else float(np.median(camera)),
    }


__all__ = [
    "camera_rotation_error_deg",
    "mask_iou",
    "pck",
    "similarity_align",
    "summarise",
    "vertex_error",
]
