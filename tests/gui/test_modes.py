"""The Modes workspace (PCA deformation modes) in the real main window, and its session model.

The demo source (random handle offsets on the shipped template, ~400 shapes) takes a few
seconds; other tests feed small shape sets or a PCA directly so the file stays quick.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PyQt6.QtCore import Qt
from PyQt6.QtTest import QTest

from app import dialogs
from app.models.pca_session import ModesData, PCARequest, PCASession
from engine.analysis import pca
from engine.analysis.shape_sources import HandleSetFiles

WAIT_MS = 120_000


def _skeleton_modes(num_shapes: int = 60) -> ModesData:
    """PCA of a small synthetic human set: points and bones."""
    from engine.analysis.sources import align_shapes
    from engine.io.keypoints import load_dataset

    seq = load_dataset(f"synthetic:human?frames={num_shapes}")
    result = pca(align_shapes(seq.points3d), 6, device="cpu")
    return ModesData(result=result, edges=np.asarray(seq.edges), description="synthetic human")


def _modes_ws(window):
    return window.workspace("Modes")


def _wait_result(qtbot, ws, previous=None):
    qtbot.waitUntil(
        lambda: (
            ws.session.result is not None
            and ws.session.result is not previous
            and not ws.session.busy
        ),
        timeout=WAIT_MS,
    )


def test_session_shapes_and_signals(qtbot):
    session = PCASession()
    data = _skeleton_modes(30)
    with qtbot.waitSignals([session.modes_changed, session.coefficients_changed]):
        session.set_modes(data)
    res = data.result
    np.testing.assert_allclose(session.current_shape(), res.mean.reshape(-1, 3).numpy())
    with qtbot.waitSignal(session.coefficients_changed):
        session.set_coefficient(1, -1.25)
    expected = res.mean + (-1.25 * res.std[1]) * res.modes[1]
    np.testing.assert_allclose(session.current_shape(), expected.reshape(-1, 3).numpy(), atol=1e-12)
    with qtbot.waitSignal(session.k_changed):
        session.set_k(1.5)
    cells = session.layout_cells()
    assert len(cells) == 7 and cells[0].label == "mean"
    assert {c.label for c in cells} >= {"mode 1: \u22121.5 SD", "mode 3: +1.5 SD"}
    sweep = session.sweep_values(8)
    assert sweep.shape == (8,) and np.abs(sweep).max() <= 1.5
    assert np.abs(sweep).max() > 1.45 and len(np.unique(np.round(sweep, 9))) == 8
    with pytest.raises(ValueError):
        session.set_k(0)
    with pytest.raises(IndexError):
        session.set_coefficient(6, 1.0)
    session.reset_coefficients()
    assert not session.coefficients.any()


def test_demo_modes_scrub_export_animate(main_window, qtbot, tmp_path):
    import imageio.v3 as iio

    ws = _modes_ws(main_window)
    main_window.show_workspace(ws)  # the demo PCA starts when the tab is first shown
    _wait_result(qtbot, ws)
    session = ws.session
    res = session.result
    assert session.kind == "mesh" and res.num_samples == 400 and res.num_modes == 10
    mean = res.mean.reshape(-1, 3).numpy()
    shown = ws.explore_view.shape.displayed_points()
    np.testing.assert_allclose(shown, mean, atol=1e-12)
    assert ws.chart.heights.shape == (10,)
    np.testing.assert_allclose(ws.chart.heights, 100 * res.explained_variance_ratio.numpy())

    # Move mode 1's slider with the keyboard (3 page steps of 0.5 sigma) and mode 2's by -0.7.
    slider = ws.sliders[0]
    slider.setFocus()
    for _ in range(3):
        QTest.keyClick(slider, Qt.Key.Key_PageUp)
    ws.sliders[1].setValue(-70)
    assert session.coefficients[:2].tolist() == [1.5, -0.7]
    shown = ws.explore_view.shape.displayed_points()
    step = 1.5 * res.std[0] * res.modes[0] - 0.7 * res.std[1] * res.modes[1]
    np.testing.assert_allclose(shown - mean, step.reshape(-1, 3).numpy(), atol=1e-12)
    assert ws.slider_values[0].text() == "+1.50\u03c3"

    # k moves the mode cells of the layout; the centre stays the mean.
    before = ws.layout_view.render_image()
    ws.k_spin.setValue(3.0)
    qtbot.waitUntil(lambda: session.k == 3.0)
    right = ws.layout_view.cells[(1, 2)].displayed_points()
    np.testing.assert_allclose(
        right - mean, (3.0 * res.std[0] * res.modes[0]).reshape(-1, 3).numpy(), atol=1e-12
    )
    np.testing.assert_allclose(ws.layout_view.cells[(1, 1)].displayed_points(), mean)
    after = ws.layout_view.render_image()
    assert before.shape == after.shape
    assert (np.abs(before.astype(int) - after.astype(int)).sum(axis=2) > 30).mean() > 0.002

    png = ws.export_layout(tmp_path / "layout.png")
    image = iio.imread(png)
    assert image.shape[:2] == after.shape[:2] and image.std() > 5
    explore_size = ws.explore_view.render_image().shape[:2]
    assert ws.export_sweep(tmp_path / "sweep.gif", mode=2, frames=6) == 6
    gif = iio.imread(tmp_path / "sweep.gif", index=None)
    assert gif.shape[0] == 6 and gif.shape[1:3] == explore_size
    assert not np.array_equal(gif[1], gif[3])
    assert ws.export_sweep(tmp_path / "sweep.mp4", mode=0, frames=8) == 8
    frames = list(iio.imiter(tmp_path / "sweep.mp4"))
    assert len(frames) == 8
    assert frames[0].shape[:2] == (
        explore_size[0] - explore_size[0] % 2,
        explore_size[1] - explore_size[1] % 2,
    )
    # the scrubbed shape is back after the export
    np.testing.assert_allclose(
        ws.explore_view.shape.displayed_points() - mean, step.reshape(-1, 3).numpy(), atol=1e-12
    )

    # Animate sweeps the chosen mode through +/- k sigma.
    ws.animate_mode.setCurrentIndex(1)
    qtbot.mouseClick(ws.animate_button, Qt.MouseButton.LeftButton)
    seen = set()
    qtbot.waitUntil(
        lambda: seen.add(round(session.coefficients[1], 6)) or len(seen) > 4, timeout=5000
    )
    qtbot.mouseClick(ws.animate_button, Qt.MouseButton.LeftButton)
    assert not ws._timer.isActive()
    assert max(abs(v) for v in seen) <= 3.0 + 1e-9


def test_skeleton_modes_draw_points_and_bones(main_window, qtbot):
    ws = _modes_ws(main_window)
    ws._pending = None  # no demo run: this test feeds a PCA directly
    main_window.show_workspace(ws)
    data = _skeleton_modes()
    ws.session.set_modes(data)
    assert ws.session.kind == "skeleton"
    assert len(ws.layout_view.cells) == 7
    for cell in ws.layout_view.cells.values():
        assert [d.n_lines for d in cell.datasets] == [16, 0]  # bones, joints
    res = data.result
    ws.sliders[2].setValue(120)
    shown = ws.explore_view.shape.displayed_points()
    expected = res.mean + 1.2 * res.std[2] * res.modes[2]
    np.testing.assert_allclose(shown, expected.reshape(-1, 3).numpy(), atol=1e-12)
    bones = np.asarray(ws.explore_view.shape.datasets[0].points)
    np.testing.assert_allclose(bones, shown)
    assert [s.isVisible() for s in ws.sliders[:6]] == [True] * 6  # one per computed mode
    assert not any(s.isVisible() for s in ws.sliders[6:])
    image = ws.explore_view.render_image()
    assert (image.sum(axis=2) < 600).mean() > 0.001  # something other than the white background


def _handle_set(path, mesh, ids, offsets, mesh_hash=None):
    from engine.io.mesh import mesh_hash as hash_of

    path.write_text(
        json.dumps(
            {
                "format": "shapebench-handle-set",
                "version": 1,
                "mesh_hash": mesh_hash or hash_of(mesh.vertices, mesh.faces),
                "num_vertices": len(mesh.vertices),
                "num_handles": len(ids),
                "handle_ids": [int(i) for i in ids],
                "offsets": np.asarray(offsets).tolist(),
            }
        )
    )
    return str(path)


def test_handle_set_source_and_refusal_keeps_previous(main_window, qtbot, tmp_path, monkeypatch):
    from engine.analysis.shape_sources import DEMO_TEMPLATE
    from engine.io.mesh import load_mesh

    errors = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, exc: errors.append(str(exc)))
    ws = _modes_ws(main_window)
    mesh = load_mesh(DEMO_TEMPLATE)
    ids = [10, 500, 1500]
    rng = np.random.default_rng(4)
    paths = [
        _handle_set(tmp_path / f"set{i}.json", mesh, ids, 0.05 * rng.normal(size=(3, 3)))
        for i in range(4)
    ]
    ws.compute(PCARequest(HandleSetFiles(tuple(paths))))
    main_window.show_workspace(ws)
    _wait_result(qtbot, ws)
    first = ws.session.result
    assert first.num_samples == 4 and first.num_modes == 3 and ws.session.kind == "mesh"
    assert [s.isVisible() for s in ws.sliders[:3]] == [True] * 3
    assert not any(s.isVisible() for s in ws.sliders[3:])
    assert not errors

    foreign = _handle_set(
        tmp_path / "foreign.json", mesh, ids, np.zeros((3, 3)), mesh_hash="0" * 64
    )
    worker = ws.compute(PCARequest(HandleSetFiles((paths[0], foreign))))
    qtbot.waitUntil(lambda: not worker.is_running() and not ws.session.busy, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert "foreign.json" in errors[0] and "another mesh" in errors[0]
    assert ws.session.result is first


def test_open_checkpoint_shows_prn_reconstruction_modes(main_window, qtbot, tmp_path):
    from engine.prn.checkpoint import save_checkpoint
    from engine.prn.config import TrainConfig
    from engine.prn.model import PRNFCN

    torch.manual_seed(0)
    model = PRNFCN(17, hidden=16)
    path = tmp_path / "tiny.pt"
    config = TrainConfig(hidden=16, data="synthetic:human?frames=120")
    save_checkpoint(
        path,
        model_state=model.state_dict(),
        config=config.to_dict(),
        data_description={},
        metrics={},
    )
    ws = _modes_ws(main_window)
    main_window.open_checkpoint(path)
    assert ws.current_kind() == "checkpoint" and ws.files_label.text() == "tiny.pt"
    main_window.show_workspace(ws)
    _wait_result(qtbot, ws)
    assert ws.session.kind == "skeleton" and ws.session.result.num_samples == 120
    assert ws.session.data.edges.shape == (16, 2)
    assert "tiny.pt" in ws.session.data.description


def test_one_slider_per_computed_mode_scrolls_into_view(main_window, qtbot):
    from engine.analysis.sources import align_shapes
    from engine.io.keypoints import load_dataset

    ws = _modes_ws(main_window)
    ws._pending = None
    main_window.show_workspace(ws)
    seq = load_dataset("synthetic:human?frames=80")
    result = pca(align_shapes(seq.points3d), 12, device="cpu")
    ws.session.set_modes(ModesData(result=result, edges=np.asarray(seq.edges), description="x"))
    qtbot.wait(50)
    assert result.num_modes == 12
    shown = [i for i, s in enumerate(ws.sliders) if s.isVisible()]
    assert shown == list(range(12)), shown
    labels = [ws.slider_labels[i].text() for i in shown]
    assert labels[11].startswith("Mode 12 (") and labels[0].startswith("Mode 1 (")
    assert ws.animate_mode.count() == 12
    # The last slider lies below the scroll area's view until scrolled to, then shows whole.
    last = ws.sliders[11]
    assert last.visibleRegion().isEmpty()
    ws.sliders_area.ensureWidgetVisible(last)
    qtbot.wait(20)
    assert last.visibleRegion().boundingRect() == last.rect()
    assert ws.reset_button.visibleRegion().boundingRect() == ws.reset_button.rect()
    last.setValue(150)
    assert ws.slider_values[11].text() == "+1.50\u03c3"
    expected = result.mean + 1.5 * result.std[11] * result.modes[11]
    np.testing.assert_allclose(
        ws.explore_view.shape.displayed_points(), expected.reshape(-1, 3).numpy(), atol=1e-12
    )
