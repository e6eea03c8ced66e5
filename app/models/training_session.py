"""Training session state: the data, the PRN trainer, its run thread, checkpoints and autosave.

The session owns one :class:`engine.prn.training.Trainer` at a time. ``Trainer.run`` blocks, so
it runs on a :class:`app.workers.Worker` thread; the trainer calls back from that thread after
every step, and the session forwards at most ~2 events a second to the GUI thread through a
queued signal (the curves read the full per-step history when they redraw, so no point is lost).
Saving is safe at any time: ``Trainer.save_checkpoint`` takes the trainer's lock, so a checkpoint
is a consistent snapshot between two steps, and the engine writes it atomically. Autosave is the
trainer's own (every N steps and at the end of a run, never after a failure).

The session is a QObject that never imports widgets; the Training workspace observes it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal, pyqtSlot

from app.workers import Worker, format_exception
from engine.core.errors import InputError

#: Seconds between two updates sent to the GUI thread during a run (each is a queued event
#: whose handling holds the GIL the training thread needs: see CURVES_INTERVAL_S in
#: app/workspaces/training.py).
UPDATE_INTERVAL_S = 0.5


def training_threads() -> int:
    """Torch intra-op threads for work started from the GUI: half the cores, at least one.

    The other half stays free for the GUI thread (rendering, event loop). It also avoids
    OpenMP oversubscription: on a busy 2-core machine a tiny PRN step took ~20x longer with two
    torch threads than with one (spinning threads waiting on each other).
    """
    return max(1, (os.cpu_count() or 2) // 2)


_warm_up_worker: Worker | None = None


def warm_up() -> Worker | None:
    """Import what building the first Trainer imports, on a worker thread, once per process.

    torch's optimisers pull in ``torch._dynamo`` lazily: ~1.5 s of imports whose C parts hold
    the GIL for up to ~0.15 s at a time. Doing it when the Training tab is first shown, while
    the user sets up a run, keeps those pauses out of the run itself.

    Returns:
        The worker, or None when the warm-up already ran (or runs) in this process.
    """
    global _warm_up_worker
    if _warm_up_worker is not None:
        return None

    def job(progress, cancelled):
        import torch

        torch.optim.Adam([torch.zeros(1, requires_grad=True)])

    _warm_up_worker = Worker(job, name="torch-warm-up")
    _warm_up_worker.start()
    return _warm_up_worker


def warming_up() -> bool:
    """True while :func:`warm_up`'s worker runs."""
    return _warm_up_worker is not None and _warm_up_worker.is_running()


def limit_torch_threads() -> None:
    """Apply :func:`training_threads` to torch (process-wide; call before starting work)."""
    import torch

    torch.set_num_threads(training_threads())


@dataclass
class Update:
    """One throttled training update delivered on the GUI thread.

    Attributes:
        event: the latest ``TrainEvent`` when this update was sent.
        metrics: the latest evaluation metrics seen so far in this run (or None).
        preview: the latest ``(P, 3)`` normalised preview prediction seen so far (or None).
    """

    event: object
    metrics: dict | None
    preview: np.ndarray | None


@dataclass
class PreparedCheckpoint:
    """A checkpoint read and rebuilt off the GUI thread, ready for
    :meth:`TrainingSession.apply_checkpoint`."""

    checkpoint: object
    trainer: object
    sequence: object
    spec: str


def prepare_checkpoint(path: str | Path, sequence=None, spec: str = "") -> PreparedCheckpoint:
    """Read a checkpoint, find its data and rebuild its trainer (thread-safe, changes nothing).

    Args:
        path: checkpoint file.
        sequence: the session's current ``KeypointSequence`` (kept when the checkpoint was
            trained on the same ``spec``, or when its own data cannot be loaded here but the
            point counts agree).
        spec: the data spec of ``sequence``.

    Raises:
        CheckpointError: foreign, damaged or incompatible file.
        InputError: the checkpoint's data cannot be loaded and ``sequence`` does not fit.
    """
    from engine.core.errors import CheckpointError
    from engine.io.keypoints import load_dataset
    from engine.prn.checkpoint import load_checkpoint
    from engine.prn.training import Trainer

    checkpoint = load_checkpoint(path)
    if spec != checkpoint.config.data or sequence is None:
        try:
            sequence, spec = load_dataset(checkpoint.config.data), checkpoint.config.data
        except InputError:
            if sequence is None or sequence.num_points != checkpoint.num_points:
                raise
    if sequence.num_points != checkpoint.num_points:
        raise CheckpointError(
            f"made for {checkpoint.num_points} points, the current data has {sequence.num_points}",
            path=path,
            field="num_points",
        )
    trainer = Trainer.from_checkpoint(path, sequence=sequence)
    return PreparedCheckpoint(checkpoint, trainer, sequence, spec)


class TrainingSession(QObject):
    """Data + trainer + run thread of the Training workspace.

    Signals:
        sequence_changed(object): a new ``KeypointSequence`` to train on / show.
        state_changed(str): 'empty' (no data), 'ready' (data, no trainer), 'running',
            'paused', 'stopped', 'finished', 'failed' (as ``Trainer.state``) or 'loaded' (a
            checkpoint was opened: its trainer can continue or reconstruct).
        updated(object): an :class:`Update` (at most ~2 per second while training).
        history_reset(): the loss history was replaced (new run or checkpoint loaded).
        metrics_changed(object): the latest metrics dict.
        checkpoint_saved(str): path of a checkpoint just written (manual or autosave).
        checkpoint_loaded(object): the ``engine.prn.checkpoint.Checkpoint`` just opened.
        failed(str): a one-line message (training diverged, data failed...).
        trainer_ready(): :attr:`trainer` was set by a starting run (built on its thread).
    """

    sequence_changed = pyqtSignal(object)
    state_changed = pyqtSignal(str)
    updated = pyqtSignal(object)
    history_reset = pyqtSignal()
    metrics_changed = pyqtSignal(object)
    checkpoint_saved = pyqtSignal(str)
    checkpoint_loaded = pyqtSignal(object)
    failed = pyqtSignal(str)
    trainer_ready = pyqtSignal()

    # Emitted on the training thread; connected to slots of this GUI-thread object, so Qt
    # queues them onto the GUI thread.
    _event_from_thread = pyqtSignal(object)
    _trainer_from_thread = pyqtSignal()
    _saved_from_thread = pyqtSignal(str)

    def __init__(self, parent: QObject | None = None, update_interval_s: float = UPDATE_INTERVAL_S):
        super().__init__(parent)
        from engine.prn.config import TrainConfig

        self.config = TrainConfig()
        self.sequence = None
        self.data_spec = ""
        self.trainer = None
        self.checkpoint = None
        self.metrics: dict = {}
        self.autosave_path: Path | None = None
        self.autosave_every = 0
        self.update_interval_s = update_interval_s
        self._state = "empty"
        self._worker: Worker | None = None
        self._last_emit = 0.0
        self._latest_metrics: dict | None = None
        self._latest_preview: np.ndarray | None = None
        self._hooked = None  # the trainer our callback is registered with
        # Guards handing the trainer built on the run thread over against pause/stop requests
        # made meanwhile on the GUI thread.
        self._control = threading.Lock()
        self._want_pause = False
        self._want_stop = False
        self._event_from_thread.connect(self._deliver)
        self._trainer_from_thread.connect(self.trainer_ready)
        self._saved_from_thread.connect(self.checkpoint_saved)

    # ---------------------------------------------------------------- state
    @property
    def state(self) -> str:
        """The session state (see the class docstring)."""
        return self._state

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)

    def is_busy(self) -> bool:
        """True while a run thread exists (running or paused)."""
        return self._worker is not None and self._worker.is_running()

    # ---------------------------------------------------------------- data
    def load_data(self, spec: str) -> object:
        """Load a data set (``"synthetic:human..."`` or a .mat/.npz path) and make it current.

        Raises:
            InputError: the file or spec is unusable (the current data stays).
            RuntimeError: a run is in progress.
        """
        from engine.io.keypoints import load_dataset

        if self.is_busy():
            raise RuntimeError("stop the training run before changing the data")
        sequence = load_dataset(spec)
        self.set_sequence(sequence, spec)
        return sequence

    def set_sequence(self, sequence, spec: str) -> None:
        """Make an already loaded ``KeypointSequence`` current (its source is ``spec``)."""
        self.sequence = sequence
        self.data_spec = spec
        self.sequence_changed.emit(sequence)
        if self.trainer is None:
            self._set_state("ready")

    # ---------------------------------------------------------------- run control
    def start(self, config) -> None:
        """Start a fresh run with ``config`` on the current data.

        The trainer is built on the run thread (building the first one imports parts of torch
        for a second or more), so :attr:`trainer` is None until that thread sets it.

        Raises:
            InputError: the config is invalid (field named) or the data cannot be used.
            RuntimeError: a run is already in progress, or there is no data.
        """
        if self.is_busy():
            raise RuntimeError("a training run is already in progress")
        if self.sequence is None:
            raise RuntimeError("load a data set first")
        config.validate()
        config.resolved(self.sequence.num_frames).validate()
        if config.preview_frame >= self.sequence.num_frames:
            raise InputError(
                f"expected a frame index below {self.sequence.num_frames}, got {config.preview_frame}",
                field="preview_frame",
            )
        self.config = config
        self.trainer = None
        self.checkpoint = None
        self.metrics = {}
        self.history_reset.emit()
        self.metrics_changed.emit(self.metrics)
        self._launch(config=config)

    def set_autosave(self, path: str | Path | None, every: int) -> None:
        """Autosave to ``path`` every ``every`` steps and at the end of each run (0/None: off).

        Takes effect at once, also for a run in progress.
        """
        self.autosave_path = None if path is None or every <= 0 else Path(path)
        self.autosave_every = int(every) if self.autosave_path is not None else 0
        if self.trainer is not None:
            self.trainer.autosave_path = self.autosave_path
            self.trainer.autosave_every = self.autosave_every

    def continue_training(self, iterations: int) -> None:
        """Train the current (e.g. loaded or finished) trainer until step ``iterations``.

        Raises:
            RuntimeError: no trainer or a run in progress.
            InputError: ``iterations`` is not above the current step.
        """
        if self.trainer is None or self.is_busy():
            raise RuntimeError("nothing to continue")
        if iterations <= self.trainer.step:
            raise InputError(
                f"expected more than the {self.trainer.step} steps already done, got {iterations}",
                field="iterations",
            )
        self._launch(int(iterations))

    def _launch(self, until_step: int | None = None, config=None) -> None:
        """Run on a Worker thread: build a Trainer from ``config`` there, or continue
        :attr:`trainer` when ``config`` is None."""
        sequence = self.sequence
        self._last_emit = 0.0
        self._latest_metrics = None
        self._latest_preview = None
        self._want_pause = False
        self._want_stop = False

        def job(progress, cancelled):
            from engine.prn.training import Trainer

            trainer = self.trainer if config is None else Trainer(config, sequence)
            trainer.autosave_path = self.autosave_path
            trainer.autosave_every = self.autosave_every
            if self._hooked is not trainer:
                trainer.add_callback(self._on_train_event)
                self._hooked = trainer
            with self._control:
                self.trainer = trainer
                self._trainer_from_thread.emit()
                if self._want_stop:
                    return dict(trainer.metrics)
                if self._want_pause:
                    trainer.pause()
            return trainer.run(until_step)

        limit_torch_threads()
        worker = Worker(job, name="prn-training")
        worker.finished.connect(self._on_run_finished)
        worker.cancelled.connect(self._on_run_finished)
        worker.error.connect(self._on_run_error)
        self._worker = worker
        self._set_state("running")
        worker.start()

    def pause(self) -> None:
        """Pause the run after the current step (no-op unless running)."""
        if self._state != "running":
            return
        with self._control:
            self._want_pause = True
            if self.trainer is not None:
                self.trainer.pause()
        self._set_state("paused")

    def resume(self) -> None:
        """Resume a paused run."""
        if self._state != "paused":
            return
        with self._control:
            self._want_pause = False
            if self.trainer is not None:
                self.trainer.resume()
        self._set_state("running")

    def stop(self) -> None:
        """Ask the run to stop after the current step (use :meth:`wait` to join it)."""
        if not self.is_busy():
            return
        with self._control:
            self._want_stop = True
            if self.trainer is not None:
                self.trainer.stop()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the run thread has ended; False on timeout."""
        return self._worker is None or self._worker.wait(timeout_ms)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Stop any run and join its thread (window close). True when nothing runs any more."""
        self.stop()
        return self.wait(timeout_ms)

    # ---------------------------------------------------------------- training thread side
    def _on_train_event(self, event) -> None:
        """Trainer callback, on the TRAINING thread: keep the latest results, throttle emits."""
        if self._want_stop:
            # A stop asked for while the run was starting (Trainer.run clears earlier ones).
            self.trainer.stop()
        if event.metrics:
            self._latest_metrics = dict(event.metrics)
        if event.preview is not None:
            self._latest_preview = event.preview
        trainer = self.trainer
        if trainer.autosave_path is not None and trainer.autosave_every > 0:
            if event.step % trainer.autosave_every == 0:
                self._saved_from_thread.emit(str(trainer.autosave_path))
        now = time.monotonic()
        last = event.step >= event.total_steps
        if last or now - self._last_emit >= self.update_interval_s:
            self._last_emit = now
            self._event_from_thread.emit(Update(event, self._latest_metrics, self._latest_preview))

    # ---------------------------------------------------------------- GUI thread side
    @pyqtSlot(object)
    def _deliver(self, update: Update) -> None:
        if update.metrics and update.metrics != self.metrics:
            self.metrics = dict(update.metrics)
            self.metrics_changed.emit(self.metrics)
        self.updated.emit(update)

    def _on_run_finished(self, _result=None) -> None:
        trainer = self.trainer
        self._worker = None
        state = getattr(trainer, "state", "finished")
        final = getattr(trainer, "metrics", None)
        if isinstance(_result, dict) and _result:
            final = _result
        if final:
            self.metrics = {k: float(v) for k, v in final.items() if isinstance(v, (int, float))}
            self.metrics_changed.emit(self.metrics)
        if state != "failed" and trainer.autosave_path is not None and trainer.autosave_every > 0:
            self.checkpoint_saved.emit(str(trainer.autosave_path))  # the end-of-run autosave
        if state == "failed":
            self._set_state("failed")
            self.failed.emit(getattr(trainer, "error", None) or "training failed")
        else:
            self._set_state("finished" if state == "finished" else "stopped")

    def _on_run_error(self, exc: BaseException) -> None:
        self._worker = None
        self._set_state("failed")
        self.failed.emit(format_exception(exc))

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self, path: str | Path) -> Path:
        """Write the trainer's state to ``path`` (atomic; safe while training runs: the trainer
        saves between two steps).

        Raises:
            RuntimeError: nothing to save.
            CheckpointError / OSError: the engine refused or the file could not be written.
        """
        path = Path(path)
        if self.trainer is None:
            raise RuntimeError("nothing to save: train or load a checkpoint first")
        self.trainer.save_checkpoint(path)
        self.checkpoint_saved.emit(str(path))
        return path

    def load_checkpoint(self, path: str | Path):
        """Open a checkpoint: its trainer (to continue or predict), config, metrics and history.

        The training data is reloaded from the checkpoint's config when the current data is a
        different set; when that source is not available here the current data is kept if it
        has the same number of points.

        Raises:
            CheckpointError: foreign, damaged or incompatible file (nothing changes).
            InputError: the checkpoint's data cannot be loaded and no compatible data is current.
            RuntimeError: a run is in progress.
        """
        if self.is_busy():
            raise RuntimeError("stop the training run before loading a checkpoint")
        return self.apply_checkpoint(prepare_checkpoint(path, self.sequence, self.data_spec))

    def load_checkpoint_async(self, path: str | Path) -> Worker:
        """:meth:`load_checkpoint` with the file, data and trainer prepared on a worker thread.

        The session changes when the worker's ``finished`` arrives, unless the user changed the
        data or started training meanwhile; errors come as its ``error``/``failed`` signals
        (nothing changes then).
        """
        sequence, spec = self.sequence, self.data_spec
        worker = Worker(
            lambda progress, cancelled: prepare_checkpoint(path, sequence, spec),
            name="open-checkpoint",
        )
        worker.finished.connect(lambda prepared: self._apply_if_unchanged(prepared, sequence))
        worker.start()
        return worker

    def _apply_if_unchanged(self, prepared: PreparedCheckpoint, sequence) -> None:
        # The user may have loaded data or started a run meanwhile: theirs wins.
        if not self.is_busy() and self.trainer is None and self.sequence is sequence:
            self.apply_checkpoint(prepared)

    def apply_checkpoint(self, prepared: PreparedCheckpoint):
        """Make a :func:`prepare_checkpoint` result current (GUI thread); returns the Checkpoint."""
        if prepared.sequence is not self.sequence:
            self.set_sequence(prepared.sequence, prepared.spec)
        checkpoint = prepared.checkpoint
        self.trainer = prepared.trainer
        self.checkpoint = checkpoint
        self.config = checkpoint.config
        self.metrics = dict(checkpoint.metrics)
        self.history_reset.emit()
        self.metrics_changed.emit(self.metrics)
        self.checkpoint_loaded.emit(checkpoint)
        self._set_state("loaded")
        return checkpoint
