"""Tests of the 3D reconstruction metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.core.errors import DataError
from engine.nrsfm.metrics import aligned, evaluate, mpjpe, normalized_error, per_point_errors

# One frame, three points: a right triangle in the z = 0 plane (centred).
TRIANGLE = np.array([[[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 3.0, 0.0]]])


def test_hand_computed_values():
    gt = TRIANGLE
    pred = gt.copy()
    pred[0, 0, 0] += 3.0  # move one point by 3 along x; the frame mean moves by 1
    # Centred: point errors are (2,0,0), (-1,0,0), (-1,0,0) -> distances 2, 1, 1.
    np.testing.assert_allclose(per_point_errors(pred, gt), [[2.0, 1.0, 1.0]])
    assert mpjpe(pred, gt) == pytest.approx(4.0 / 3.0)
    # ||gt_c||_F^2: points (-1,-1), (2,-1), (-1,2) -> 2 + 5 + 5 = 12; error^2 = 4 + 1 + 1 = 6.
    assert normalized_error(pred, gt) == pytest.approx(np.sqrt(6.0 / 12.0))
    assert evaluate(pred, gt) == {"mpjpe": pytest.approx(4 / 3), "e3d": pytest.approx(np.sqrt(0.5))}


def test_translation_invariance_and_exact_match():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(4, 6, 3))
    pred = gt + rng.normal(size=(4, 1, 3)) * 100  # a different translation per frame
    assert mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-12)
    assert normalized_error(pred, gt) == pytest.approx(0.0, abs=1e-12)


def test_depth_flip_chosen_per_frame():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(5, 7, 3))
    noise = rng.normal(size=gt.shape) * 0.01
    pred = gt + noise
    base = evaluate(pred, gt)
    mirrored = pred.copy()
    mirrored[[1, 3], :, 2] *= -1  # mirror some frames in depth
    assert evaluate(mirrored, gt) == pytest.approx(base)
    # A zero-depth prediction scores the same whichever way it is flipped.
    flat = gt.copy()
    flat[..., 2] = 0
    expected = np.mean(
        np.linalg.norm(gt[..., 2] - gt[..., 2].mean(1, keepdims=True), axis=1)
        / np.linalg.norm(gt - gt.mean(1, keepdims=True), axis=(1, 2))
    )
    assert normalized_error(flat, gt) == pytest.approx(expected)


def test_flip_only_when_it_lowers_the_error():
    gt = np.array([[[0.0, 0.0, 1.0], [1.0, 0.0, -1.0], [0.0, 1.0, 0.0]]])
    pred = gt * np.array([1.0, 1.0, -1.0])
    p, g = aligned(pred, gt)
    np.testing.assert_allclose(p, g)
    p, g = aligned(gt, gt)
    np.testing.assert_allclose(p, g)
    # Per-point errors average to MPJPE (one flip choice for all metrics).
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(6, 5, 3)), rng.normal(size=(6, 5, 3))
    assert per_point_errors(a, b).mean() == pytest.approx(mpjpe(a, b))


def test_units_scale_with_ground_truth_and_torch_inputs():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(3, 5, 3))
    pred = gt + rng.normal(size=gt.shape) * 0.1
    assert mpjpe(pred * 1000, gt * 1000) == pytest.approx(1000 * mpjpe(pred, gt))
    assert normalized_error(pred * 1000, gt * 1000) == pytest.approx(normalized_error(pred, gt))
    assert mpjpe(torch.tensor(pred), torch.tensor(gt, dtype=torch.float32)) == pytest.approx(
        mpjpe(pred, gt), rel=1e-6
    )


def test_bad_inputs():
    with pytest.raises(DataError):
        mpjpe(np.zeros((2, 3, 3)), np.zeros((2, 4, 3)))
    with pytest.raises(DataError):
        mpjpe(np.zeros((2, 3, 2)), np.zeros((2, 3, 2)))
    with pytest.raises(DataError):
        mpjpe(np.full((1, 3, 3), np.nan), np.zeros((1, 3, 3)))
    with pytest.raises(DataError, match="zero size"):
        normalized_error(np.zeros((1, 3, 3)), np.ones((1, 3, 3)))
