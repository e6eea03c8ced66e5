"""State of the Category workspace: the image set, the template, the category trainer or a
loaded run, its training thread, checkpoints and the inspected instance.

Like the PRN training session: ``CategoryTrainer.run`` blocks, so it runs on a
:class:`app.workers.Worker` thread, and the session forwards at most ~10 events a second to the
GUI thread through a queued signal. Loading data (a synthetic set is rendered on first use) and
checkpoints runs on workers too. Inspecting an instance takes the trainer's lock for one forward
pass, so it never sees a half-done step. A QObject that never imports widgets.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from PyQt6.QtCore import QObject, pyqtSignal, pyqtSlot

from app.models.training_session import limit_torch_threads
from app.workers import Worker

#: Seconds between two updates sent to the GUI thread during a run (each holds the GIL the
#: training thread needs; see LIVE_REDRAW_INTERVAL_S in app/views/plots.py).
UPDATE_INTERVAL_S = 0.5


class CategorySession(QObject):
    """See the module docstring.

    State (``state``): ``"empty"`` (no data), ``"ready"`` (data, no run), ``"running"``,
    ``"paused"``, ``"stopped"``, ``"finished"``, ``"failed"``, ``"loaded"`` (a checkpoint's run,
    no trainer).

    Signals:
        data_changed(object): a new ImageSet is loaded.
        state_changed(str)
        updated(object): the latest ``CategoryEvent`` (throttled).
        run_changed(): a trainer was built or a checkpoint loaded (the model changed).
        failed(str, object): what failed and the exception.
        checkpoint_saved(str)
        busy(bool, str): a data or checkpoint load started / ended.
    """

    data_changed = pyqtSignal(object)
    state_changed = pyqtSignal(str)
    updated = pyqtSignal(object)
    run_changed = pyqtSignal()
    failed = pyqtSignal(str, object)
    checkpoint_saved = pyqtSignal(str)
    busy = pyqtSignal(bool, str)

    _event_from_thread = pyqtSignal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.images = None
        self.data_spec: str | None = None
        self.template_path: str | None = None
        self.trainer = None
        self.run = None
        self.checkpoint_path: str | None = None
        self._state = "empty"
        self._worker: Worker | None = None
        self._loader: Worker | None = None
        self._last_sent = 0.0
        self._pending = None
        self._lock = threading.Lock()
        self.autosave_path: str | None = None
        self.autosave_every = 0
        self.events: list = []
        self._event_from_thread.connect(self._deliver)

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> str:
        return self._state

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)

    @property
    def model_run(self):
        """The trainer when there is one, else the loaded run (both are CategoryRuns)."""
        return self.trainer if self.trainer is not None else self.run

    def is_training(self) -> bool:
        return self._worker is not None and self._worker.is_running()

    # ------------------------------------------------------------------ data
    def load_data_async(self, spec: str, size: int = 64, template: str | None = None) -> Worker:
        """Load an image set (folder or ``synthetic:quadruped`` spec) off the GUI thread; on
        failure the loaded set stays and ``failed`` names the file."""
        from engine.io.image_sets import load_image_set

        def job(progress, cancelled):
            return load_image_set(spec, size=size, progress=progress)

        worker = Worker(job, name="category-data")
        worker.finished.connect(lambda images: self._apply_data(images, spec, template))
        worker.error.connect(lambda exc: self.failed.emit(f"Cannot load {spec}", exc))
        worker.done.connect(lambda: self.busy.emit(False, ""))
        self._loader = worker
        self.busy.emit(True, f"Loading {spec}")
        worker.start()
        return worker

    def _apply_data(self, images, spec: str, template: str | None) -> None:
        self.images = images
        self.data_spec = spec
        self.template_path = template
        if self.trainer is None and self.run is None:
            self._set_state("ready")
        self.data_changed.emit(images)

    # ------------------------------------------------------------------ training
    def start(self, config) -> Worker:
        """Build a trainer for the loaded data and ``config`` and run it on a worker thread.

        Raises:
            InputError: bad settings or data that does not fit (nothing changes then).
        """
        from engine.category.training import CategoryTrainer

        if self.is_training():
            raise RuntimeError("a run is in progress")
        limit_torch_threads()
        trainer = CategoryTrainer(
            config,
            self.images,
            autosave_path=self.autosave_path,
            autosave_every=self.autosave_every,
        )
        self.trainer, self.run = trainer, None
        self.events = []
        trainer.add_callback(self._on_train_event)
        self.run_changed.emit()
        return self._launch()

    def _launch(self) -> Worker:
        trainer = self.trainer

        def job(progress, cancelled):
            return trainer.run()

        worker = Worker(job, name="category-training")
        worker.finished.connect(self._on_run_finished)
        worker.error.connect(self._on_run_error)
        self._worker = worker
        self._set_state("running")
        worker.start()
        return worker

    def pause(self) -> None:
        if self.trainer is not None and self.state == "running":
            self.trainer.pause()
            self._set_state("paused")

    def resume(self) -> None:
        if self.trainer is None:
            return
        if self.state == "paused":
            self.trainer.resume()
            self._set_state("running")
        elif (
            self.state in ("stopped", "finished")
            and self.trainer.step < self.trainer.total_iterations
        ):
            self._launch()

    def stop(self) -> None:
        if self.trainer is not None and self.state in ("running", "paused"):
            self.trainer.stop()

    def wait(self, timeout_ms: int = 60_000) -> bool:
        return self._worker is None or self._worker.wait(timeout_ms)

    def shutdown(self, timeout_ms: int = 60_000) -> bool:
        self.stop()
        return self.wait(timeout_ms)

    def _on_train_event(self, event) -> None:
        # Training thread: keep every event, send at most one every UPDATE_INTERVAL_S.
        with self._lock:
            self.events.append(event)
            now = time.monotonic()
            if event.marks or event.metrics or now - self._last_sent >= UPDATE_INTERVAL_S:
                self._last_sent = now
                self._event_from_thread.emit(event)

    @pyqtSlot(object)
    def _deliver(self, event) -> None:
        self.updated.emit(event)

    def _on_run_finished(self, _metrics=None) -> None:
        trainer = self.trainer
        if trainer.state == "failed":
            self._set_state("failed")
            self.failed.emit("Training stopped", RuntimeError(trainer.error or "failed"))
        else:
            self._set_state(trainer.state)
        if self.events:
            self.updated.emit(self.events[-1])

    def _on_run_error(self, exc: BaseException) -> None:
        self._set_state("failed")
        self.failed.emit("Training failed", exc)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | Path) -> None:
        """Write the trainer's run (safe while it trains: between two steps)."""
        if self.trainer is None:
            raise RuntimeError("no trained run to save")
        with self.trainer._lock:
            self.trainer.save_checkpoint(path)
        self.checkpoint_path = str(path)
        self.checkpoint_saved.emit(str(path))

    def load_checkpoint_async(self, path: str | Path) -> Worker:
        """Load a category checkpoint's run (model, template, databases) off the GUI thread."""
        from engine.category.checkpoint import load_category_run

        def job(progress, cancelled):
            return load_category_run(path, device="cpu")

        worker = Worker(job, name="category-checkpoint")
        worker.finished.connect(lambda run: self._apply_run(run, str(path)))
        worker.error.connect(lambda exc: self.failed.emit(f"Cannot open {path}", exc))
        worker.done.connect(lambda: self.busy.emit(False, ""))
        self._loader = worker
        self.busy.emit(True, f"Opening {Path(path).name}")
        worker.start()
        return worker

    def _apply_run(self, run, path: str) -> None:
        if self.is_training():
            self.failed.emit("Cannot open a checkpoint", RuntimeError("stop the run first"))
            return
        self.trainer, self.run = None, run
        self.checkpoint_path = path
        self.events = []
        self._set_state("loaded")
        self.run_changed.emit()

    def set_autosave(self, path: str | None, every: int) -> None:
        self.autosave_path, self.autosave_every = path, int(every)
        if self.trainer is not None:
            self.trainer.autosave_path = None if path is None else Path(path)
            self.trainer.autosave_every = int(every)

    # ------------------------------------------------------------------ inspection
    def inspect(self, index: int):
        """The :class:`engine.category.inspect.InstanceView` of instance ``index`` of the loaded
        set, or None without a model."""
        from engine.category.inspect import inspect_instance

        run = self.model_run
        if run is None or self.images is None:
            return None
        if self.trainer is not None:
            with self.trainer._lock:
                return inspect_instance(run, self.images, index)
        return inspect_instance(run, self.images, index)

    def evaluate(self):
        """``category evaluate``'s rows for the loaded set (blocking: call from a worker)."""
        from engine.category.evaluate import evaluate_model

        run = self.model_run
        if run is None or self.images is None:
            return None
        if self.trainer is not None:
            with self.trainer._lock:
                return evaluate_model(run, self.images)
        return evaluate_model(run, self.images)
