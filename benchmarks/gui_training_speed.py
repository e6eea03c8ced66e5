"""Training speed in the window against the command line's trainer loop, in one run: PRN's
Training tab, or with ``--category`` the Category tab.

Trains the same network on the same data with the same settings for a fixed number of steps
(default 300, on ``face.mat``): (a) the command line's loop (``python main.py train``: a
``Trainer`` run on the calling thread with a tqdm progress bar in its step callback) with the
torch thread count the window trains with (``training_threads()``: half the cores), and (b)
the window's Training tab, driven through its panel as a user would (real main window, the
run on the training session's worker thread, curves, previews and progress updating), then
(a) once more. Steps per second are measured between the first and the last step callback of
each run (the trainer's construction and start-up are left out). The machine is shared, so the
load average is printed; the ratio of (b) to the mean of the two (a) runs is the number to
read. ``--cli-default-threads`` adds the command line loop with torch's default thread count
(on a busy 2-core machine two threads can be many times slower than one: see
``training_threads``).

``--category``: the same comparison for category learning on ``synthetic:quadruped`` (one
warm-up epoch, then ``--steps`` main steps; the command line's loop is ``python main.py
category train``'s: a ``CategoryTrainer`` with its tqdm callback; the window's is the Category
tab's Start with the session's worker thread, curves and instance views updating).

Needs an X server (PyVista's Qt interactor does not work with Qt's offscreen platform):

    xvfb-run -a .venv/bin/python benchmarks/gui_training_speed.py
    xvfb-run -a .venv/bin/python benchmarks/gui_training_speed.py --data synthetic:human --steps 200
    xvfb-run -a .venv/bin/python benchmarks/gui_training_speed.py --category --steps 60
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nrsfm_sequences import DATA  # beside this script: the shared sequences' folder
from qt_loop import run_loop_until  # beside this script (its folder is on sys.path)

FACE = DATA / "face.mat"


class StepClock:
    """A trainer callback recording (step, time) of every step it sees."""

    def __init__(self) -> None:
        self.marks: list[tuple[int, float]] = []

    def __call__(self, event) -> None:
        self.marks.append((event.step, time.perf_counter()))

    def rate(self) -> float:
        """Steps per second between the first and the last step seen."""
        if len(self.marks) < 2:
            return float("nan")
        (s0, t0), (s1, t1) = self.marks[0], self.marks[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else float("nan")


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run the block with ``threads`` torch threads (None: as set); yields the count used."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def cli_loop(config, sequence, threads: int | None) -> tuple[float, int]:
    """The loop of ``python main.py train`` (engine/cli/prn.py): steps/s and torch threads."""
    from tqdm import tqdm

    from engine.prn.training import Trainer

    with torch_threads(threads) as used:
        trainer = Trainer(config, sequence)
        bar = tqdm(total=config.iterations, unit="step", file=io.StringIO(), dynamic_ncols=True)

        def on_step(event) -> None:  # as the command line's own callback
            bar.update(event.step - bar.n)
            post = {"f": f"{event.losses['f']:.3g}", "g": f"{event.losses['g']:.3g}"}
            if trainer.metrics:
                post.update({k: f"{v:.4g}" for k, v in trainer.metrics.items()})
            if event.step % 10 == 0 or event.metrics is not None:
                bar.set_postfix(post, refresh=False)

        rate = timed_run(trainer, on_step, bar)
    return rate, used


def timed_run(trainer, on_step, bar) -> float:
    """Run ``trainer`` with the command line's callback ``on_step`` and its progress ``bar``;
    steps/s."""
    clock = StepClock()
    trainer.add_callback(on_step)
    trainer.add_callback(clock)
    trainer.run()
    bar.close()
    return clock.rate()


def category_config(steps: int):
    from engine.category.config import CategoryConfig

    return CategoryConfig(iterations=steps, warmup_epochs=1, eval_every=10**6)


def category_cli_loop(steps: int, images, threads: int | None) -> tuple[float, int]:
    """The loop of ``python main.py category train`` (engine/cli/category.py): steps/s."""
    from tqdm import tqdm

    from engine.category.training import CategoryTrainer

    with torch_threads(threads) as used:
        trainer = CategoryTrainer(category_config(steps), images)
        bar = tqdm(total=trainer.total_iterations, unit="step", file=io.StringIO())

        def on_step(event) -> None:  # as the command line's own callback
            bar.update(event.step - bar.n)
            bar.set_postfix_str(
                f"{event.phase}, {event.hypotheses} hyp, loss {event.losses['total']:.4g}",
                refresh=False,
            )

        rate = timed_run(trainer, on_step, bar)
    return rate, used


@contextlib.contextmanager
def benchmark_window():
    """The real main window, shown, with settings under a temporary folder (never the user's)
    and no demo checkpoint playing beside the run; closed at the end of the block."""
    import pyvista
    from PyQt6.QtCore import QCoreApplication, QSettings
    from PyQt6.QtWidgets import QApplication

    pyvista.OFF_SCREEN = False
    qapp = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="shapebench-bench-") as tmp:
        for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
            for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
                QSettings.setPath(fmt, scope, tmp)
        QCoreApplication.setOrganizationName("shapebench-benchmarks")
        QCoreApplication.setApplicationName("ShapeBench-benchmarks")
        import app.workspaces.compare as compare
        import app.workspaces.training as training
        from app.main_window import MainWindow

        missing = Path(tmp) / "no_demo.pt"
        training.DEMO_CHECKPOINT = missing
        compare.DEMO_CHECKPOINT = missing
        window = MainWindow(
            settings=QSettings(str(Path(tmp) / "s.ini"), QSettings.Format.IniFormat)
        )
        window.show()
        try:
            yield window
        finally:
            window.close()
            qapp.processEvents()


def train_in_window(ws, timeout_s: float) -> None:
    """Press the workspace's Start and wait until its run ends (or the timeout stops it).

    Waits on the session's own signal: a polling timer would wake the GUI thread (and take the
    GIL) many times a second, which the command line runs do not pay for."""
    from PyQt6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    ended = ("finished", "failed", "stopped")
    ws.session.state_changed.connect(lambda state: state in ended and loop.quit())
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    if not ws.start_training():
        raise SystemExit("the run did not start")
    if ws.session.state not in ended:
        loop.exec()
    if ws.session.state not in ended:
        ws.session.shutdown()


def print_rates(rows: list[tuple[str, int, float, str]], digits: int) -> None:
    """The table of runs, each rate also against the mean of the two command-line runs."""
    reference = (rows[0][2] + rows[2][2]) / 2
    print("| run | torch threads | steps/s | vs mean of (a) | GUI updates |")
    print("|---|---|---|---|---|")
    for name, threads, rate, updates in rows:
        print(f"| {name} | {threads} | {rate:.{digits}f} | {rate / reference:.2f} | {updates} |")


def category_window_run(steps: int, timeout_s: float) -> tuple[float, int, int]:
    """The Category tab of the real window: steps/s, torch threads, GUI updates received."""
    import torch

    with benchmark_window() as window:
        ws = window.workspace("Category")
        window.show_workspace(ws)
        ws.load_data("synthetic:quadruped")
        run_loop_until(lambda: ws.session.images is not None, 300.0)
        config = category_config(steps)
        for name in ("iterations", "warmup_epochs", "eval_every"):
            ws.form.fields[name].setText(str(getattr(config, name)))
        clock = StepClock()
        updates = []
        ws.session.updated.connect(updates.append)
        ws.session.run_changed.connect(
            lambda: ws.session.trainer is not None and ws.session.trainer.add_callback(clock)
        )
        train_in_window(ws, timeout_s)
        threads = torch.get_num_threads()
    return clock.rate(), threads, len(updates)


def window_run(spec: str, steps: int, timeout_s: float) -> tuple[float, int, int]:
    """The Training tab of the real window: steps/s, torch threads, GUI updates received."""
    import torch

    from app.models.training_session import warming_up

    with benchmark_window() as window:
        ws = window.workspace("Training")
        window.show_workspace(ws)
        run_loop_until(lambda: not warming_up(), 60.0)
        if not ws.load_data(spec):
            raise SystemExit(f"could not load {spec}")
        ws.form.fields["iterations"].setText(str(steps))
        clock = StepClock()
        updates = []
        ws.session.updated.connect(updates.append)
        ws.session.trainer_ready.connect(lambda: ws.session.trainer.add_callback(clock))
        train_in_window(ws, timeout_s)
        threads = torch.get_num_threads()
    return clock.rate(), threads, len(updates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=str(FACE), help="data spec or file (default: face.mat of NRSfM)"
    )
    parser.add_argument("--steps", type=int, default=300, help="training steps per run")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run at most")
    parser.add_argument(
        "--cli-default-threads",
        action="store_true",
        help="also run the command line loop with torch's default thread count",
    )
    parser.add_argument("--category", action="store_true", help="the Category tab instead")
    args = parser.parse_args()

    import torch

    from app.models.training_session import training_threads

    if args.category:
        return category_main(args)
    from engine.io.keypoints import load_dataset
    from engine.prn.config import TrainConfig

    config = TrainConfig(data=args.data, iterations=args.steps)
    sequence = load_dataset(config.data, seed=config.seed)
    load_start = os.getloadavg()[0]
    rows = []
    rate, threads = cli_loop(config, sequence, training_threads())
    rows.append(("(a) command line trainer loop", threads, rate, "-"))
    rate, threads, updates = window_run(args.data, args.steps, args.timeout)
    rows.append(("(b) window: Training tab, training session", threads, rate, str(updates)))
    rate, threads = cli_loop(config, sequence, training_threads())
    rows.append(("(a) command line trainer loop, again", threads, rate, "-"))
    if args.cli_default_threads:
        rate, threads = cli_loop(config, sequence, None)
        rows.append(("command line loop, torch's default threads", threads, rate, "-"))

    resolved = config.resolved(sequence.num_frames)
    print(
        f"torch {torch.__version__}, {os.cpu_count()} cores, load average {load_start:.1f} at "
        f"the start, {os.getloadavg()[0]:.1f} at the end; {Path(args.data).name}: "
        f"{sequence.num_frames} frames x {sequence.num_points} points, {args.steps} steps, "
        f"hidden {resolved.hidden}, batch {resolved.batch_size}, group {resolved.group_size}"
    )
    print_rates(rows, digits=1)
    return 0


def category_main(args) -> int:
    import torch

    from app.models.training_session import training_threads
    from engine.io.image_sets import load_image_set

    images = load_image_set("synthetic:quadruped", size=category_config(1).size)
    load_start = os.getloadavg()[0]
    rows = []
    rate, threads = category_cli_loop(args.steps, images, training_threads())
    rows.append(("(a) command line trainer loop", threads, rate, "-"))
    rate, threads, updates = category_window_run(args.steps, args.timeout)
    rows.append(("(b) window: Category tab, category session", threads, rate, str(updates)))
    rate, threads = category_cli_loop(args.steps, images, training_threads())
    rows.append(("(a) command line trainer loop, again", threads, rate, "-"))
    print(
        f"torch {torch.__version__}, {os.cpu_count()} cores, load average {load_start:.1f} at "
        f"the start, {os.getloadavg()[0]:.1f} at the end; synthetic:quadruped, {len(images)} "
        f"images, one warm-up epoch then {args.steps} steps"
    )
    print_rates(rows, digits=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
