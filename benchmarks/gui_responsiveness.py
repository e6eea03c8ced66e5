"""How responsive the window stays while a PRN trains: event-loop lateness, idle vs training.

Opens the real main window (its own settings in a temporary folder, the shipped demo checkpoint
not loaded), goes to the Training tab and drives a run through the panel as a user would, while a
10 ms precise QTimer on the GUI thread records how late each tick arrives (the time the event
loop was busy or starved beyond the timer's period). The same probe on the idle window is the
reference: the table shows lateness p50 / p95 / max in ms for each phase and the ratio of each
training phase's p95 to the idle one. The first training row is the tiny setting of the GUI
test (``tests/gui/test_training_workspace.py``), the second the default network width on
batches of groups of 64. The CPU is shared, so the load average is printed; absolute numbers
vary with it, the ratio to the idle row less so.

This used to be an assertion in the GUI test (lateness below 100 ms), which failed at random on
a loaded machine: speed is measured here, never asserted (DESIGN.md, Testing).

Needs an X server (PyVista's Qt interactor does not work with Qt's offscreen platform):

    xvfb-run -a .venv/bin/python benchmarks/gui_responsiveness.py
    xvfb-run -a .venv/bin/python benchmarks/gui_responsiveness.py --iterations 600 --idle 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qt_loop import run_loop_until  # beside this script (its folder is on sys.path)

TINY_DATA = "synthetic:human?frames=256&seed=3"
#: Training phases: name -> form values (the data set is TINY_DATA).
PHASES = {
    "training, hidden 32, batch 32": {
        "hidden": "32",
        "batch_size": "32",
        "group_size": "16",
        "lr": "0.001",
        "eval_every": "25",
        "preview_frame": "5",
    },
    "training, hidden 256, batch 128": {
        "hidden": "256",
        "batch_size": "128",
        "group_size": "64",
        "lr": "0.001",
        "eval_every": "50",
        "preview_frame": "5",
    },
}


class LatencyProbe:
    """A precise QTimer recording how late each tick arrives (seconds beyond its interval)."""

    def __init__(self, interval_ms: int = 10) -> None:
        from PyQt6.QtCore import Qt, QTimer

        self.interval = interval_ms / 1000.0
        self.late: list[float] = []
        self._last: float | None = None
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.timer.start(interval_ms)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.late.append(max(0.0, now - self._last - self.interval))
        self._last = now

    def stop(self) -> list[float]:
        self.timer.stop()
        return self.late


def summary(late: list[float]) -> tuple[int, float, float, float]:
    """(ticks, p50, p95, max) of the lateness, in ms."""
    if not late:
        return 0, float("nan"), float("nan"), float("nan")
    ms = sorted(1000.0 * x for x in late)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return len(ms), statistics.median(ms), p95, ms[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300, help="steps per training phase")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle reference")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per phase at most")
    args = parser.parse_args()

    import pyvista
    from PyQt6.QtCore import QCoreApplication, QSettings
    from PyQt6.QtWidgets import QApplication

    pyvista.OFF_SCREEN = False
    qapp = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="shapebench-bench-") as tmp:
        # Settings written under tmp, never the user's; no demo checkpoint (it plays an
        # animation on the Training tab that would add its own work to the event loop).
        for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
            for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
                QSettings.setPath(fmt, scope, tmp)
        QCoreApplication.setOrganizationName("shapebench-benchmarks")
        QCoreApplication.setApplicationName("ShapeBench-benchmarks")
        import app.workspaces.compare as compare
        import app.workspaces.training as training
        from app.main_window import MainWindow
        from app.models.training_session import training_threads, warming_up

        missing = Path(tmp) / "no_demo.pt"
        training.DEMO_CHECKPOINT = missing
        compare.DEMO_CHECKPOINT = missing

        window = MainWindow(
            settings=QSettings(str(Path(tmp) / "s.ini"), QSettings.Format.IniFormat)
        )
        window.resize(800, 600)
        window.show()
        ws = window.workspace("Training")
        window.show_workspace(ws)
        run_loop_until(lambda: not warming_up(), 60.0)
        if not ws.load_data(TINY_DATA):
            print("could not load the benchmark data", file=sys.stderr)
            return 1

        rows: list[tuple[str, int, tuple[int, float, float, float], float]] = []
        probe = LatencyProbe()
        run_loop_until(lambda: False, args.idle)
        rows.append(("idle window (reference)", 0, summary(probe.stop()), args.idle))
        for name, form in PHASES.items():
            for field, text in {**form, "iterations": str(args.iterations)}.items():
                ws.form.fields[field].setText(text)
            probe = LatencyProbe()
            start = time.perf_counter()
            if not ws.start_training():
                print(f"{name}: the run did not start", file=sys.stderr)
                return 1
            finished = run_loop_until(
                lambda: ws.session.state in ("finished", "failed", "stopped"), args.timeout
            )
            seconds = time.perf_counter() - start
            late = probe.stop()
            if not finished:
                ws.session.shutdown()
                print(f"{name}: did not finish within {args.timeout:g} s", file=sys.stderr)
            trainer = ws.session.trainer
            rows.append((name, 0 if trainer is None else trainer.step, summary(late), seconds))
        window.close()
        qapp.processEvents()

    import torch

    print(
        f"torch {torch.__version__}, {os.cpu_count()} cores, {training_threads()} torch "
        f"thread(s) for training, load average {os.getloadavg()[0]:.1f}; 10 ms precise "
        f"QTimer on the GUI thread, lateness = delay beyond the 10 ms period"
    )
    idle_p95 = rows[0][2][2]
    print("| phase | steps | seconds | ticks | p50 ms | p95 ms | max ms | p95 / idle p95 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, steps, (ticks, p50, p95, worst), seconds in rows:
        ratio = p95 / idle_p95 if idle_p95 > 0 else float("nan")
        print(
            f"| {name} | {steps} | {seconds:.1f} | {ticks} | {p50:.2f} | {p95:.2f} | "
            f"{worst:.1f} | {ratio:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
