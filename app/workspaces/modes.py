"""The Modes workspace: PCA deformation modes of a shape set (seed 001, Figure 2).

Left, Figure 2's layout in one PyVista window of 3 x 3 linked views: the mean shape in the
centre, mode 1 at -k / +k sigma left and right of it, mode 2 above and below, mode 3 on the
diagonal. Right, one large view of ``mean + sum_i c_i sigma_i mode_i`` whose coefficients are
scrubbed with one slider per computed mode or swept by Animate. Docks hold the source
(demo template deformations, a PRN checkpoint's reconstructions, handle-set files, mesh files),
k, the sliders, export buttons and the explained-variance bar chart. PCA runs on a Worker.
Shapes are meshes (faces) or skeletons (points and bones), whichever the source gives.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.models.pca_session import ModesData, PCARequest, PCASession, compute_modes
from app.views.mode_views import ExploreView, LayoutView, VarianceChart
from app.workers import Worker
from engine.analysis import shape_sources

MAX_VISIBLE_SLIDERS = 5  # slider rows shown at once (the area keeps this height); more scroll
SLIDER_STEPS = 100  # slider ticks per sigma
SLIDER_SIGMAS = 3  # slider range: +/- this many sigma
MESH_SUFFIXES = "Meshes (*.ply *.obj *.stl *.vtk *.vtp)"
SOURCE_LABELS = {
    "demo": "Demo template deformations",
    "checkpoint": "PRN checkpoint reconstructions",
    "category": "Category checkpoint: learned deformations",
    "handles": "Handle-set files",
    "meshes": "Mesh files",
}
CHECKPOINT_FILTER = "Checkpoints (*.pt);;All files (*)"


class ModesWorkspace(QWidget):
    """PCA deformation modes: Figure 2 layout, sliders, animation, variance chart, export."""

    title = "Modes"

    def __init__(self, window) -> None:
        super().__init__()
        self.window = window
        self.session = PCASession(self)
        self._worker: Worker | None = None
        self._pending: PCARequest | None = self.session.request
        self._source_paths: dict[str, tuple[str, ...]] = {
            "checkpoint": (),
            "category": (),
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
        self.samples_spin.setValue(shape_sources.DemoDeformations().num_samples)
        form.addRow("Samples", self.samples_spin)
        self.modes_spin = QSpinBox()
        self.modes_spin.setRange(1, 50)
        self.modes_spin.setValue(self.session.request.num_modes)
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
        # One slider per computed mode (rows are added when a PCA with more modes arrives);
        # beyond MAX_VISIBLE_SLIDERS rows the list scrolls, so the buttons below stay in view.
        self.sliders: list[QSlider] = []
        self.slider_labels: list[QLabel] = []
        self.slider_values: list[QLabel] = []
        sliders_panel = QWidget()
        self._sliders_grid = QGridLayout(sliders_panel)
        self._sliders_grid.setContentsMargins(0, 0, 0, 0)
        self.sliders_area = QScrollArea()
        self.sliders_area.setFrameShape(QFrame.Shape.NoFrame)
        self.sliders_area.setWidgetResizable(True)
        self.sliders_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.sliders_area.setWidget(sliders_panel)
        grid.addWidget(self.sliders_area, 1, 0, 1, 3)
        self._ensure_sliders(MAX_VISIBLE_SLIDERS)
        self._fit_sliders_area()
        self.reset_button = QPushButton("Mean shape")
        self.reset_button.clicked.connect(self.session.reset_coefficients)
        grid.addWidget(self.reset_button, 2, 0)
        self.animate_mode = QComboBox()
        self.animate_button = QPushButton("Animate")
        self.animate_button.setCheckable(True)
        self.animate_button.toggled.connect(self.set_animating)
        grid.addWidget(self.animate_mode, 2, 1)
        grid.addWidget(self.animate_button, 2, 2)
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
        if kind in ("checkpoint", "category"):
            title = "PRN checkpoint" if kind == "checkpoint" else "Category checkpoint"
            path, _ = QFileDialog.getOpenFileName(self, title, "", CHECKPOINT_FILTER)
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

    def source_from_controls(self) -> PCARequest:
        """The request the controls describe."""
        kind = self.current_kind()
        paths = self._source_paths.get(kind, ())
        if kind == "demo":
            source = shape_sources.DemoDeformations(num_samples=self.samples_spin.value())
        elif kind == "checkpoint":
            source = shape_sources.PRNReconstructions(paths[0], self._data_path)
        elif kind == "category":
            source = shape_sources.CategoryDeformations(paths[0])
        elif kind == "handles":
            source = shape_sources.HandleSetFiles(tuple(paths), self._mesh_path)
        else:
            source = shape_sources.MeshFiles(tuple(paths))
        return PCARequest(source, num_modes=self.modes_spin.value())

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

    def open_category_checkpoint(self, path: str) -> None:
        """Use a category checkpoint's learned deformations (computed when the tab is shown)."""
        self.open_checkpoint(path, kind="category")

    def open_checkpoint(self, path: str, kind: str = "checkpoint") -> None:
        """Use a PRN checkpoint's reconstructions (``kind="checkpoint"``) or a category
        checkpoint's learned deformations (``"category"``), computed when the tab is shown."""
        self._source_paths[kind] = (str(path),)
        self.source_combo.setCurrentIndex(self.source_combo.findData(kind))
        source = self.source_from_controls()
        if self.isVisible():
            self.compute(source)
        else:
            self._pending = source

    def compute(self, source: PCARequest) -> Worker:
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

    def _on_computed(self, data: ModesData, source: PCARequest) -> None:
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
        self._ensure_sliders(count)
        for i in range(len(self.sliders)):
            visible = i < count
            for widget in (self.sliders[i], self.slider_labels[i], self.slider_values[i]):
                widget.setVisible(visible)
            if visible:
                self.slider_labels[i].setText(f"Mode {i + 1} ({100 * ratios[i]:.1f}%)")
        self.animate_mode.clear()
        for i in range(count):
            self.animate_mode.addItem(f"mode {i + 1}", i)
        for widget in (self.animate_button, self.png_button, self.sweep_button, self.reset_button):
            widget.setEnabled(result is not None)
        self.chart.set_ratios(ratios)
        if result is not None and self.isVisible():
            points = self.session.data.result.shape[0]
            self.window.set_counts_text(
                f"{result.num_samples:,} shapes, {points:,} points, {count} modes"
            )

    def _ensure_sliders(self, count: int) -> None:
        """Create slider rows until there are ``count`` (rows are kept, hidden, when fewer
        modes are computed later)."""
        while len(self.sliders) < count:
            i = len(self.sliders)
            label = QLabel(f"Mode {i + 1}")
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(-SLIDER_SIGMAS * SLIDER_STEPS, SLIDER_SIGMAS * SLIDER_STEPS)
            slider.setPageStep(SLIDER_STEPS // 2)
            slider.valueChanged.connect(partial(self._on_slider, i))
            value = QLabel("+0.00\u03c3")
            value.setMinimumWidth(52)
            self._sliders_grid.addWidget(label, i, 0)
            self._sliders_grid.addWidget(slider, i, 1)
            self._sliders_grid.addWidget(value, i, 2)
            self.sliders.append(slider)
            self.slider_labels.append(label)
            self.slider_values.append(value)

    def _fit_sliders_area(self) -> None:
        """Room for MAX_VISIBLE_SLIDERS rows whatever the number of modes (then it scrolls):
        the panel keeps its height, so the docks' split does not change with each PCA."""
        row = max(self.slider_labels[0].sizeHint().height(), self.sliders[0].sizeHint().height())
        spacing = max(self._sliders_grid.verticalSpacing(), 0)
        rows = MAX_VISIBLE_SLIDERS
        self.sliders_area.setFixedHeight(rows * row + (rows - 1) * spacing)

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
