"""The Training workspace in the real main window: a short PRN run driven through the panel.

Tiny settings throughout (synthetic set of a few hundred frames, hidden width 32, batch 32) so
the whole file runs in well under a minute on two cores.

How responsive the window stays while training (event-loop lateness) is a speed measurement,
not a test: ``benchmarks/gui_responsiveness.py``. The tests check the behaviour: the run is on
another thread and the event loop keeps serving timers and drawing updates while it trains.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtWidgets import QMessageBox

from app import dialogs

TINY_DATA = "synthetic:human?frames=256&seed=3"
TINY_FORM = {
    "hidden": "32",
    "batch_size": "32",
    "group_size": "16",
    "lr": "0.001",
    "eval_every": "25",
    "preview_frame": "5",
}


@pytest.fixture(autouse=True)
def _no_demo(monkeypatch, tmp_path):
    """Tests load their own data; the shipped demo checkpoint must not interfere."""
    import app.workspaces.compare as compare
    import app.workspaces.training as training

    missing = tmp_path / "no_demo.pt"
    monkeypatch.setattr(training, "DEMO_CHECKPOINT", missing)
    monkeypatch.setattr(compare, "DEMO_CHECKPOINT", missing)


@pytest.fixture
def errors(monkeypatch):
    """Collects error dialogs instead of blocking on them."""
    shown: list[str] = []
    monkeypatch.setattr(
        dialogs, "show_error", lambda parent, title, exc: shown.append(f"{title}: {exc}")
    )
    return shown


@pytest.fixture(autouse=True)
def _close_answers_yes(monkeypatch):
    """pytest-qt closes the window at teardown, maybe while a run (of a failed test) goes on:
    answer the "stop training?" question instead of blocking on it."""
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)


@pytest.fixture
def workspace(main_window, qtbot):
    from app.models.training_session import warming_up

    ws = main_window.workspace("Training")
    main_window.show_workspace(ws)
    qtbot.waitExposed(ws)
    # Showing the tab warms torch up off-thread (as while a user fills the form).
    qtbot.waitUntil(lambda: not warming_up(), timeout=30_000)
    assert ws.load_data(TINY_DATA)
    return ws


def fill(ws, **values) -> None:
    for name, text in {**TINY_FORM, **values}.items():
        ws.form.fields[name].setText(str(text))


class EventLoopProbe:
    """A 10 ms QTimer noting, at each tick the GUI thread serves, what the window shows.

    Timing-free: it records which training step the trainer had reached and how many points the
    loss curves held whenever the event loop got to run, so a test can tell that the loop kept
    running (and the window kept updating) while the run went on, whatever the machine's load.
    """

    def __init__(self, ws, interval_ms: int = 10) -> None:
        self.ws = ws
        self.ticks: list[tuple[str, int, int]] = []  # (trainer state, step, curve points)
        self.timer = QTimer()
        self.timer.timeout.connect(self._tick)
        self.timer.start(interval_ms)

    def _tick(self) -> None:
        trainer = self.ws.session.trainer
        if trainer is not None:
            curve = self.ws.loss_curves.curve_points("total")
            self.ticks.append((trainer.state, trainer.step, curve))

    def stop(self) -> None:
        self.timer.stop()

    def while_running(self) -> list[tuple[str, int, int]]:
        return [t for t in self.ticks if t[0] == "running"]


def test_train_pause_resume_save_load(workspace, qtbot, tmp_path, errors):
    ws = workspace
    seq = ws.session.sequence
    assert seq.num_frames == 256 and seq.num_points == 17
    assert "256 frames" in ws.data_panel.info.text()
    assert ws.points2d.shown_points == 17

    fill(ws, iterations=300)
    probe = EventLoopProbe(ws)
    qtbot.mouseClick(ws.start_button, Qt.MouseButton.LeftButton)
    assert ws.session.state == "running", errors
    qtbot.waitUntil(lambda: ws.loss_curves.curve_points("total") >= 20, timeout=20_000)
    step_threads: set[int] = set()  # the trainer is built on the run thread: hook it now
    ws.session.trainer.add_callback(lambda event: step_threads.add(threading.get_ident()))
    assert ws.progress_bar.value() > 0
    assert "left" in ws.eta_label.text()

    qtbot.mouseClick(ws.pause_button, Qt.MouseButton.LeftButton)
    trainer = ws.session.trainer
    qtbot.waitUntil(lambda: trainer.state == "paused", timeout=10_000)
    paused_at = trainer.step
    qtbot.wait(300)
    assert trainer.step == paused_at, "training went on while paused"
    assert ws.resume_button.isEnabled() and not ws.pause_button.isEnabled()
    qtbot.mouseClick(ws.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: trainer.step > paused_at, timeout=10_000)
    qtbot.waitUntil(lambda: ws.session.state == "finished", timeout=60_000)
    probe.stop()
    assert not errors
    # The steps ran on a worker thread, never on the GUI thread...
    assert step_threads and threading.main_thread().ident not in step_threads
    # ...and meanwhile the GUI thread kept serving its event loop: timer ticks arrived at many
    # different training steps, and the loss curves grew between them (the window redrew; the
    # curves are redrawn at most every CURVES_INTERVAL_S, so a fast run sees few sizes).
    running = probe.while_running()
    assert len({step for _, step, _ in running}) >= 10, running[:5]
    curve_sizes = [points for _, _, points in running]
    assert len(set(curve_sizes)) >= 2 and curve_sizes == sorted(curve_sizes)

    # Every step reaches the curves, losses are positive and finite; the run learned something.
    steps, total = ws.loss_curves.data("total")
    assert len(steps) == trainer.step == 300
    assert np.all(np.isfinite(total)) and total[-20:].mean() < total[:20].mean()
    metrics = dict(ws.session.metrics)
    assert set(metrics) >= {"e3d", "mpjpe"}
    assert f"{metrics['e3d']:.4f}" in ws.metrics_label.text()
    # The finished network reconstructs the frame under the slider.
    ws.frame_bar.set_frame(7)
    expected = trainer.predict(seq.points2d[7:8])[0]
    np.testing.assert_allclose(ws.view3d.points, expected - expected.mean(axis=0), atol=1e-6)
    assert "reconstruction" in ws.view3d.title

    path = tmp_path / "run.pt"
    assert ws.save_checkpoint(str(path))
    ws.session.trainer = None  # forget it: the load must bring everything back
    assert ws.open_checkpoint(str(path)), errors
    assert ws.session.state == "loaded"
    assert ws.session.metrics == pytest.approx(metrics)
    assert ws.session.trainer.step == 300
    info = ws.checkpoint_info.toPlainText()
    assert f"e3d = {metrics['e3d']:.6g}" in info and "Created:" in info and "hidden = 32" in info
    assert ws.form.fields["hidden"].text() == "32"
    assert ws.loss_curves.count == 300


def test_depth_toggle_mirrors_the_reconstruction(workspace, qtbot):
    ws = workspace
    fill(ws, iterations=5)
    assert ws.start_training()
    qtbot.waitUntil(lambda: ws.session.state == "finished", timeout=30_000)
    ws.frame_bar.set_frame(3)
    before = ws.view3d.points.copy()
    ws.frame_bar.flip.setChecked(True)
    np.testing.assert_allclose(ws.view3d.points, before * np.array([1, 1, -1]), atol=1e-9)


def test_invalid_settings_are_marked_next_to_the_field(workspace, errors):
    ws = workspace
    fill(ws, batch_size=40, iterations=10)
    assert not ws.start_training()
    assert ws.session.state == "ready"
    assert ws.form.errors["batch_size"].isVisibleTo(ws)
    assert "multiple of group_size" in ws.form.errors["batch_size"].text()
    assert errors and "batch_size" in errors[-1]
    fill(ws, batch_size=32, lr="fast")
    assert not ws.start_training()
    assert "expected a number" in ws.form.errors["lr"].text()
    assert not ws.form.errors["batch_size"].isVisibleTo(ws)


def test_damaged_or_foreign_checkpoint_keeps_the_current_state(workspace, qtbot, tmp_path, errors):
    ws = workspace
    fill(ws, iterations=5)
    assert ws.start_training()
    qtbot.waitUntil(lambda: ws.session.state == "finished", timeout=30_000)
    trainer = ws.session.trainer
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"PK\x03\x04 not really a zip")
    foreign = tmp_path / "foreign.pt"
    import torch

    torch.save({"weights": torch.zeros(3)}, foreign)
    for path in (damaged, foreign, tmp_path / "missing.pt"):
        assert not ws.open_checkpoint(str(path))
        assert ws.session.trainer is trainer and ws.session.state == "finished"
    assert len(errors) == 3
    assert all(str(tmp_path) in e for e in errors)


def test_close_during_training_asks_then_stops_cleanly(
    main_window, workspace, qtbot, tmp_path, monkeypatch
):
    ws = workspace
    fill(ws, iterations=100_000)
    autosave = tmp_path / "autosave.pt"
    ws.autosave_check.setChecked(True)
    ws.autosave_every.setValue(10)
    ws.autosave_path.setText(str(autosave))
    assert ws.start_training()
    qtbot.waitUntil(lambda: autosave.exists(), timeout=20_000)

    answers = [QMessageBox.StandardButton.No]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: answers.pop(0))
    main_window.close()
    assert main_window.isVisible() and ws.session.is_busy(), "closed without asking"

    answers.append(QMessageBox.StandardButton.Yes)
    main_window.close()
    assert not answers, "the second close did not ask"
    assert not main_window.isVisible()
    assert not ws.session.is_busy(), "the training thread outlived the window"
    # The autosave on disk is complete: it loads, and no temporary file is left behind.
    from engine.prn.checkpoint import load_checkpoint

    ckpt = load_checkpoint(autosave)
    assert ckpt.step > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_checkpoint_from_the_command_line_and_demo(main_window, qtbot, tmp_path, monkeypatch):
    from app.models.training_session import limit_torch_threads
    from engine.io.keypoints import load_dataset
    from engine.prn.config import TrainConfig
    from engine.prn.training import Trainer

    limit_torch_threads()  # as the app does: two torch threads crawl on a busy 2-core machine
    config = TrainConfig(
        data=TINY_DATA, iterations=8, hidden=32, batch_size=32, group_size=16, eval_every=4
    )
    trainer = Trainer(config, load_dataset(TINY_DATA))
    trainer.run()
    path = tmp_path / "demo.pt"
    trainer.save_checkpoint(path)

    import app.workspaces.training as training

    monkeypatch.setattr(training, "DEMO_CHECKPOINT", path)
    ws = main_window.workspace("Training")
    main_window.show_workspace(ws)  # first show loads the demo and plays it
    qtbot.waitUntil(lambda: ws.session.state == "loaded", timeout=20_000)
    assert ws.frame_bar.timer.isActive()
    first = ws.frame_bar.frame
    qtbot.waitUntil(lambda: ws.frame_bar.frame != first, timeout=5_000)
    assert ws.session.trainer.step == 8

    # What `main.py --checkpoint CKPT` does.
    main_window.open_checkpoint(str(path))
    assert ws.session.checkpoint.path == str(path)
    assert str(path) in main_window.workspace("Compare").checkpoints()


def test_data_files_load_or_explain(workspace, tmp_path, errors):
    from engine.io.keypoints import load_dataset, save_keypoints

    ws = workspace
    path = tmp_path / "seq.npz"
    save_keypoints(path, load_dataset("synthetic:human?frames=40&seed=9"))
    assert ws.load_data(str(path))
    assert ws.session.sequence.num_frames == 40
    assert "40 frames" in ws.data_panel.info.text()
    assert ws.data_panel.combo.currentData() == str(path)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    assert not ws.load_data(str(bad))
    assert errors and str(bad) in errors[-1]
    assert ws.session.sequence.num_frames == 40  # the loaded data stays


def test_nrsfm_mat_file_trains_with_its_own_point_count(workspace, qtbot, errors):
    from pathlib import Path

    mat = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nrsfm" / "pickup.mat"
    if not mat.exists():
        pytest.skip(f"reference data not available beside the repository ({mat})")
    ws = workspace
    assert ws.load_data(str(mat)), errors
    assert ws.session.sequence.num_points == 41
    fill(ws, iterations=3, preview_frame=0)
    assert ws.start_training(), errors
    qtbot.waitUntil(lambda: ws.session.state == "finished", timeout=30_000)
    assert ws.view3d.points.shape == (41, 3)


def test_data_the_network_cannot_read_shows_its_ground_truth(workspace, qtbot, tmp_path, errors):
    """After loading data with another point count than the trained network's, the 3D view
    shows the new data's ground truth instead of keeping the old network's last frame."""
    from engine.io.keypoints import KeypointSequence, save_keypoints

    ws = workspace
    fill(ws, iterations=3)
    assert ws.start_training(), errors
    qtbot.waitUntil(lambda: ws.session.state == "finished", timeout=30_000)
    points3d = np.random.default_rng(0).normal(size=(12, 9, 3))
    path = tmp_path / "nine_points.npz"
    seq = KeypointSequence(
        points2d=points3d[..., :2].copy(), points3d=points3d, description={"source": "test"}
    )
    save_keypoints(path, seq)
    assert ws.load_data(str(path)), errors
    ws.frame_bar.set_frame(4)
    assert ws.view3d.title.startswith("Ground truth")
    np.testing.assert_allclose(ws.view3d.points, points3d[4] - points3d[4].mean(axis=0), atol=1e-9)


def test_progress_bar_and_metrics_say_what_they_are(workspace, qtbot, tmp_path, errors):
    from app.models.training_session import limit_torch_threads
    from engine.io.keypoints import load_dataset
    from engine.prn.config import TrainConfig
    from engine.prn.training import Trainer

    ws = workspace
    # Nothing has run: an empty bar beside "Not started" (never a full one).
    assert ws.eta_label.text() == "Not started."
    assert ws.progress_bar.value() == 0 and ws.progress_bar.text().replace(" ", "") == "0%"

    limit_torch_threads()
    config = TrainConfig(
        data=TINY_DATA, iterations=60, hidden=32, batch_size=32, group_size=16, eval_every=10
    )
    trainer = Trainer(config, load_dataset(TINY_DATA))
    trainer.run(until_step=30)  # a checkpoint half way through its configured run
    path = tmp_path / "half.pt"
    trainer.save_checkpoint(path)
    assert ws.open_checkpoint(str(path)), errors
    assert ws.session.state == "loaded"
    assert ws.progress_bar.value() == 500
    assert ws.progress_bar.text() == "checkpoint: step 30 of 60"
    # The metrics name the data they were computed on (the Compare tab scores held-out data).
    text = ws.metrics_label.text()
    assert f"e3D {trainer.metrics['e3d']:.4f}" in text
    assert f"on {TINY_DATA} (training data, 256 frames)" in text, text


def test_paused_run_shows_paused_instead_of_time_left(workspace, qtbot, errors):
    ws = workspace
    fill(ws, iterations=100_000)
    updates = []
    ws.session.updated.connect(updates.append)
    assert ws.start_training(), errors
    qtbot.waitUntil(lambda: "left" in ws.eta_label.text(), timeout=20_000)
    qtbot.mouseClick(ws.pause_button, Qt.MouseButton.LeftButton)
    trainer = ws.session.trainer
    qtbot.waitUntil(lambda: trainer.state == "paused", timeout=10_000)
    qtbot.wait(400)  # updates still queued from before the pause arrive
    # The step that was running when Pause was clicked reports after it (a late update).
    ws.session.updated.emit(updates[-1])
    text = ws.eta_label.text()
    assert "paused" in text.lower() and "left" not in text, text
    qtbot.mouseClick(ws.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "left" in ws.eta_label.text(), timeout=20_000)
    ws.session.stop()
    qtbot.waitUntil(lambda: not ws.session.is_busy(), timeout=20_000)


def test_automatic_fields_show_what_the_engine_chooses(workspace):
    """The form is a ConfigForm of TrainConfig: empty automatic fields name the value chosen
    for the loaded data, an edit re-validates it and marks the field it concerns."""
    from engine.prn.config import TrainConfig

    ws = workspace
    assert "data" not in ws.form.fields  # the data panel chooses it
    ws.form.fill(TrainConfig())
    resolved = TrainConfig().resolved(ws.session.sequence.num_frames)
    ws._show_automatic_values()
    fields = ws.form.fields
    assert fields["group_size"].text() == ""
    assert fields["group_size"].placeholderText() == f"auto: {resolved.group_size}"
    assert fields["reflections"].placeholderText() == f"auto: {str(resolved.reflections).lower()}"
    assert fields["device"].placeholderText() == "auto (cpu / cuda)"
    assert ws.read_config().group_size is None

    fields["group_size"].setText("16")
    fields["group_size"].editingFinished.emit()
    assert fields["batch_size"].placeholderText() == "auto: 16"
    assert ws.read_config().group_size == 16
    fields["batch_size"].setText("40")
    fields["batch_size"].editingFinished.emit()
    assert ws.form.errors["batch_size"].isVisibleTo(ws)
    assert "multiple of group_size" in ws.form.errors["batch_size"].text()
    fields["batch_size"].setText("")
    fields["batch_size"].editingFinished.emit()
    assert not ws.form.errors["batch_size"].isVisibleTo(ws)
