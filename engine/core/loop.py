"""The one training loop of the project, shared by PRN and the category trainer.

:class:`TrainingLoop` owns the control of a run: its state machine (``idle``, ``running``,
``paused``, ``stopped``, ``finished``, ``failed``), pause / resume / stop from any thread, step
callbacks, periodic evaluation, autosave and the time estimate. A subclass supplies one
optimiser step (:meth:`_train_step`, which returns None and sets :attr:`error` when the loss or
a gradient is not finite, leaving the weights of the last good step), the evaluation, the event
it reports and its checkpoint. A failed run is never autosaved, so the last good checkpoint
survives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class TrainingLoop:
    """Base of the trainers (see the module docstring).

    Args:
        autosave_path: when set with ``autosave_every > 0``, a checkpoint is written there every
            ``autosave_every`` steps and at the end of a run that did not fail.
        autosave_every: steps between autosaves (0 = off).

    Attributes:
        state: ``'idle' | 'running' | 'paused' | 'stopped' | 'finished' | 'failed'``.
        step: optimiser steps done.
        history: one dict of losses per step done.
        metrics: the latest evaluation metrics.
        error: the reason of a ``'failed'`` state, else None.
    """

    def __init__(self, *, autosave_path: str | Path | None = None, autosave_every: int = 0):
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.metrics: dict[str, float] = {}
        self.state = "idle"
        self.error: str | None = None
        self.autosave_path = None if autosave_path is None else Path(autosave_path)
        self.autosave_every = int(autosave_every)
        self._callbacks: list[Callable[[Any], None]] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    # ------------------------------------------------------------ what a subclass provides
    @property
    def total_iterations(self) -> int:
        """Steps a run trains to by default."""
        raise NotImplementedError

    @property
    def eval_every(self) -> int:
        """Steps between evaluations."""
        raise NotImplementedError

    def _train_step(self) -> dict[str, float] | None:
        """One optimiser step: its losses, or None with :attr:`error` set when it failed."""
        raise NotImplementedError

    def _evaluate_metrics(self) -> dict[str, float]:
        """Metrics of the current model, as stored in :attr:`metrics`."""
        raise NotImplementedError

    def _learning_rate(self) -> float:
        raise NotImplementedError

    def _event(
        self,
        *,
        target: int,
        losses: dict,
        lr: float,
        elapsed_s: float,
        eta_s: float,
        metrics: dict | None,
    ) -> Any:
        """The object handed to the callbacks after a step."""
        raise NotImplementedError

    def save_checkpoint(self, path: str | Path) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ control (any thread)
    def add_callback(self, fn: Callable[[Any], None]) -> None:
        """Call ``fn(event)`` after every step (from the training thread)."""
        self._callbacks.append(fn)

    def pause(self) -> None:
        """Hold the loop before its next step (thread-safe)."""
        self._running.clear()

    def resume(self) -> None:
        """Continue a paused loop (thread-safe)."""
        self._running.set()

    def stop(self) -> None:
        """End the loop after the current step (thread-safe); :meth:`run` then returns."""
        self._stop.set()
        self._running.set()

    # ------------------------------------------------------------ the loop
    def _autosave(self) -> None:
        if self.autosave_path is not None and self.autosave_every > 0:
            self.save_checkpoint(self.autosave_path)

    def run(self, until_step: int | None = None) -> dict[str, float]:
        """Train until ``until_step`` (default :attr:`total_iterations`) or :meth:`stop`.

        Blocks. On a failed step the run ends with ``state == 'failed'`` and a message in
        :attr:`error`; the weights stay those of the last good step.

        Returns:
            The final evaluation metrics.
        """
        target = self.total_iterations if until_step is None else int(until_step)
        self._stop.clear()
        self.error = None
        self.state = "running"
        start_step = self.step
        elapsed = 0.0
        tick = time.perf_counter()
        try:
            while self.step < target:
                if self._stop.is_set():
                    self.state = "stopped"
                    break
                if not self._running.is_set():
                    elapsed += time.perf_counter() - tick
                    self.state = "paused"
                    self._running.wait()
                    tick = time.perf_counter()
                    if self._stop.is_set():
                        self.state = "stopped"
                        break
                    self.state = "running"
                with self._lock:
                    lr = self._learning_rate()
                    losses = self._train_step()
                    if losses is None:
                        self.state = "failed"
                        break
                    self.history.append(losses)
                    if until_step is None:
                        # A step may lengthen the run (PRN's restart after a collapse).
                        target = self.total_iterations
                    metrics = None
                    if self.step % self.eval_every == 0 or self.step == target:
                        metrics = self.metrics = self._evaluate_metrics()
                    if self.autosave_every > 0 and self.step % self.autosave_every == 0:
                        self._autosave()
                    now = time.perf_counter()
                    run_time = elapsed + now - tick
                    done = self.step - start_step
                    event = self._event(
                        target=target,
                        losses=losses,
                        lr=lr,
                        elapsed_s=run_time,
                        eta_s=run_time / done * (target - self.step),
                        metrics=metrics,
                    )
                for fn in list(self._callbacks):
                    fn(event)
            else:
                self.state = "finished"
        except BaseException as exc:
            self.state = "failed"
            self.error = f"{type(exc).__name__}: {exc}"
            raise
        if self.state != "failed":
            with self._lock:
                if not self.history or (self.step % self.eval_every != 0 and self.step != target):
                    self.metrics = self._evaluate_metrics()
                self._autosave()
        return dict(self.metrics)
