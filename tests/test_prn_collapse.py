"""Collapse to flat depth: told from a reconstruction by PRN's own cost and depth, restarted
from other weights, warned about, and carried through checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.nrsfm.normalize import normalize_2d, normalize_3d
from engine.prn import TrainConfig, Trainer, training
from engine.prn.collapse import COLLAPSE_DEPTH, check_collapse
from engine.synthetic.nrsfm import SequenceSpec, generated_sequence


@pytest.fixture(scope="module")
def sequence():
    return generated_sequence(SequenceSpec(kind="human", frames=40, points=24, seed=3))


def _normalised(seq):
    u, centre, scale = normalize_2d(seq.points2d, seq.visibility)
    x = normalize_3d(seq.points3d, centre, scale)
    return torch.as_tensor(np.asarray(x)), torch.as_tensor(np.asarray(u))


def test_truth_beats_flat_depth_and_flat_is_collapsed(sequence):
    x, u = _normalised(sequence)
    truth = check_collapse(x, u, None, 0.01, reflections=True)
    assert not truth.collapsed
    assert truth.depth_ratio > 4 * COLLAPSE_DEPTH
    # Why the cost alone cannot decide: the truth costs more than flat depth here.
    assert truth.cost > truth.flat_cost and truth.gain < 0
    flat = torch.cat([u, torch.zeros_like(u[..., :1])], -1)
    found = check_collapse(flat, u, None, 0.01, reflections=True)
    assert found.collapsed
    assert found.depth_ratio == pytest.approx(0.0, abs=1e-12)
    assert found.gain == pytest.approx(0.0, abs=1e-9)
    # Shallow but real depth (half the truth's) is not flat.
    shallow = torch.cat([x[..., :2], 0.5 * x[..., 2:]], -1)
    assert not check_collapse(shallow, u, None, 0.01, reflections=True).collapsed


@pytest.fixture(autouse=True)
def check_short_runs(monkeypatch):
    # Real runs are checked only after a first stage of MIN_CHECK_STEPS; these are short.
    monkeypatch.setattr(training, "MIN_CHECK_STEPS", 1)


def _config(**changes):
    # The depth layer starts at zero, so a network checked after one step is flat: a
    # collapse on demand.
    base = dict(data="x", iterations=6, logsum_from=1, eval_every=10**6, seed=0, warm_start=False)
    base.update(changes)
    return TrainConfig(**base)


def test_a_collapsed_first_stage_restarts_then_warns(sequence):
    trainer = Trainer(_config(restarts=2), sequence)
    first = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run()
    assert trainer.state == "finished"
    assert trainer.restarts_done == 2
    first_stage = [c for c in trainer.checks if not c["final"]]
    assert len(first_stage) >= 3 and all(c["collapsed"] for c in first_stage[:3])
    assert len({c["seed"] for c in first_stage[:3]}) == 3
    assert trainer.warnings and "flat" in trainer.warnings[0]
    # The run's length counts from the attempt that was kept.
    assert trainer.step == trainer.total_iterations
    assert trainer.step - trainer.attempt_start == trainer.config.iterations
    assert trainer.step > trainer.config.iterations
    changed = any(not torch.equal(first[k], v) for k, v in trainer.model.state_dict().items())
    assert changed


def test_without_restarts_a_collapse_is_only_warned(sequence):
    trainer = Trainer(_config(restarts=0), sequence)
    trainer.run()
    assert trainer.restarts_done == 0
    assert trainer.step == trainer.config.iterations
    assert any("flat" in w for w in trainer.warnings)


def test_short_runs_are_not_checked(sequence, monkeypatch):
    monkeypatch.setattr(training, "MIN_CHECK_STEPS", 200)
    trainer = Trainer(_config(), sequence)
    trainer.run()
    assert not trainer.checks_collapse and trainer.checks == [] and not trainer.warnings


def test_no_check_for_large_data_in_groups():
    seq = generated_sequence(SequenceSpec(kind="human", frames=40, points=20, seed=1))
    trainer = Trainer(_config(group_size=10, batch_size=20), seq)
    trainer.run()
    assert not trainer.checks_collapse
    assert trainer.checks == [] and trainer.restarts_done == 0


def test_restart_state_survives_a_checkpoint(sequence, tmp_path):
    trainer = Trainer(_config(restarts=1), sequence)
    trainer.run()
    path = tmp_path / "run.pt"
    trainer.save_checkpoint(path)
    again = Trainer.from_checkpoint(path, sequence)
    assert again.attempt_start == trainer.attempt_start
    assert again.restarts_done == trainer.restarts_done == 1
    assert again.attempt_seed == trainer.attempt_seed
    assert again.warnings == trainer.warnings
    assert again.total_iterations == trainer.total_iterations == trainer.step
