"""Comparison session state: one sequence with ground truth and the reconstructions compared on it.

A *method* is a named ``(F, P, 3)`` reconstruction of the sequence: a PRN checkpoint (run through
``engine.prn.reconstruct``) or a baseline (``engine.nrsfm.baselines.BASELINES``). Metrics and per-point
errors come from ``engine.nrsfm.metrics`` — the same functions ``python main.py evaluate`` prints — so
the table in the Compare workspace shows the CLI's numbers.

Computing reconstructions can take seconds (a classic NRSfM baseline on a long sequence), so it
is split in two: :func:`compute_methods` is a pure function a :class:`app.workers.Worker` runs off
the GUI thread, and :meth:`ComparisonModel.set_results` stores its result and emits signals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from engine.core.errors import DataError

GROUND_TRUTH = "ground truth"
MAX_SHOWN_METHODS = 3  # plus the ground-truth view: four linked views at most


@dataclass
class MethodResult:
    """One reconstruction of the sequence and its scores.

    Attributes:
        name: label in the table and above the view (``"PRN demo_prn.pt"``, ``"zero_depth"``).
        kind: ``"checkpoint"`` or ``"baseline"``.
        prediction: ``(F, P, 3)`` float64 in the camera frame and units of the input.
        metrics: ``engine.nrsfm.metrics.evaluate`` output (``mpjpe`` in ground-truth units, ``e3d``).
        errors: ``(F, P)`` per-point error (ground-truth units) from
            ``engine.nrsfm.metrics.per_point_errors``.
        display: ``(F, P, 3)`` the prediction as drawn: ``engine.nrsfm.metrics.aligned`` (each frame
            centred, depth sign chosen as the metrics choose it).
        source: checkpoint path or baseline name.
    """

    name: str
    kind: str
    prediction: np.ndarray
    metrics: dict[str, float]
    errors: np.ndarray
    display: np.ndarray
    source: str = ""


@dataclass
class ComparisonResult:
    """Everything :func:`compute_methods` produced for one sequence."""

    methods: list[MethodResult] = field(default_factory=list)


def score(
    name: str, kind: str, prediction: np.ndarray, ground_truth: np.ndarray, source: str = ""
) -> MethodResult:
    """Score one ``(F, P, 3)`` reconstruction against ``(F, P, 3)`` ground truth.

    Uses the metric functions ``engine.prn.reconstruct.evaluate_methods`` (and so the CLI's
    ``evaluate``) uses; the drawn shape is ``engine.nrsfm.metrics.aligned``'s, i.e. the scored one.
    """
    from engine.nrsfm.metrics import aligned, mpjpe, normalized_error, per_point_errors

    prediction = np.asarray(prediction, dtype=np.float64)
    metrics = {
        "mpjpe": float(mpjpe(prediction, ground_truth)),
        "e3d": float(normalized_error(prediction, ground_truth)),
    }
    errors = np.asarray(per_point_errors(prediction, ground_truth), dtype=np.float64)
    display, _ = aligned(prediction, ground_truth)
    return MethodResult(name, kind, prediction, metrics, errors, display, source)


def compute_methods(
    sequence,
    checkpoints: Sequence[str | Path] = (),
    baselines: Sequence[str] = (),
    *,
    progress: Callable[[float, str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> ComparisonResult:
    """Reconstruct ``sequence`` with each checkpoint and baseline and score them (thread-safe).

    Args:
        sequence: ``engine.io.keypoints.KeypointSequence`` with ``points3d`` (ground truth).
        checkpoints: PRN checkpoint files; each is loaded with ``engine.prn.checkpoint.load_model``
            and run by ``engine.prn.reconstruct.reconstruct``.
        baselines: keys of ``engine.nrsfm.baselines.BASELINES``.
        progress: ``(fraction, message)`` callback (e.g. a Worker's).
        cancelled: returns True when the caller gave up; checked between methods.

    Raises:
        DataError: the sequence has no ground truth.
        CheckpointError: a checkpoint is foreign/damaged or made for another number of points.
    """
    from engine.nrsfm.baselines import BASELINES
    from engine.prn.checkpoint import load_model
    from engine.prn.reconstruct import reconstruct

    if sequence.points3d is None:
        raise DataError(
            "comparison needs ground-truth 3D points, this sequence has only 2D",
            path=sequence.description.get("path"),
            field="points3d",
        )
    jobs: list[tuple[str, str]] = [("checkpoint", str(p)) for p in checkpoints]
    jobs += [("baseline", name) for name in baselines]
    result = ComparisonResult()
    for index, (kind, source) in enumerate(jobs):
        if cancelled is not None and cancelled():
            break
        if progress is not None:
            progress(index / max(len(jobs), 1), f"reconstructing with {Path(source).name}")
        if kind == "checkpoint":
            model, _ = load_model(source)
            prediction = reconstruct(model, sequence.points2d, sequence.visibility)
            name = f"PRN {Path(source).stem}"
        else:
            if source not in BASELINES:
                raise KeyError(f"unknown baseline {source!r}; known: {sorted(BASELINES)}")
            prediction = BASELINES[source](sequence)
            name = source
        result.methods.append(score(name, kind, prediction, sequence.points3d, source))
    if progress is not None:
        progress(1.0, "comparison ready")
    return result


class ComparisonModel(QObject):
    """The compared sequence, its methods, the current frame and which methods are drawn.

    Signals:
        sequence_changed(object): a new sequence (methods cleared).
        methods_changed(): methods added/removed or their scores changed.
        shown_changed(): the list of methods drawn in the views changed.
        frame_changed(int): the current frame index.
    """

    sequence_changed = pyqtSignal(object)
    methods_changed = pyqtSignal()
    shown_changed = pyqtSignal()
    frame_changed = pyqtSignal(int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.sequence = None
        self.methods: dict[str, MethodResult] = {}
        self.shown: list[str] = []
        self.frame = 0
        self.checkpoints: list[str] = []

    # ---------------------------------------------------------------- state
    def set_sequence(self, sequence) -> None:
        """Compare on ``sequence`` (a KeypointSequence with points3d); clears the methods."""
        if sequence.points3d is None:
            raise DataError(
                "comparison needs ground-truth 3D points, this sequence has only 2D",
                path=sequence.description.get("path"),
                field="points3d",
            )
        self.sequence = sequence
        self.methods = {}
        self.shown = []
        self.frame = min(self.frame, sequence.num_frames - 1)
        self.sequence_changed.emit(sequence)
        self.methods_changed.emit()
        self.shown_changed.emit()
        self.frame_changed.emit(self.frame)

    def set_results(self, result: ComparisonResult) -> None:
        """Add (or replace, by name) the methods of a :func:`compute_methods` result."""
        for method in result.methods:
            self.methods[method.name] = method
            if method.kind == "checkpoint" and method.source not in self.checkpoints:
                self.checkpoints.append(method.source)
            if method.name not in self.shown and len(self.shown) < MAX_SHOWN_METHODS:
                self.shown.append(method.name)
        self.methods_changed.emit()
        self.shown_changed.emit()

    def remove_method(self, name: str) -> None:
        """Drop one method (and its view)."""
        method = self.methods.pop(name, None)
        if method is None:
            return
        if method.source in self.checkpoints:
            self.checkpoints.remove(method.source)
        if name in self.shown:
            self.shown.remove(name)
        self.methods_changed.emit()
        self.shown_changed.emit()

    def set_shown(self, names: Sequence[str]) -> None:
        """Draw these methods (known names only, at most :data:`MAX_SHOWN_METHODS`, in order)."""
        shown = [n for n in names if n in self.methods][:MAX_SHOWN_METHODS]
        if shown != self.shown:
            self.shown = shown
            self.shown_changed.emit()

    def set_frame(self, frame: int) -> None:
        """Make ``frame`` current (clamped to the sequence)."""
        if self.sequence is None:
            return
        frame = int(min(max(frame, 0), self.sequence.num_frames - 1))
        if frame != self.frame:
            self.frame = frame
            self.frame_changed.emit(frame)

    # ---------------------------------------------------------------- queries
    @property
    def num_frames(self) -> int:
        """Frames of the compared sequence (0 without one)."""
        return 0 if self.sequence is None else self.sequence.num_frames

    def metrics_rows(self) -> list[tuple[str, float, float]]:
        """``(name, mpjpe, e3d)`` per method, in insertion order."""
        return [(m.name, m.metrics["mpjpe"], m.metrics["e3d"]) for m in self.methods.values()]

    def ground_truth_frame(self, frame: int | None = None) -> np.ndarray:
        """``(P, 3)`` centred ground truth of ``frame`` (default: the current frame)."""
        f = self.frame if frame is None else frame
        gt = self.sequence.points3d[f]
        return gt - gt.mean(axis=0)

    def method_frame(self, name: str, frame: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``((P, 3) drawn points, (P,) errors)`` of method ``name`` at ``frame``."""
        f = self.frame if frame is None else frame
        method = self.methods[name]
        return method.display[f], method.errors[f]

    def error_range(self) -> tuple[float, float]:
        """Colour range shared by every view: 0 to the 99th percentile of all shown errors."""
        shown = [self.methods[n].errors for n in self.shown if n in self.methods]
        if not shown:
            return 0.0, 1.0
        hi = float(np.percentile(np.concatenate([e.ravel() for e in shown]), 99))
        return 0.0, hi if hi > 0 else 1.0
