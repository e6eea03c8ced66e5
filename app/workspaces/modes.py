"""The Modes workspace: PCA deformation modes of a shape set (seed 001, Figure 2).

Left, Figure 2's layout in one PyVista window of 3 x 3 linked views: the mean shape in the
centre, mode 1 at -k / +k sigma left and right of it, mode 2 above and below, mode 3 on the
diagonal. Right, one large view of ``mean + sum_i c_i sigma_i mode_i`` whose coefficients are
scrubbed with one slider per mode (the first five) or swept by Animate. Docks hold the source
(demo template deformations, a PRN checkpoint's reconstructions, handle-set files, mesh files),
k, the sliders, export buttons and the explained-variance bar chart. PCA runs on a Worker.
Shapes are meshes (faces) or skeletons (points and bones), whichever the source gives.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pyvista as pv
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)
from pyvistaqt import QtInteractor

from app.models.pca_session import ModesData, PCASession, ShapeSetSource, compute_modes
from app.views.skeleton_view import BONE_COLOR
from app.workers import Worker

NUM_SLIDERS = 5
SLIDER_STEPS = 100  # slider ticks per sigma
SLIDER_SIGMAS = 3  # slider range: +/- this many sigma
MEAN_COLOR = "#b0b0b0"
MODE_COLORS = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e"]
MESH_SUFFIXES = "Meshes (*.ply *.obj *.stl *.vtk *.vtp)"
SOURCE_LABELS = {
    "demo": "Demo template deformations",
    "checkpoint": "PRN checkpoint reconstructions",
    "handles": "Handle-set files",
    "meshes": "Mesh files",
}


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

    def set_ratios(self, ratios: np.ndarray) -> None:
        """Show ``ratios`` (M,) fractions of the total variance."""
        self.heights = 100.0 * np.asarray(ratios, dtype=np.float64)
        x = np.arange(1, len(self.heights) + 1)
        self.bars.setOpts(x=x, height=self.heights, width=0.6)
        self.cumulative.setData(x, np.cumsum(self.heights))
        self.getPlotItem().setXRange(0.4, max(len(x), 1) + 0.6, padding=0)


class ModesWorkspace(QWidget):
    """PCA deformation modes: Figure 2 layout, sliders, animation, variance chart, export."""

    title = "Modes"

    def __init__(self, window) -> None:
        super().__init__()
        self.window = window
        self.session = PCASession(self)
        self._worker: Worker | None = None
        self._pending: ShapeSetSource | None = self.session.source
        self._source_paths: dict[str, tuple[str, ...]] = {
            "checkpoint": (),
            "handles": (),
            "meshes": (),
        }
        self._data_path: str | None = None
        self._mesh_path: str | None = None

        self.layout_view = LayoutView(self.session)
        self.explore_view = ExploreView(self.session)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.layout_view)
        splitter.addWidget(self.explore_view)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(splitter)

        self.chart = VarianceChart()
        self._variance_dock = QDockWidget("Explained variance")
        self._variance_dock.setWidget(self.chart)
        self._timer = QTimer(self)
        self._timer.setInterval(40)
        self._timer.timeout.connect(self._animate_step)
        self._phase = 0
        self._build_controls()

        self.session.modes_changed.connect(self._on_modes_changed)
        self.session.coefficients_changed.connect(self._sync_sliders)
        self.session.busy_changed.connect(self._on_busy)

    # ---------------------------------------------------------------- controls
    def _build_controls(self) -> None:
        panel = QWidget()
        column = QVBoxLayout(panel)

        source_box = QGroupBox("Shapes")
        form = QFormLayout(source_box)
        self.source_combo = QComboBox()
        for kind, label in SOURCE_LABELS.items():
            self.source_combo.addItem(label, kind)
        self.source_combo.currentIndexChanged.connect(self._on_source_kind)
        form.addRow("Source", self.source_combo)
        files_row = QHBoxLayout()
        self.files_label = QLabel("built in")
        self.files_label.setWordWrap(True)
        self.files_button = QPushButton("Choose\u2026")
        self.files_button.clicked.connect(self.choose_files)
        files_row.addWidget(self.files_label, 1)
        files_row.addWidget(self.files_button)
        form.addRow("Files", files_row)
        extra_row = QHBoxLayout()
        self.extra_label = QLabel("")
        self.extra_label.setWordWrap(True)
        self.extra_button = QPushButton("Choose\u2026")
        self.extra_button.clicked.connect(self.choose_extra)
        extra_row.addWidget(self.extra_label, 1)
        extra_row.addWidget(self.extra_button)
        self.extra_title = QLabel("Data")
        form.addRow(self.extra_title, extra_row)
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(10, 100_000)
        self.samples_spin.setValue(self.session.source.num_samples)
        form.addRow("Samples", self.samples_spin)
        self.modes_spin = QSpinBox()
        self.modes_spin.setRange(1, 50)
        self.modes_spin.setValue(self.session.source.num_modes)
        form.addRow("Modes", self.modes_spin)
        self.compute_button = QPushButton("Compute PCA")
        self.compute_button.clicked.connect(self.compute_from_controls)
        form.addRow(self.compute_button)
        column.addWidget(source_box)

        modes_box = QGroupBox("Modes")
        grid = QGridLayout(modes_box)
        grid.addWidget(QLabel("Layout \u00b1k\u03c3, k ="), 0, 0)
        self.k_spin = QDoubleSpinBox()
        self.k_spin.setRange(0.1, 5.0)
        self.k_spin.setSingleStep(0.5)
        self.k_spin.setDecimals(1)
        self.k_spin.setValue(self.session.k)
        self.k_spin.valueChanged.connect(self.session.set_k)
        grid.addWidget(self.k_spin, 0, 1, 1, 2)
        self.sliders: list[QSlider] = []
        self.slider_labels: list[QLabel] = []
        self.slider_values: list[QLabel] = []
        for i in range(NUM_SLIDERS):
            label = QLabel(f"Mode {i + 1}")
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(-SLIDER_SIGMAS * SLIDER_STEPS, SLIDER_SIGMAS * SLIDER_STEPS)
            slider.setPageStep(SLIDER_STEPS // 2)
            slider.valueChanged.connect(partial(self._on_slider, i))
            value = QLabel("+0.00\u03c3")
            value.setMinimumWidth(52)
            grid.addWidget(label, i + 1, 0)
            grid.addWidget(slider, i + 1, 1)
            grid.addWidget(value, i + 1, 2)
            self.sliders.append(slider)
            self.slider_labels.append(label)
            self.slider_values.append(value)
        self.reset_button = QPushButton("Mean shape")
        self.reset_button.clicked.connect(self.session.reset_coefficients)
        grid.addWidget(self.reset_button, NUM_SLIDERS + 1, 0)
        self.animate_mode = QComboBox()
        self.animate_button = QPushButton("Animate")
        self.animate_button.setCheckable(True)
        self.animate_button.toggled.connect(self.set_animating)
        grid.addWidget(self.animate_mode, NUM_SLIDERS + 1, 1)
        grid.addWidget(self.animate_button, NUM_SLIDERS + 1, 2)
        column.addWidget(modes_box)

        export_box = QGroupBox("Export")
        export_row = QGridLayout(export_box)
        self.png_button = QPushButton("Layout PNG\u2026")
        self.png_button.clicked.connect(self._export_layout_dialog)
        self.sweep_button = QPushButton("Mode sweep\u2026")
        self.sweep_button.clicked.connect(self._export_sweep_dialog)
        self.frames_spin = QSpinBox()
        self.frames_spin.setRange(4, 600)
        self.frames_spin.setValue(36)
        self.frames_spin.setSuffix(" frames")
        export_row.addWidget(self.png_button, 0, 0)
        export_row.addWidget(self.sweep_button, 0, 1)
        export_row.addWidget(self.frames_spin, 1, 1)
        column.addWidget(export_box)
        column.addStretch(1)

        panel.setMaximumWidth(400)
        self._controls_dock = QDockWidget("Modes")
        self._controls_dock.setWidget(panel)
        self._on_source_kind()
        self._on_modes_changed()

    def dock_widgets(self) -> list[QDockWidget]:
        """The controls and the explained-variance chart."""
        return [self._controls_dock, self._variance_dock]

    def file_actions(self) -> list[QAction]:
        """File menu: open shape sets for PCA and export the layout / a sweep."""
        actions = []
        for text, slot in (
            (
                "PCA of PRN checkpoint reconstructions\u2026",
                partial(self._choose_and_compute, "checkpoint"),
            ),
            ("PCA of handle-set files\u2026", partial(self._choose_and_compute, "handles")),
            ("PCA of mesh files\u2026", partial(self._choose_and_compute, "meshes")),
            ("Export modes layout PNG\u2026", self._export_layout_dialog),
            ("Export mode sweep GIF/MP4\u2026", self._export_sweep_dialog),
        ):
            action = QAction(text, self)
            action.triggered.connect(slot)
            actions.append(action)
        return actions

    # ---------------------------------------------------------------- sources
    def current_kind(self) -> str:
        """The source kind selected in the combo box."""
        return str(self.source_combo.currentData())

    def _on_source_kind(self) -> None:
        kind = self.current_kind()
        paths = self._source_paths.get(kind, ())
        if kind == "demo":
            self.files_label.setText("built-in template")
        else:
            self.files_label.setText(", ".join(Path(p).name for p in paths) or "(none chosen)")
        self.files_button.setEnabled(kind != "demo")
        self.samples_spin.setEnabled(kind == "demo")
        show_extra = kind in ("checkpoint", "handles")
        for widget in (self.extra_title, self.extra_label, self.extra_button):
            widget.setVisible(show_extra)
        if kind == "checkpoint":
            self.extra_title.setText("Data")
            self.extra_label.setText(
                Path(self._data_path).name if self._data_path else "its training data"
            )
        elif kind == "handles":
            self.extra_title.setText("Mesh")
            self.extra_label.setText(
                Path(self._mesh_path).name if self._mesh_path else "demo template"
            )

    def choose_files(self) -> bool:
        """File dialog for the selected source's files; True if some were chosen."""
        kind = self.current_kind()
        if kind == "checkpoint":
            path, _ = QFileDialog.getOpenFileName(
                self, "PRN checkpoint", "", "Checkpoints (*.pt);;All files (*)"
            )
            paths = (path,) if path else ()
        elif kind == "handles":
            paths, _ = QFileDialog.getOpenFileNames(self, "Handle sets", "", "Handle sets (*.json)")
        elif kind == "meshes":
            paths, _ = QFileDialog.getOpenFileNames(
                self, "Meshes with the same connectivity", "", MESH_SUFFIXES
            )
        else:
            return False
        if not paths:
            return False
        self._source_paths[kind] = tuple(paths)
        self._on_source_kind()
        return True

    def choose_extra(self) -> None:
        """File dialog for the checkpoint's data set or the handle sets' mesh."""
        kind = self.current_kind()
        if kind == "checkpoint":
            path, _ = QFileDialog.getOpenFileName(
                self, "Keypoint data", "", "Keypoints (*.npz *.mat)"
            )
            if path:
                self._data_path = path
        elif kind == "handles":
            path, _ = QFileDialog.getOpenFileName(
                self, "Mesh of the handle sets", "", MESH_SUFFIXES
            )
            if path:
                self._mesh_path = path
        self._on_source_kind()

    def source_from_controls(self) -> ShapeSetSource:
        """The source the controls describe."""
        kind = self.current_kind()
        return ShapeSetSource(
            kind=kind,
            paths=self._source_paths.get(kind, ()),
            data=self._data_path if kind == "checkpoint" else None,
            mesh=self._mesh_path if kind == "handles" else None,
            num_samples=self.samples_spin.value(),
            num_modes=self.modes_spin.value(),
        )

    def compute_from_controls(self) -> None:
        """Compute button: PCA of the selected source (asks for files if none were chosen)."""
        kind = self.current_kind()
        if kind != "demo" and not self._source_paths.get(kind) and not self.choose_files():
            return
        self.compute(self.source_from_controls())

    def _choose_and_compute(self, kind: str) -> None:
        self.source_combo.setCurrentIndex(self.source_combo.findData(kind))
        self.window.show_workspace(self)
        if self.choose_files():
            self.compute(self.source_from_controls())

    def open_checkpoint(self, path: str) -> None:
        """Use a PRN checkpoint's reconstructions (computed when the tab is first shown)."""
        self._source_paths["checkpoint"] = (str(path),)
        self.source_combo.setCurrentIndex(self.source_combo.findData("checkpoint"))
        source = self.source_from_controls()
        if self.isVisible():
            self.compute(source)
        else:
            self._pending = source

    def compute(self, source: ShapeSetSource) -> Worker:
        """Build ``source``'s shape set and its PCA on a worker thread; the views update after."""
        self._pending = None
        if self._worker is not None and self._worker.is_running():
            self._worker.cancel()
        worker = Worker(partial(compute_modes, source), name="pca")
        worker.finished.connect(lambda data, s=source: self._on_computed(data, s))
        worker.error.connect(lambda exc: self.window.show_error("PCA of the shape set failed", exc))
        worker.done.connect(lambda w=worker: self._on_worker_done(w))
        self._worker = worker
        self.session.set_busy(True, source.describe())
        self.window.track_worker(worker, f"PCA: {source.describe()}")
        worker.start()
        return worker

    def _on_computed(self, data: ModesData, source: ShapeSetSource) -> None:
        self.session.set_modes(data, source)
        self.window.mark_updated()

    def _on_worker_done(self, worker: Worker) -> None:
        if worker is self._worker:
            self._worker = None
            self.session.set_busy(False)

    def _on_busy(self, busy: bool, _message: str) -> None:
        self.compute_button.setEnabled(not busy)

    def showEvent(self, event) -> None:
        """Compute the pending source (the demo at start) the first time the tab is shown."""
        super().showEvent(event)
        if self._pending is not None and not self.session.busy:
            self.compute(self._pending)

    # ---------------------------------------------------------------- modes and sliders
    def _on_modes_changed(self) -> None:
        self.set_animating(False)
        result = self.session.result
        count = self.session.num_modes
        ratios = np.zeros(0) if result is None else result.explained_variance_ratio.numpy()
        for i in range(NUM_SLIDERS):
            visible = i < count
            for widget in (self.sliders[i], self.slider_labels[i], self.slider_values[i]):
                widget.setVisible(visible)
            if visible:
                self.slider_labels[i].setText(f"Mode {i + 1} ({100 * ratios[i]:.1f}%)")
        self.animate_mode.clear()
        for i in range(min(count, NUM_SLIDERS)):
            self.animate_mode.addItem(f"mode {i + 1}", i)
        for widget in (self.animate_button, self.png_button, self.sweep_button, self.reset_button):
            widget.setEnabled(result is not None)
        self.chart.set_ratios(ratios)
        if result is not None and self.isVisible():
            points = self.session.data.result.shape[0]
            self.window.set_counts_text(
                f"{result.num_samples:,} shapes, {points:,} points, {count} modes"
            )

    def _on_slider(self, mode: int, value: int) -> None:
        sigma = value / SLIDER_STEPS
        self.slider_values[mode].setText(f"{sigma:+.2f}\u03c3")
        if mode < self.session.num_modes:
            self.session.set_coefficient(mode, sigma)

    def _sync_sliders(self) -> None:
        coeffs = self.session.coefficients
        for i, slider in enumerate(self.sliders):
            value = coeffs[i] if i < len(coeffs) else 0.0
            tick = round(value * SLIDER_STEPS)
            if slider.value() != tick:
                slider.blockSignals(True)
                slider.setValue(tick)
                slider.blockSignals(False)
            self.slider_values[i].setText(f"{value:+.2f}\u03c3")

    def set_animating(self, on: bool) -> None:
        """Start / stop sweeping the chosen mode through +/- k sigma on the large view."""
        if on and self.session.result is None:
            on = False
        if self.animate_button.isChecked() != on:
            self.animate_button.blockSignals(True)
            self.animate_button.setChecked(on)
            self.animate_button.blockSignals(False)
        if on:
            self._phase = 0
            self._timer.start()
        else:
            self._timer.stop()

    def _animate_step(self) -> None:
        mode = self.animate_mode.currentData()
        if mode is None or self.session.result is None:
            self.set_animating(False)
            return
        values = self.session.sweep_values(50)
        self.session.set_coefficient(int(mode), float(values[self._phase % len(values)]))
        self._phase += 1

    # ---------------------------------------------------------------- export
    def export_layout(self, path: str | Path) -> Path:
        """Save Figure 2's layout as a PNG (the layout view's size)."""
        from app.export import save_png

        return save_png(self.layout_view.render_image(), path)

    def export_sweep(
        self, path: str | Path, mode: int = 0, frames: int = 36, fps: float = 12.0
    ) -> int:
        """Save a sweep of ``mode`` through +/- k sigma (one period) as GIF or MP4.

        The other coefficients stay as scrubbed. Returns the number of frames written.
        """
        from app.export import save_animation

        if self.session.result is None or self.explore_view.shape is None:
            raise RuntimeError("no PCA to export yet")
        base = self.session.coefficients.copy()

        def images():
            for value in self.session.sweep_values(frames):
                coeffs = base.copy()
                coeffs[mode] = value
                yield self.explore_view.set_coefficients_image(coeffs)

        try:
            return save_animation(images(), path, fps=fps)
        finally:
            self.explore_view.update_shape()

    def _export_layout_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export modes layout", "modes.png", "PNG (*.png)"
        )
        if not path:
            return
        try:
            self.export_layout(path if path.lower().endswith(".png") else path + ".png")
        except (OSError, ValueError) as exc:
            self.window.show_error("Export failed", exc)

    def _export_sweep_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export mode sweep", "mode_sweep.gif", "Animations (*.gif *.mp4)"
        )
        if not path:
            return
        mode = self.animate_mode.currentData() or 0
        try:
            self.export_sweep(path, mode=int(mode), frames=self.frames_spin.value())
        except (OSError, ValueError, RuntimeError) as exc:
            self.window.show_error("Export failed", exc)

    def shutdown(self) -> None:
        """Stop the animation and any PCA job; release the VTK windows."""
        self._timer.stop()
        if self._worker is not None:
            self._worker.cancel()
            self._worker.wait(10_000)
        self.layout_view.close_view()
        self.explore_view.close_view()
