"""The window shell: menus, About, settings, recent files, file routing, workers."""

from __future__ import annotations

import threading

import pytest
from PyQt6.QtCore import QMimeData, QPointF, Qt, QUrl
from PyQt6.QtGui import QDropEvent

from app.main_window import MainWindow
from app.workers import Worker
from engine.core.errors import MeshError

pytestmark = pytest.mark.gui


def _action_texts(menu) -> list[str]:
    return [a.text().replace("&", "") for a in menu.actions() if not a.isSeparator()]


def test_menus_hold_the_editor_actions_and_shortcuts(main_window):
    file_items = _action_texts(main_window.file_menu)
    for text in ("Open mesh…", "Open recent", "Export deformed mesh…", "Save screenshot…", "Quit"):
        assert text in file_items
    assert {"Undo", "Redo", "Reset handles"} <= set(_action_texts(main_window.edit_menu))
    view_items = _action_texts(main_window.view_menu)
    for text in ("Reset camera", "Show wireframe", "Show handles", "Influence colouring"):
        assert text in view_items
    editor = main_window.workspace("Editor")
    assert editor.undo_action.shortcut().toString() == "Ctrl+Z"
    assert main_window.quit_action.shortcut().toString() == "Ctrl+Q"
    assert main_window.tabs.tabText(0) == "Editor"


def test_about_names_versions_and_device(main_window):
    text = main_window.about_text()
    for name in ("PyTorch", "VTK", "PyVista", "Qt", "Compute device"):
        assert name in text
    assert "cpu" in main_window.device_label.text() or "cuda" in main_window.device_label.text()


def test_recent_files_and_geometry_persist(qtbot, settings, tmp_path):
    first = MainWindow(settings=settings)
    qtbot.addWidget(first)
    first.resize(760, 520)
    first.show()
    qtbot.waitExposed(first)
    size = (first.width(), first.height())  # the docks' minimum may widen it
    first.add_recent_file(tmp_path / "a.ply")
    first.add_recent_file(tmp_path / "b.ply")
    first.add_recent_file(tmp_path / "a.ply")
    first.close()
    second = MainWindow(settings=settings)
    qtbot.addWidget(second)
    assert [p.rsplit("/", 1)[-1] for p in second.recent_files()] == ["a.ply", "b.ply"]
    assert settings.contains("window/geometry") and settings.contains("window/state")
    # Xvfb's 800x600 test screen may clamp the width on restore; the height fits.
    assert second.height() == size[1]
    second.close()


def test_dropped_mesh_file_is_routed_to_the_editor(main_window, qtbot, monkeypatch, tmp_path):
    editor = main_window.workspace("Editor")
    opened = []
    monkeypatch.setattr(editor, "open_file", opened.append)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "shape.OBJ"))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    main_window.dropEvent(event)
    assert opened == [str(tmp_path / "shape.OBJ")]
    assert main_window.open_path(tmp_path / "notes.txt") is False


def test_worker_reports_progress_result_and_errors(qtbot):
    progress = []
    worker = Worker(lambda report, cancelled: [report(i / 4, f"step {i}") for i in range(5)] and 42)
    worker.progress.connect(lambda f, m: progress.append((f, m)))
    with qtbot.waitSignal(worker.finished, timeout=10_000) as blocker:
        worker.start()
    assert blocker.args == [42]
    qtbot.waitUntil(lambda: len(progress) == 5)
    assert progress[-1] == (1.0, "step 4")

    def fail(report, cancelled):
        raise MeshError("expected 3 indices", path="x.obj", line=7)

    worker = Worker(fail)
    with qtbot.waitSignal(worker.failed, timeout=10_000) as blocker:
        worker.start()
    assert blocker.args == ["x.obj:7: expected 3 indices"]

    worker = Worker(lambda report, cancelled: 1 / 0)
    with qtbot.waitSignal(worker.failed, timeout=10_000) as blocker:
        worker.start()
    assert blocker.args[0].startswith("ZeroDivisionError")


def test_worker_cancel_stops_the_job(qtbot):
    started = threading.Event()

    def job(report, cancelled):
        started.set()
        while not cancelled():
            threading.Event().wait(0.005)
        raise RuntimeError("stopped")

    worker = Worker(job)
    finished = []
    worker.finished.connect(finished.append)
    worker.start()
    assert started.wait(10)
    with qtbot.waitSignal(worker.cancelled, timeout=10_000):
        worker.cancel()
    assert worker.wait(5000) and not finished
