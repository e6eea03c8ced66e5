"""Linked 3D views, skeleton drawing, loss curves and image/animation export (no engine data)."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import pyvista

from app.export import hstack_images, save_animation, save_png

pyvista.OFF_SCREEN = False

P = 17
EDGES = np.array([[i, i + 1] for i in range(P - 1)])


def _skeleton(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(P, 3))


@pytest.fixture
def linked(qtbot):
    from app.views.linked_views import LinkedViews

    views = LinkedViews(count=3)
    qtbot.addWidget(views)
    views.resize(600, 220)
    views.show()
    qtbot.waitExposed(views)
    yield views
    views.close_views()


def test_linked_views_share_one_camera_and_rerender_on_interaction(linked, qtbot):
    for i, view in enumerate(linked.views):
        view.set_skeleton(_skeleton(0), EDGES, scalars=np.arange(P, dtype=float) if i else None)
    cams = [v.plotter.renderer.GetActiveCamera() for v in linked.views]
    assert all(c is cams[0] for c in cams)
    before = linked.views[2].render_image()

    renders = []
    linked.views[2].plotter.ren_win.AddObserver("EndEvent", lambda *_: renders.append(1))
    # A user drag in view 0 rotates the shared camera and fires InteractionEvent there.
    linked.views[0].plotter.camera.azimuth += 60
    linked.views[0].plotter.iren.interactor.InvokeEvent("InteractionEvent")
    qtbot.waitUntil(lambda: len(renders) > 0, timeout=2_000)
    assert renders, "view 2 was not re-rendered when view 0 was interacted with"
    after = linked.views[2].render_image()
    assert np.abs(after.astype(int) - before.astype(int)).sum() > 0


def test_skeleton_view_draws_points_and_error_colours(linked):
    view = linked.views[1]
    view.set_skeleton(_skeleton(1), EDGES, scalars=np.linspace(0, 1, P), clim=(0, 1))
    image = view.render_image()
    # Points coloured by the plasma map: strongly non-grey pixels exist; white elsewhere.
    rgb = image.astype(int)
    colourful = (np.abs(rgb[..., 0] - rgb[..., 2]) > 80).sum()
    assert colourful > 50
    # Moving the skeleton in place updates what is drawn without rebuilding.
    moved = _skeleton(1) + np.array([5.0, 0.0, 0.0])
    view.set_skeleton(moved, EDGES, scalars=np.linspace(0, 1, P), clim=(0, 1), reset_camera=True)
    np.testing.assert_allclose(view.points, moved)


def test_linked_views_image_and_count(linked, tmp_path):
    for view in linked.views:
        view.set_skeleton(_skeleton(2), EDGES)
    widths = [v.render_image().shape[1] for v in linked.views]
    image = linked.render_image()
    assert image.shape[1] == sum(widths)
    linked.set_count(2)
    assert len(linked.views) == 2
    path = linked.screenshot(tmp_path / "two.png")
    assert iio.imread(path).shape[1] == sum(widths[:2])


def test_loss_curves_log_scale_and_append(qtbot):
    from app.views.plots import LossCurves

    curves = LossCurves()
    qtbot.addWidget(curves)
    curves.append([1, 2, 3], [{"f": 1.0, "g": 2.0, "total": 3.0}] * 3)
    assert curves.curve_points("f") == 0  # not drawn until redraw
    curves.redraw()
    assert curves.curve_points("total") == 3
    curves.append(list(range(4, 1004)), [{"f": 0.0, "g": 1.0, "total": 1.0}] * 1000)
    curves.redraw()
    steps, values = curves.data("f")
    assert values[-1] == 0.0
    assert len(steps) == 1003 and steps[-1] == 1003
    assert curves.getPlotItem().ctrl.logYCheck.isChecked()
    # Zero losses are drawn a decade below the smallest positive loss instead of vanishing.
    assert curves.curve_points("f") == 1003
    _, drawn = curves._curves["f"].getData()  # log10 of the values on a log axis
    assert drawn.min() == pytest.approx(np.log10(0.1))


def test_save_animation_frame_counts(tmp_path):
    frames = [np.full((31, 41, 3), 20 * i, np.uint8) for i in range(7)]
    assert save_animation(frames, tmp_path / "a.gif", fps=5) == 7
    assert iio.imread(tmp_path / "a.gif").shape[0] == 7
    assert save_animation(iter(frames), tmp_path / "a.mp4", fps=5) == 7
    video = iio.imread(tmp_path / "a.mp4")
    assert video.shape == (7, 30, 40, 3)  # cropped to even sizes for H.264
    with pytest.raises(ValueError, match="size"):
        save_animation([frames[0], frames[0][:10]], tmp_path / "b.gif")
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        save_animation(frames, tmp_path / "a.avi")


def test_hstack_and_png(tmp_path):
    a = np.zeros((10, 4, 3), np.uint8)
    b = np.zeros((6, 5, 4), np.uint8)
    out = hstack_images([a, b])
    assert out.shape == (10, 9, 3)
    assert (out[6:, 4:] == 255).all()
    path = save_png(out, tmp_path / "x.png")
    np.testing.assert_array_equal(iio.imread(path), out)
