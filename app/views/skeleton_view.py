"""A 3D view of one skeleton: points drawn as spheres, bones as lines, optional per-point colours.

Used for PRN predictions in the Training workspace, for each panel of the Compare workspace and
by the Modes workspace. Frame-to-frame updates move the existing VTK data in place (no actor
rebuild), so a playing sequence or a live training preview stays cheap::

    view = SkeletonView(title="PRN")
    view.set_skeleton(points, edges, scalars=errors, clim=(0, 0.2))   # (P,3), (E,2), (P,)
    view.screenshot("/tmp/prn.png")

Coordinates are the camera frame of the data; the default camera looks at the x-y plane with x
to the right and y up, exactly as the 2D input is plotted, so the view starts as the input's
picture and the user rotates it to see depth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyvista as pv
from PyQt6.QtWidgets import QVBoxLayout, QWidget
from pyvistaqt import QtInteractor

POINT_COLOR = "#1f77b4"
BONE_COLOR = "#555555"
ERROR_CMAP = "plasma"


def _lines(edges: np.ndarray) -> np.ndarray:
    """VTK cell array ``[2, a, b, 2, c, d, ...]`` for ``(E, 2)`` bone indices."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return np.column_stack([np.full(len(edges), 2, np.int64), edges]).ravel()


class SkeletonView(QWidget):
    """One PyVista view of points and bones.

    Args:
        parent: Qt parent.
        title: text in the upper-left corner.
        point_size: sphere diameter in pixels.
        line_width: bone width in pixels.
        scalar_title: label of the colour bar shown when points are coloured by scalars.
    """

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        title: str = "",
        point_size: float = 11.0,
        line_width: float = 3.0,
        scalar_title: str = "error",
    ) -> None:
        super().__init__(parent)
        self.plotter = QtInteractor(self, auto_update=False)
        self.plotter.set_background("white")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plotter)
        self._point_size = point_size
        self._line_width = line_width
        self._scalar_title = scalar_title
        self._points_mesh: pv.PolyData | None = None
        self._bones_mesh: pv.PolyData | None = None
        self._edges_key: bytes | None = None
        self._colored = False
        self._bar = False
        self._closed = False
        self._has_camera = False
        self._title = ""
        self._title_actor = None
        self.set_title(title)

    # ---------------------------------------------------------------- content
    def set_title(self, title: str, render: bool = False) -> None:
        """Show ``title`` in the upper-left corner (drawn with the next render unless ``render``)."""
        if title == self._title and self._title_actor is not None:
            return
        self._title = title
        if self._title_actor is None:
            self._title_actor = self.plotter.add_text(
                title,
                position="upper_left",
                font_size=10,
                color="black",
                name="title",
                render=False,
            )
        else:
            # Changing the text in place: re-adding the actor would render the view again.
            self._title_actor.set_text("upper_left", title)
        if render:
            self.render()

    @property
    def title(self) -> str:
        """The text shown in the upper-left corner."""
        return self._title

    def set_skeleton(
        self,
        points: np.ndarray,
        edges: np.ndarray | None = None,
        *,
        scalars: np.ndarray | None = None,
        clim: tuple[float, float] | None = None,
        color: str = POINT_COLOR,
        reset_camera: bool = False,
        scalar_bar: bool = True,
    ) -> None:
        """Draw one skeleton, replacing the previous one.

        Args:
            points: ``(P, 3)`` positions (any float dtype; any units).
            edges: ``(E, 2)`` integer bone indices into ``points``, or None for points only.
            scalars: ``(P,)`` values colouring the points (e.g. per-point error), or None for
                one ``color``.
            clim: colour range for ``scalars``; defaults to their min/max. Give the same range to
                several views to make their colours comparable.
            color: point colour when ``scalars`` is None.
            reset_camera: fit the camera to this skeleton. The camera is also fitted the first
                time a skeleton is shown; otherwise it stays where the user left it.
            scalar_bar: show the colour bar of ``scalars`` (views sharing one ``clim`` need
                only one).
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        edges_arr = None if edges is None else np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        key = b"" if edges_arr is None else edges_arr.tobytes()
        colored = scalars is not None
        bar = colored and scalar_bar
        same_layout = (
            self._points_mesh is not None
            and self._points_mesh.n_points == len(points)
            and key == self._edges_key
            and colored == self._colored
            and bar == self._bar
        )
        if same_layout:
            self._points_mesh.points = points
            if self._bones_mesh is not None:
                self._bones_mesh.points = points
        else:
            self._build(points, edges_arr, colored, bar, color)
            self._edges_key = key
            self._colored = colored
            self._bar = bar
        if colored:
            values = np.asarray(scalars, dtype=np.float64).reshape(-1)
            self._points_mesh.point_data[self._scalar_title] = values
            lo, hi = clim if clim is not None else (float(values.min()), float(values.max()))
            if hi <= lo:
                hi = lo + 1e-12
            self._points_actor.mapper.scalar_range = (lo, hi)
        else:
            self._points_actor.prop.color = color
        if reset_camera or not self._has_camera:
            self.reset_camera()
        else:
            self.render()

    def _build(
        self,
        points: np.ndarray,
        edges: np.ndarray | None,
        colored: bool,
        bar: bool,
        color: str,
    ) -> None:
        self.plotter.remove_actor("points", render=False)
        self.plotter.remove_actor("bones", render=False)
        if self._bar:
            self.plotter.remove_scalar_bar(self._scalar_title)
        self._bones_mesh = None
        if edges is not None and len(edges):
            self._bones_mesh = pv.PolyData(points.copy(), lines=_lines(edges))
            self.plotter.add_mesh(
                self._bones_mesh,
                color=BONE_COLOR,
                line_width=self._line_width,
                name="bones",
                render=False,
                reset_camera=False,
            )
        self._points_mesh = pv.PolyData(points.copy())
        kwargs: dict = {"color": color}
        if colored:
            self._points_mesh.point_data[self._scalar_title] = np.zeros(len(points))
            kwargs = {
                "scalars": self._scalar_title,
                "cmap": ERROR_CMAP,
                "show_scalar_bar": bar,
                "scalar_bar_args": {
                    "title": self._scalar_title,
                    "color": "black",
                    "vertical": True,
                    "position_x": 0.84,
                    "position_y": 0.08,
                    "height": 0.35,
                    "width": 0.06,
                    "n_labels": 3,
                    "title_font_size": 12,
                    "label_font_size": 11,
                    "fmt": "%.3g",
                },
            }
        self._points_actor = self.plotter.add_mesh(
            self._points_mesh,
            render_points_as_spheres=True,
            point_size=self._point_size,
            name="points",
            render=False,
            reset_camera=False,
            **kwargs,
        )

    def clear(self) -> None:
        """Remove the skeleton (the title stays)."""
        self.plotter.remove_actor("points", render=False)
        self.plotter.remove_actor("bones", render=False)
        if self._bar:
            self.plotter.remove_scalar_bar(self._scalar_title)
        self._points_mesh = None
        self._bones_mesh = None
        self._edges_key = None
        self._colored = False
        self._bar = False
        self.render()

    @property
    def points(self) -> np.ndarray | None:
        """``(P, 3)`` positions currently drawn, or None."""
        return None if self._points_mesh is None else np.asarray(self._points_mesh.points)

    # ---------------------------------------------------------------- camera and output
    def reset_camera(self) -> None:
        """Look at the x-y plane (x right, y up, like the 2D plot) and fit the skeleton."""
        camera = self.plotter.camera
        camera.position = (0.0, 0.0, 1.0)
        camera.focal_point = (0.0, 0.0, 0.0)
        camera.up = (0.0, 1.0, 0.0)
        self.plotter.reset_camera()
        self._has_camera = self._points_mesh is not None
        self.render()

    def render(self) -> None:
        """Schedule a redraw (no-op once closed).

        Asks Qt to repaint the widget; its paintGL renders the VTK scene once, however many
        changes were made since. Calling the plotter's ``render()`` instead would draw twice
        (once now, once more in paintGL), which a software-rendered window pays for.
        """
        if not self._closed:
            QWidget.update(self.plotter)

    def render_now(self) -> None:
        """Render the VTK scene immediately (before reading pixels back)."""
        if not self._closed:
            self.plotter.render()

    def render_image(self) -> np.ndarray:
        """The view as an ``(H, W, 3)`` uint8 RGB image at the widget's current size."""
        self.render_now()
        return np.asarray(self.plotter.screenshot(None, return_img=True))[..., :3].copy()

    def screenshot(self, path: str | Path) -> Path:
        """Save the view as a PNG at the widget's current size and return the path."""
        from app.export import save_png

        return save_png(self.render_image(), path)

    def close_view(self) -> None:
        """Release the VTK render window; call before the widget is destroyed."""
        if not self._closed:
            self._closed = True
            self.plotter.close()

    def closeEvent(self, event) -> None:
        """Release VTK resources with the widget."""
        self.close_view()
        super().closeEvent(event)
