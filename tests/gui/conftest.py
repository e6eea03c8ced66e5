"""Shared GUI fixtures: a real MainWindow under Xvfb with settings isolated from the user's.

``main_window`` is the full window (all workspaces), shown and exposed, with its own QSettings
file in ``tmp_path``; it is closed (PyVista interactors too) at teardown. It is sized to
800x600, inside the test screen (1280x800, set in pyproject.toml): a window larger than the
screen would render partly off-screen and make pixel checks meaningless.

``fitted_window`` is the same window left at the size it chooses itself on that screen (no
resize), as a user first sees it.
"""

from __future__ import annotations

import pytest
import pyvista
from PyQt6.QtCore import QCoreApplication, QSettings

pyvista.OFF_SCREEN = False

WINDOW_SIZE = (800, 600)


@pytest.fixture(scope="session", autouse=True)
def _isolated_qsettings(tmp_path_factory: pytest.TempPathFactory, qapp) -> None:
    """Any QSettings() made during the tests writes under a temp dir, never the user's."""
    root = str(tmp_path_factory.mktemp("qsettings"))
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
            QSettings.setPath(fmt, scope, root)
    QCoreApplication.setOrganizationName("shapebench-tests")
    QCoreApplication.setApplicationName("ShapeBench-tests")


@pytest.fixture(autouse=True)
def _isolated_autosave(tmp_path, monkeypatch) -> None:
    """Default autosaves (``app.paths.autosave_file``) go to a temp dir, never the user's."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture
def settings(tmp_path) -> QSettings:
    """A fresh, empty settings file for one test."""
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def main_window(qtbot, settings):
    """The real main window, shown and exposed; closed at teardown."""
    from app.main_window import MainWindow

    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.resize(*WINDOW_SIZE)
    window.move(0, 0)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.close()


@pytest.fixture
def fitted_window(qtbot, settings):
    """The real main window at the size it opens at by itself (fresh settings); closed at
    teardown."""
    from app.main_window import MainWindow

    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(50)  # the fit to the screen once the frame is known (a queued call)
    yield window
    window.close()


@pytest.fixture
def wait_worker(qtbot):
    """``wait_worker(worker, timeout_ms)``: wait until a Worker that is already started has
    ended and its queued signals have reached the GUI thread.

    ``qtbot.waitSignal(worker.done)`` entered after ``start()`` misses the signal when a quick
    job ends before the wait connects (seen on CI with the zero-depth baseline), so this polls
    the thread instead; the thread quits only after ``done`` is emitted.
    """

    def wait(worker, timeout_ms: int = 120_000) -> None:
        qtbot.waitUntil(lambda: not worker.is_running(), timeout=timeout_ms)
        qtbot.wait(20)

    return wait
