"""Views of PCA deformation modes: seed 001 Fig. 2's 3 x 3 layout (mean in the centre, modes at
+/- k sigma around it), a single explore view driven by mode coefficients, and the explained-
variance chart. Shapes are meshes (faces) or skeletons (points and bones).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pyvista as pv
from PyQt6.QtCore import QSize
from PyQt6.QtWidgets import QVBoxLayout, QWidget
from pyvistaqt import QtInteractor

from app.models.pca_session import PCASession
from app.views.skeleton_view import BONE_COLOR

MEAN_COLOR = "#b0b0b0"
MODE_COLORS = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e"]


def _mesh_faces(faces: np.ndarray) -> np.ndarray:
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    return np.column_stack([np.full(len(faces), 3, np.int64), faces]).ravel()


def _bone_lines(edges: np.ndarray) -> np.ndarray:
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return np.column_stack([np.full(len(edges), 2, np.int64), edges]).ravel()


class ShapeActors:
    """One shape drawn in the current subplot of a plotter: a surface, or points and bones.

    ``set_points`` moves the existing VTK data in place, so scrubbing never rebuilds actors.
    """

    def __init__(
        self,
        plotter: pv.Plotter,
        points: np.ndarray,
        *,
        faces: np.ndarray | None,
        edges: np.ndarray | None,
        color: str,
        name: str,
        point_size: float = 9.0,
    ) -> None:
        points = np.asarray(points, dtype=np.float64)
        self.datasets: list[pv.PolyData] = []
        self.actors = []
        if faces is not None:
            surface = pv.PolyData(points.copy(), faces=_mesh_faces(faces))
            self.actors.append(
                plotter.add_mesh(
                    surface,
                    color=color,
                    smooth_shading=True,
                    specular=0.2,
                    name=name,
                    render=False,
                    reset_camera=False,
                )
            )
            self.datasets.append(surface)
            return
        if edges is not None and len(edges):
            bones = pv.PolyData(points.copy(), lines=_bone_lines(edges))
            self.actors.append(
                plotter.add_mesh(
                    bones,
                    color=BONE_COLOR,
                    line_width=3,
                    name=name + ":bones",
                    render=False,
                    reset_camera=False,
                )
            )
            self.datasets.append(bones)
        joints = pv.PolyData(points.copy())
        self.actors.append(
            plotter.add_mesh(
                joints,
                color=color,
                render_points_as_spheres=True,
                point_size=point_size,
                name=name,
                render=False,
                reset_camera=False,
            )
        )
        self.datasets.append(joints)

    def set_points(self, points: np.ndarray) -> None:
        """Move the shape to ``points`` (P, 3)."""
        points = np.asarray(points, dtype=np.float64)
        for data in self.datasets:
            data.points = points

    def displayed_points(self) -> np.ndarray:
        """(P, 3) points the renderer draws (read back from the actor's mapper input)."""
        return np.asarray(pv.wrap(self.actors[-1].mapper.GetInput()).points)


def _set_camera(plotter: pv.Plotter, kind: str | None) -> None:
    if kind == "mesh":
        # Meshes (the demo animal: x forward, z up): a three-quarter view from the side.
        plotter.camera.position = (0.45, -1.0, 0.35)
        plotter.camera.up = (0.0, 0.0, 1.0)
    else:
        # Skeletons: the x-y plane as the 2D input is plotted, like SkeletonView.
        plotter.camera.position = (0.0, 0.0, 1.0)
        plotter.camera.up = (0.0, 1.0, 0.0)
    plotter.camera.focal_point = (0.0, 0.0, 0.0)


class LayoutView(QWidget):
    """Figure 2's 3 x 3 layout (mean in the centre, modes 1-3 at -/+ k sigma), linked cameras."""

    def __init__(self, session: PCASession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.plotter = QtInteractor(self, shape=(3, 3), border=False, auto_update=False)
        self.plotter.set_background("white")
        self.plotter.link_views()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plotter)
        self.cells: dict[tuple[int, int], ShapeActors] = {}
        self._closed = False
        session.modes_changed.connect(self.rebuild)
        session.k_changed.connect(self.update_shapes)

    def rebuild(self) -> None:
        """Draw the cells of the session's PCA from scratch (new data or topology)."""
        for row in range(3):
            for col in range(3):
                self.plotter.subplot(row, col)
                self.plotter.clear_actors()
                self.plotter.remove_actor("label", render=False)
        self.cells.clear()
        data = self.session.data
        if data is None:
            self.render()
            return
        for cell in self.session.layout_cells():
            self.plotter.subplot(cell.row, cell.col)
            color = MEAN_COLOR if cell.mode is None else MODE_COLORS[cell.mode]
            points = self.session.mode_shape(cell.mode, cell.sign * self.session.k)
            self.cells[(cell.row, cell.col)] = ShapeActors(
                self.plotter,
                points,
                faces=data.faces,
                edges=data.edges,
                color=color,
                name=f"shape{cell.row}{cell.col}",
            )
            self._label(cell.label)
        self.reset_camera()

    def _label(self, text: str) -> None:
        # A fixed-size text actor: corner annotations shrink long texts, so labels would differ.
        self.plotter.add_text(
            text, position=(0.04, 0.9), viewport=True, font_size=8, color="black", name="label"
        )

    def update_shapes(self) -> None:
        """Move the mode cells to the session's current k (no actor rebuild)."""
        if self.session.data is None:
            return
        for cell in self.session.layout_cells():
            self.cells[(cell.row, cell.col)].set_points(
                self.session.mode_shape(cell.mode, cell.sign * self.session.k)
            )
            self.plotter.subplot(cell.row, cell.col)
            self._label(cell.label)
        self.render()

    def reset_camera(self) -> None:
        """Fit every shape of the layout (one shared camera)."""
        self.plotter.subplot(1, 1)
        _set_camera(self.plotter, self.session.kind)
        if self.cells:
            bounds = np.array([ds.bounds for c in self.cells.values() for ds in c.datasets])
            self.plotter.reset_camera(bounds=(
                bounds[:, 0].min(), bounds[:, 1].max(), bounds[:, 2].min(),
                bounds[:, 3].max(), bounds[:, 4].min(), bounds[:, 5].max(),
            ))  # fmt: skip
            self.plotter.camera.zoom(1.25)
        self.render()

    def render(self) -> None:
        """Redraw now (no-op once closed)."""
        if not self._closed:
            self.plotter.render()

    def render_image(self) -> np.ndarray:
        """The layout as an (H, W, 3) uint8 image at the widget's size."""
        self.render()
        return np.asarray(self.plotter.screenshot(None, return_img=True))[..., :3].copy()

    def close_view(self) -> None:
        """Release the VTK render window."""
        if not self._closed:
            self._closed = True
            self.plotter.close()


class ExploreView(QWidget):
    """One large view of the shape at the scrubbed coefficients."""

    def __init__(self, session: PCASession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.plotter = QtInteractor(self, auto_update=False)
        self.plotter.set_background("white")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plotter)
        self.shape: ShapeActors | None = None
        self._closed = False
        session.modes_changed.connect(self.rebuild)
        session.coefficients_changed.connect(self.update_shape)

    def rebuild(self) -> None:
        """New PCA: draw the mean shape and fit the camera."""
        self.plotter.clear_actors()
        self.shape = None
        data = self.session.data
        if data is not None:
            self.shape = ShapeActors(
                self.plotter,
                self.session.current_shape(),
                faces=data.faces,
                edges=data.edges,
                color="#e0b27a" if data.faces is not None else MODE_COLORS[0],
                name="shape",
                point_size=14.0,
            )
            self.plotter.add_text(
                data.description,
                position=(0.02, 0.95),
                viewport=True,
                font_size=6,
                color="black",
                name="title",
            )
        self.reset_camera()

    def update_shape(self) -> None:
        """Show the session's current coefficients."""
        if self.shape is None:
            return
        self.shape.set_points(self.session.current_shape())
        self.render()

    def reset_camera(self) -> None:
        """Fit the shape, swept to +/- k sigma along every mode so it stays in view."""
        _set_camera(self.plotter, self.session.kind)
        if self.shape is not None:
            self.plotter.reset_camera(bounds=self.shape.datasets[-1].bounds)
            self.plotter.camera.zoom(0.85)
        self.render()

    def set_coefficients_image(self, coefficients: np.ndarray) -> np.ndarray:
        """Render the shape at ``coefficients`` (sigma units) and return the (H, W, 3) image."""
        self.shape.set_points(self.session.shape_at(coefficients))
        return self.render_image()

    def render(self) -> None:
        """Redraw now (no-op once closed)."""
        if not self._closed:
            self.plotter.render()

    def render_image(self) -> np.ndarray:
        """The view as an (H, W, 3) uint8 image at the widget's size."""
        self.render()
        return np.asarray(self.plotter.screenshot(None, return_img=True))[..., :3].copy()

    def close_view(self) -> None:
        """Release the VTK render window."""
        if not self._closed:
            self._closed = True
            self.plotter.close()


class VarianceChart(pg.PlotWidget):
    """Explained variance per mode (bars, %) and its cumulative sum (line)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="w")
        self.setMaximumWidth(400)
        item = self.getPlotItem()
        item.setLabel("bottom", "mode")
        item.setLabel("left", "variance explained (%)")
        item.showGrid(y=True, alpha=0.25)
        item.setYRange(0, 100)
        item.setMouseEnabled(x=False, y=False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.6, brush="#1f77b4")
        item.addItem(self.bars)
        self.cumulative = item.plot(
            [],
            [],
            pen=pg.mkPen("#d62728", width=2),
            symbol="o",
            symbolSize=5,
            symbolBrush="#d62728",
        )
        self.heights = np.zeros(0)

    def sizeHint(self) -> QSize:
        """Modest: docked under the Modes controls, it takes the height they leave (on a
        1280 x 800 screen the controls need most of it)."""
        return QSize(400, 200)

    def set_ratios(self, ratios: np.ndarray) -> None:
        """Show ``ratios`` (M,) fractions of the total variance."""
        self.heights = 100.0 * np.asarray(ratios, dtype=np.float64)
        x = np.arange(1, len(self.heights) + 1)
        self.bars.setOpts(x=x, height=self.heights, width=0.6)
        self.cumulative.setData(x, np.cumsum(self.heights))
        self.getPlotItem().setXRange(0.4, max(len(x), 1) + 0.6, padding=0)
