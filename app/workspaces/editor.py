"""Editor workspace: open a mesh, drag its handles, watch the Laplacian deformation live.

Wires a :class:`app.models.mesh_session.MeshSession` (state, engine calls) to a
:class:`app.views.mesh_view.MeshView` (3D view, mouse) and a "Handles" dock (handle count,
numeric offsets, undo/redo/reset, display toggles). Per drag event the only work is
``EditingBasis.deform`` (O(NK)) and one in-place VTK points update with one render.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QAction, QActionGroup, QKeySequence
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.models.mesh_session import (
    DEFAULT_NUM_HANDLES,
    DEMO_TEMPLATE,
    MeshSession,
    symmetric_range,
)
from app.views.mesh_view import DIVERGING_CMAP, UP_AXES, MeshView

MESH_SUFFIXES = (".ply", ".obj", ".stl", ".vtk", ".vtp")
MESH_FILTER = "Meshes (*.ply *.obj *.stl *.vtk *.vtp);;All files (*)"
EXPORT_FILTER = "PLY (*.ply);;OBJ (*.obj);;STL (*.stl)"
HANDLES_FILTER = "Handle sets (*.json);;All files (*)"


#: Colour-by entries (label, mode) for every mesh, and those offered only when the session holds
#: the initial A a learned one started from (a category checkpoint opened in the Editor).
INFLUENCE_MODES = (
    ("weights A[k] (log10)", "weights"),
    ("vertex motion per unit handle move", "response"),
)
LEARNED_INFLUENCE_MODES = (
    ("initial weights A0[k] (log10)", "initial"),
    ("learned - initial (A[k] - A0[k])", "change"),
)

#: Percentiles of a row's log10 weights that span the influence colour scale (see
#: :func:`influence_colour_range`).
INFLUENCE_PERCENTILES = (1.0, 99.0)


def influence_colour_range(log_weights: np.ndarray) -> tuple[float, float]:
    """The colour range for (N,) log10 weights of one row of A: their 1st to 99th percentile.

    The authors' initial A (softmax of -16 log d) gives the handle's own vertex a weight of
    about 1 and every other vertex 1e-30 to 1e-56: a scale from the row's minimum to its
    maximum (or the top few decades below the maximum) paints all but a vertex or two one
    flat colour. The percentile range spreads the colours over the vertices (how the weight
    falls off over the surface); the ~1 % of vertices beyond either end take the end colour.
    """
    values = np.asarray(log_weights, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, INFLUENCE_PERCENTILES))
    if hi - lo < 1e-6:  # (nearly) uniform row: one decade around it
        lo, hi = min(lo, float(values.max()) - 1.0), float(values.max())
    return lo, hi


class EditorWorkspace(QWidget):
    """The "Editor" tab. Public entry points: :meth:`open_mesh`, :meth:`open_demo`."""

    title = "Editor"
    file_suffixes = MESH_SUFFIXES

    def __init__(self, window) -> None:
        super().__init__()
        self.window_ = window
        self.session = MeshSession(self)
        self.view = MeshView(self)
        # Colouring comes with every selection: keep the bar's room so the view never jumps.
        self.view.colour_bar.reserve()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)

        self._make_actions()
        self._make_dock()

        s = self.session
        s.mesh_changed.connect(self._on_mesh_changed)
        s.deformation_changed.connect(self._on_deformation_changed)
        s.selection_changed.connect(self._on_selection_changed)
        s.history_changed.connect(self._on_history_changed)
        s.busy.connect(self._on_busy)
        s.failed.connect(self._on_failed)
        s.worker_started.connect(
            lambda w: self.window_.track_worker(w, self._busy_message or "Preparing handles…")
        )
        self._busy_message = ""

        self.view.handle_pressed.connect(self._on_handle_pressed)
        self.view.drag_started.connect(self.session.begin_drag)
        self.view.drag_moved.connect(self.session.drag_to)
        self.view.drag_finished.connect(self.session.end_drag)
        self._on_history_changed()
        self._on_selection_changed()
        self._set_editing_enabled(False)

    # ----------------------------------------------------------------- actions & dock
    def _action(self, text, slot, shortcut=None, checkable=False, checked=False) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if checkable:
            action.setCheckable(True)
            action.setChecked(checked)
            action.toggled.connect(slot)
        else:
            action.triggered.connect(lambda _checked=False: slot())
        return action

    def _make_actions(self) -> None:
        self.open_action = self._action(
            "&Open mesh…", self.choose_mesh, QKeySequence.StandardKey.Open
        )
        self.demo_action = self._action("Open &demo template", self.open_demo)
        self.export_action = self._action("&Export deformed mesh…", self.choose_export, "Ctrl+E")
        self.save_handles_action = self._action(
            "Save &handle set…", self.choose_save_handles, "Ctrl+S"
        )
        self.load_handles_action = self._action(
            "&Load handle set…", self.choose_load_handles, "Ctrl+L"
        )
        self.screenshot_action = self._action("Save &screenshot…", self.choose_screenshot, "Ctrl+P")
        self.undo_action = self._action("&Undo", self.session.undo, QKeySequence.StandardKey.Undo)
        self.redo_action = self._action("&Redo", self.session.redo, QKeySequence.StandardKey.Redo)
        self.reset_action = self._action("Reset &handles", self.session.reset, "Ctrl+R")
        self.clear_selection_action = self._action(
            "Clear selection", self.session.clear_selection, "Esc"
        )
        self.camera_action = self._action("Reset &camera", self.view.reset_camera, "Ctrl+0")
        self.wireframe_action = self._action(
            "Show &wireframe", self.view.set_wireframe, "Ctrl+Shift+W", checkable=True
        )
        self.handles_action = self._action(
            "Show &handles", self.view.set_handles_visible, "Ctrl+Shift+H", True, True
        )
        self.influence_action = self._action(
            "&Influence colouring", lambda _on: self._update_influence(), "Ctrl+I", True, True
        )
        self.up_axis_group = QActionGroup(self)
        self.up_axis_actions = {}
        for axis in UP_AXES:
            action = self._action(
                f"{axis.upper()} axis up",
                lambda on, axis=axis: on and self.set_up_axis(axis),
                checkable=True,
            )
            self.up_axis_group.addAction(action)
            self.up_axis_actions[axis] = action
        self.set_up_axis(str(self.window_.settings.value("editor/up_axis", "z")))

    def file_actions(self) -> list[QAction]:
        return [
            self.open_action,
            self.demo_action,
            self.export_action,
            self.save_handles_action,
            self.load_handles_action,
            self.screenshot_action,
        ]

    def edit_actions(self) -> list[QAction]:
        return [self.undo_action, self.redo_action, self.reset_action, self.clear_selection_action]

    def view_actions(self) -> list[QAction]:
        return [
            self.camera_action,
            *self.up_axis_actions.values(),
            self.wireframe_action,
            self.handles_action,
            self.influence_action,
        ]

    def set_up_axis(self, axis: str) -> None:
        """Show meshes with ``axis`` ("z" or "y") up; remembered between runs."""
        if axis not in UP_AXES:
            axis = "z"
        self.up_axis_actions[axis].setChecked(True)
        if axis != self.view.up_axis:
            self.view.set_up_axis(axis)
        self.window_.settings.setValue("editor/up_axis", axis)

    def dock_widgets(self) -> list[QDockWidget]:
        return [self.dock]

    def _make_dock(self) -> None:
        panel = QWidget()
        layout = QVBoxLayout(panel)

        init_box = QGroupBox("Handles")
        form = QFormLayout(init_box)
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 256)
        self.k_spin.setValue(DEFAULT_NUM_HANDLES)
        self.k_spin.setToolTip("Number of handles K (farthest-point sampling on geodesic distance)")
        self.reinit_button = QPushButton("Re-initialise")
        self.reinit_button.clicked.connect(
            lambda: self.session.set_num_handles(self.k_spin.value())
        )
        row = QHBoxLayout()
        row.addWidget(self.k_spin)
        row.addWidget(self.reinit_button)
        form.addRow("Count K", row)
        self.selection_label = QLabel()
        self.selection_label.setWordWrap(True)
        form.addRow("Selected", self.selection_label)
        self.quality_label = QLabel("No mesh.")
        self.quality_label.setWordWrap(True)
        self.quality_label.setToolTip(
            "Mesh check: connected components, open boundary loops, non-manifold edges, "
            "degenerate faces and unused vertices change how a deformation behaves"
        )
        form.addRow("Mesh check", self.quality_label)
        layout.addWidget(init_box)

        offset_box = QGroupBox("Offset of the selection")
        offset_form = QFormLayout(offset_box)
        self.offset_spins = []
        for axis in "xyz":
            spin = QDoubleSpinBox()
            spin.setRange(-1e6, 1e6)
            spin.setDecimals(4)
            spin.setSingleStep(0.01)
            offset_form.addRow(axis, spin)
            self.offset_spins.append(spin)
        self.apply_offset_button = QPushButton("Apply offset")
        self.apply_offset_button.setToolTip(
            "Give every selected handle this offset (one undo step)"
        )
        self.apply_offset_button.clicked.connect(self.apply_numeric_offset)
        offset_form.addRow(self.apply_offset_button)
        layout.addWidget(offset_box)

        buttons = QHBoxLayout()
        for action in (self.undo_action, self.redo_action, self.reset_action):
            button = QToolButton()
            button.setDefaultAction(action)
            buttons.addWidget(button)
        layout.addLayout(buttons)

        colour_row = QHBoxLayout()
        colour_row.addWidget(QLabel("Colour by"))
        self.influence_mode = QComboBox()
        for label, mode in INFLUENCE_MODES:
            self.influence_mode.addItem(label, mode)
        self.influence_mode.setToolTip(
            "Weights: the selected handle's row of the dependency matrix A (softmax, spans many "
            "orders of magnitude, hence log10). Motion: |column of W^-1 A^T|, how far each "
            "vertex moves when the handle moves by one unit. For a learned A (a category "
            "checkpoint): the initial row A0[k] it started from, and the change A[k] - A0[k]."
        )
        self.influence_mode.currentIndexChanged.connect(lambda _i: self._update_influence())
        colour_row.addWidget(self.influence_mode, 1)
        layout.addLayout(colour_row)

        for action in (self.influence_action, self.wireframe_action, self.handles_action):
            box = QCheckBox(action.text().replace("&", ""))
            box.setChecked(action.isChecked())
            box.toggled.connect(action.setChecked)
            action.toggled.connect(box.setChecked)
            layout.addWidget(box)

        help_label = QLabel(
            "Click a handle to select it (Ctrl-click adds or removes), drag it to deform the "
            "mesh in the screen plane. Drag elsewhere to rotate, right-drag or wheel to zoom."
        )
        help_label.setWordWrap(True)
        help_label.setStyleSheet("color: #555;")
        layout.addWidget(help_label)
        layout.addStretch(1)

        self.dock = QDockWidget("Handles")
        self.dock.setObjectName("EditorHandlesDock")
        self.dock.setWidget(panel)
        self.dock.setAllowedAreas(
            Qt.DockWidgetArea.LeftDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea
        )

    # ----------------------------------------------------------------- opening
    def open_mesh(self, path: str | Path, num_handles: int | None = None) -> None:
        """Load ``path`` off-thread; errors appear as a dialog, the current mesh stays."""
        k = num_handles if num_handles is not None else self.k_spin.value()
        self.k_spin.setValue(k)
        self.session.open(str(path), num_handles=k)

    def open_file(self, path: str) -> None:
        """Main-window hook (recent files, drag-and-drop)."""
        self.open_mesh(path)

    def open_demo(self, num_handles: int | None = None) -> None:
        """The project's demo template (assets/demo_template.ply)."""
        self.open_mesh(DEMO_TEMPLATE, num_handles)

    def _file_dialog_dir(self) -> str:
        return str(self.window_.settings.value("editor/last_dir", str(Path.home())))

    def _remember_dir(self, path: str) -> None:
        self.window_.settings.setValue("editor/last_dir", str(Path(path).parent))

    def choose_mesh(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open mesh", self._file_dialog_dir(), MESH_FILTER
        )
        if path:
            self._remember_dir(path)
            self.open_mesh(path)

    def choose_export(self) -> None:
        if not self.session.ready:
            return
        path, selected = QFileDialog.getSaveFileName(
            self, "Export deformed mesh", self._file_dialog_dir(), EXPORT_FILTER
        )
        if path:
            if not Path(path).suffix:
                path += "." + selected.split("*.")[1].rstrip(")")
            self._remember_dir(path)
            self.export_mesh(path)

    def export_mesh(self, path: str) -> None:
        try:
            self.session.export_deformed(path)
        except Exception as exc:
            self.window_.show_error("Cannot export the mesh", exc)

    def choose_save_handles(self) -> None:
        if not self.session.ready:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save handle set", self._file_dialog_dir(), HANDLES_FILTER
        )
        if path:
            if not Path(path).suffix:
                path += ".json"
            self._remember_dir(path)
            try:
                self.session.save_handle_set(path)
            except Exception as exc:
                self.window_.show_error("Cannot save the handle set", exc)

    def choose_load_handles(self) -> None:
        if not self.session.ready:
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Load handle set", self._file_dialog_dir(), HANDLES_FILTER
        )
        if path:
            self._remember_dir(path)
            self.load_handle_set(path)

    def load_handle_set(self, path: str) -> None:
        """Apply a saved handle set; refused with a dialog if it belongs to another mesh."""
        try:
            self.session.load_handle_set(path)
        except Exception as exc:
            self.window_.show_error("Cannot load the handle set", exc)

    def choose_screenshot(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save screenshot", self._file_dialog_dir(), "PNG images (*.png)"
        )
        if path:
            if not path.lower().endswith(".png"):
                path += ".png"
            self._remember_dir(path)
            try:
                self.view.screenshot(path)
            except Exception as exc:
                self.window_.show_error("Cannot save the screenshot", exc)

    # ----------------------------------------------------------------- editing
    def _on_handle_pressed(self, handle: int, add: bool) -> None:
        if add:
            self.session.select([handle], add=True)
        elif handle not in self.session.selection:
            self.session.select([handle])

    def apply_numeric_offset(self) -> None:
        """Set the offset typed in the dock on every selected handle (one undo step)."""
        if self.session.ready and self.session.selection:
            offset = [spin.value() for spin in self.offset_spins]
            self.session.set_offset(self.session.selection, offset)

    # ----------------------------------------------------------------- model -> widgets
    def _set_editing_enabled(self, on: bool) -> None:
        for action in (
            self.export_action,
            self.save_handles_action,
            self.load_handles_action,
            self.reset_action,
        ):
            action.setEnabled(on)
        self.reinit_button.setEnabled(on)

    def _offer_influence_modes(self) -> None:
        """The colour-by entries for the open A: the comparisons with the initial A only when
        the session holds it (the current choice stays when it is still offered)."""
        combo = self.influence_mode
        current = combo.currentData()
        entries = INFLUENCE_MODES
        if self.session.has_initial_dependency:
            entries += LEARNED_INFLUENCE_MODES
        combo.blockSignals(True)
        combo.clear()
        for label, mode in entries:
            combo.addItem(label, mode)
        combo.setCurrentIndex(max(combo.findData(current), 0))
        combo.blockSignals(False)

    def _on_mesh_changed(self) -> None:
        s = self.session
        self._offer_influence_modes()
        self.view.set_mesh(s.vertices, s.faces)
        self.view.set_handles(s.handle_targets())
        self.view.set_wireframe(self.wireframe_action.isChecked())
        self.k_spin.setValue(s.num_handles)
        size = float(np.linalg.norm(np.ptp(s.vertices, axis=0)))
        for spin in self.offset_spins:
            spin.setSingleStep(size / 100.0)
        self._set_editing_enabled(True)
        self.window_.set_counts_text(
            f"{len(s.vertices):,} vertices, {len(s.faces):,} faces, {s.num_handles} handles", self
        )
        problems = s.quality.problems()
        self.quality_label.setText("; ".join(problems) if problems else "closed, manifold")
        self.quality_label.setStyleSheet("color: #b35900;" if problems else "")
        if problems:
            name = Path(s.mesh.path).name if s.mesh.path else "the mesh"
            self.window_.statusBar().showMessage(f"{name}: " + "; ".join(problems), 10000)
        if s.mesh.path:
            self.window_.add_recent_file(s.mesh.path)
            self.window_.setWindowTitle(f"ShapeBench — {Path(s.mesh.path).name}")

    def _on_deformation_changed(self) -> None:
        s = self.session
        self.view.update_handles(s.handle_targets())
        self.view.update_vertices(s.vertices)
        self._show_current_offset()
        self.window_.mark_updated(s.last_update_ms)

    def _on_selection_changed(self) -> None:
        s = self.session
        self.view.set_selection(s.selection)
        if s.selection:
            self.selection_label.setText(", ".join(str(h) for h in s.selection))
        else:
            self.selection_label.setText("none (click a handle)")
        self.apply_offset_button.setEnabled(bool(s.selection))
        self._show_current_offset()
        self._update_influence()

    def _show_current_offset(self) -> None:
        """The current handle's offset in the fields; no selection: empty, disabled fields
        (so no stale offset stays on view, ready to be applied to nothing)."""
        s = self.session
        selected = bool(s.ready and s.selection)
        for spin in self.offset_spins:
            spin.setEnabled(selected)
            # An empty special-value text shows a blank field at the minimum.
            spin.setSpecialValueText("" if selected else " ")
        if selected:
            offset = s.offsets[s.selection[-1]]
            for spin, value in zip(self.offset_spins, offset):
                spin.setValue(float(value))
        else:
            for spin in self.offset_spins:
                spin.setValue(spin.minimum())

    def _update_influence(self) -> None:
        s = self.session
        if s.ready and s.selection and self.influence_action.isChecked():
            handle = s.selection[-1]
            mode = self.influence_mode.currentData()
            if mode == "response":
                values = s.response(handle)
                self.view.set_scalars(values, f"Motion per unit, handle {handle}")
            elif mode == "change" and s.has_initial_dependency:
                values = s.influence_change(handle)
                self.view.set_scalars(
                    values,
                    f"learned - initial weight, handle {handle}",
                    value_range=symmetric_range(values),
                    fmt="%.2g",
                    cmap=DIVERGING_CMAP,
                )
            else:
                initial = mode == "initial" and s.has_initial_dependency
                values = s.log_influence(handle, initial=initial)
                self.view.set_scalars(
                    values,
                    f"log10 {'initial ' if initial else ''}weight, handle {handle}",
                    value_range=influence_colour_range(values),
                    fmt="%.0f",
                )
        else:
            self.view.set_scalars(None)

    def _on_history_changed(self) -> None:
        self.undo_action.setEnabled(self.session.can_undo())
        self.redo_action.setEnabled(self.session.can_redo())

    def _on_busy(self, busy: bool, message: str) -> None:
        self.reinit_button.setEnabled(not busy and self.session.mesh is not None)
        # The message goes to the window's progress label with the worker (worker_started
        # follows): one message in the status bar, not a second one drawn over it.
        self._busy_message = message if busy else ""

    def _on_failed(self, exc: BaseException) -> None:
        self.window_.show_error("Cannot open the mesh", exc)

    def shutdown(self) -> None:
        """Stop a running precomputation and release the VTK view (idempotent)."""
        self.session.cancel()
        self.session.wait(10_000)
        self.view.close_view()
