"""The PRN training loop: events, determinism, exact resume, pause/resume/stop, divergence."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch

from engine.core.errors import CheckpointError, DataError, InputError
from engine.io.keypoints import KeypointSequence
from engine.prn.checkpoint import load_checkpoint
from engine.prn.config import TrainConfig
from engine.prn.training import Trainer, mirrored_frames
from tests.keypoint_data import low_rank_sequence as _sequence


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks: one thread avoids OpenMP barrier stalls on a busy shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config(**kw) -> TrainConfig:
    base = dict(
        data="test",
        iterations=8,
        hidden=16,
        batch_size=16,
        group_size=8,
        eval_every=4,
        lr=1e-3,
        device="cpu",
        seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_run_reports_events_and_metrics():
    trainer = Trainer(_config(), _sequence())
    events = []
    trainer.add_callback(events.append)
    metrics = trainer.run()
    assert trainer.state == "finished" and trainer.step == 8
    assert [e.step for e in events] == list(range(1, 9))
    assert len(trainer.history) == 8
    for e in events:
        assert set(e.losses) == {"f", "g", "mirror", "total"}
        assert np.isfinite(list(e.losses.values())).all()
        cfg = trainer.config
        expected = e.losses["f"] + cfg.lam * e.losses["g"] + cfg.mirror_weight * e.losses["mirror"]
        assert e.losses["total"] == pytest.approx(expected, rel=1e-5)
        assert e.total_steps == 8 and e.elapsed_s >= 0 and e.eta_s >= 0
    assert [e.step for e in events if e.metrics is not None] == [4, 8]
    assert set(events[3].metrics) == {"e3d", "mpjpe"}
    assert events[0].preview.shape == (8, 3) and events[0].preview.dtype == np.float32
    assert events[-1].eta_s == 0
    assert metrics == events[-1].metrics


def test_same_seed_same_losses_other_seed_differs():
    seq = _sequence()
    a, b, c = (Trainer(_config(seed=s, iterations=5), seq) for s in (1, 1, 2))
    for t in (a, b, c):
        t.run()
    assert a.history == b.history
    assert a.history != c.history


def test_resume_from_checkpoint_is_exact(tmp_path):
    """N + M steps straight equal N steps, save, load, M more steps (losses and weights), with
    the log-sum stage starting after the resume point."""
    seq = _sequence(frames=40)  # 40 frames / batch 16: the sampler wraps mid-batch
    cfg = _config(iterations=11, missing_ratio=0.1, eval_every=3, logsum=True, logsum_from=7)
    straight = Trainer(cfg, seq)
    straight.run()

    first = Trainer(cfg, seq)
    first.run(until_step=5)
    assert first.state == "finished" and first.step == 5
    first.save_checkpoint(tmp_path / "half.pt")
    resumed = Trainer.from_checkpoint(tmp_path / "half.pt", seq)
    assert resumed.step == 5 and resumed.history == first.history
    resumed.run()
    assert resumed.history == straight.history
    for k, v in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    ckpt = load_checkpoint(tmp_path / "half.pt")
    assert ckpt.config == cfg.resolved(seq.num_frames) and ckpt.step == 5
    assert ckpt.requested_config() == cfg
    assert ckpt.data_description["num_points"] == 8


def test_pause_resume_stop_from_another_thread():
    trainer = Trainer(_config(iterations=100_000), _sequence())
    reached = threading.Event()

    def on_step(event):
        if event.step == 3:
            trainer.pause()
            reached.set()

    trainer.add_callback(on_step)
    thread = threading.Thread(target=trainer.run)
    thread.start()
    assert reached.wait(30)
    for _ in range(200):
        if trainer.state == "paused":
            break
        threading.Event().wait(0.01)
    assert trainer.state == "paused" and trainer.step == 3
    threading.Event().wait(0.1)
    assert trainer.step == 3  # nothing happens while paused
    trainer.resume()
    for _ in range(500):
        if trainer.step > 5:
            break
        threading.Event().wait(0.01)
    trainer.stop()
    thread.join(30)
    assert not thread.is_alive()
    assert trainer.state == "stopped" and 5 < trainer.step < 100_000
    assert len(trainer.history) == trainer.step


def test_nan_stops_run_and_keeps_last_good_checkpoint(tmp_path):
    path = tmp_path / "auto.pt"
    trainer = Trainer(_config(iterations=20), _sequence(), autosave_path=path, autosave_every=2)

    def poison(event):
        if event.step == 6:
            with torch.no_grad():
                trainer.model.depth_out.bias.fill_(float("nan"))

    trainer.add_callback(poison)
    trainer.run()
    assert trainer.state == "failed"
    assert "diverged at step 7" in trainer.error
    assert trainer.step == 6
    ckpt = load_checkpoint(path)
    assert ckpt.step == 6
    with pytest.raises(CheckpointError, match="non-finite"):
        trainer.save_checkpoint(path)
    assert load_checkpoint(path).step == 6


def test_predict_is_in_input_units():
    seq = _sequence()
    trainer = Trainer(_config(iterations=6), seq)
    trainer.run()
    pred = trainer.predict(seq.points2d)
    assert pred.shape == (48, 8, 3) and pred.dtype == np.float64
    np.testing.assert_allclose(pred[..., 2].mean(axis=1), 0, atol=1e-9)
    moved = trainer.predict(3.0 * seq.points2d + np.array([10.0, -4.0]))
    np.testing.assert_allclose(
        moved[..., :2], 3.0 * pred[..., :2] + np.array([10.0, -4.0]), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(moved[..., 2], 3.0 * pred[..., 2], rtol=1e-5, atol=1e-5)
    with pytest.raises(DataError, match="8 points"):
        trainer.predict(seq.points2d[:, :5])


def test_missing_points_are_excluded_from_f():
    seq = _sequence()
    trainer = Trainer(_config(iterations=3, missing_ratio=0.25), seq)
    assert trainer.train_sequence.visibility.mean() == pytest.approx(0.75, abs=0.02)
    assert trainer.sequence.visibility is None  # the caller's data is untouched
    trainer.run()
    assert trainer.state == "finished" and np.isfinite(trainer.history[-1]["total"])


def test_learns_depth_better_than_zero_depth():
    """On exact low-rank data a short run already beats the all-zero-depth baseline clearly."""
    from engine.nrsfm.metrics import normalized_error

    seq = _sequence(frames=64, points=10, rank=1, seed=5)
    cfg = _config(iterations=150, hidden=64, batch_size=32, group_size=16, lr=3e-3, eval_every=150)
    trainer = Trainer(cfg, seq)
    metrics = trainer.run()
    zero = np.concatenate([seq.points2d, np.zeros((64, 10, 1))], axis=-1)
    assert metrics["e3d"] < 0.5 * normalized_error(zero, seq.points3d)


def test_bad_config_and_data():
    with pytest.raises(InputError) as info:
        Trainer(_config(hidden=0), _sequence())
    assert info.value.field == "hidden"
    one = _sequence(frames=1)
    with pytest.raises(DataError, match="at least 2 frames"):
        Trainer(_config(), one)
    if not torch.cuda.is_available():
        with pytest.raises(InputError) as info:
            Trainer(_config(device="cuda"), _sequence())
        assert info.value.field == "device"


def test_mirrored_frames_finds_the_reflected_frame():
    rng = np.random.default_rng(0)
    base = torch.tensor(rng.normal(size=(10, 3)))
    frames = []
    for i in range(6):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        q *= np.sign(np.linalg.det(q))
        shape = base + 0.05 * torch.tensor(rng.normal(size=(10, 3)))
        if i == 4:
            shape = shape * torch.tensor([1.0, 1.0, -1.0])
        if i == 2:
            # Nearly flat and mirrored: its mirror image fits the group only a little better.
            shape = shape * torch.tensor([1.0, 1.0, -0.05])
        frames.append(shape @ torch.tensor(q).T)
    from engine.nrsfm.procrustes import align

    aligned, _ = align(torch.stack(frames)[None])
    flags = mirrored_frames(aligned)
    assert flags.shape == (1, 6)
    assert flags[0].tolist() == [False, False, True, False, True, False]
    clear = mirrored_frames(aligned, 0.8)
    assert clear[0].tolist() == [False, False, False, False, True, False]
    # Independent reference: minimise the mirrored frame's residual to the group mean over
    # rotation vectors numerically (several starts) instead of the closed-form Kabsch value.
    from scipy.optimize import minimize
    from scipy.spatial.transform import Rotation

    z = aligned[0].numpy()
    mean = z.mean(0)
    for i in range(6):
        mirrored = z[i] * np.array([1.0, 1.0, -1.0])

        def cost(rv, a=mirrored):
            return float(((a @ Rotation.from_rotvec(rv).as_matrix().T - mean) ** 2).sum())

        best = min(minimize(cost, rng.normal(size=3) * 2).fun for _ in range(6))
        own = float(((z[i] - mean) ** 2).sum())
        assert (best < own) == bool(flags[0, i]), i
        assert (best < 0.8 * own) == bool(clear[0, i]), i


def test_mirror_term_adds_to_the_cost():
    trainer = Trainer(_config(iterations=4, mirror_weight=2.0, mirror_margin=1.0), _sequence())
    events = []
    trainer.add_callback(events.append)
    trainer.run()
    assert trainer.state == "finished"
    assert any(e.losses["mirror"] > 0 for e in events)
    for e in events:
        expected = e.losses["f"] + trainer.config.lam * e.losses["g"] + 2.0 * e.losses["mirror"]
        assert e.losses["total"] == pytest.approx(expected, rel=1e-5)


def test_automatic_settings_follow_the_data_size(monkeypatch, tmp_path):
    """Automatic fields resolve to one whole-sequence group with reflections and a warm start
    at lr 1e-4 for a short sequence, to batches of groups without reflections for large data;
    explicit values are used as given; checkpoints keep the resolved settings and the
    requested ones."""
    import engine.prn.config as config_module
    import engine.prn.training as training

    calls = []
    real_align = training.align

    def spy(x, **kw):
        calls.append((tuple(x.shape), kw.get("reflections", False)))
        return real_align(x, **kw)

    monkeypatch.setattr(training, "align", spy)
    auto = dict(batch_size=None, group_size=None, lr=None, iterations=2, eval_every=100)
    trainer = Trainer(_config(**auto), _sequence(frames=20))
    used = trainer.config
    assert (used.batch_size, used.group_size, used.reflections) == (20, 20, True)
    assert (used.lr, used.lr_step, used.lr_decay, used.warm_start) == (1e-4, 1000, 0.5, True)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    trainer.run()
    assert calls and all(shape[:2] == (1, 20) and refl for shape, refl in calls)
    path = tmp_path / "auto.pt"
    trainer.save_checkpoint(path)
    ckpt = load_checkpoint(path)
    assert ckpt.config == used
    assert ckpt.requested_config().group_size is None
    assert ckpt.requested_config().reflections is None

    calls.clear()
    monkeypatch.setattr(config_module, "SEQUENCE_MAX_FRAMES", 10)
    trainer = Trainer(_config(**auto), _sequence(frames=300))
    used = trainer.config
    assert (used.batch_size, used.group_size, used.reflections) == (256, 128, False)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)

    calls.clear()
    explicit = Trainer(_config(iterations=2, reflections=False), _sequence(frames=20))
    assert (explicit.config.batch_size, explicit.config.group_size) == (16, 8)
    assert explicit.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    explicit.run()
    assert calls and all(shape[:2] == (2, 8) and not refl for shape, refl in calls)


def test_checkpoints_without_newer_fields_load_as_trained(tmp_path):
    """A checkpoint written before ``reflections`` existed resumes without reflections."""
    trainer = Trainer(_config(iterations=2), _sequence())
    trainer.run()
    path = tmp_path / "old.pt"
    trainer.save_checkpoint(path)
    raw = torch.load(path, weights_only=True)
    for name in (
        "reflections",
        "logsum",
        "logsum_from",
        "logsum_eps",
        "align_max_iter",
        "warm_start",
    ):
        del raw["config"][name]
    del raw["extra"]["requested_config"]
    torch.save(raw, path)
    ckpt = load_checkpoint(path)
    assert ckpt.config.reflections is False and ckpt.config.logsum is False
    assert ckpt.config.warm_start is False and ckpt.config.logsum_from == 1000
    assert ckpt.config.align_max_iter == 100  # what align() always used before the setting
    resumed = Trainer.from_checkpoint(path, _sequence())
    assert resumed.align_not_converged == 0 and resumed.step == 2
    assert ckpt.requested_config() == ckpt.config


def test_logsum_penalty_takes_over_at_logsum_from(monkeypatch):
    """Steps before ``logsum_from`` are those of a nuclear-norm run; from then on g is the
    log-sum penalty of the group, which is below the nuclear norm."""
    import engine.prn.training as training

    seq = _sequence()
    plain = Trainer(_config(iterations=5, logsum=False), seq)
    plain.run()
    switched = Trainer(_config(iterations=5, logsum=True, logsum_from=3, logsum_eps=0.01), seq)
    seen = []
    real = training.log_sum_penalty

    def spy(x, scale):
        seen.append((switched.step, scale))
        return real(x, scale)

    monkeypatch.setattr(training, "log_sum_penalty", spy)
    switched.run()
    assert [s for s, _ in seen] == [3, 4]
    assert all(scale == pytest.approx(0.01 * 8**0.5) for _, scale in seen)
    for a, b in zip(plain.history[:3], switched.history[:3], strict=True):
        assert a == b
    assert switched.history[3]["g"] < 0.5 * plain.history[3]["g"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda_follows_the_cpu_run():
    """The same seed trains to nearly the same losses on CUDA as on the CPU (the log-sum stage
    included)."""
    runs = {}
    for device in ("cpu", "cuda"):
        cfg = _config(device=device, iterations=20, logsum=True, logsum_from=10)
        trainer = Trainer(cfg, _sequence())
        assert trainer.device.type == device
        trainer.run()
        assert trainer.state == "finished"
        runs[device] = [h["total"] for h in trainer.history]
    np.testing.assert_allclose(runs["cuda"], runs["cpu"], rtol=1e-2)


def test_alignments_that_do_not_converge_are_counted_and_saved(tmp_path):
    """A tiny align_max_iter leaves every group unconverged: counted per step in the events,
    in total in the metrics and the checkpoint, and carried on by a resumed run."""
    seq = _sequence()
    trainer = Trainer(_config(iterations=4, align_max_iter=1), seq)  # 2 groups per step
    events = []
    trainer.add_callback(events.append)
    metrics = trainer.run()
    assert [e.align_not_converged for e in events] == [2, 2, 2, 2]
    assert [e.align_not_converged_total for e in events] == [2, 4, 6, 8]
    assert trainer.align_not_converged == 8
    assert metrics["align_not_converged"] == 8 and {"e3d", "mpjpe"} <= set(metrics)
    assert events[-1].metrics["align_not_converged"] == 8
    assert set(events[0].losses) == {"f", "g", "mirror", "total"}  # the curves are unchanged
    path = tmp_path / "short.pt"
    trainer.save_checkpoint(path)
    ckpt = load_checkpoint(path)
    assert ckpt.metrics["align_not_converged"] == 8 and ckpt.config.align_max_iter == 1
    resumed = Trainer.from_checkpoint(path, seq)
    assert resumed.align_not_converged == 8
    resumed.run(until_step=6)
    assert resumed.align_not_converged == 12 and resumed.metrics["align_not_converged"] == 12

    # The default (the authors' 100 sweeps) converges on this data: nothing counted or shown.
    ok = Trainer(_config(iterations=3), seq)
    events.clear()
    ok.add_callback(events.append)
    metrics = ok.run()
    assert ok.config.align_max_iter == 100
    assert ok.align_not_converged == 0 and "align_not_converged" not in metrics
    assert [e.align_not_converged for e in events] == [0, 0, 0]


def test_data_without_visible_points_is_refused():
    seq = _sequence(frames=20)
    none = KeypointSequence(
        points2d=seq.points2d, points3d=seq.points3d, visibility=np.zeros((20, 8), bool)
    )
    with pytest.raises(DataError, match="no point is visible") as info:
        Trainer(_config(), none)
    assert info.value.field == "visibility"
    # One visible point per frame: every frame normalises to nothing (no extent to scale by).
    vis = np.zeros((20, 8), bool)
    vis[:, 3] = True
    single = KeypointSequence(points2d=seq.points2d, points3d=seq.points3d, visibility=vis)
    with pytest.raises(DataError, match="no frame has 2 or more distinct visible points"):
        Trainer(_config(), single)
    vis[5, :] = True  # one usable frame is not enough either
    with pytest.raises(DataError, match="at least 2 frames with 2 or more distinct visible"):
        Trainer(_config(), KeypointSequence(points2d=seq.points2d, visibility=vis))


def test_frames_without_visible_points_are_left_out_of_training(monkeypatch):
    import engine.prn.training as training

    seq = _sequence(frames=24)
    vis = np.ones((24, 8), bool)
    empty = [2, 7, 8, 20]
    vis[empty] = False
    vis[11, 1:] = False  # a single visible point: no extent, nothing to learn from either
    data = KeypointSequence(points2d=seq.points2d, points3d=seq.points3d, visibility=vis)
    batches = []
    real = training.Trainer._next_batch

    def spy(self):
        idx = real(self)
        batches.append(idx)
        return idx

    monkeypatch.setattr(training.Trainer, "_next_batch", spy)
    trainer = Trainer(_config(iterations=6, batch_size=None, group_size=None), data)
    assert trainer.skipped_frames.tolist() == [2, 7, 8, 11, 20]
    # Automatic sizes follow the frames that train: one group of the 19 usable frames.
    assert (trainer.config.batch_size, trainer.config.group_size) == (19, 19)
    trainer.run()
    assert trainer.state == "finished"
    seen = np.concatenate(batches)
    assert not set(seen.tolist()) & {2, 7, 8, 11, 20}
    assert set(seen.tolist()) == set(range(24)) - {2, 7, 8, 11, 20}
    assert np.isfinite(trainer.history[-1]["total"])
    # Evaluation and prediction still cover every frame of the data.
    assert trainer.predict(data.points2d, data.visibility).shape == (24, 8, 3)
    # Data where every frame is usable samples exactly as before (all frames, same order).
    full = Trainer(_config(iterations=3), seq)
    assert full.skipped_frames.size == 0


def test_large_data_uses_the_depth_sign_term_only_with_complete_2d():
    """The automatic depth-sign weight follows the points that train: 0.5 on complete large
    data, 0 once points are missing (in the data or removed by ``missing_ratio``) and on one
    sequence."""
    seq = _sequence(frames=2100)
    auto = {"lam": None, "mirror_weight": None, "batch_size": None, "group_size": None}
    assert Trainer(_config(**auto), seq).config.mirror_weight == 0.5
    assert Trainer(_config(**auto, missing_ratio=0.1), seq).config.mirror_weight == 0.0
    vis = np.ones(seq.points2d.shape[:2], dtype=bool)
    vis[5, 2] = False
    holed = dataclasses.replace(seq, visibility=vis)
    assert Trainer(_config(**auto), holed).config.mirror_weight == 0.0
    assert Trainer(_config(**auto), _sequence(frames=300)).config.mirror_weight == 0.0
