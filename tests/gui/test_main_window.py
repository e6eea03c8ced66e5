"""The window shell: menus, About, settings, recent files, file routing, workers."""

from __future__ import annotations

import threading

import pytest
from PyQt6.QtCore import QMimeData, QPoint, QPointF, QRect, Qt, QUrl
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


# ----------------------------------------------------------------- fitting a small screen
def _shown_in_window(widget, window) -> None:
    """``widget`` is visible, lies inside the window and nothing (a scroll area, the window's
    edge) clips it: a person sees all of it."""
    assert widget.isVisible(), widget
    rect = QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())
    assert window.rect().contains(rect), (widget, rect, window.rect())
    assert widget.visibleRegion().boundingRect() == widget.rect(), (
        widget,
        widget.visibleRegion().boundingRect(),
        widget.rect(),
    )


def _tool_button(action):
    """The dock's button for ``action`` (Undo / Redo / Reset handles)."""
    from PyQt6.QtWidgets import QApplication, QToolButton

    for widget in QApplication.allWidgets():
        if isinstance(widget, QToolButton) and widget.defaultAction() is action:
            return widget
    raise AssertionError(f"no button for {action.text()}")


def test_window_fits_a_1280x800_screen_with_every_panel_usable(
    fitted_window, qtbot, monkeypatch, tmp_path
):
    import app.workspaces.compare as compare
    import app.workspaces.training as training

    missing = tmp_path / "no_demo.pt"  # no demo computations behind the checks
    monkeypatch.setattr(training, "DEMO_CHECKPOINT", missing)
    monkeypatch.setattr(compare, "DEMO_CHECKPOINT", missing)
    window = fitted_window
    screen = window.screen().availableGeometry()
    assert (screen.width(), screen.height()) == (1280, 800), "pyproject.toml sets the screen"
    modes = window.workspace("Modes")
    modes._pending = None  # no demo PCA either
    named = {
        "Editor": lambda ws: [
            ws.reinit_button,
            ws.apply_offset_button,
            _tool_button(ws.reset_action),
        ],
        "Training": lambda ws: [ws.start_button, ws.stop_button, ws.progress_bar],
        "Compare": lambda ws: [ws.compute_button, *ws.linked.views],
        "Modes": lambda ws: [ws.compute_button, ws.animate_button, ws.sweep_button],
    }
    for index in range(window.tabs.count()):
        workspace = window.tabs.widget(index)
        window.tabs.setCurrentIndex(index)
        qtbot.wait(100)
        if type(workspace).title == "Compare":
            workspace.linked.set_count(4)  # ground truth and three methods
            qtbot.wait(100)
        assert screen.contains(window.frameGeometry()), (
            type(workspace).title,
            window.frameGeometry(),
        )
        bar = window.statusBar()
        _shown_in_window(bar, window)
        assert screen.contains(QRect(bar.mapToGlobal(QPoint(0, 0)), bar.size()))
        for widget in named.get(type(workspace).title, lambda ws: [])(workspace):
            _shown_in_window(widget, window)
    compare_views = window.workspace("Compare").linked.views
    assert len(compare_views) == 4 and all(v.width() > 100 for v in compare_views)


def test_restored_geometry_larger_than_the_screen_is_fitted(qtbot, settings):
    big = MainWindow(settings=settings)
    qtbot.addWidget(big)
    big.setGeometry(0, 0, 1600, 1000)  # as saved on a larger screen
    big.close()  # saves its geometry
    assert settings.contains("window/geometry")
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(50)
    assert window.screen().availableGeometry().contains(window.frameGeometry())
    window.close()


# ----------------------------------------------------------------- the status bar's counts
def test_each_tab_shows_its_own_counts(main_window, qtbot, monkeypatch, tmp_path):
    import app.workspaces.compare as compare
    import app.workspaces.training as training

    missing = tmp_path / "no_demo.pt"
    monkeypatch.setattr(training, "DEMO_CHECKPOINT", missing)
    monkeypatch.setattr(compare, "DEMO_CHECKPOINT", missing)
    editor = main_window.workspace("Editor")
    with qtbot.waitSignal(editor.session.mesh_changed, timeout=60_000):
        editor.open_demo(num_handles=8)
    counts = main_window.counts_label
    assert counts.text() == "2,108 vertices, 4,212 faces, 8 handles"

    train = main_window.workspace("Training")
    main_window.show_workspace(train)
    assert train.load_data("synthetic:human?frames=64&seed=2")
    assert counts.text().startswith("64 frames, 17 points")

    comp = main_window.workspace("Compare")
    main_window.show_workspace(comp)
    qtbot.wait(50)
    assert counts.text() == "", "Compare showed another tab's counts"
    assert comp.load_data("synthetic:human?frames=48&split=test")
    assert counts.text() == "48 frames, 17 points, 0 methods compared"

    main_window.show_workspace(train)
    assert counts.text().startswith("64 frames, 17 points")
    main_window.show_workspace(editor)
    assert counts.text() == "2,108 vertices, 4,212 faces, 8 handles"


# ----------------------------------------------------------------- the app's own arguments
def _run_main(*args: str, display: bool = False):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "SHAPEBENCH_DEVICE"}
    if not display:  # the checks come before any window: they must not need a display
        env.pop("DISPLAY", None)
        env.pop("WAYLAND_DISPLAY", None)
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unreadable_mesh_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nend_header\n1\n")
    for args, expected in (
        (["--mesh", str(bad)], "bad.ply"),
        (["--mesh", str(tmp_path / "absent.obj")], "absent.obj: file not found"),
        (["--device", "cpu", "--mesh", str(bad)], "bad.ply"),
    ):
        result = _run_main(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, result.stderr
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
        assert result.stdout == ""


def test_device_option_of_the_app(monkeypatch, tmp_path):
    import torch

    import main as entry
    from engine.core.device import default_device

    result = _run_main("--device", "tpu")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "--device tpu" in lines[0], lines
    if not torch.cuda.is_available():
        result = _run_main("--device", "cuda")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, lines
        assert "--device cuda" in lines[0] and "not usable" in lines[0]
    assert "--device cpu|cuda" in _run_main("--help").stdout

    # A usable device is the engine's device for the whole session (SHAPEBENCH_DEVICE).
    monkeypatch.delenv("SHAPEBENCH_DEVICE", raising=False)
    started = []
    import app.application

    monkeypatch.setattr(app.application, "run_app", lambda args: started.append(args) or 0)
    assert entry.main(["--device", "cpu"]) == 0 and started
    assert default_device() == torch.device("cpu")
    monkeypatch.delenv("SHAPEBENCH_DEVICE", raising=False)
