"""Regenerate the README screenshots of the Training and Compare workspaces.

Drives the real window: continues training the shipped demo checkpoint (assets/demo_prn.pt; without
it, trains a small PRN on the synthetic human set) through the Training panel, then compares it
with the baselines on held-out synthetic motion. Needs an X server; on a headless machine::

    xvfb-run -a -s "-screen 0 1600x1000x24" python assets/screenshots/make_prn_screenshots.py

Writes assets/screenshots/training.png and assets/screenshots/compare.png.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "assets" / "screenshots"
WINDOW_SIZE = (1400, 860)


def _wait(app, condition, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the window did not reach the expected state in time")
        app.processEvents()
        time.sleep(0.01)


def _settle(app, seconds: float = 0.5) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def _grab(app, window, path: Path) -> None:
    # Grab from the screen: QWidget.grab() misses the OpenGL content of the VTK views.
    _settle(app)
    image = app.primaryScreen().grabWindow(int(window.winId()))
    if not image.save(str(path)):
        raise OSError(f"cannot write {path}")
    print(f"wrote {path} ({image.width()}x{image.height()})")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import pyvista
    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    import app.workspaces.training as training
    from app.main_window import MainWindow

    pyvista.OFF_SCREEN = False
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings=settings)
        window.resize(*WINDOW_SIZE)
        window.move(0, 0)
        window.show()
        _settle(app)

        ws = window.workspace("Training")
        # Opening a checkpoint or starting a run before the event loop turns again keeps the
        # demo (opened lazily on first show) from replacing it.
        window.show_workspace(ws)
        if training.DEMO_CHECKPOINT.is_file():
            # The shipped demo, trained a little further: its whole loss history plus a live run.
            if not ws.open_checkpoint(str(training.DEMO_CHECKPOINT)):
                raise RuntimeError("the demo checkpoint did not load")
            ws.form.fields["iterations"].setText(str(ws.session.trainer.step + 150))
            ws.form.fields["preview_frame"].setText("40")
            ws.resume_training()
        else:
            ws.load_data("synthetic:human?frames=2000")
            form = {"iterations": 400, "hidden": 128, "batch_size": 64, "group_size": 32}
            form.update(lr="0.001", eval_every=50, preview_frame=40)
            for name, value in form.items():
                ws.form.fields[name].setText(str(value))
            if not ws.start_training():
                raise RuntimeError("training did not start")
        _wait(app, lambda: ws.session.state == "finished", 600)
        ws.frame_bar.set_frame(40)
        ws.view3d.plotter.reset_camera()
        ws.view3d.plotter.camera.azimuth += 50
        ws.view3d.plotter.camera.elevation += 10
        ws.view3d.render()
        OUT.mkdir(parents=True, exist_ok=True)
        _grab(app, window, OUT / "training.png")

        checkpoint = training.DEMO_CHECKPOINT
        if not checkpoint.is_file():
            checkpoint = Path(tmp) / "screenshot_prn.pt"
            ws.save_checkpoint(str(checkpoint))
        compare = window.workspace("Compare")
        window.show_workspace(compare)
        compare.load_data(compare.sequence_for(str(checkpoint)))
        compare._add_checkpoint_entry(str(checkpoint))
        worker = compare.compute()
        _wait(app, lambda: compare.worker is None, 300)
        if worker is None or not compare.model.methods:
            raise RuntimeError("the comparison did not compute")
        compare.model.set_frame(60)
        compare.linked.camera.azimuth += 50
        compare.linked.camera.elevation += 10
        compare.linked.render_all()
        _grab(app, window, OUT / "compare.png")
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
