"""The Editor tab in the real window: mouse drags, undo/redo, errors, export, handle sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PyQt6.QtCore import QPoint, Qt
from PyQt6.QtTest import QTest

from app import dialogs
from engine.deform.solve import laplacian_solve
from engine.geometry.laplacian import cotangent_laplacian
from engine.geometry.primitives import icosphere
from engine.io.mesh import load_mesh, save_mesh

pytestmark = pytest.mark.gui


@pytest.fixture
def editor(main_window, qtbot):
    """The Editor workspace with the demo template and 10 handles ready."""
    editor = main_window.workspace("Editor")
    main_window.show_workspace(editor)
    with qtbot.waitSignal(editor.session.mesh_changed, timeout=60_000):
        editor.open_demo(num_handles=10)
    qtbot.wait(50)
    return editor


@pytest.fixture
def errors(monkeypatch):
    """Intercept error dialogs: a list of (title, message)."""
    shown = []
    monkeypatch.setattr(
        dialogs, "show_error", lambda parent, title, exc: shown.append((title, str(exc)))
    )
    return shown


def _visible_handle(editor) -> tuple[int, np.ndarray]:
    """A handle whose sphere is visible at its projected centre, away from the border."""
    view = editor.view
    screen = view.world_to_widget(editor.session.handle_targets())
    w, h = view.plotter.interactor.width(), view.plotter.interactor.height()
    for i in np.argsort(screen[:, 1]):  # topmost first: room to drag
        x, y = screen[i]
        if 60 < x < w - 60 and 60 < y < h - 60 and view.handle_at(x, y) == i:
            return int(i), screen[i]
    raise AssertionError("no visible handle in the view")


def _drag(widget, start: np.ndarray, move: tuple[int, int], steps: int = 6) -> None:
    p0 = QPoint(round(start[0]), round(start[1]))
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p0)
    for s in range(1, steps + 1):
        QTest.mouseMove(widget, p0 + QPoint(move[0] * s // steps, move[1] * s // steps))
        QTest.qWait(5)
    end = p0 + QPoint(*move)
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def _direct_solve(session) -> np.ndarray:
    t = torch.from_numpy(session.mesh.vertices)
    a = torch.from_numpy(session.basis.dependency)
    h = a @ t + torch.from_numpy(session.offsets)
    return laplacian_solve(cotangent_laplacian(t, torch.from_numpy(session.faces)), a, t, h).numpy()


def test_mouse_drag_deforms_like_the_direct_solve_and_undo_restores(editor, qtbot):
    session, view = editor.session, editor.view
    handle, at = _visible_handle(editor)
    session.select([handle])  # colouring changes on selection; compare pixels after it
    original = session.vertices.copy()
    before = view.image()

    _drag(view.plotter.interactor, at, (50, -40))
    qtbot.wait(50)

    assert session.selection == (handle,)
    moved = np.flatnonzero(np.any(session.offsets != 0, axis=1))
    assert moved.tolist() == [handle], "only the dragged handle moves"
    assert np.linalg.norm(session.offsets[handle]) > 0.05
    np.testing.assert_allclose(session.vertices, _direct_solve(session), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(view.current_vertices(), session.vertices)
    # The handle follows the cursor in the screen plane.
    new_at = view.world_to_widget(session.handle_targets()[handle : handle + 1])[0]
    np.testing.assert_allclose(new_at - at, [50, -40], atol=1.5)

    after = view.image()
    changed = np.any(np.abs(after.astype(int) - before.astype(int)) > 30, axis=2)
    ys, xs = np.nonzero(changed)
    assert len(xs) > 300, "the picture shows the mesh moved"
    box = (abs(xs - (at[0] + 25)) < 150) & (abs(ys - (at[1] - 20)) < 150)
    assert box.mean() > 0.6, "the change is where the handle was dragged"

    assert editor.undo_action.isEnabled()
    editor.undo_action.trigger()
    np.testing.assert_array_equal(session.vertices, original)
    np.testing.assert_array_equal(view.current_vertices(), original)
    editor.redo_action.trigger()
    np.testing.assert_allclose(session.vertices, _direct_solve(session), rtol=0, atol=1e-9)
    assert np.abs(session.vertices - original).max() > 0.01


def test_ctrl_click_adds_to_the_selection_and_drag_moves_all(editor, qtbot):
    session, widget = editor.session, editor.view.plotter.interactor
    first, at = _visible_handle(editor)
    screen = editor.view.world_to_widget(session.handle_targets())
    others = [
        i
        for i in range(session.num_handles)
        if i != first and editor.view.handle_at(*screen[i]) == i
    ]
    second = others[0]
    QTest.mouseClick(
        widget,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        QPoint(round(at[0]), round(at[1])),
    )
    QTest.mouseClick(
        widget,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.ControlModifier,
        QPoint(round(screen[second][0]), round(screen[second][1])),
    )
    assert session.selection == (first, second)
    assert not session.can_undo(), "clicks without motion are no edit"
    _drag(widget, at, (0, -30))
    np.testing.assert_allclose(session.offsets[first], session.offsets[second])
    assert np.linalg.norm(session.offsets[first]) > 0


def test_numeric_offset_influence_and_reinitialise(editor, qtbot, main_window):
    session = editor.session
    session.select([3])
    for spin, value in zip(editor.offset_spins, (0.1, 0.0, -0.2)):
        spin.setValue(value)
    editor.apply_offset_button.click()
    np.testing.assert_allclose(session.offsets[3], [0.1, 0.0, -0.2])
    assert "vertices" in main_window.counts_label.text()
    assert "Updated" in main_window.update_label.text()
    assert editor.view._scalar_title == "log10 weight, handle 3"
    editor.influence_action.setChecked(False)
    assert editor.view._scalar_title is None
    editor.k_spin.setValue(6)
    with qtbot.waitSignal(session.mesh_changed, timeout=60_000):
        editor.reinit_button.click()
    assert session.num_handles == 6 and not session.can_undo()
    assert np.all(session.offsets == 0)


def test_corrupt_file_shows_dialog_and_keeps_the_mesh(editor, qtbot, errors, tmp_path):
    before = editor.session.vertices.copy()
    bad = tmp_path / "corrupt.obj"
    bad.write_text("v 0 0 0\nv 1 0 0\nf 1 2 7\n")
    editor.open_mesh(bad)
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=30_000)
    title, message = errors[0]
    assert "open" in title.lower() and "corrupt.obj" in message
    assert editor.session.mesh.path.endswith("demo_template.ply")
    np.testing.assert_array_equal(editor.session.vertices, before)
    np.testing.assert_array_equal(editor.view.current_vertices(), before)


def test_export_handle_sets_and_refusal_on_another_mesh(editor, qtbot, errors, tmp_path):
    session = editor.session
    session.set_offset([1, 2], [0.0, 0.15, 0.05])
    edited = session.vertices.copy()
    for suffix in (".ply", ".obj", ".stl"):
        out = tmp_path / f"deformed{suffix}"
        editor.export_mesh(str(out))
        reloaded = load_mesh(out)
        tol = 1e-6 if suffix == ".stl" else 1e-12  # STL stores float32 per face corner
        assert len(reloaded.faces) == len(session.faces)
        if suffix != ".stl":
            np.testing.assert_allclose(reloaded.vertices, edited, rtol=0, atol=tol)
    assert not errors

    handles = tmp_path / "handles.json"
    session.save_handle_set(handles)
    editor.reset_action.trigger()
    assert np.all(session.offsets == 0)
    editor.load_handle_set(str(handles))
    np.testing.assert_array_equal(session.vertices, edited)

    sphere = tmp_path / "sphere.ply"
    save_mesh(sphere, *icosphere(2))
    with qtbot.waitSignal(session.mesh_changed, timeout=60_000):
        editor.open_mesh(sphere, num_handles=4)
    editor.load_handle_set(str(handles))
    assert len(errors) == 1 and "another mesh" in errors[0][1]
    assert session.num_handles == 4 and np.all(session.offsets == 0)

    shot = tmp_path / "shot.png"
    editor.view.screenshot(str(shot))
    assert shot.stat().st_size > 1000


def test_up_axis_choice_turns_the_view_and_is_remembered(editor, qtbot, main_window, settings):
    view = editor.view
    np.testing.assert_allclose(view.plotter.camera.GetViewUp(), [0, 0, 1], atol=0.3)
    assert editor.up_axis_actions["z"].isChecked()
    assert editor.up_axis_actions["y"] in main_window.view_menu.actions()

    editor.up_axis_actions["y"].trigger()
    qtbot.wait(50)
    up = np.asarray(view.plotter.camera.GetViewUp())
    assert up[1] > 0.9, "y points up on the screen"
    assert not editor.up_axis_actions["z"].isChecked()
    assert settings.value("editor/up_axis") == "y"

    # Dragging still follows the cursor in the turned view.
    handle, at = _visible_handle(editor)
    _drag(view.plotter.interactor, at, (40, -30))
    qtbot.wait(50)
    new_at = view.world_to_widget(editor.session.handle_targets()[handle : handle + 1])[0]
    np.testing.assert_allclose(new_at - at, [40, -30], atol=1.5)
    np.testing.assert_allclose(editor.session.vertices, _direct_solve(editor.session), atol=1e-9)

    from app.main_window import MainWindow

    again = MainWindow(settings=settings)
    qtbot.addWidget(again)
    assert again.workspace("Editor").up_axis_actions["y"].isChecked()
    assert again.workspace("Editor").view.up_axis == "y"
    again.close()


def test_non_manifold_mesh_opens_with_its_quality_report(editor, qtbot, main_window, tmp_path):
    assert editor.quality_label.text() == "closed, manifold"
    v, f = icosphere(2)
    # A fin: one triangle hung on an existing edge makes that edge non-manifold.
    a, b = f[0, 0], f[0, 1]
    fin_v = np.vstack([v, (v[a] + v[b]) / 2 * 1.5])
    fin_f = np.vstack([f, [[a, b, len(v)]]])
    path = tmp_path / "fin.ply"
    save_mesh(path, fin_v, fin_f)
    with qtbot.waitSignal(editor.session.mesh_changed, timeout=60_000):
        editor.open_mesh(path, num_handles=6)
    assert "1 non-manifold edges" in editor.quality_label.text()
    assert "fin.ply" in main_window.statusBar().currentMessage()
    assert "non-manifold" in main_window.statusBar().currentMessage()
