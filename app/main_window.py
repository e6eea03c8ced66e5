"""The main window: a tab per workspace, the shared menus, status bar, settings and file routing.

Workspaces (``app.workspaces.WORKSPACE_CLASSES``) are QWidgets built as ``cls(window)`` with a
class attribute ``title``. The window asks each for these OPTIONAL hooks:

``file_actions() / edit_actions() / view_actions() -> list[QAction]``
    added to the File / Edit / View menu (in tab order, separated per workspace);
``dock_widgets() -> list[QDockWidget]``
    docked on the right, visible while that workspace's tab is current;
``file_suffixes: tuple[str, ...]`` and ``open_file(path) -> None``
    files with these suffixes (".ply", ...) opened via Open recent or drag-and-drop go there
    (the tab is made current first); ``open_file`` reports its own errors;
``open_checkpoint(path) -> None`` / ``open_category_checkpoint(path) -> None``
    called by :meth:`MainWindow.open_checkpoint` (``main.py --checkpoint``) for a PRN /
    a category checkpoint;
``shutdown() -> None``
    called when the window closes: stop timers/workers and close PyVista interactors.

Shared services for workspaces: :meth:`show_error`, :meth:`add_recent_file`,
:meth:`track_worker` (progress bar + Cancel in the status bar), :meth:`set_counts_text`,
:meth:`mark_updated`, and :attr:`settings` (a QSettings; tests pass an isolated one).
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

from PyQt6.QtCore import QSettings, QSize, Qt, QTimer
from PyQt6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
)
from PyQt6.QtWidgets import (
    QAbstractScrollArea,
    QFrame,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QStatusBar,
    QTabWidget,
    QWidget,
)

from app import dialogs
from app.workers import Worker, running_workers

ORGANIZATION = "shapebench"
APPLICATION = "ShapeBench"
MAX_RECENT = 10
#: The size the window opens at on a screen large enough for it; smaller screens get their
#: available geometry (see :meth:`MainWindow.fit_to_screen`).
PREFERRED_SIZE = (1400, 900)


def _versions() -> list[tuple[str, str]]:
    import numpy
    import pyvista
    import scipy
    import torch
    import vtk
    from PyQt6.QtCore import PYQT_VERSION_STR, QT_VERSION_STR

    return [
        ("Python", platform.python_version()),
        ("PyTorch", torch.__version__),
        ("NumPy", numpy.__version__),
        ("SciPy", scipy.__version__),
        ("PyVista", pyvista.__version__),
        ("VTK", vtk.vtkVersion.GetVTKVersion()),
        ("PyQt6 / Qt", f"{PYQT_VERSION_STR} / {QT_VERSION_STR}"),
    ]


def device_description() -> str:
    """The engine's compute device in words, e.g. ``cpu`` or ``cuda (NVIDIA H100)``."""
    import torch

    from engine.core.device import default_device

    device = default_device()
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


class _DockScrollArea(QScrollArea):
    """A vertical scroll area that asks for its panel's whole size, so the dock layout gives
    the panel all the room it wants when there is room, and scrolls only when there is not."""

    def sizeHint(self) -> QSize:
        panel = self.widget()
        if panel is None:
            return super().sizeHint()
        hint = panel.sizeHint()
        bar = self.verticalScrollBar().sizeHint().width()
        return QSize(hint.width() + bar, hint.height())

    def minimumSizeHint(self) -> QSize:
        panel = self.widget()
        if panel is None:
            return super().minimumSizeHint()
        bar = self.verticalScrollBar().sizeHint().width()
        return QSize(panel.minimumSizeHint().width() + bar, super().minimumSizeHint().height())


def _make_scrollable(dock) -> None:
    """Put a dock's panel in a vertical scroll area (unless it scrolls itself), so a panel
    taller than a small screen's share of the window stays usable instead of being cut."""
    panel = dock.widget()
    if panel is None or isinstance(panel, QAbstractScrollArea):
        return
    scroll = _DockScrollArea()
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(panel)
    if panel.maximumWidth() < 16_777_215:
        scroll.setMaximumWidth(panel.maximumWidth() + scroll.verticalScrollBar().sizeHint().width())
    dock.setWidget(scroll)


class MainWindow(QMainWindow):
    """The workbench window. ``settings`` defaults to the user's QSettings for the app."""

    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else QSettings(ORGANIZATION, APPLICATION)
        self.setWindowTitle("ShapeBench")
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)

        self._build_status_bar()
        self._tracked: list[Worker] = []
        self._fitted_shown = False
        self._counts_texts: dict[int, str] = {}  # tab index -> that workspace's counts

        from app.workspaces import WORKSPACE_CLASSES

        self.workspaces: list[QWidget] = []
        self._docks: dict[int, list] = {}
        for cls in WORKSPACE_CLASSES:
            workspace = cls(self)
            self.workspaces.append(workspace)
            self.tabs.addTab(workspace, cls.title)
        for index, workspace in enumerate(self.workspaces):
            docks = list(getattr(workspace, "dock_widgets", list)())
            for dock in docks:
                _make_scrollable(dock)
                if not dock.objectName():
                    dock.setObjectName(f"{type(workspace).__name__}.{dock.windowTitle()}")
                self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            self._docks[index] = docks

        self._build_menus()
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self._on_tab_changed(self.tabs.currentIndex())
        self._restore_settings()

    # ----------------------------------------------------------------- construction
    def _build_status_bar(self) -> None:
        bar = QStatusBar()
        self.setStatusBar(bar)
        self.device_label = QLabel(f"Device: {device_description()}")
        self.counts_label = QLabel("")
        self.update_label = QLabel("")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setMaximumWidth(200)
        self.progress_bar.setFormat("%p %")
        self.progress_label = QLabel("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel_tracked)
        # Permanent widgets: QStatusBar hides "normal" ones whenever a temporary message shows
        # and the two then fought over the same place (messages drawn over each other). While
        # work runs, its label is the status bar's one message (see track_worker).
        for widget in (self.progress_label, self.progress_bar, self.cancel_button):
            bar.addPermanentWidget(widget)
            widget.hide()
        bar.addPermanentWidget(self.counts_label)
        bar.addPermanentWidget(self.update_label)
        bar.addPermanentWidget(self.device_label)

    def _build_menus(self) -> None:
        menubar = self.menuBar()
        self.file_menu = menubar.addMenu("&File")
        self.edit_menu = menubar.addMenu("&Edit")
        self.view_menu = menubar.addMenu("&View")
        self.help_menu = menubar.addMenu("&Help")

        for menu, hook in (
            (self.file_menu, "file_actions"),
            (self.edit_menu, "edit_actions"),
            (self.view_menu, "view_actions"),
        ):
            for workspace in self.workspaces:
                actions = list(getattr(workspace, hook, list)())
                if not actions:
                    continue
                if not menu.isEmpty():
                    menu.addSeparator()
                menu.addActions(actions)

        self.recent_menu = QMenu("Open &recent", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.file_menu.addSeparator()
        self.file_menu.addMenu(self.recent_menu)
        self.file_menu.addSeparator()
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.quit_action.triggered.connect(self.close)
        self.file_menu.addAction(self.quit_action)

        self.about_action = QAction("&About", self)
        self.about_action.triggered.connect(self.show_about)
        self.help_menu.addAction(self.about_action)

    # ----------------------------------------------------------------- workspaces
    def workspace(self, title: str) -> QWidget:
        """The workspace whose tab title is ``title`` (KeyError if there is none)."""
        for workspace in self.workspaces:
            if type(workspace).title == title:
                return workspace
        raise KeyError(title)

    def show_workspace(self, workspace: QWidget) -> None:
        """Make ``workspace``'s tab current."""
        self.tabs.setCurrentWidget(workspace)

    def _on_tab_changed(self, index: int) -> None:
        for i, docks in self._docks.items():
            for dock in docks:
                dock.setVisible(i == index)
        self._split_docks(index)
        # The tabs' minimum is the current page's, not the largest of all pages (Qt's
        # default): one wide workspace must not keep every other one from fitting a small
        # screen beside its docks.
        page = self.tabs.widget(index)
        if page is not None:
            hint = page.minimumSizeHint().expandedTo(page.minimumSize())
            bar = self.tabs.tabBar().minimumSizeHint()
            self.tabs.setMinimumSize(max(hint.width(), 1), max(hint.height(), 0) + bar.height())
        # The counts belong to a workspace: show the new tab's own (none yet: nothing).
        self.counts_label.setText(self._counts_texts.get(index, ""))

    def _split_docks(self, index: int) -> None:
        """A workspace's docks stacked in one column, as they are shown: each but the last as
        tall as it asks (its controls in view), the last (a chart, say) takes the rest. Left to
        itself, Qt shrinks the first to share the column, or the last to its minimum on the
        next show."""
        docks = [d for d in self._docks.get(index, []) if not d.isHidden() and not d.isFloating()]
        areas = {self.dockWidgetArea(d) for d in docks}
        if len(docks) < 2 or len(areas) > 1:
            return
        heights = [d.sizeHint().height() for d in docks[:-1]]
        column = self.centralWidget().height() or sum(heights) + docks[-1].sizeHint().height()
        last = max(column - sum(heights), docks[-1].minimumSizeHint().height(), 1)
        # Before the docks are laid out (they were just shown): Qt applies these sizes then.
        self.resizeDocks(docks, [*heights, last], Qt.Orientation.Vertical)

    def open_path(self, path: str | Path) -> bool:
        """Open a file in the workspace that handles its suffix; False if none does."""
        suffix = Path(path).suffix.lower()
        for workspace in self.workspaces:
            if suffix in getattr(workspace, "file_suffixes", ()):
                self.show_workspace(workspace)
                workspace.open_file(str(path))
                return True
        return False

    def open_checkpoint(self, path: str | Path) -> None:
        """Forward a checkpoint to the workspaces that show its kind: a category checkpoint to
        those with ``open_category_checkpoint``, anything else (PRN) to ``open_checkpoint``
        (which report their own errors)."""
        from engine.io.checkpoints import checkpoint_kind

        hook = (
            "open_category_checkpoint"
            if checkpoint_kind(path) == "shapebench-category"
            else "open_checkpoint"
        )
        for workspace in self.workspaces:
            if hasattr(workspace, hook):
                getattr(workspace, hook)(str(path))

    # ----------------------------------------------------------------- services
    def show_error(self, title: str, exc: BaseException | str) -> None:
        """Error dialog; the caller keeps what was loaded before."""
        dialogs.show_error(self, title, exc)

    def set_counts_text(self, text: str, workspace: QWidget | None = None) -> None:
        """Status bar counts of ``workspace`` (default: the current one), e.g. ``"2,418
        vertices, 4,832 faces"``: shown while that workspace's tab is current, and again
        whenever it becomes current."""
        index = self.tabs.currentIndex() if workspace is None else self.tabs.indexOf(workspace)
        if index < 0:
            return
        self._counts_texts[index] = text
        if index == self.tabs.currentIndex():
            self.counts_label.setText(text)

    def mark_updated(self, milliseconds: float | None = None) -> None:
        """Status bar: the time of the last update (and how long it took, if given)."""
        stamp = time.strftime("%H:%M:%S")
        text = f"Updated {stamp}"
        if milliseconds is not None:
            text += f" ({milliseconds:.1f} ms)"
        self.update_label.setText(text)

    def track_worker(self, worker: Worker, label: str) -> None:
        """Show ``worker``'s progress in the status bar with a Cancel button until it ends."""
        self._tracked.append(worker)
        self.statusBar().clearMessage()
        self.progress_label.setText(label)
        self.progress_bar.setValue(0)
        for widget in (self.progress_label, self.progress_bar, self.cancel_button):
            widget.show()
        worker.progress.connect(self._on_tracked_progress)
        worker.done.connect(lambda w=worker: self._untrack(w))

    def _on_tracked_progress(self, fraction: float, message: str) -> None:
        self.progress_bar.setValue(round(fraction * 1000))
        if message:
            self.progress_label.setText(message)

    def _untrack(self, worker: Worker) -> None:
        if worker in self._tracked:
            self._tracked.remove(worker)
        if not self._tracked:
            for widget in (self.progress_label, self.progress_bar, self.cancel_button):
                widget.hide()

    def _cancel_tracked(self) -> None:
        for worker in list(self._tracked):
            worker.cancel()

    # ----------------------------------------------------------------- recent files
    def recent_files(self) -> list[str]:
        """Most recent first, at most ``MAX_RECENT``."""
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):  # QSettings returns a bare string for a 1-item list
            value = [value]
        return [str(v) for v in (value or [])]

    def add_recent_file(self, path: str | Path) -> None:
        """Put ``path`` at the top of File > Open recent (persisted in QSettings)."""
        path = str(Path(path).resolve())
        files = [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent_files", [path, *files][:MAX_RECENT])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for path in files:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _checked=False, p=path: self.open_path(p))
        if not files:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction(
                "Clear list", lambda: self.settings.setValue("recent_files", [])
            )

    # ----------------------------------------------------------------- help
    def about_text(self) -> str:
        """Versions of the stack and the engine's compute device."""
        rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in _versions())
        return (
            "<h3>ShapeBench</h3>"
            "<p>Learning and editing non-rigid 3D shape: learnable Laplacian handle editing, "
            "Procrustean Regression Networks, reconstruction comparison, PCA modes.</p>"
            f"<table>{rows}<tr><td>Compute device</td><td>{device_description()}</td></tr>"
            "</table>"
        )

    def show_about(self) -> None:
        QMessageBox.about(self, "About ShapeBench", self.about_text())

    # ----------------------------------------------------------------- drag and drop
    def _drop_paths(self, event) -> list[str]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]

    def _accepted_suffixes(self) -> set[str]:
        suffixes: set[str] = set()
        for workspace in self.workspaces:
            suffixes.update(getattr(workspace, "file_suffixes", ()))
        return suffixes

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        suffixes = self._accepted_suffixes()
        if any(Path(p).suffix.lower() in suffixes for p in self._drop_paths(event)):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        for path in self._drop_paths(event):
            if self.open_path(path):
                event.acceptProposedAction()
                return
        event.ignore()

    # ----------------------------------------------------------------- settings / close
    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(*PREFERRED_SIZE)
        self.fit_to_screen()
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)
            self._on_tab_changed(self.tabs.currentIndex())

    def fit_to_screen(self) -> None:
        """Shrink and move the window so its frame (title bar included, once shown) lies
        inside the available geometry of its screen (the desktop minus panels and docks)."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        available = screen.availableGeometry()
        frame, inner = self.frameGeometry(), self.geometry()
        extra_w = frame.width() - inner.width()
        extra_h = frame.height() - inner.height()
        width = max(1, min(self.width(), available.width() - extra_w))
        height = max(1, min(self.height(), available.height() - extra_h))
        if (width, height) != (self.width(), self.height()):
            self.resize(width, height)
        frame = self.frameGeometry()
        x = min(max(frame.x(), available.left()), available.right() + 1 - frame.width())
        y = min(max(frame.y(), available.top()), available.bottom() + 1 - frame.height())
        if (x, y) != (frame.x(), frame.y()):
            self.move(max(x, available.left()), max(y, available.top()))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._fitted_shown:
            # The window manager's frame is known only now: fit once more with it.
            self._fitted_shown = True
            QTimer.singleShot(0, self.fit_to_screen)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()
        for worker in running_workers():
            worker.cancel()
        for worker in running_workers():
            worker.wait(10_000)
        for workspace in self.workspaces:
            shutdown = getattr(workspace, "shutdown", None)
            if shutdown is not None:
                shutdown()
        super().closeEvent(event)
