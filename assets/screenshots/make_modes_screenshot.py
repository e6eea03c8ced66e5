"""Regenerate the README screenshot of the Modes workspace (PCA deformation modes).

Drives the real window on the built-in demo (random handle deformations of the shipped
template): Figure 2's layout at +/- 2 sigma, mode 1 scrubbed to +1.5 sigma on the large view,
the explained-variance chart. Needs an X server; on a headless machine::

    xvfb-run -a -s "-screen 0 1600x1000x24" python assets/screenshots/make_modes_screenshot.py

Writes assets/screenshots/modes.png.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "assets" / "screenshots"
WINDOW_SIZE = (1400, 860)


def _settle(app, seconds: float = 0.5) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def main() -> int:
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
        ws = window.workspace("Modes")
        window.show_workspace(ws)  # starts the demo PCA
        end = time.monotonic() + 300
        while ws.session.result is None or ws.session.busy:
            if time.monotonic() > end:
                raise TimeoutError("the demo PCA did not finish in time")
            app.processEvents()
            time.sleep(0.01)
        ws.sliders[0].setValue(150)
        _settle(app, 1.0)
        # Grab from the screen: QWidget.grab() misses the OpenGL content of the VTK views.
        image = app.primaryScreen().grabWindow(int(window.winId()))
        path = OUT / "modes.png"
        if not image.save(str(path)):
            raise OSError(f"cannot write {path}")
        print(f"wrote {path} ({image.width()}x{image.height()})")
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
