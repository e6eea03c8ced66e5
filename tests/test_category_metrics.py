"""Evaluation metrics of a learned category: IoU, PCK, aligned vertex error, camera error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from engine.category.metrics import (
    camera_rotation_error_deg,
    mask_iou,
    pck,
    similarity_align,
    summarise,
    vertex_error,
)
from engine.core.errors import DataError
from engine.render.cameras import view_rotation


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_mask_iou_on_hand_masks():
    pred = np.zeros((3, 4, 4), dtype=bool)
    gt = np.zeros((3, 4, 4), dtype=bool)
    pred[0, :2, :2] = True  # 4 pixels
    gt[0, 1:3, :2] = True  # 4 pixels, 2 shared
    pred[1, 0, 0] = True  # disjoint from an empty gt
    iou = mask_iou(pred, gt)
    assert iou.tolist() == pytest.approx([2 / 6, 0.0, 1.0])  # image 2: both empty


def test_mask_iou_thresholds_soft_masks_and_takes_torch():
    soft = torch.tensor([[[0.2, 0.6], [0.9, 0.5]]])
    gt = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    assert mask_iou(soft, gt).tolist() == pytest.approx([1 / 3])
    with pytest.raises(ValueError):
        mask_iou(np.zeros((1, 2, 2)), np.zeros((1, 2, 3)))


def test_pck_counts_visible_keypoints():
    keypoints = np.array(
        [
            [[10, 10, 1], [20, 20, 1], [np.nan, np.nan, 0]],
            [[30, 30, 1], [0, 0, 0], [5, 5, 1]],
        ],
        dtype=float,
    )
    pred = np.array(
        [
            [[10, 16.4], [20, 20], [99, 99]],  # 6.4 = exactly 0.1 * 64: correct; exact
            [[30, 37], [0, 0], [5, 5]],  # 7 > 6.4: wrong; invisible; exact
        ]
    )
    assert pck(pred, keypoints, 64) == pytest.approx(3 / 4)
    assert pck(pred, keypoints, 64, alpha=0.15) == pytest.approx(1.0)
    keypoints[..., 2] = 0
    assert pck(pred, keypoints, 64) is None


def test_similarity_align_recovers_a_similarity_exactly():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(20, 3))
    rotation = random_rotation(rng)
    pred = 0.3 * gt @ rotation.T + np.array([1.0, -2.0, 5.0])
    assert np.allclose(similarity_align(pred, gt), gt, atol=1e-10)
    assert np.allclose(similarity_align(torch.from_numpy(pred), gt), gt, atol=1e-10)


def test_similarity_align_never_reflects():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(30, 3))
    mirrored = gt * np.array([1.0, 1.0, -1.0])
    aligned = similarity_align(mirrored, gt)
    # The best proper rotation cannot undo a mirror image, and the fit is the Umeyama one.
    assert not np.allclose(aligned, gt, atol=1e-3)
    centred = mirrored - mirrored.mean(0)
    transform, *_ = np.linalg.lstsq(centred, aligned - aligned.mean(0), rcond=None)
    scale = np.cbrt(np.linalg.det(transform))
    assert scale > 0
    assert np.allclose(transform.T @ transform, scale**2 * np.eye(3), atol=1e-10)
    # The same fit as scipy's Kabsch (proper rotations only) with the least-squares scale.
    rotation = Rotation.align_vectors(gt - gt.mean(0), centred)[0].as_matrix()
    rotated = centred @ rotation.T
    best_scale = (rotated * (gt - gt.mean(0))).sum() / (rotated**2).sum()
    assert np.allclose(aligned, best_scale * rotated + gt.mean(0), atol=1e-10)


def test_similarity_align_degenerate_prediction():
    gt = np.random.default_rng(2).normal(size=(5, 3))
    aligned = similarity_align(np.ones((5, 3)), gt)
    assert np.allclose(aligned, gt.mean(0))
    with pytest.raises(DataError):
        similarity_align(np.full((5, 3), np.nan), gt)


def test_vertex_error_zero_for_similar_copies_positive_for_deformed_scale_invariant():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(2, 40, 3))
    pred = np.stack([2.5 * g @ random_rotation(rng).T + rng.normal(size=3) for g in gt])
    assert np.allclose(vertex_error(pred, gt), 0.0, atol=1e-10)
    deformed = pred.copy()
    deformed[:, :10] += 0.5
    error = vertex_error(deformed, gt)
    assert (error > 1e-3).all()
    assert np.allclose(vertex_error(deformed, 7.0 * gt), error)
    assert np.allclose(vertex_error(0.1 * deformed, gt), error)
    with pytest.raises(DataError, match="one point"):
        vertex_error(pred, np.zeros_like(gt))


def test_camera_rotation_error_degrees():
    q = view_rotation(torch.tensor([0.0, 30.0]), torch.tensor([10.0, -20.0]), dtype=torch.float64)
    cameras = torch.cat((torch.ones(2, 3, dtype=torch.float64), q), dim=1)
    assert np.allclose(camera_rotation_error_deg(cameras, cameras), 0.0, atol=1e-6)
    turned = torch.cat(
        (
            torch.ones(2, 3, dtype=torch.float64),
            view_rotation(torch.tensor([90.0, 120.0]), torch.zeros(2), dtype=torch.float64),
        ),
        dim=1,
    )
    flat = torch.cat(
        (
            torch.ones(2, 3, dtype=torch.float64),
            view_rotation(torch.tensor([0.0, 30.0]), torch.zeros(2), dtype=torch.float64),
        ),
        dim=1,
    )
    assert camera_rotation_error_deg(flat, turned) == pytest.approx([90.0, 90.0])
    negated = cameras.clone()
    negated[:, 3:] *= -3.0  # -q, not unit: the same rotation
    assert np.allclose(camera_rotation_error_deg(negated, cameras), 0.0, atol=1e-6)


def test_summarise_gives_none_for_missing_parts():
    full = summarise(np.array([0.5, 0.7, 0.9]), 0.8, np.array([0.1, 0.3]), [5.0, 90.0, 10.0])
    assert full == pytest.approx(
        {
            "iou_mean": 0.7,
            "iou_median": 0.7,
            "pck": 0.8,
            "vertex_error": 0.2,
            "camera_error_deg": 10.0,
        }
    )
    assert all(isinstance(v, float) for v in full.values())
    partial = summarise(np.array([0.5, 1.0]), None, None, np.array([]))
    assert partial == {
        "iou_mean": 0.75,
        "iou_median": 0.75,
        "pck": None,
        "vertex_error": None,
        "camera_error_deg": None,
    }
    assert summarise(None, math.nan, None, None)["pck"] is None
