"""A sequence's PRN started from the classic NRSfM reconstruction (``TrainConfig.warm_start``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import engine.prn.training as training
from engine.core.errors import InputError
from engine.nrsfm.baselines import nrsfm_baseline
from engine.nrsfm.metrics import normalized_error
from engine.nrsfm.normalize import normalize_2d
from engine.prn.config import TrainConfig
from engine.prn.reconstruct import reconstruct
from engine.prn.training import Trainer
from engine.prn.warm_start import baseline_targets
from tests.keypoint_data import low_rank_sequence


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sequence():
    return low_rank_sequence(frames=40, points=10)


def _config(**kw) -> TrainConfig:
    base = dict(data="test", hidden=32, eval_every=10**6, device="cpu", seed=1)
    base.update(kw)
    return TrainConfig(**base)


def test_targets_are_the_classic_reconstruction_in_the_normalised_frame():
    seq = _sequence()
    vis = np.ones(seq.points2d.shape[:2], bool)
    vis[3, :4] = False
    shapes = nrsfm_baseline(seq.points2d, vis, rank=3)
    normed, center, scale = normalize_2d(seq.points2d, vis)
    targets = baseline_targets(seq.points2d, vis)
    np.testing.assert_allclose(targets[..., :2][vis], normed[vis], atol=1e-12)
    # Back in input units the targets are the reconstruction (depth centred per frame).
    back = targets * scale[:, None, None]
    back[..., :2] += center[:, None, :]
    depth = shapes[..., 2] - shapes[..., 2].mean(axis=1, keepdims=True)
    np.testing.assert_allclose(back[..., :2], shapes[..., :2], atol=1e-9)
    np.testing.assert_allclose(back[..., 2], depth, atol=1e-9)


def test_the_first_step_starts_at_the_classic_reconstruction():
    """After the fit (and one step at lr 1e-4) the network reconstructs the sequence as the
    classic method does, far closer than a fresh network or flat depth."""
    seq = _sequence()
    classic = nrsfm_baseline(seq.points2d, None, rank=3)
    trainer = Trainer(_config(iterations=1), seq)
    assert trainer.config.warm_start and trainer.config.logsum_from == 0
    fresh = reconstruct(trainer.model, seq.points2d)
    trainer.run()
    assert trainer.state == "finished"
    started = reconstruct(trainer.model, seq.points2d)
    assert normalized_error(fresh, classic) > 0.2
    assert normalized_error(started, classic) < 0.05
    # and the classic method reconstructs this low-rank sequence, so the start is good
    assert normalized_error(classic, seq.points3d) < 0.05
    assert normalized_error(started, seq.points3d) < 0.08


def test_a_warm_run_resumes_exactly(tmp_path):
    seq = _sequence()
    cfg = _config(iterations=6)
    straight = Trainer(cfg, seq)
    straight.run()
    first = Trainer(cfg, seq)
    first.run(until_step=3)
    first.save_checkpoint(tmp_path / "half.pt")
    resumed = Trainer.from_checkpoint(tmp_path / "half.pt", seq)
    resumed.run()
    assert resumed.history == straight.history
    for k, v in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k


def test_warm_start_needs_one_whole_sequence_group():
    seq = _sequence()
    with pytest.raises(InputError) as info:
        Trainer(_config(warm_start=True, batch_size=16, group_size=8), seq)
    assert info.value.field == "warm_start"
    # automatic: off where the batches are not the whole sequence
    assert Trainer(_config(batch_size=16, group_size=8), seq).config.warm_start is False


def test_a_flat_warm_start_warns_without_restarts(monkeypatch):
    """A classic reconstruction without depth gives a flat start: the run ends flat and says
    so (restarts would fit the same reconstruction again)."""

    def flat(points2d, visibility):
        out = baseline_targets(points2d, visibility)
        out[..., 2] = 0.0
        return out

    monkeypatch.setattr(training, "baseline_targets", flat)
    trainer = Trainer(_config(iterations=2, lr=1e-6), _sequence())
    trainer.run()
    assert trainer.state == "finished" and trainer.restarts_done == 0
    assert len(trainer.warnings) == 1 and "flat" in trainer.warnings[0]
    assert trainer.checks[-1]["collapsed"] and trainer.checks[-1]["final"]
