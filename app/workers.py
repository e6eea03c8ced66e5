"""The one way the app runs long work (factorisations, training, PCA) off the GUI thread.

Usage::

    def job(progress, cancelled):          # runs on a worker thread
        for i in range(n):
            if cancelled():
                raise Cancelled()          # any exception after cancel() counts as cancelled
            progress(i / n, "step %d" % i) # fraction in [0, 1], message for the status bar
        return result

    worker = Worker(job)
    worker.finished.connect(on_result)     # result object, delivered on the GUI thread
    worker.failed.connect(on_error_text)   # one-line message (InputError text as it is)
    worker.error.connect(on_exception)     # the exception object itself, for show_error
    worker.start()
    ...
    worker.cancel()                        # cooperative: job sees cancelled() -> True

Signals are emitted from the worker thread and delivered to slots in the GUI thread through
Qt's queued connections, so slots may touch widgets. Exactly one of ``finished``, ``failed``
or ``cancelled`` is emitted per run, followed by ``done``. A job that returns normally after
``cancel()`` was called is reported as cancelled: its result may be stale (e.g. the user
opened another mesh meanwhile), so it is discarded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PyQt6.QtCore import QObject, QThread, pyqtSignal, pyqtSlot

from engine.core.progress import CancelFn, ProgressFn

Job = Callable[[ProgressFn, CancelFn], Any]

# Workers whose thread is still running; holding them here keeps Python from collecting the
# QObject while its thread runs even if the caller dropped its reference.
_running: set[Worker] = set()


def format_exception(exc: BaseException) -> str:
    """One line for a user: an InputError's own message, else ``Type: text``."""
    from engine.core.errors import InputError

    if isinstance(exc, InputError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Worker(QObject):
    """Run ``job(progress, cancelled)`` once on its own QThread.

    Signals:
        progress(float, str): fraction done in [0, 1] and a short message.
        finished(object): the job's return value.
        failed(str): one-line message of the exception the job raised.
        error(object): the exception object (emitted just before ``failed``).
        cancelled(): the run was cancelled via :meth:`cancel`.
        done(): emitted last, whatever the outcome.
    """

    progress = pyqtSignal(float, str)
    finished = pyqtSignal(object)
    failed = pyqtSignal(str)
    error = pyqtSignal(object)
    cancelled = pyqtSignal()
    done = pyqtSignal()

    def __init__(self, job: Job, name: str = "work") -> None:
        super().__init__()
        self._job = job
        self.name = name
        self._cancel = threading.Event()
        self._thread: QThread | None = None
        self._started = False

    def start(self) -> None:
        """Start the job on a fresh QThread. A Worker runs at most once."""
        if self._started:
            raise RuntimeError("a Worker runs once; create a new one")
        self._started = True
        thread = QThread()
        thread.setObjectName(f"worker:{self.name}")
        self.moveToThread(thread)
        thread.started.connect(self._run)
        self._thread = thread
        _running.add(self)
        # A plain callable (not a slot of this object, whose thread is gone by then) so that it
        # runs in the GUI thread.
        thread.finished.connect(lambda worker=self: _running.discard(worker))
        thread.start()

    def cancel(self) -> None:
        """Ask the job to stop; it checks ``cancelled()`` at its own pace."""
        self._cancel.set()

    def is_cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._cancel.is_set()

    def is_running(self) -> bool:
        """True from :meth:`start` until the thread has finished."""
        return self._thread is not None and self._thread.isRunning()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the thread ends (for shutdown and tests). Returns False on timeout."""
        if self._thread is None:
            return True
        return self._thread.wait(timeout_ms)

    @pyqtSlot()
    def _run(self) -> None:
        try:
            result = self._job(self._emit_progress, self._cancel.is_set)
        except Exception as exc:  # every failure must reach the GUI, never the thread
            if self._cancel.is_set():
                self.cancelled.emit()
            else:
                self.error.emit(exc)
                self.failed.emit(format_exception(exc))
        else:
            if self._cancel.is_set():
                self.cancelled.emit()
            else:
                self.finished.emit(result)
        self.done.emit()
        if self._thread is not None:
            self._thread.quit()

    def _emit_progress(self, fraction: float, message: str = "") -> None:
        self.progress.emit(float(min(max(fraction, 0.0), 1.0)), str(message))


def running_workers() -> list[Worker]:
    """Workers whose thread has not finished yet (the window cancels them on close)."""
    return [w for w in _running if w.is_running()]
