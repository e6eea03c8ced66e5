"""Reconstruct 3D point sequences from 2D keypoints with a trained PRN, in the input's units.

The network works on per-frame normalised input (centred, divided by the 2D Frobenius norm);
:func:`reconstruct` applies that normalisation, predicts, and maps the prediction back to the
input's camera frame and units (depth centred at 0, since orthographic 2D cannot fix it).
:func:`evaluate_methods` scores a PRN next to the baselines with the one metric implementation,
so the CLI's ``evaluate`` and the GUI's comparison table show the same numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.core.errors import DataError
from engine.prn.model import PRNFCN

#: Frames per forward pass; bounds memory on long sequences.
CHUNK_FRAMES = 8192


def reconstruct(
    model: PRNFCN,
    points2d: np.ndarray,
    visibility: np.ndarray | None = None,
    *,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Predict the 3D shape of every frame.

    Args:
        model: a trained :class:`PRNFCN` (its train/eval mode is restored afterwards).
        points2d: (F, P, 2) float orthographic 2D points in any units; P must equal
            ``model.num_points``. Values of missing points are ignored (may be NaN).
        visibility: (F, P) bool, False = missing point (fed as 0, as in training), or None.
        device: where to compute; None uses the model's device (the model is moved there).

    Returns:
        (F, P, 3) float64: x, y, depth in the input's camera frame and units; per frame the
        depth is centred at 0.

    Raises:
        DataError: wrong shapes or point count, non-finite visible points.
    """
    from engine.nrsfm.normalize import denormalize_3d, normalize_2d

    points2d = np.asarray(points2d)
    if points2d.ndim != 3 or points2d.shape[2] != 2 or points2d.shape[0] < 1:
        raise DataError(
            f"expected an (F, P, 2) array with F >= 1, got shape {points2d.shape}", field="points2d"
        )
    if points2d.shape[1] != model.num_points:
        raise DataError(
            f"the network takes {model.num_points} points per frame, the data has {points2d.shape[1]}",
            field="points2d",
        )
    if visibility is not None:
        visibility = np.asarray(visibility)
        if visibility.shape != points2d.shape[:2]:
            raise DataError(
                f"expected shape {points2d.shape[:2]} to match points2d, got {visibility.shape}",
                field="visibility",
            )
        visibility = visibility.astype(bool)
        visible = points2d[visibility]
    else:
        visible = points2d
    if not np.isfinite(visible).all():
        raise DataError(
            "visible 2D points must be finite (mark missing points in visibility)", field="points2d"
        )
    normed, center, scale = normalize_2d(points2d, visibility)
    if device is None:
        device = next(model.parameters()).device
    model.to(device)
    was_training = model.training
    model.eval()
    outs = []
    try:
        with torch.no_grad():
            u = torch.as_tensor(np.asarray(normed), dtype=torch.float32)
            for start in range(0, u.shape[0], CHUNK_FRAMES):
                outs.append(model(u[start : start + CHUNK_FRAMES].to(device)).cpu())
    finally:
        model.train(was_training)
    pred = torch.cat(outs).double().numpy()
    return np.asarray(denormalize_3d(pred, center, scale), dtype=np.float64)


def evaluate_methods(
    sequence,
    models: dict[str, PRNFCN] | None = None,
    *,
    baselines: bool = True,
    device: str | torch.device | None = None,
) -> dict[str, dict[str, float]]:
    """MPJPE and e3D of each PRN and (optionally) each baseline on a sequence with ground truth.

    Args:
        sequence: a :class:`~engine.io.keypoints.KeypointSequence` with ``points3d``.
        models: display name -> trained network.
        baselines: also score every method of :data:`engine.nrsfm.baselines.BASELINES`.
        device: where the networks compute (None: their own device).

    Returns:
        method name -> ``{'mpjpe': float (units of the ground truth), 'e3d': float}``, PRNs first.

    Raises:
        DataError: the sequence has no 3D ground truth, or does not fit a network.
    """
    from engine.nrsfm.baselines import BASELINES
    from engine.nrsfm.metrics import mpjpe, normalized_error

    if sequence.points3d is None:
        raise DataError("evaluation needs 3D ground truth (points3d) in the data", field="points3d")
    gt = sequence.points3d
    results: dict[str, dict[str, float]] = {}
    predictions = {}
    for name, model in (models or {}).items():
        predictions[name] = reconstruct(
            model, sequence.points2d, sequence.visibility, device=device
        )
    if baselines:
        for name, fn in BASELINES.items():
            predictions[name] = fn(sequence)
    for name, pred in predictions.items():
        results[name] = {"mpjpe": float(mpjpe(pred, gt)), "e3d": float(normalized_error(pred, gt))}
    return results
