"""Regenerate the README screenshots of the Category workspace.

Drives the real window: loads the built-in synthetic quadruped's held-out split and a category
checkpoint, shows the Training page (loss curves with the warm-up end and the hypothesis drops
marked) and the Instance page (image with the predicted outline and keypoints, the mesh from the
predicted camera and from a novel view with the camera hypotheses, the truth with per-vertex
errors). Needs an X server; on a headless machine::

    xvfb-run -a -s "-screen 0 1600x1000x24" python assets/screenshots/make_category_screenshots.py --checkpoint RUN.pt

Writes assets/screenshots/category_training.png and category_instance.png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "assets" / "screenshots"
WINDOW_SIZE = (1500, 900)


def _wait(app, done, seconds: float = 300.0) -> None:
    end = time.monotonic() + seconds
    while not done():
        if time.monotonic() > end:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.01)


def _settle(app, seconds: float = 0.8) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def _grab(app, window, name: str) -> None:
    # Grab from the screen: QWidget.grab() misses the OpenGL content of the VTK views.
    image = app.primaryScreen().grabWindow(int(window.winId()))
    path = OUT / name
    if not image.save(str(path)):
        raise OSError(f"cannot write {path}")
    print(f"wrote {path} ({image.width()}x{image.height()})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", default="synthetic:quadruped")
    parser.add_argument("--instance", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import pyvista
    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

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
        ws = window.workspace("Category")
        window.show_workspace(ws)
        ws.load_data(args.data)
        _wait(app, lambda: ws.session.images is not None)
        ws.open_category_checkpoint(args.checkpoint)
        _wait(app, lambda: ws.session.run is not None)
        ws.pages.setCurrentIndex(0)
        _settle(app, 1.5)
        _grab(app, window, "category_training.png")
        ws.pages.setCurrentIndex(1)
        ws.instance_slider.setValue(args.instance)
        ws.refresh_instance()
        _settle(app, 1.5)
        _grab(app, window, "category_instance.png")
        ws.evaluate()
        _wait(app, lambda: ws.table.rowCount() == 3)
        ws.pages.setCurrentIndex(2)
        _settle(app, 1.0)
        _grab(app, window, "category_compare.png")
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
