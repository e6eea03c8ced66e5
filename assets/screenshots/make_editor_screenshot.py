"""Regenerate the README screenshot of the Editor workspace.

Drives the real window: opens the demo template with 16 handles, selects the handle on the
head and drags it with real mouse events, Ctrl-clicks a foreleg handle and drags it forward, and
shows the head handle's influence colouring (vertex motion per unit handle move). Needs an X server; on a headless machine::

    xvfb-run -a -s "-screen 0 1600x1000x24" python assets/screenshots/make_editor_screenshot.py

Writes assets/screenshots/editor.png.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "assets" / "screenshots" / "editor.png"
WINDOW_SIZE = (1400, 860)


def _settle(app, seconds: float = 0.3) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def _drag(app, widget, start, move, steps: int = 12) -> None:
    from PyQt6.QtCore import QPoint, Qt
    from PyQt6.QtTest import QTest

    p0 = QPoint(round(start[0]), round(start[1]))
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p0)
    for s in range(1, steps + 1):
        QTest.mouseMove(widget, p0 + QPoint(move[0] * s // steps, move[1] * s // steps))
        _settle(app, 0.02)
    QTest.mouseRelease(
        widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p0 + QPoint(*move)
    )


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import pyvista
    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    from app.main_window import MainWindow

    pyvista.OFF_SCREEN = False
    app = QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings=settings)
        window.resize(*WINDOW_SIZE)
        window.show()
        editor = window.workspace("Editor")
        window.show_workspace(editor)
        editor.open_demo(num_handles=16)
        while not editor.session.ready:
            app.processEvents()
            time.sleep(0.01)
        _settle(app, 0.5)
        session, view = editor.session, editor.view
        widget = view.plotter.interactor

        def screen_of(i: int) -> np.ndarray:
            return view.world_to_widget(session.handle_targets()[i : i + 1])[0]

        head = int(np.argmax(session.handle_targets()[:, 0]))  # furthest forward: the muzzle
        _drag(app, widget, screen_of(head), (60, -70))
        targets = session.handle_targets()
        visible = [i for i in range(session.num_handles) if view.handle_at(*screen_of(i)) == i]
        # The visible handle lowest on a front leg (large x, small z): pull the hoof forward.
        legs = [i for i in visible if targets[i, 2] < 0.4 and targets[i, 0] > 0]
        if legs:
            leg = min(legs, key=lambda i: targets[i, 2])
            _drag(app, widget, screen_of(leg), (70, -25))
        session.select([head])
        # Colour by how far each vertex moves per unit move of the head handle: the reach of
        # the handle at a glance (the raw weights A[k] are shown on a log scale otherwise).
        editor.influence_mode.setCurrentIndex(editor.influence_mode.findData("response"))
        _settle(app, 0.5)
        view._render_now()
        _settle(app, 0.3)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(OUT))
        print(
            f"wrote {OUT} ({session.num_handles} handles, {np.count_nonzero(session.offsets.any(1))} moved)"
        )
        window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
