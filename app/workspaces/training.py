"""The Training workspace: choose data, set PRN hyper-parameters, train and watch, save and load.

Left: a scrollable control panel (data set, validated hyper-parameter form, Start / Pause /
Resume / Stop, progress with time remaining, autosave, checkpoint metadata). Right: the 2D input
of the current frame beside the 3D reconstruction, a frame bar (play/pause, speed, depth-sign
toggle) and the live loss curves (log scale).

State lives in :class:`app.models.training_session.TrainingSession`; training runs on its worker
thread and this widget only redraws on the session's throttled updates (~2 per second), so the
window stays responsive while it trains. While a run is in progress the 3D view shows the live
prediction of the configured preview frame; otherwise it shows the trained network's
reconstruction of the frame under the slider (or the ground truth when nothing is trained).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QEvent, QObject, Qt, QTimer
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app import dialogs
from app.models.training_session import TrainingSession, Update, warm_up
from app.paths import CHECKPOINT_FILTER, DEMO_CHECKPOINT, autosave_file
from app.views.config_form import ConfigForm
from app.views.frame_bar import FrameBar
from app.views.keypoint_data import DataPanel, sequence_summary
from app.views.plots import LIVE_REDRAW_INTERVAL_S, LossCurves, Points2DPlot
from app.views.skeleton_view import SkeletonView
from engine.core.errors import InputError
from engine.io.keypoints import skeleton_edges

# The curves and the preview follow a run at the shared live-redraw pace (see app/views/plots.py).
CURVES_INTERVAL_S = LIVE_REDRAW_INTERVAL_S
PREVIEW_INTERVAL_S = LIVE_REDRAW_INTERVAL_S

# Labels of the TrainConfig fields in the form (app.views.config_form.ConfigForm); a field
# missing here is shown under its own name, so settings added to TrainConfig later appear without
# changes here. The data set comes from the data panel, not the form.
FIELD_LABELS = {
    "iterations": "Iterations",
    "lam": "Lambda (g weight)",
    "mirror_weight": "Mirror weight",
    "mirror_margin": "Mirror margin",
    "hidden": "Hidden width",
    "batch_size": "Batch size",
    "group_size": "Group size",
    "lr": "Learning rate",
    "weight_decay": "Weight decay",
    "lr_decay": "LR decay factor",
    "lr_step": "LR decay every",
    "missing_ratio": "Missing ratio",
    "seed": "Seed",
    "eval_every": "Evaluate every",
    "preview_frame": "Preview frame",
    "device": "Device",
    "reflections": "Reflections in g",
    "logsum": "Log-sum g",
    "logsum_from": "Log-sum from step",
    "logsum_eps": "Log-sum scale",
    "align_max_iter": "Alignment sweeps",
    "restarts": "Restarts if flat",
    "warm_start": "Start from NRSfM (nrsfm_bmm)",
}


def checkpoint_summary(checkpoint) -> str:
    """The metadata of a loaded checkpoint as readable text (config, data, metrics, date)."""
    lines = [
        f"File: {checkpoint.path}",
        f"Created: {checkpoint.created}",
        f"Steps trained: {checkpoint.step}",
        f"Points: {checkpoint.num_points}",
        "Metrics: "
        + (", ".join(f"{k} = {v:.6g}" for k, v in checkpoint.metrics.items()) or "none"),
        "Data: "
        + json.dumps(
            {k: v for k, v in checkpoint.data_description.items() if k not in ("edges", "names")}
        ),
        "Config: "
        + ", ".join(f"{k} = {v}" for k, v in dataclasses.asdict(checkpoint.config).items()),
    ]
    return "\n".join(lines)


class TrainingWorkspace(QWidget):
    """Train a PRN and watch it: see the module docstring. ``window`` may be None (tests)."""

    title = "Training"

    def __init__(self, window=None) -> None:
        super().__init__(window)
        self.window_ = window
        self.session = TrainingSession(self)
        self._demo_tried = False
        self.demo_worker = None
        self._history_shown = 0
        self._view_mode = ""
        self._preview: np.ndarray | None = None
        self._preview_source = None
        self._curves_drawn_at = 0.0
        self._preview_drawn_at = 0.0
        self._edges: np.ndarray | None = None
        self._build()
        self._connect()
        self._fill_form(self.session.config)
        self._update_buttons()
        if window is not None:
            # Sees the window's Close before MainWindow.closeEvent, so a run can be stopped
            # (or the close refused) before the window tears anything down.
            window.installEventFilter(self)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        from engine.prn.config import TrainConfig

        self.data_panel = DataPanel()
        self.form = ConfigForm(
            "Hyper-parameters",
            TrainConfig,
            FIELD_LABELS,
            skip={"data"},
            hints={"device": "auto (cpu / cuda)"},
        )

        run_box = QGroupBox("Run")
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p %")
        self.eta_label = QLabel("Not started.")
        self.metrics_label = QLabel("Metrics: —")
        self.metrics_label.setWordWrap(True)
        run = QGridLayout(run_box)
        run.addWidget(self.start_button, 0, 0)
        run.addWidget(self.pause_button, 0, 1)
        run.addWidget(self.resume_button, 1, 0)
        run.addWidget(self.stop_button, 1, 1)
        run.addWidget(self.progress_bar, 2, 0, 1, 2)
        run.addWidget(self.eta_label, 3, 0, 1, 2)
        run.addWidget(self.metrics_label, 4, 0, 1, 2)

        save_box = QGroupBox("Autosave")
        self.autosave_check = QCheckBox("Autosave every")
        self.autosave_every = QSpinBox()
        self.autosave_every.setRange(1, 10_000_000)
        self.autosave_every.setValue(500)
        self.autosave_every.setSuffix(" steps")
        self.autosave_path = QLineEdit(str(autosave_file("autosave_prn.pt")))
        browse = QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(self._choose_autosave_path)
        autosave = QGridLayout(save_box)
        autosave.addWidget(self.autosave_check, 0, 0)
        autosave.addWidget(self.autosave_every, 0, 1)
        autosave.addWidget(self.autosave_path, 1, 0)
        autosave.addWidget(browse, 1, 1)

        ckpt_box = QGroupBox("Checkpoint")
        self.checkpoint_info = QPlainTextEdit()
        self.checkpoint_info.setReadOnly(True)
        self.checkpoint_info.setPlaceholderText(
            "Load a checkpoint (File menu) to see its metadata."
        )
        self.checkpoint_info.setMinimumHeight(90)
        QVBoxLayout(ckpt_box).addWidget(self.checkpoint_info)

        panel = QWidget()
        panel_layout = QVBoxLayout(panel)
        for box in (self.data_panel, run_box, self.form, save_box, ckpt_box):
            panel_layout.addWidget(box)
        panel_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(panel.sizeHint().width() + 20)

        self.points2d = Points2DPlot(title="2D input")
        self.view3d = SkeletonView(title="3D reconstruction")
        self._smooth_samples = self.view3d.plotter.render_window.GetMultiSamples()
        views = QSplitter(Qt.Orientation.Horizontal)
        views.addWidget(self.points2d)
        views.addWidget(self.view3d)
        views.setSizes([300, 400])
        self.frame_bar = FrameBar()
        self.loss_curves = LossCurves()
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(views, 1)
        top_layout.addWidget(self.frame_bar)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(top)
        right.addWidget(self.loss_curves)
        right.setSizes([330, 170])

        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(scroll)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        layout.addWidget(splitter)

        self.save_action = QAction("Save PRN checkpoint…", self)
        self.load_action = QAction("Load PRN checkpoint…", self)

    def _connect(self) -> None:
        s = self.session
        self.data_panel.requested.connect(self.load_data)
        self.form.edited.connect(self._validate_form)
        self.start_button.clicked.connect(self.start_training)
        self.pause_button.clicked.connect(s.pause)
        self.resume_button.clicked.connect(self.resume_training)
        self.stop_button.clicked.connect(s.stop)
        self.autosave_check.toggled.connect(self._apply_autosave)
        self.autosave_every.valueChanged.connect(self._apply_autosave)
        self.autosave_path.editingFinished.connect(self._apply_autosave)
        self.frame_bar.frame_changed.connect(self._show_frame)
        self.frame_bar.flip_changed.connect(lambda _: self._show_frame(self.frame_bar.frame))
        self.save_action.triggered.connect(self._save_dialog)
        self.load_action.triggered.connect(self._load_dialog)
        s.sequence_changed.connect(self._on_sequence)
        s.state_changed.connect(self._on_state)
        s.trainer_ready.connect(self._update_buttons)
        s.updated.connect(self._on_update)
        s.history_reset.connect(self._reset_history)
        s.metrics_changed.connect(self._show_metrics)
        s.checkpoint_loaded.connect(self._on_checkpoint_loaded)
        s.checkpoint_saved.connect(lambda p: self._status(f"Checkpoint saved: {p}"))
        s.failed.connect(lambda msg: self._error("Training failed", msg))

    # ------------------------------------------------------------------ main-window hooks
    def file_actions(self) -> list[QAction]:
        """File menu entries: Save / Load PRN checkpoint."""
        return [self.save_action, self.load_action]

    def open_checkpoint(self, path: str) -> bool:
        """Load a checkpoint (``main.py --checkpoint``, File > Load); errors become a dialog."""
        self._demo_tried = True  # an explicit checkpoint replaces the demo
        try:
            self.session.load_checkpoint(path)
        except (InputError, OSError, RuntimeError) as exc:
            self._error("Cannot load checkpoint", exc)
            return False
        if self.window_ is not None and hasattr(self.window_, "add_recent_file"):
            self.window_.add_recent_file(path)
        return True

    def shutdown(self) -> None:
        """Stop playback and any run (joining its thread), then release the 3D view."""
        self.frame_bar.set_playing(False)
        self.session.shutdown()
        self.view3d.close_view()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        """Ask before the window closes during a run; stop and join the run if it may close."""
        if obj is self.window_ and event.type() == QEvent.Type.Close and self.session.is_busy():
            answer = QMessageBox.question(
                self.window_,
                "Training in progress",
                "A PRN is training. Stop it and close the window?\n"
                "(Autosaved checkpoints are kept; unsaved progress is lost.)",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return True
            self.session.shutdown()
        return super().eventFilter(obj, event)

    def showEvent(self, event) -> None:
        """First show of the tab: warm torch up off-thread and open the demo checkpoint (done
        here, not at start-up, so the window opens fast)."""
        super().showEvent(event)
        if not self._demo_tried:
            self._demo_tried = True
            warm_up()
            QTimer.singleShot(0, self.open_demo)

    def open_demo(self) -> bool:
        """Load assets/demo_prn.pt off the GUI thread (when it exists and nothing else is
        loaded) and play it."""
        if not DEMO_CHECKPOINT.is_file() or self.session.trainer is not None:
            return False
        self.demo_worker = self.session.load_checkpoint_async(DEMO_CHECKPOINT)
        self.demo_worker.finished.connect(self._play_demo)
        self.demo_worker.failed.connect(lambda msg: self._status(f"Demo not loaded: {msg}"))
        if self.window_ is not None and hasattr(self.window_, "track_worker"):
            self.window_.track_worker(self.demo_worker, "Opening the PRN demo")
        return True

    def _play_demo(self, _prepared=None) -> None:
        checkpoint = self.session.checkpoint
        if checkpoint is not None and Path(checkpoint.path) == DEMO_CHECKPOINT:
            self.frame_bar.set_playing(True)

    # ------------------------------------------------------------------ data
    def load_data(self, spec: str) -> bool:
        """Load a data set by spec or path; errors become a dialog and the current data stays."""
        try:
            self.session.load_data(spec)
        except (InputError, OSError, RuntimeError) as exc:
            self._error("Cannot load data", exc)
            return False
        return True

    def _on_sequence(self, sequence) -> None:
        self._show_automatic_values()
        self._edges = skeleton_edges(sequence)
        self.data_panel.show_sequence(sequence, self.session.data_spec)
        self.frame_bar.set_count(sequence.num_frames)
        self._view_mode = ""
        self._show_frame(min(self.frame_bar.frame, sequence.num_frames - 1))
        self.points2d.set_frame(
            sequence.points2d[self.frame_bar.frame],
            self._edges,
            None if sequence.visibility is None else sequence.visibility[self.frame_bar.frame],
        )
        # One range for the whole sequence: frames reaching further are not clipped.
        self.points2d.fit_to(sequence.points2d, sequence.visibility)
        if self.window_ is not None and hasattr(self.window_, "set_counts_text"):
            self.window_.set_counts_text(sequence_summary(sequence), self)
        self._update_buttons()

    # ------------------------------------------------------------------ form
    def _fill_form(self, config) -> None:
        self.form.fill(config)
        self._show_automatic_values()

    def _show_automatic_values(self) -> None:
        """Empty automatic fields show what the engine will choose for the loaded data."""
        from engine.prn.config import TrainConfig, complete_2d

        sequence = self.session.sequence
        resolved = None
        if sequence is not None:
            try:
                config = self.read_config()
            except InputError:
                config = TrainConfig()
            complete = complete_2d(sequence.visibility, config.missing_ratio)
            resolved = config.resolved(sequence.num_frames, complete=complete)
        self.form.show_automatic(resolved)

    def read_config(self):
        """The form as a validated ``TrainConfig`` (data = the loaded data set's spec).

        Raises:
            InputError: naming the field that is malformed or out of range.
        """
        from engine.prn.config import TrainConfig

        return self.form.read(data=self.session.data_spec or TrainConfig().data)

    def _validate_form(self) -> bool:
        """Re-validate after an edit (also the automatic choices for the loaded data)."""
        from engine.prn.config import TrainConfig

        sequence = self.session.sequence

        def check_resolved(config) -> None:
            if sequence is not None:
                config.resolved(sequence.num_frames).validate()

        try:
            return self.form.validate(
                check=check_resolved, data=self.session.data_spec or TrainConfig().data
            )
        finally:
            self._show_automatic_values()

    # ------------------------------------------------------------------ run control
    def start_training(self) -> bool:
        """Start a fresh run from the form; invalid fields are marked and reported."""
        self.form.clear_errors()
        try:
            config = self.read_config()
            self._apply_autosave()
            self.session.start(config)
        except InputError as exc:
            self.form.mark_error(exc.field, exc.problem)
            self._error("Cannot start training", exc)
            return False
        except RuntimeError as exc:
            self._error("Cannot start training", exc)
            return False
        self.frame_bar.set_playing(False)
        self.frame_bar.set_frame(config.preview_frame)
        return True

    def resume_training(self) -> None:
        """Resume a paused run, or continue a stopped/loaded one up to the form's iterations."""
        if self.session.state == "paused":
            self.session.resume()
            return
        self.form.clear_errors()
        try:
            iterations = int(self.form.fields["iterations"].text())
            self._apply_autosave()
            self.session.continue_training(iterations)
        except ValueError:
            # Also an empty (automatic) field: continuing needs the step to train up to.
            self.form.mark_error("iterations", "expected the step to train up to (an integer)")
        except InputError as exc:
            self.form.mark_error(exc.field, exc.problem)
            self._error("Cannot continue training", exc)
        except RuntimeError as exc:
            self._error("Cannot continue training", exc)

    def _apply_autosave(self) -> None:
        on = self.autosave_check.isChecked() and bool(self.autosave_path.text().strip())
        self.session.set_autosave(
            self.autosave_path.text().strip() if on else None, self.autosave_every.value()
        )

    def _choose_autosave_path(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Autosave checkpoint to", self.autosave_path.text(), CHECKPOINT_FILTER
        )
        if path:
            self.autosave_path.setText(path)
            self._apply_autosave()

    def _on_state(self, state: str) -> None:
        self._update_buttons()
        self._sync_progress()
        self._set_live_rendering(state in ("running", "paused"))
        if state in ("stopped", "finished", "failed"):
            self.eta_label.setText(
                f"{state.capitalize()} at step {self.session.trainer.step}."
                if self.session.trainer is not None
                else state.capitalize()
            )
            self._redraw_curves()
            self._show_frame(self.frame_bar.frame)
        elif state == "paused":
            # The run holds the network until its current step ends: the view keeps the live
            # preview rather than wait for it; moving the slider shows reconstructions.
            trainer = self.session.trainer
            self.eta_label.setText(f"Paused at step {trainer.step}." if trainer else "Paused.")
            self._redraw_curves()  # all the steps so far, while the user looks

    def _update_buttons(self) -> None:
        state = self.session.state
        busy = state in ("running", "paused")
        has_data = self.session.sequence is not None
        self.start_button.setEnabled(has_data and not busy)
        self.pause_button.setEnabled(state == "running")
        self.resume_button.setEnabled(
            state == "paused"
            or (self.session.trainer is not None and state in ("stopped", "finished", "loaded"))
        )
        self.stop_button.setEnabled(busy)
        self.data_panel.setEnabled(not busy)
        self.load_action.setEnabled(not busy)
        self.save_action.setEnabled(self.session.trainer is not None)
        running = state == "running"
        self.frame_bar.slider.setEnabled(not running)
        self.frame_bar.play_button.setEnabled(not running)

    # ------------------------------------------------------------------ live updates
    def _on_update(self, update: Update) -> None:
        event = update.event
        if self.session.state in ("running", "paused"):
            self._set_progress(round(1000 * event.step / max(event.total_steps, 1)), "%p %")
        self.eta_label.setText(self._run_text(event))
        self._redraw_curves(throttle=True)
        # Previews come every few steps; redraw the 3D view only for a new one, and at most
        # every PREVIEW_INTERVAL_S (each is a software render on the GUI thread).
        now = time.monotonic()
        if (
            update.preview is not None
            and update.preview is not self._preview_source
            and self.session.state == "running"
            and now - self._preview_drawn_at >= PREVIEW_INTERVAL_S
        ):
            self._preview_drawn_at = now
            self._preview_source = update.preview
            self._preview = np.asarray(update.preview, dtype=np.float64)
            self._draw_3d(
                self._preview,
                "live",
                f"Live prediction · frame {self.session.config.preview_frame} · step {event.step}",
            )
        if self.window_ is not None and hasattr(self.window_, "mark_updated"):
            self.window_.mark_updated()

    def _set_live_rendering(self, live: bool) -> None:
        """Live previews render without anti-aliasing: with software GL (no GPU) the 4x
        multisampled render cost about three plain ones of the CPU the training shares (FXAA
        as much); the smooth picture comes back when the run ends."""
        window = self.view3d.plotter.render_window
        if window is None:  # the window closed while a run was ending
            return
        samples = 0 if live else self._smooth_samples
        if window.GetMultiSamples() != samples:
            window.SetMultiSamples(samples)

    def _run_text(self, event) -> str:
        """The line under the progress bar during a run: steps, time, and what is left (no
        time left while paused: a paused run is not finishing)."""
        text = f"Step {event.step:,} / {event.total_steps:,} · {event.elapsed_s:.1f} s elapsed · "
        if self.session.state == "paused":
            return text + "paused"
        return text + f"{_duration(event.eta_s)} left"

    def _set_progress(self, value: int, fmt: str) -> None:
        """Set the progress bar without QProgressBar's immediate repaint (a synchronous paint
        and X round trip on the GUI thread at every update): it paints with the next frame."""
        bar = self.progress_bar
        if bar.value() == value and bar.format() == fmt:
            return
        bar.setUpdatesEnabled(False)
        bar.setFormat(fmt)
        bar.setValue(value)
        bar.setUpdatesEnabled(True)  # schedules one ordinary repaint

    def _sync_progress(self) -> None:
        """The progress bar as the state says: empty before anything ran; the run's fraction
        while it runs and after; a loaded checkpoint's steps out of its configured ones."""
        state, trainer = self.session.state, self.session.trainer
        if trainer is None:
            if state not in ("running", "paused"):  # (a run builds its trainer first)
                self._set_progress(0, "%p %")
            return
        if state in ("running", "paused"):
            return  # the run's updates set it
        step, total = trainer.step, max(trainer.config.iterations, trainer.step, 1)
        if state == "loaded":
            self._set_progress(
                round(1000 * step / total), f"checkpoint: step {step:,} of {total:,}"
            )
        else:
            self._set_progress(round(1000 * step / total), f"step {step:,} of {total:,}")

    def _reset_history(self) -> None:
        self.loss_curves.clear_history()
        self._history_shown = 0
        self._redraw_curves()

    def _redraw_curves(self, throttle: bool = False) -> None:
        trainer = self.session.trainer
        if trainer is None:
            return
        now = time.monotonic()
        # Redrawing the log axes is the most expensive part of an update in a software-rendered
        # window: while training, the curves refresh a few times a second, not on every update.
        if throttle and now - self._curves_drawn_at < CURVES_INTERVAL_S:
            return
        self._curves_drawn_at = now
        entries = trainer.history[self._history_shown :]
        if entries:
            start = self._history_shown
            self.loss_curves.append(list(range(start + 1, start + 1 + len(entries))), entries)
            self._history_shown += len(entries)
            self.loss_curves.redraw()
        self._sync_progress()

    def _show_metrics(self, metrics: dict) -> None:
        if not metrics:
            self.metrics_label.setText("Metrics: —")
            return
        parts = []
        if "e3d" in metrics:
            parts.append(f"e3D {metrics['e3d']:.4f}")
        if "mpjpe" in metrics:
            parts.append(f"MPJPE {metrics['mpjpe']:.4g}")
        parts += [f"{k} {v:.4g}" for k, v in metrics.items() if k not in ("e3d", "mpjpe")]
        text = "Metrics: " + " · ".join(parts)
        where = self._metrics_data_text()
        self.metrics_label.setText(text + (f" {where}" if where else ""))

    def _metrics_data_text(self) -> str:
        """Which data the metrics are on: the training data (the Compare tab scores on
        held-out data, so the two numbers differ), and how many of its frames."""
        from engine.prn.training import EVAL_MAX_FRAMES

        session = self.session
        frames = None
        if session.state == "loaded" and session.checkpoint is not None:
            frames = session.checkpoint.data_description.get("num_frames")
        elif session.trainer is not None:
            frames = session.trainer.sequence.num_frames
        spec = session.config.data
        name = Path(spec).name if Path(spec).suffix else spec
        if not frames:
            return f"on {name} (training data)"
        frames = int(frames)
        used = min(frames, EVAL_MAX_FRAMES)
        count = f"{frames:,} frames" if used == frames else f"{used:,} of its {frames:,} frames"
        return f"on {name} (training data, {count})"

    def _on_checkpoint_loaded(self, checkpoint) -> None:
        self._fill_form(checkpoint.requested_config())
        self.checkpoint_info.setPlainText(checkpoint_summary(checkpoint))
        self.eta_label.setText(f"Loaded checkpoint at step {checkpoint.step}.")
        self._sync_progress()
        self._view_mode = ""
        self._redraw_curves()
        self._show_frame(self.frame_bar.frame)
        self._status(f"Loaded checkpoint {checkpoint.path} (step {checkpoint.step})")

    # ------------------------------------------------------------------ frames
    def _show_frame(self, frame: int) -> None:
        seq = self.session.sequence
        if seq is None:
            return
        frame = int(min(max(frame, 0), seq.num_frames - 1))
        vis = None if seq.visibility is None else seq.visibility[frame]
        self.points2d.set_frame(seq.points2d[frame], self._edges, vis)
        state = self.session.state
        if state == "running":
            if self._preview is not None:
                self._draw_3d(self._preview, "live", "Live prediction")
            return
        if self.session.trainer is not None:
            try:
                points = self.session.trainer.predict(
                    seq.points2d[frame : frame + 1], None if vis is None else vis[None]
                )[0]
            except InputError as exc:
                # The network was trained on other data (another point count): say why, and
                # show the data itself rather than the network's last frame of the old data.
                self._status(dialogs.error_text(exc))
            else:
                self._draw_3d(points, "prediction", f"PRN reconstruction · frame {frame}")
                return
        if seq.points3d is not None:
            self._draw_3d(seq.points3d[frame], "truth", f"Ground truth · frame {frame}")
        else:
            self.view3d.clear()

    def _draw_3d(self, points: np.ndarray, mode: str, title: str) -> None:
        """Draw one frame centred at the origin, mirrored in depth when the toggle is on."""
        points = np.asarray(points, dtype=np.float64)
        points = points - points.mean(axis=0)
        if self.frame_bar.flip.isChecked():
            points = points * np.array([1.0, 1.0, -1.0])
        reset = mode != self._view_mode
        self._view_mode = mode
        self.view3d.set_title(title)
        self.view3d.set_skeleton(points, self._edges, reset_camera=reset)

    # ------------------------------------------------------------------ files
    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save PRN checkpoint", "prn.pt", CHECKPOINT_FILTER
        )
        if path:
            self.save_checkpoint(path)

    def save_checkpoint(self, path: str) -> bool:
        """Save the current trainer (also during a run); errors become a dialog."""
        try:
            self.session.save_checkpoint(path)
        except (InputError, OSError, RuntimeError) as exc:
            self._error("Cannot save checkpoint", exc)
            return False
        if self.window_ is not None and hasattr(self.window_, "add_recent_file"):
            self.window_.add_recent_file(path)
        return True

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load PRN checkpoint", "", CHECKPOINT_FILTER)
        if path:
            self.open_checkpoint(path)

    # ------------------------------------------------------------------ helpers
    def _error(self, title: str, exc) -> None:
        if self.window_ is not None and hasattr(self.window_, "show_error"):
            self.window_.show_error(title, exc)
        else:
            dialogs.show_error(self, title, exc)

    def _status(self, text: str) -> None:
        if self.window_ is not None and hasattr(self.window_, "statusBar"):
            self.window_.statusBar().showMessage(text, 5000)


def _duration(seconds: float) -> str:
    """``"1 min 05 s"`` style for the time-remaining label."""
    if not np.isfinite(seconds):
        return "?"
    seconds = max(round(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
