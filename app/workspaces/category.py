"""The Category workspace: learn a category's deformable mesh from images (seed 001, section 2).

Left, a scrollable panel: the data (the built-in synthetic quadruped or an image-set folder, and
a template), the settings form built from ``CategoryConfig`` (the same form widget as the PRN
Training tab), Start / Pause / Resume / Stop with progress, autosave, checkpoints, and the hand
offs to the other workspaces (Open in Editor with the learned A, Explore modes of the learned
deformations). Right, three pages:

* Training: live loss curves per term, the end of the warm-up and each hypothesis drop marked;
* Instance: an instance slider; its image with the predicted silhouette's outline and the
  projected keypoints, its mask and colour-coded flow; the predicted mesh from the predicted
  camera and from a novel view, the instance's camera hypotheses drawn around the mesh as
  spheres coloured by probability (updating live as the multiplex narrows); on synthetic data
  the true mesh with per-vertex error colours;
* Compare: the table of ``category evaluate`` for the loaded set and, for the current instance,
  the predicted, template-only and true (or input) silhouettes side by side.

State lives in :class:`app.models.category_session.CategorySession`; training runs off the GUI
thread. No numerics here: views ask the engine (``engine.category.inspect``) what to draw.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QAction, QColor, QImage, QPainter, QPen, QPixmap
from PyQt6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.models.category_session import CategorySession
from app.paths import autosave_file
from app.views.config_form import ConfigForm
from app.views.mesh_view import MeshView
from app.views.plots import LIVE_REDRAW_INTERVAL_S, LossCurves
from app.workers import Worker
from engine.core.errors import InputError

SYNTHETIC = "synthetic:quadruped"
CHECKPOINT_FILTER = "Category checkpoints (*.pt);;All files (*)"
CURVES = (
    "total",
    "fit",
    "mask",
    "boundary",
    "keypoints",
    "texture",
    "motion",
    "network",
    "edge",
    "pull_camera",
    "pull_deform",
)
FIELD_LABELS = {
    "handles": "Handles K",
    "size": "Image size (px)",
    "iterations": "Iterations",
    "network_steps": "Network-phase steps",
    "warmup_epochs": "Warm-up epochs",
    "batch_size": "Batch size",
    "hypotheses": "Camera hypotheses",
    "prune_at": "Halve hypotheses at",
    "lr": "Learning rate",
    "lr_dependency": "LR of A (0 freezes)",
    "seed": "Seed",
}
METRIC_COLUMNS = ("iou_mean", "iou_median", "pck", "vertex_error", "camera_error_deg")
IMAGE_SIDE = 160


def to_pixmap(rgb: np.ndarray, side: int = IMAGE_SIDE) -> QPixmap:
    """(H,W,3) uint8 or (H,W) bool/float array as a square pixmap of ``side`` pixels."""
    a = np.asarray(rgb)
    if a.ndim == 2:
        a = np.repeat((np.clip(a, 0, 1) * 255).astype(np.uint8)[..., None], 3, -1)
    elif a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255).astype(np.uint8)
    a = np.ascontiguousarray(a)
    h, w = a.shape[:2]
    image = QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(image).scaled(
        side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
    )


class CategoryWorkspace(QWidget):
    """See the module docstring. ``window`` may be None (tests)."""

    title = "Category"

    def __init__(self, window=None) -> None:
        super().__init__(window)
        self.window_ = window
        self.session = CategorySession(self)
        self._view = None
        self._eval_worker: Worker | None = None
        self._last_hypotheses = None
        self._curves_drawn_at = 0.0
        self._build()
        self._connect()
        self.form.fill(self._default_config())
        self._update_buttons()
        self._inspect_timer = QTimer(self)
        self._inspect_timer.setSingleShot(True)
        self._inspect_timer.setInterval(150)
        self._inspect_timer.timeout.connect(self.refresh_instance)

    # ------------------------------------------------------------------ layout
    def _default_config(self):
        from engine.category.config import CategoryConfig

        return CategoryConfig()

    def _build(self) -> None:
        from engine.category.config import CategoryConfig

        data_box = QGroupBox("Data")
        grid = QGridLayout(data_box)
        self.data_combo = QComboBox()
        self.data_combo.addItem("Synthetic quadruped (train)", SYNTHETIC)
        self.data_combo.addItem("Synthetic quadruped (held-out)", SYNTHETIC + "?split=test")
        self.load_button = QPushButton("Load")
        self.folder_button = QPushButton("Open folder…")
        self.template_label = QLabel("Template: automatic")
        self.template_label.setWordWrap(True)
        self.template_button = QPushButton("Template…")
        self.data_info = QLabel("No data loaded.")
        self.data_info.setWordWrap(True)
        grid.addWidget(self.data_combo, 0, 0, 1, 2)
        grid.addWidget(self.load_button, 1, 0)
        grid.addWidget(self.folder_button, 1, 1)
        grid.addWidget(self.template_label, 2, 0)
        grid.addWidget(self.template_button, 2, 1)
        grid.addWidget(self.data_info, 3, 0, 1, 2)

        self.form = ConfigForm(
            "Settings",
            CategoryConfig,
            FIELD_LABELS,
            skip={
                "data",
                "template",
                "template_keypoints",
                "device",
                "threads",
                "up_axis",
                "front_axis",
                "symmetry_axis",
            },
        )

        run_box = QGroupBox("Run")
        run = QGridLayout(run_box)
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        for i, b in enumerate(
            (self.start_button, self.pause_button, self.resume_button, self.stop_button)
        ):
            run.addWidget(b, 0, i)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("Not started")
        self.status.setWordWrap(True)
        run.addWidget(self.progress, 1, 0, 1, 4)
        run.addWidget(self.status, 2, 0, 1, 4)
        self.autosave_path = QLineEdit(str(autosave_file("autosave_category.pt")))
        self.autosave_every = QSpinBox()
        self.autosave_every.setRange(0, 1_000_000)
        self.autosave_every.setValue(250)
        self.autosave_every.setToolTip("Steps between autosaves (0 = off)")
        run.addWidget(QLabel("Autosave"), 3, 0)
        run.addWidget(self.autosave_path, 3, 1, 1, 2)
        run.addWidget(self.autosave_every, 3, 3)

        ckpt_box = QGroupBox("Checkpoint")
        ck = QGridLayout(ckpt_box)
        self.open_button = QPushButton("Open…")
        self.save_button = QPushButton("Save…")
        self.editor_button = QPushButton("Open in Editor")
        self.modes_button = QPushButton("Explore modes")
        self.evaluate_button = QPushButton("Evaluate")
        ck.addWidget(self.open_button, 0, 0)
        ck.addWidget(self.save_button, 0, 1)
        ck.addWidget(self.editor_button, 1, 0)
        ck.addWidget(self.modes_button, 1, 1)
        ck.addWidget(self.evaluate_button, 2, 0, 1, 2)
        self.checkpoint_info = QLabel("")
        self.checkpoint_info.setWordWrap(True)
        ck.addWidget(self.checkpoint_info, 3, 0, 1, 2)

        panel = QWidget()
        column = QVBoxLayout(panel)
        for box in (data_box, run_box, ckpt_box, self.form):
            column.addWidget(box)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(340)

        self.pages = QTabWidget()
        self.curves = LossCurves(names=CURVES)
        self.pages.addTab(self.curves, "Training")
        self.pages.addTab(self._build_instance_page(), "Instance")
        self.pages.addTab(self._build_compare_page(), "Compare")

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(scroll)
        split.addWidget(self.pages)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    def _image_label(self, text: str) -> QLabel:
        label = QLabel(text)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setMinimumSize(IMAGE_SIDE // 2, IMAGE_SIDE // 2)
        return label

    def _build_instance_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        row = QHBoxLayout()
        self.instance_slider = QSlider(Qt.Orientation.Horizontal)
        self.instance_slider.setRange(0, 0)
        self.instance_label = QLabel("instance 0 / 0")
        row.addWidget(QLabel("Instance"))
        row.addWidget(self.instance_slider, 1)
        row.addWidget(self.instance_label)
        layout.addLayout(row)
        images = QHBoxLayout()
        self.image_view = self._image_label("image")
        self.mask_view = self._image_label("mask")
        self.flow_view = self._image_label("flow")
        for w in (self.image_view, self.mask_view, self.flow_view):
            images.addWidget(w)
        self.hypotheses_label = QLabel("")
        self.hypotheses_label.setWordWrap(True)
        images.addWidget(self.hypotheses_label, 1)
        layout.addLayout(images)
        views = QHBoxLayout()
        self.camera_view = MeshView()
        self.novel_view = MeshView()
        self.truth_view = MeshView()
        for title, view in (
            ("From the predicted camera", self.camera_view),
            ("Novel view, camera hypotheses", self.novel_view),
            ("Truth, error per vertex", self.truth_view),
        ):
            box = QVBoxLayout()
            box.addWidget(QLabel(title))
            box.addWidget(view, 1)
            views.addLayout(box, 1)
        layout.addLayout(views, 1)
        return page

    def _build_compare_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.table = QTableWidget(0, 1 + len(METRIC_COLUMNS))
        self.table.setHorizontalHeaderLabels(["method", *METRIC_COLUMNS])
        self.table.verticalHeader().hide()
        layout.addWidget(self.table)
        row = QHBoxLayout()
        self.compare_predicted = self._image_label("predicted")
        self.compare_template = self._image_label("template only")
        self.compare_truth = self._image_label("truth / input")
        for title, w in (
            ("Predicted", self.compare_predicted),
            ("Template only", self.compare_template),
            ("Ground truth / input", self.compare_truth),
        ):
            box = QVBoxLayout()
            box.addWidget(QLabel(title))
            box.addWidget(w, 1)
            row.addLayout(box)
        layout.addLayout(row, 1)
        return page

    def _connect(self) -> None:
        s = self.session
        self.load_button.clicked.connect(lambda: self.load_data(self.data_combo.currentData()))
        self.folder_button.clicked.connect(self.choose_folder)
        self.template_button.clicked.connect(self.choose_template)
        self.start_button.clicked.connect(self.start_training)
        self.pause_button.clicked.connect(s.pause)
        self.resume_button.clicked.connect(s.resume)
        self.stop_button.clicked.connect(s.stop)
        self.open_button.clicked.connect(self.choose_checkpoint)
        self.save_button.clicked.connect(self.choose_save)
        self.editor_button.clicked.connect(self.open_in_editor)
        self.modes_button.clicked.connect(self.explore_modes)
        self.evaluate_button.clicked.connect(self.evaluate)
        self.instance_slider.valueChanged.connect(self._on_instance)
        self.form.edited.connect(lambda: self.form.validate(data=s.data_spec or SYNTHETIC))
        s.data_changed.connect(self._on_data)
        s.state_changed.connect(lambda _state: self._update_buttons())
        s.updated.connect(self._on_update)
        s.run_changed.connect(self._on_run_changed)
        s.failed.connect(self._on_failed)
        s.busy.connect(self._on_busy)
        s.checkpoint_saved.connect(lambda p: self._set_status(f"Saved {Path(p).name}"))

    # ------------------------------------------------------------------ data
    def load_data(self, spec: str) -> Worker:
        """Load an image set (folder or spec) at the form's image size."""
        try:
            size = int(self.form.fields["size"].text())
        except ValueError:
            size = 64
        return self.session.load_data_async(spec, size=size)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Image-set folder (with masks/)")
        if folder:
            self.data_combo.addItem(Path(folder).name, folder)
            self.data_combo.setCurrentIndex(self.data_combo.count() - 1)
            self.load_data(folder)

    def choose_template(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Template mesh", "", "Meshes (*.obj *.ply *.stl *.vtk *.vtp)"
        )
        if path:
            self._template = path
            self.template_label.setText(f"Template: {Path(path).name}")

    def _on_data(self, images) -> None:
        parts = [f"{len(images)} images at {images.size} px"]
        parts.append("RGB" if images.images is not None else "masks only")
        if images.keypoints is not None:
            parts.append(f"{images.keypoints.shape[1]} keypoints")
        if images.flow is not None:
            parts.append("flow")
        if images.ground_truth is not None:
            parts.append("ground truth")
        self.data_info.setText(", ".join(parts))
        self.instance_slider.setRange(0, max(len(images) - 1, 0))
        self._update_buttons()
        self._on_instance(self.instance_slider.value())
        self._set_counts()

    # ------------------------------------------------------------------ training
    def read_config(self):
        """The form as a validated CategoryConfig for the loaded data.

        Raises:
            InputError: naming the field.
        """
        template = getattr(self, "_template", None)
        return self.form.read(data=self.session.data_spec or SYNTHETIC, template=template)

    def start_training(self) -> bool:
        """Start a fresh run on the loaded data; invalid fields are marked."""
        self.form.clear_errors()
        if self.session.images is None:
            self._set_status("Load data first")
            return False
        try:
            config = self.read_config()
            self.session.set_autosave(
                self.autosave_path.text() or None, self.autosave_every.value()
            )
            self.session.start(config)
        except InputError as exc:
            self.form.mark_error(exc.field, exc.problem)
            if exc.field is None or exc.field.split(".")[-1] not in self.form.fields:
                self._error("Cannot start training", exc)
            return False
        self.curves.clear_history()
        self.progress.setRange(0, self.session.trainer.total_iterations)
        self.progress.setValue(0)
        return True

    def _on_update(self, event) -> None:
        events = self.session.events
        start = self.curves.count
        new = events[start:]
        self.curves.append([e.step for e in new], [e.losses for e in new])
        marked = False
        for e in new:
            for mark in e.marks:
                self.curves.add_mark(e.step, mark)
                marked = True
        now = time.monotonic()
        ended = event.step >= event.total_steps
        if marked or ended or now - self._curves_drawn_at >= LIVE_REDRAW_INTERVAL_S:
            self._curves_drawn_at = now
            self.curves.redraw()
        self.progress.setRange(0, event.total_steps)
        self.progress.setValue(event.step)
        state = self.session.state
        left = "paused" if state == "paused" else f"{event.eta_s:.0f} s left"
        self._set_status(
            f"{event.phase}: step {event.step} / {event.total_steps}, {event.hypotheses} "
            f"hypotheses, loss {event.losses['total']:.4g} ({left})"
        )
        if event.hypotheses != self._last_hypotheses or event.step % 25 == 0:
            self._last_hypotheses = event.hypotheses
            self._inspect_timer.start()

    def _on_run_changed(self) -> None:
        run = self.session.model_run
        self._update_buttons()
        if run is None:
            return
        if self.session.trainer is None and self.session.run is not None:
            r = self.session.run
            text = ", ".join(f"{k} {v:.3g}" for k, v in r.metrics.items())
            self.checkpoint_info.setText(
                f"{Path(r.path).name}: {r.step} steps, {len(r.database_names)} training images, "
                f"{r.template.mesh.num_vertices} vertices, K = {r.model.num_handles}"
                + (f"; {text}" if text else "")
            )
            self.form.fill(r.config)
            self.curves.clear_history()
            history = r.history
            self.curves.append(list(range(1, len(history) + 1)), history)
            for step, mark in r.extra.get("marks", []):
                self.curves.add_mark(int(step), str(mark))
            self.curves.redraw()
            self.progress.setRange(0, max(r.step, 1))
            self.progress.setValue(r.step)
            self._set_status(f"Loaded {Path(r.path).name} ({r.step} steps)")
            if self.session.images is None:
                self.load_data(r.config.data)
        self._inspect_timer.start()

    def _update_buttons(self) -> None:
        state = self.session.state
        has_data = self.session.images is not None
        has_run = self.session.model_run is not None
        self.start_button.setEnabled(has_data and state not in ("running", "paused"))
        self.pause_button.setEnabled(state == "running")
        self.resume_button.setEnabled(
            state == "paused" or (state in ("stopped",) and self.session.trainer is not None)
        )
        self.stop_button.setEnabled(state in ("running", "paused"))
        self.save_button.setEnabled(self.session.trainer is not None)
        for b in (self.editor_button, self.modes_button, self.evaluate_button):
            b.setEnabled(has_run and has_data)
        if state in ("finished", "stopped", "failed"):
            self._set_status(
                {
                    "finished": "Finished",
                    "stopped": "Stopped",
                    "failed": "Failed: the last good checkpoint is kept",
                }[state]
                + (f" at step {self.session.trainer.step}" if self.session.trainer else "")
            )
        elif state in ("empty", "ready") and not has_run:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self._set_status("Not started")

    # ------------------------------------------------------------------ instances
    def _on_instance(self, index: int) -> None:
        images = self.session.images
        if images is None:
            return
        self.instance_label.setText(f"{images.names[index]} ({index + 1} / {len(images)})")
        self._show_inputs(index, None)
        self._inspect_timer.start()

    def _show_inputs(self, index: int, view) -> None:
        from engine.category.inspect import flow_colours

        images = self.session.images
        base = images.images[index] if images.images is not None else images.masks[index]
        if base.ndim == 2:
            base = np.repeat(base[..., None], 3, -1)
        self.image_view.setPixmap(self._overlay(base, view))
        self.mask_view.setPixmap(to_pixmap(images.masks[index] > 0.5))
        if images.flow is not None and images.next_index[index] >= 0:
            self.flow_view.setPixmap(to_pixmap(flow_colours(images.flow[index])))
        else:
            self.flow_view.setText("no flow")

    def _overlay(self, base: np.ndarray, view) -> QPixmap:
        pixmap = to_pixmap(base)
        if view is None:
            return pixmap
        size = base.shape[0]
        scale = pixmap.width() / size
        painter = QPainter(pixmap)
        sil = view.silhouette
        edge = sil & ~(
            np.roll(sil, 1, 0) & np.roll(sil, -1, 0) & np.roll(sil, 1, 1) & np.roll(sil, -1, 1)
        )
        painter.setPen(QPen(QColor("#ff2020"), max(1.0, scale * 0.6)))
        rows, cols = np.nonzero(edge)
        for r, c in zip(rows, cols):
            painter.drawPoint(int((c + 0.5) * scale), int((r + 0.5) * scale))
        if view.keypoints is not None:
            painter.setPen(QPen(QColor("#00c000"), 3))
            for x, y in view.keypoints:
                if np.isfinite(x) and np.isfinite(y):
                    painter.drawEllipse(int(x * scale) - 2, int(y * scale) - 2, 4, 4)
        painter.end()
        return pixmap

    def refresh_instance(self) -> None:
        """Ask the engine for the current instance under the current model and draw it."""
        from engine.category.inspect import novel_view, view_axes

        images = self.session.images
        if images is None or self.session.model_run is None:
            return
        index = self.instance_slider.value()
        try:
            view = self.session.inspect(index)
        except InputError as exc:
            self._set_status(str(exc))
            return
        if view is None:
            return
        self._view = view
        self._show_inputs(index, view)
        faces = self.session.model_run.template.mesh.faces
        up_axis = self.session.model_run.template.up_axis
        for mesh_view in (self.camera_view, self.novel_view):
            mesh_view.set_mesh(view.vertices, faces)
        self.camera_view.look_along(*view_axes(view.camera))
        self.novel_view.look_along(*novel_view(view.camera, up_axis))
        if view.hypotheses is not None:
            p = view.probabilities
            colours = np.stack(
                [p / max(p.max(), 1e-9), 0.2 * np.ones_like(p), 1 - p / max(p.max(), 1e-9)], 1
            )
            self.novel_view.set_points(
                "hypotheses", view.hypothesis_positions, colours, radius=0.04
            )
            text = "Camera hypotheses (probability):\n" + "\n".join(
                f"  {i + 1}: {pi:.3f}" for i, pi in enumerate(p)
            )
            self.hypotheses_label.setText(text)
        else:
            self.novel_view.set_points("hypotheses", None)
            self.hypotheses_label.setText("not a training image: no camera hypotheses")
        if view.truth is not None:
            self.truth_view.set_mesh(view.truth, faces)
            self.truth_view.set_scalars(view.vertex_errors, "error / diagonal", fmt="%.3f")
            self.truth_view.look_along(*view_axes(view.camera))
        self._update_compare(view)

    def _update_compare(self, view) -> None:
        run = self.session.model_run
        images = self.session.images
        index = view.index
        template = run.template.mesh.vertices[None]
        template_mask = run.render_masks(template, view.camera[None])[0]
        self.compare_predicted.setPixmap(to_pixmap(view.silhouette))
        self.compare_template.setPixmap(to_pixmap(template_mask))
        if view.truth is not None and images.cameras is not None:
            gt = images.ground_truth["vertices"][index][None]
            self.compare_truth.setPixmap(
                to_pixmap(run.render_masks(gt, images.cameras[index][None])[0])
            )
        else:
            self.compare_truth.setPixmap(to_pixmap(images.masks[index] > 0.5))

    # ------------------------------------------------------------------ evaluate
    def evaluate(self) -> Worker | None:
        """Run ``category evaluate`` on the loaded set off the GUI thread; fill the table."""
        if self.session.model_run is None or self.session.images is None:
            return None
        worker = Worker(lambda progress, cancelled: self.session.evaluate(), name="category-eval")
        worker.finished.connect(self.show_metrics)
        worker.error.connect(lambda exc: self._error("Evaluation failed", exc))
        self._eval_worker = worker
        self._set_status("Evaluating…")
        worker.start()
        return worker

    def show_metrics(self, rows: dict) -> None:
        self.table.setRowCount(len(rows))
        for r, (name, metrics) in enumerate(rows.items()):
            self.table.setItem(r, 0, QTableWidgetItem(name))
            for c, key in enumerate(METRIC_COLUMNS, start=1):
                value = metrics.get(key)
                self.table.setItem(r, c, QTableWidgetItem("-" if value is None else f"{value:.4f}"))
        self.table.resizeColumnsToContents()
        self._set_status(f"Evaluated on {self.session.data_spec}")

    # ------------------------------------------------------------------ checkpoints
    def choose_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open category checkpoint", "", CHECKPOINT_FILTER
        )
        if path:
            self.open_category_checkpoint(path)

    def open_category_checkpoint(self, path: str) -> Worker:
        """Load a category checkpoint's run (its training data is loaded when none is)."""
        return self.session.load_checkpoint_async(path)

    def choose_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save category checkpoint", "category.pt", CHECKPOINT_FILTER
        )
        if path:
            self.save_checkpoint(path)

    def save_checkpoint(self, path: str) -> None:
        try:
            self.session.save_checkpoint(path)
        except (InputError, OSError, RuntimeError) as exc:
            self._error("Cannot save the checkpoint", exc)

    # ------------------------------------------------------------------ hand-offs
    def open_in_editor(self) -> bool:
        """Open the template with the learned A (and the current instance's database offsets,
        when it is a training image) in the Editor."""
        from engine.io.mesh import validate_mesh

        run = self.session.model_run
        if run is None or self.window_ is None:
            return False
        editor = self.window_.workspace("Editor")
        deformer = run.model.deformer
        mesh = run.template.mesh
        learned = deformer.A.detach().cpu().numpy()
        initial = None
        if getattr(run, "initial_logits", None) is not None:
            import torch

            initial = torch.softmax(run.initial_logits.double().cpu(), dim=-1).numpy()
        offsets = None
        if self.session.images is not None:
            name = self.session.images.names[self.instance_slider.value()]
            if name in run.database_names:
                fit = run.database_fit()
                offsets = fit["offsets"][run.database_names.index(name)]
        editor.session.open(
            validate_mesh(mesh.vertices, mesh.faces),
            handle_ids=deformer.handle_ids.cpu().numpy(),
            offsets=offsets,
            dependency=learned,
            initial_dependency=initial,
        )
        self.window_.show_workspace(editor)
        return True

    def explore_modes(self) -> bool:
        """PCA of the learned deformations in the Modes tab (needs a saved checkpoint)."""
        if self.window_ is None:
            return False
        path = self.session.checkpoint_path
        if path is None and self.session.trainer is not None:
            path = str(Path(self.autosave_path.text() or "category.pt"))
            self.save_checkpoint(path)
        if path is None:
            return False
        modes = self.window_.workspace("Modes")
        modes.open_category_checkpoint(path)
        self.window_.show_workspace(modes)
        return True

    # ------------------------------------------------------------------ window hooks
    def file_actions(self) -> list[QAction]:
        actions = []
        for text, slot in (
            ("Open category checkpoint…", self.choose_checkpoint),
            ("Open image-set folder…", self.choose_folder),
        ):
            action = QAction(text, self)
            action.triggered.connect(slot)
            actions.append(action)
        return actions

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._set_counts()

    def _set_counts(self) -> None:
        if self.window_ is not None and self.isVisible():
            images = self.session.images
            text = (
                "Category: no data"
                if images is None
                else (f"Category: {len(images)} images of {self.session.data_spec}")
            )
            self.window_.set_counts_text(text)

    def _set_status(self, text: str) -> None:
        self.status.setText(text)

    def _on_busy(self, busy: bool, message: str) -> None:
        if busy:
            self._set_status(message + "…")
        self.load_button.setEnabled(not busy)

    def _on_failed(self, title: str, exc) -> None:
        self._error(title, exc)
        self._update_buttons()

    def _error(self, title: str, exc) -> None:
        if self.window_ is not None:
            self.window_.show_error(title, exc)
        self._set_status(f"{title}: {exc}")

    def shutdown(self) -> None:
        self.session.shutdown()
        for view in (self.camera_view, self.novel_view, self.truth_view):
            view.close_view()
