"""Tests of the classic baselines: zero depth and Dai et al.'s prior-free NRSfM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from engine.core.errors import DataError
from engine.io.keypoints import KeypointSequence, load_dataset, with_missing
from engine.nrsfm.baselines import (
    BASELINES,
    _complete,
    _singular_value_threshold,
    nrsfm_baseline,
    zero_depth,
)
from engine.nrsfm.metrics import normalized_error

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def low_rank_sequence(frames: int, points: int, rank: int, seed: int) -> np.ndarray:
    """(F, P, 3) camera-frame points: K basis shapes, random rotations, translations, scale 40."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, 3, points))
    coeff = np.concatenate(
        [np.ones((frames, 1)), 0.5 * rng.normal(size=(frames, rank - 1))], axis=1
    )
    shapes = np.einsum("fk,kip->fip", coeff, basis)
    rot = Rotation.random(frames, random_state=seed).as_matrix()
    return 40.0 * (rot @ shapes).transpose(0, 2, 1) + rng.normal(size=(frames, 1, 3)) * 100


@pytest.mark.parametrize("rank, frames, points", [(1, 40, 10), (2, 60, 12), (3, 80, 15)])
def test_recovers_exact_low_rank_data(rank, frames, points):
    gt = low_rank_sequence(frames, points, rank, seed=rank)
    pred = nrsfm_baseline(gt[..., :2], rank=rank)
    assert pred.shape == gt.shape
    np.testing.assert_allclose(pred[..., :2], gt[..., :2])  # x, y as observed, input units
    np.testing.assert_allclose(pred[..., 2].mean(axis=1), 0, atol=1e-9)
    assert normalized_error(pred, gt) < 1e-5
    assert normalized_error(zero_depth(gt[..., :2]), gt) > 0.3


@pytest.mark.parametrize("rank", [1, 2])
def test_recovers_low_rank_data_with_missing_points(rank):
    gt = low_rank_sequence(60, 14, rank, seed=10 + rank)
    seq = with_missing(KeypointSequence(gt[..., :2]), 0.1, seed=0)
    pred = nrsfm_baseline(seq.points2d, seq.visibility, rank=rank)
    hidden = ~seq.visibility
    assert np.abs(pred[..., :2][hidden] - gt[..., :2][hidden]).max() < 1e-3 * np.abs(gt).max()
    assert normalized_error(pred, gt) < 1e-4


def test_matrix_completion_against_known_matrix():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(30, 2, 4)).reshape(60, 4) @ rng.normal(size=(4, 12))).reshape(
        30, 2, 12
    ) + 3
    vis = rng.random((30, 12)) > 0.15
    filled = _complete(np.where(vis[:, None, :], x, 0.0), vis, rank=4)
    np.testing.assert_allclose(filled, x, atol=1e-6)


def test_singular_value_threshold_against_svd():
    x = np.random.default_rng(1).normal(size=(40, 9))
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    expected = (u * np.maximum(s - 2.0, 0)) @ vt
    np.testing.assert_allclose(_singular_value_threshold(x, 2.0), expected, atol=1e-10)


def test_zero_depth():
    p = np.arange(24.0).reshape(2, 4, 3)[..., :2]
    out = zero_depth(p)
    np.testing.assert_array_equal(out[..., :2], p)
    assert np.all(out[..., 2] == 0)
    vis = np.ones((2, 4), bool)
    vis[0, 0] = False
    out = zero_depth(p, vis)
    np.testing.assert_allclose(out[0, 0, :2], p[0, 1:].mean(axis=0))


def test_baselines_registry_on_synthetic_human():
    seq = load_dataset("synthetic:human?sequences=2&length=40&seed=1")
    assert set(BASELINES) == {"zero_depth", "nrsfm_bmm"}
    for fn in BASELINES.values():
        pred = fn(seq)
        assert pred.shape == (80, 17, 3) and np.isfinite(pred).all()
        np.testing.assert_allclose(pred[..., :2], seq.points2d)
    missing = with_missing(seq, 0.1, seed=2)
    pred = BASELINES["nrsfm_bmm"](missing)
    assert np.isfinite(pred).all()
    np.testing.assert_allclose(pred[..., :2][missing.visibility], seq.points2d[missing.visibility])


def test_bad_inputs():
    with pytest.raises(DataError):
        nrsfm_baseline(np.zeros((5, 4, 3)))
    with pytest.raises(DataError):
        nrsfm_baseline(np.zeros((1, 6, 2)))
    with pytest.raises(DataError):
        nrsfm_baseline(np.ones((5, 6, 2)), rank=0)
    with pytest.raises(DataError):
        nrsfm_baseline(np.full((5, 6, 2), np.nan))
    with pytest.raises(DataError):
        zero_depth(np.zeros((5, 6, 2)), np.zeros((5, 6), bool))


@pytest.mark.skipif(
    not (SHARED_DATA / "nrsfm").is_dir(), reason="reference data ../shared/data/nrsfm not present"
)
def test_reference_sequence_face():
    seq = load_dataset(str(SHARED_DATA / "nrsfm" / "face.mat"))
    zero = normalized_error(BASELINES["zero_depth"](seq), seq.points3d)
    ours = normalized_error(BASELINES["nrsfm_bmm"](seq), seq.points3d)
    assert 0.25 < zero < 0.4  # the data README's range for zero depth
    assert ours < 0.05
