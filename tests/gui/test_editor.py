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


def _hues(image: np.ndarray) -> np.ndarray:
    """Hue in degrees of the saturated pixels of an RGB image (the coloured mesh: the
    background gradient is nearly grey)."""
    from matplotlib.colors import rgb_to_hsv

    hsv = rgb_to_hsv(image[..., :3].reshape(-1, 3) / 255.0)
    return 360.0 * hsv[hsv[:, 1] > 0.4, 0]


def test_weight_colouring_shows_spread_and_its_bar_covers_nothing(
    editor, qtbot, main_window, tmp_path
):
    from PyQt6.QtCore import QRect

    session, view = editor.session, editor.view
    handle, _ = _visible_handle(editor)
    editor.handles_action.setChecked(False)  # the mesh's own colours only
    session.select([handle])
    qtbot.wait(50)
    assert editor.influence_mode.currentData() == "weights"
    hues = _hues(view.image())
    assert len(hues) > 5000, "the mesh is coloured"
    q1, q3 = np.percentile(hues, [25, 75])
    assert q3 - q1 > 40, f"the colours are spread over the mesh (hue IQR {q3 - q1:.0f} deg)"

    # The colour bar is below the 3D view, outside it, and labelled without "-0".
    bar = view.colour_bar
    interactor = view.plotter.interactor
    assert bar.isVisible() and bar.showing and bar.title == f"log10 weight, handle {handle}"
    bar_rect = QRect(bar.mapTo(main_window, QPoint(0, 0)), bar.size())
    view_rect = QRect(interactor.mapTo(main_window, QPoint(0, 0)), interactor.size())
    assert not bar_rect.intersects(view_rect) and bar_rect.top() >= view_rect.bottom()
    assert main_window.rect().contains(bar_rect)
    labels = bar.labels()[1:]
    assert len(labels) >= 3 and not any(text.startswith("-0") for text in labels), labels
    editor.influence_mode.setCurrentIndex(editor.influence_mode.findData("response"))
    assert bar.labels()[1] == "0", bar.labels()  # the motion scale starts at zero
    # A screenshot (Ctrl+P) keeps the bar: the 3D view with the strip below it.
    import imageio.v3 as iio

    view.screenshot(str(tmp_path / "coloured.png"))
    shot, picture = iio.imread(tmp_path / "coloured.png"), view.image()
    assert shot.shape[0] == picture.shape[0] + bar.height() and shot.shape[1] == picture.shape[1]

    # A handle dragged to the right edge of the view, where the bar used to be, shows.
    editor.handles_action.setChecked(True)
    w, h = interactor.width(), interactor.height()
    target = np.array([0.875 * w, 0.5 * h])
    start = session.handle_targets()[handle]
    depth = view._display_depth(start)
    world = view._display_to_world(*view._widget_to_display(*target), depth)
    session.set_offset([handle], session.offsets[handle] + (world - start))
    qtbot.wait(50)
    at = view.world_to_widget(session.handle_targets()[handle : handle + 1])[0]
    np.testing.assert_allclose(at, target, atol=2)
    patch = view.image()[round(at[1]) - 4 : round(at[1]) + 5, round(at[0]) - 4 : round(at[0]) + 5]
    red = (patch[..., 0].astype(int) - patch[..., 2] > 80) & (patch[..., 0] > 150)
    assert red.sum() >= 10, "the selected (red) handle is drawn there, not covered"


def test_escape_clears_the_selection_and_its_offset_fields(editor, qtbot, main_window):
    session = editor.session
    session.select([3])
    for spin, value in zip(editor.offset_spins, (0.1, 0.0, -0.2)):
        spin.setValue(value)
    editor.apply_offset_button.click()
    assert [spin.text() for spin in editor.offset_spins] == ["0.1000", "0.0000", "-0.2000"]
    main_window.activateWindow()
    qtbot.waitUntil(main_window.isActiveWindow, timeout=5000)
    editor.view.plotter.interactor.setFocus()
    QTest.keyClick(main_window, Qt.Key.Key_Escape)
    qtbot.wait(20)
    assert session.selection == ()
    assert editor.selection_label.text().startswith("none")
    for spin in editor.offset_spins:
        assert spin.text().strip() == "" and not spin.isEnabled()
    assert not editor.apply_offset_button.isEnabled()
    session.select([3])  # selecting again shows that handle's offset
    assert [spin.text() for spin in editor.offset_spins] == ["0.1000", "0.0000", "-0.2000"]
    assert all(spin.isEnabled() for spin in editor.offset_spins)


def test_large_mesh_shows_one_message_and_the_workers_progress(
    editor, qtbot, main_window, monkeypatch, tmp_path
):
    from PyQt6.QtCore import QTimer

    import app.models.mesh_session as mesh_session

    # The demo's 2,562-vertex sphere takes the large-mesh path: a separate process.
    monkeypatch.setattr(mesh_session, "PROCESS_THRESHOLD", 1000)
    path = tmp_path / "sphere.ply"
    save_mesh(path, *icosphere(4))
    bar, label, status = (
        main_window.progress_bar,
        main_window.progress_label,
        main_window.statusBar(),
    )
    ticks, shots = [], []

    def tick() -> None:
        ticks.append(
            (status.currentMessage(), label.isVisible(), label.text(), bar.isVisible(), bar.value())
        )
        if bar.isVisible() and bar.value() >= 250 and not shots:
            shots.append((bar.value(), bar.grab().toImage()))

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(20)
    with qtbot.waitSignal(editor.session.mesh_changed, timeout=120_000):
        editor.open_mesh(path, num_handles=8)
    timer.stop()
    assert editor.session.num_handles == 8 and len(editor.session.vertices) == 2562
    busy = [t for t in ticks if t[3]]
    assert busy, "the progress bar showed while the mesh was prepared"
    both = [t for t in ticks if t[0] and t[1]]
    assert not both, f"two messages at once: {both[:3]}"
    assert {t[2] for t in busy} >= {"Starting the precomputation process"}, {t[2] for t in busy}
    values = [t[4] for t in busy]
    assert any(0 < v < 1000 for v in values) and values == sorted(values), values
    # The bar is drawn filled in proportion (the highlight colour spans that part of it).
    value, image = shots[0]
    highlight = main_window.palette().color(main_window.palette().ColorRole.Highlight)
    row = image.height() // 2
    filled = sum(
        1
        for x in range(image.width())
        if abs(image.pixelColor(x, row).blue() - highlight.blue()) < 40
        and abs(image.pixelColor(x, row).red() - highlight.red()) < 40
    )
    assert filled > 0.5 * value / 1000 * image.width(), (filled, value, image.width())


def _learned_sphere(k: int = 6):
    """A 162-vertex sphere with an 'initial' A0 (softmax of -16 log d around k handles, as the
    authors initialise it, here on straight-line distance) and a 'learned' A (A0's logits
    perturbed), both (k, N) right-stochastic: what a category checkpoint hands the Editor."""
    from engine.io.mesh import validate_mesh

    vertices, faces = icosphere(2)
    handle_ids = np.linspace(0, len(vertices) - 1, k).astype(np.int64)
    d = np.linalg.norm(vertices[handle_ids][:, None] - vertices[None], axis=-1)
    logits = -16.0 * np.log(np.maximum(d, 0.05))

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    initial = softmax(logits)
    learned = softmax(logits + np.random.default_rng(0).normal(scale=3.0, size=logits.shape))
    return validate_mesh(vertices, faces), handle_ids, learned, initial


def test_learned_dependency_colours_beside_the_initial_one(editor, qtbot):
    """Opened with a learned and an initial A (as the Category tab's 'Open in Editor' does),
    the colour-by choices add the initial row and the change; a plain mesh has neither."""
    from app.models.mesh_session import symmetric_range

    combo, view = editor.influence_mode, editor.view
    modes = [combo.itemData(i) for i in range(combo.count())]
    assert modes == ["weights", "response"], "the demo mesh holds no initial A"

    mesh, handle_ids, learned, initial = _learned_sphere()
    with qtbot.waitSignal(editor.session.mesh_changed, timeout=60_000):
        editor.session.open(
            mesh, handle_ids=handle_ids, dependency=learned, initial_dependency=initial
        )
    session = editor.session
    assert session.has_initial_dependency
    modes = [combo.itemData(i) for i in range(combo.count())]
    assert modes == ["weights", "response", "initial", "change"]
    handle = 2
    session.select([handle])

    def shown() -> np.ndarray:
        return np.asarray(view._poly.point_data["influence"], dtype=np.float64)

    assert combo.currentData() == "weights"
    np.testing.assert_allclose(shown(), np.log10(learned[handle]), rtol=1e-9)
    assert view.colour_bar.title == f"log10 weight, handle {handle}"

    combo.setCurrentIndex(combo.findData("initial"))
    np.testing.assert_allclose(shown(), np.log10(initial[handle]), rtol=1e-9)
    assert view.colour_bar.title == f"log10 initial weight, handle {handle}"
    assert not np.allclose(shown(), np.log10(learned[handle]))

    combo.setCurrentIndex(combo.findData("change"))
    change = learned[handle] - initial[handle]
    np.testing.assert_allclose(shown(), change, atol=1e-12)
    lo, hi = view._mesh_actor.mapper.scalar_range
    assert lo == pytest.approx(-hi) and hi > 0, "the change scale is centred on 0"
    assert (lo, hi) == pytest.approx(symmetric_range(change))
    assert hi == pytest.approx(np.percentile(np.abs(change), 99.0))
    # A diverging map: the ends differ in hue (blue to red), the middle is pale.
    lut = view._mesh_actor.mapper.lookup_table
    low, mid, high = (np.array(lut.map_value(v)[:3]) for v in (lo, 0.0, hi))
    assert low[2] > low[0] and high[0] > high[2] and mid.min() > 0.7, (low, mid, high)
    # Another handle follows the chosen mode.
    session.select([4])
    np.testing.assert_allclose(shown(), learned[4] - initial[4], atol=1e-12)

    # A plain mesh again: the comparisons go, the choice falls back to the weights.
    with qtbot.waitSignal(session.mesh_changed, timeout=60_000):
        editor.open_demo(num_handles=8)
    assert not session.has_initial_dependency
    assert [combo.itemData(i) for i in range(combo.count())] == ["weights", "response"]
    assert combo.currentData() == "weights"
    session.select([1])
    np.testing.assert_allclose(
        shown(), np.log10(np.maximum(session.influence(1), 1e-300)), rtol=1e-9
    )
    assert view.colour_bar.title == "log10 weight, handle 1"
