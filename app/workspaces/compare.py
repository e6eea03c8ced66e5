"""The Compare workspace: ground truth, PRN checkpoints and baselines side by side on one sequence.

Left: the sequence (a held-out synthetic set or a file with ground truth), the checkpoints and
baselines to compare, and a sortable metrics table (MPJPE, e3D; the numbers ``python main.py
evaluate`` prints, from the same engine functions). Ticking a row's *Show* box puts that method in
one of the linked 3D views (ground truth plus up to three methods; the cameras move together),
its points coloured by their error on a colour scale shared by all views. Below the views: the
frame bar and the export of the views as a PNG, or a GIF/MP4 over a frame range.

Reconstructions run on a :class:`app.workers.Worker` thread (a classic NRSfM baseline can take
seconds); state lives in :class:`app.models.comparison.ComparisonModel`.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import (
    QApplication,
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QProgressDialog,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import dialogs
from app.export import save_animation, save_png
from app.models.comparison import GROUND_TRUTH, MAX_SHOWN_METHODS, ComparisonModel, compute_methods
from app.models.training_session import limit_torch_threads
from app.paths import CHECKPOINT_FILTER, DEMO_CHECKPOINT
from app.views.frame_bar import FrameBar
from app.views.keypoint_data import DataPanel
from app.views.linked_views import LinkedViews
from app.workers import Worker
from engine.core.errors import InputError
from engine.io.keypoints import skeleton_edges

#: Sequences offered for comparison: (label, load_dataset spec). ``split=test`` motions come
#: from seeds the training split never uses. The first is the default: ten motions, enough
#: that the table is not decided by one sequence (on the first 300 held-out frames alone the
#: demo PRN is behind zero depth; on 2,000 it is well ahead, as in the README's table).
COMPARE_DATASETS = [
    ("Synthetic human, held out (2,000 frames)", "synthetic:human?frames=2000&split=test"),
    ("Synthetic human, held out (300 frames)", "synthetic:human?frames=300&split=test"),
]
EXPORT_FILTER = "MP4 video (*.mp4);;Animated GIF (*.gif)"
COLUMNS = ["Show", "Method", "MPJPE", "e3D"]
COL_SHOW, COL_NAME, COL_MPJPE, COL_E3D = range(4)


class NumericItem(QTableWidgetItem):
    """A table cell showing a formatted number and sorting by its value, not its text."""

    def __init__(self, value: float, text: str) -> None:
        super().__init__(text)
        self.setData(Qt.ItemDataRole.UserRole, float(value))
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.setFlags(self.flags() & ~Qt.ItemFlag.ItemIsEditable)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine = self.data(Qt.ItemDataRole.UserRole)
        theirs = other.data(Qt.ItemDataRole.UserRole)
        if mine is None or theirs is None:
            return super().__lt__(other)
        return float(mine) < float(theirs)


def evaluation_text(spec: str, sequence) -> str:
    """Which data the table's numbers are on, e.g. ``"on synthetic:human?frames=2000&split=test:
    held-out motions (not in any training set), all 2,000 frames"``."""
    name = Path(spec).name if Path(spec).suffix else spec
    if "split=test" in spec:
        kind = "held-out motions (not in any training set)"
    elif Path(spec).suffix:
        kind = "the loaded file"
    else:
        kind = "the loaded data set"
    return f"on {name or 'the loaded data'}: {kind}, all {sequence.num_frames:,} frames"


def format_metric(value: float) -> str:
    """How the table prints a metric: 4 decimals, as ``python main.py evaluate`` prints it."""
    return f"{value:.4f}"


class CompareWorkspace(QWidget):
    """Compare reconstructions: see the module docstring. ``window`` may be None (tests)."""

    title = "Compare"

    def __init__(self, window=None) -> None:
        super().__init__(window)
        self.window_ = window
        self.model = ComparisonModel(self)
        self.worker: Worker | None = None
        self._shown_once = False
        self._edges = None
        self._filling = False
        self._spec = ""
        self._build()
        self._connect()
        self._update_buttons()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.data_panel = DataPanel(datasets=COMPARE_DATASETS)

        methods_box = QGroupBox("Methods")
        self.checkpoint_list = QListWidget()
        self.checkpoint_list.setMaximumHeight(70)
        self.add_checkpoint_button = QPushButton("Add checkpoint…")
        self.remove_checkpoint_button = QPushButton("Remove")
        self.baseline_checks: dict[str, QCheckBox] = {}
        from engine.nrsfm.baselines import BASELINES

        methods = QGridLayout(methods_box)
        methods.addWidget(QLabel("PRN checkpoints:"), 0, 0, 1, 2)
        methods.addWidget(self.checkpoint_list, 1, 0, 1, 2)
        methods.addWidget(self.add_checkpoint_button, 2, 0)
        methods.addWidget(self.remove_checkpoint_button, 2, 1)
        methods.addWidget(QLabel("Baselines:"), 3, 0, 1, 2)
        row = 4
        for name in BASELINES:
            check = QCheckBox(name)
            check.setChecked(True)
            self.baseline_checks[name] = check
            methods.addWidget(check, row, 0, 1, 2)
            row += 1
        self.compute_button = QPushButton("Compute")
        methods.addWidget(self.compute_button, row, 0, 1, 2)

        table_box = QGroupBox("Metrics (click a header to sort)")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COL_E3D, Qt.SortOrder.AscendingOrder)  # best first
        self.table.setMinimumHeight(120)
        # The numbers depend on the data: say which (the Training tab's are on its own data).
        self.data_label = QLabel("No data loaded.")
        self.data_label.setWordWrap(True)
        self.units_label = QLabel("MPJPE in the ground truth's units; e3D = mean ‖X−X̂‖/‖X‖.")
        self.units_label.setWordWrap(True)
        table_layout = QVBoxLayout(table_box)
        table_layout.addWidget(self.data_label)
        table_layout.addWidget(self.table)
        table_layout.addWidget(self.units_label)

        export_box = QGroupBox("Export")
        self.export_from = QSpinBox()
        self.export_to = QSpinBox()
        self.export_fps = QSpinBox()
        self.export_fps.setRange(1, 60)
        self.export_fps.setValue(10)
        self.export_png_button = QPushButton("Export PNG…")
        self.export_anim_button = QPushButton("Export GIF/MP4…")
        export = QGridLayout(export_box)
        export.addWidget(QLabel("Frames"), 0, 0)
        export.addWidget(self.export_from, 0, 1)
        export.addWidget(QLabel("to"), 0, 2)
        export.addWidget(self.export_to, 0, 3)
        export.addWidget(QLabel("fps"), 1, 0)
        export.addWidget(self.export_fps, 1, 1)
        export.addWidget(self.export_png_button, 2, 0, 1, 2)
        export.addWidget(self.export_anim_button, 2, 2, 1, 2)

        panel = QWidget()
        panel_layout = QVBoxLayout(panel)
        for box in (self.data_panel, methods_box, table_box, export_box):
            panel_layout.addWidget(box)
        panel_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(panel.sizeHint().width() + 20)

        self.linked = LinkedViews(count=1)
        self.frame_bar = FrameBar()
        # The depth sign of each method is already the one its metrics chose, per frame.
        self.frame_bar.flip.hide()
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.linked, 1)
        right_layout.addWidget(self.frame_bar)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(scroll)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(splitter)

        self.add_checkpoint_action = QAction("Add PRN checkpoint to comparison…", self)
        self.export_png_action = QAction("Export comparison as PNG…", self)
        self.export_anim_action = QAction("Export comparison as GIF/MP4…", self)

    def _connect(self) -> None:
        m = self.model
        self.data_panel.requested.connect(self.load_data)
        self.add_checkpoint_button.clicked.connect(self._add_checkpoint_dialog)
        self.add_checkpoint_action.triggered.connect(self._add_checkpoint_dialog)
        self.remove_checkpoint_button.clicked.connect(self._remove_checkpoint)
        self.compute_button.clicked.connect(lambda: self.compute())
        self.table.itemChanged.connect(self._on_item_changed)
        self.frame_bar.frame_changed.connect(m.set_frame)
        self.export_png_button.clicked.connect(self._export_png_dialog)
        self.export_png_action.triggered.connect(self._export_png_dialog)
        self.export_anim_button.clicked.connect(self._export_animation_dialog)
        self.export_anim_action.triggered.connect(self._export_animation_dialog)
        m.sequence_changed.connect(self._on_sequence)
        m.methods_changed.connect(self._fill_table)
        m.shown_changed.connect(self._on_shown)
        m.frame_changed.connect(self._show_frame)

    # ------------------------------------------------------------------ main-window hooks
    def file_actions(self) -> list[QAction]:
        """File menu entries: add a checkpoint, export PNG / animation."""
        return [self.add_checkpoint_action, self.export_png_action, self.export_anim_action]

    def open_checkpoint(self, path: str) -> None:
        """Add a checkpoint to the comparison (``main.py --checkpoint``, File > Load).

        Before the tab was first shown, only lists it; the first show then picks a sequence
        for it and computes the comparison.
        """
        self.add_checkpoint(path)

    def shutdown(self) -> None:
        """Stop playback, cancel a running computation and release the 3D views."""
        self.frame_bar.set_playing(False)
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(30_000)
        self.linked.close_views()

    def showEvent(self, event) -> None:
        """Fill the comparison the first time the tab is shown (keeps start-up fast)."""
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            QTimer.singleShot(0, self.open_demo)

    def open_demo(self) -> bool:
        """With no sequence yet: compare the listed checkpoints (else the demo checkpoint, when
        shipped) with the baselines on a sequence that fits them."""
        if self.model.sequence is not None:
            return False
        if not self.checkpoints():
            if not DEMO_CHECKPOINT.is_file():
                return False
            self._add_checkpoint_entry(str(DEMO_CHECKPOINT))
        try:
            spec = self.sequence_for(self.checkpoints()[0])
        except (InputError, OSError) as exc:
            self._status(f"Comparison not started: {dialogs.error_text(exc)}")
            return False
        if not self.load_data(spec):
            return False
        return self.compute() is not None

    @staticmethod
    def sequence_for(checkpoint_path: str) -> str:
        """A data spec to compare a checkpoint on: held-out synthetic motion for a network
        trained on synthetic data, else the file it was trained on (with its ground truth)."""
        from engine.prn.checkpoint import load_checkpoint

        data = load_checkpoint(checkpoint_path).config.data
        return COMPARE_DATASETS[0][1] if data.startswith("synthetic:") else data

    # ------------------------------------------------------------------ data and methods
    def load_data(self, spec: str) -> bool:
        """Compare on this data set (needs 3D ground truth); errors become a dialog."""
        from engine.io.keypoints import load_dataset

        if self._busy():
            self._error("Cannot load data", "wait for the running computation to finish")
            return False
        try:
            sequence = load_dataset(spec)
            self._spec = spec
            self.model.set_sequence(sequence)
        except (InputError, OSError) as exc:
            self._error("Cannot load data", exc)
            return False
        self.data_panel.show_sequence(sequence, spec)
        return True

    def add_checkpoint(self, path: str) -> Worker | None:
        """Add a PRN checkpoint and reconstruct the sequence with it (when one is loaded)."""
        from engine.prn.checkpoint import load_checkpoint

        try:
            load_checkpoint(path)  # refuse foreign/damaged files before listing them
        except (InputError, OSError) as exc:
            self._error("Cannot add checkpoint", exc)
            return None
        self._add_checkpoint_entry(str(path))
        if self.model.sequence is None:
            return None
        return self.compute(checkpoints=[str(path)], baselines=[])

    def _add_checkpoint_entry(self, path: str) -> None:
        existing = [
            self.checkpoint_list.item(i).text() for i in range(self.checkpoint_list.count())
        ]
        if path not in existing:
            self.checkpoint_list.addItem(path)

    def _add_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add PRN checkpoint", "", CHECKPOINT_FILTER)
        if path:
            self.add_checkpoint(path)

    def _remove_checkpoint(self) -> None:
        item = self.checkpoint_list.currentItem()
        if item is None:
            return
        path = item.text()
        self.checkpoint_list.takeItem(self.checkpoint_list.row(item))
        for name, method in list(self.model.methods.items()):
            if method.source == path:
                self.model.remove_method(name)

    def checkpoints(self) -> list[str]:
        """Checkpoint paths listed for comparison."""
        return [self.checkpoint_list.item(i).text() for i in range(self.checkpoint_list.count())]

    def selected_baselines(self) -> list[str]:
        """Baselines ticked for comparison."""
        return [name for name, check in self.baseline_checks.items() if check.isChecked()]

    def compute(self, checkpoints=None, baselines=None) -> Worker | None:
        """Reconstruct and score on a worker thread; results land in the model when done.

        Args:
            checkpoints: paths (default: every listed checkpoint).
            baselines: names (default: the ticked baselines).

        Returns:
            The worker (tests wait for its ``done``), or None when nothing could start.
        """
        sequence = self.model.sequence
        if sequence is None:
            self._error("Nothing to compare", "load a sequence with 3D ground truth first")
            return None
        if self._busy():
            self._error("Busy", "a comparison is already being computed")
            return None
        checkpoints = self.checkpoints() if checkpoints is None else list(checkpoints)
        baselines = self.selected_baselines() if baselines is None else list(baselines)

        def job(progress, cancelled):
            return compute_methods(
                sequence, checkpoints, baselines, progress=progress, cancelled=cancelled
            )

        limit_torch_threads()
        worker = Worker(job, name="comparison")
        worker.finished.connect(lambda result, seq=sequence: self._on_computed(seq, result))
        worker.error.connect(lambda exc: self._error("Comparison failed", exc))
        worker.done.connect(self._on_worker_done)
        self.worker = worker
        if self.window_ is not None and hasattr(self.window_, "track_worker"):
            self.window_.track_worker(worker, "Comparing reconstructions")
        worker.start()
        self._update_buttons()
        return worker

    def _on_computed(self, sequence, result) -> None:
        if sequence is self.model.sequence:  # the user may have loaded another meanwhile
            self.model.set_results(result)

    def _on_worker_done(self) -> None:
        self.worker = None
        self._update_buttons()

    def _busy(self) -> bool:
        return self.worker is not None and self.worker.is_running()

    def _update_buttons(self) -> None:
        busy = self._busy()
        has_seq = self.model.sequence is not None
        self.compute_button.setEnabled(has_seq and not busy)
        self.data_panel.setEnabled(not busy)
        for w in (self.export_png_button, self.export_anim_button):
            w.setEnabled(has_seq)
        self.export_png_action.setEnabled(has_seq)
        self.export_anim_action.setEnabled(has_seq)

    # ------------------------------------------------------------------ table and views
    def _on_sequence(self, sequence) -> None:
        self._edges = skeleton_edges(sequence)
        self.data_label.setText("MPJPE and e3D " + evaluation_text(self._spec, sequence))
        self._show_counts()
        self.frame_bar.set_count(sequence.num_frames)
        last = sequence.num_frames - 1
        for spin in (self.export_from, self.export_to):
            spin.setRange(0, last)
        self.export_from.setValue(0)
        self.export_to.setValue(min(last, 49))
        self._update_buttons()
        self._on_shown()
        self.linked.reset_camera()

    def _fill_table(self) -> None:
        self._filling = True
        self.table.setSortingEnabled(False)
        rows = self.model.metrics_rows()
        self.table.setRowCount(len(rows))
        for r, (name, mpjpe, e3d) in enumerate(rows):
            show = QTableWidgetItem()
            show.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
            show.setCheckState(
                Qt.CheckState.Checked if name in self.model.shown else Qt.CheckState.Unchecked
            )
            show.setData(Qt.ItemDataRole.UserRole, name)
            name_item = QTableWidgetItem(name)
            name_item.setFlags(name_item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.table.setItem(r, COL_SHOW, show)
            self.table.setItem(r, COL_NAME, name_item)
            self.table.setItem(r, COL_MPJPE, NumericItem(mpjpe, format_metric(mpjpe)))
            self.table.setItem(r, COL_E3D, NumericItem(e3d, format_metric(e3d)))
        self.table.setSortingEnabled(True)
        self._filling = False
        self._show_counts()

    def _show_counts(self) -> None:
        """This tab's status-bar counts: the sequence and the methods compared on it."""
        sequence = self.model.sequence
        if sequence is None or self.window_ is None or not hasattr(self.window_, "set_counts_text"):
            return
        methods = len(self.model.methods)
        self.window_.set_counts_text(
            f"{sequence.num_frames:,} frames, {sequence.num_points} points, "
            f"{methods} method{'s' if methods != 1 else ''} compared",
            self,
        )

    def table_values(self) -> dict[str, dict[str, float]]:
        """The table's rows: method name -> {'mpjpe', 'e3d'} at full precision (the values the
        cells were printed from and sort by)."""
        role = Qt.ItemDataRole.UserRole
        return {
            self.table.item(r, COL_NAME).text(): {
                "mpjpe": float(self.table.item(r, COL_MPJPE).data(role)),
                "e3d": float(self.table.item(r, COL_E3D).data(role)),
            }
            for r in range(self.table.rowCount())
        }

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != COL_SHOW:
            return
        checked = [
            self.table.item(r, COL_SHOW).data(Qt.ItemDataRole.UserRole)
            for r in range(self.table.rowCount())
            if self.table.item(r, COL_SHOW).checkState() == Qt.CheckState.Checked
        ]
        if len(checked) > MAX_SHOWN_METHODS:
            self._filling = True
            item.setCheckState(Qt.CheckState.Unchecked)
            self._filling = False
            self._status(f"At most {MAX_SHOWN_METHODS} methods are shown next to the ground truth.")
            return
        # Keep the order methods were shown in; new ones go to the right.
        name = item.data(Qt.ItemDataRole.UserRole)
        order = [n for n in self.model.shown if n in checked] + [
            n for n in checked if n not in self.model.shown
        ]
        if name in order and name not in self.model.shown:
            order = [n for n in order if n != name] + [name]
        self.model.set_shown(order)

    def _on_shown(self) -> None:
        self.linked.set_count(1 + len(self.model.shown))
        self._show_frame(self.model.frame)

    def _show_frame(self, frame: int) -> None:
        m = self.model
        if m.sequence is None:
            return
        if self.frame_bar.frame != frame:
            self.frame_bar.set_frame(frame)
        views = self.linked.views
        views[0].set_title(f"{GROUND_TRUTH} · frame {frame}")
        views[0].set_skeleton(m.ground_truth_frame(frame), self._edges, color="#222222")
        clim = m.error_range()
        for i, (view, name) in enumerate(zip(views[1:], m.shown)):
            points, errors = m.method_frame(name, frame)
            view.set_title(f"{name} · e3D {m.methods[name].metrics['e3d']:.4f}")
            last = i == len(m.shown) - 1  # one colour bar: every view uses the same range
            view.set_skeleton(points, self._edges, scalars=errors, clim=clim, scalar_bar=last)

    # ------------------------------------------------------------------ export
    def export_png(self, path: str | Path) -> Path:
        """Save the linked views of the current frame as one PNG."""
        return save_png(self.linked.render_image(), path)

    def export_animation(self, path: str | Path, first: int, last: int, fps: float = 10.0) -> int:
        """Render frames ``first..last`` (inclusive) of the linked views into a GIF or MP4.

        Returns:
            The number of frames written. The current frame is restored afterwards.
        """
        m = self.model
        if m.sequence is None:
            raise InputError("load a sequence before exporting", field="frames")
        if not 0 <= first <= last < m.num_frames:
            raise InputError(
                f"expected 0 <= first <= last < {m.num_frames}, got {first}..{last}", field="frames"
            )
        current = m.frame
        playing = self.frame_bar.timer.isActive()
        self.frame_bar.set_playing(False)
        progress = QProgressDialog("Rendering frames…", "Cancel", first, last + 1, self)
        progress.setWindowModality(Qt.WindowModality.WindowModal)
        progress.setMinimumDuration(500)

        def frames():
            for f in range(first, last + 1):
                if progress.wasCanceled():
                    return
                progress.setValue(f)
                QApplication.processEvents()
                m.set_frame(f)  # redraws the views through frame_changed
                yield self.linked.render_image()

        try:
            count = save_animation(frames(), path, fps=fps)
        finally:
            progress.close()
            m.set_frame(current)
            self.frame_bar.set_playing(playing)
        return count

    def _export_png_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export comparison", "compare.png", "PNG image (*.png)"
        )
        if path:
            try:
                self.export_png(path)
            except (InputError, OSError, ValueError) as exc:
                self._error("Export failed", exc)
                return
            self._status(f"Saved {path}")

    def _export_animation_dialog(self) -> None:
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export comparison animation", "compare.mp4", EXPORT_FILTER
        )
        if not path:
            return
        if Path(path).suffix.lower() not in (".gif", ".mp4"):
            path += ".gif" if "gif" in chosen.lower() else ".mp4"
        try:
            count = self.export_animation(
                path, self.export_from.value(), self.export_to.value(), self.export_fps.value()
            )
        except (InputError, OSError, ValueError, RuntimeError) as exc:
            self._error("Export failed", exc)
            return
        self._status(f"Saved {count} frames to {path}")

    # ------------------------------------------------------------------ helpers
    def _error(self, title: str, exc) -> None:
        if self.window_ is not None and hasattr(self.window_, "show_error"):
            self.window_.show_error(title, exc)
        else:
            dialogs.show_error(self, title, exc)

    def _status(self, text: str) -> None:
        if self.window_ is not None and hasattr(self.window_, "statusBar"):
            self.window_.statusBar().showMessage(text, 5000)
