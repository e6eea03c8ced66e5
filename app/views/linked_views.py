"""Two to four SkeletonViews side by side whose cameras move together.

All views render through ONE vtkCamera (the first view's), so rotating, panning or zooming any
of them moves every view; an interaction observer re-renders the other views while the user
drags. Views are created on demand and kept (hidden) when the count shrinks, so switching
between 2, 3 and 4 views costs nothing after the first time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PyQt6.QtWidgets import QHBoxLayout, QWidget

from app.export import hstack_images, save_png
from app.views.skeleton_view import SkeletonView

MIN_VIEWS = 1
MAX_VIEWS = 4


class LinkedViews(QWidget):
    """A row of :class:`SkeletonView` sharing one camera.

    Args:
        parent: Qt parent.
        count: number of views shown initially (1..4).
    """

    def __init__(self, parent: QWidget | None = None, count: int = 2) -> None:
        super().__init__(parent)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self._views: list[SkeletonView] = []
        self._count = 0
        self._syncing = False
        self.set_count(count)

    # ---------------------------------------------------------------- views
    def set_count(self, count: int) -> None:
        """Show ``count`` views (clamped to 1..4), creating missing ones."""
        count = int(min(max(count, MIN_VIEWS), MAX_VIEWS))
        while len(self._views) < count:
            self._add_view()
        for i, view in enumerate(self._views):
            view.setVisible(i < count)
        self._count = count

    def _add_view(self) -> None:
        view = SkeletonView(self)
        if self._views:
            # One camera object for all: moving it in any view moves the others.
            view.plotter.renderer.camera = self._views[0].plotter.renderer.camera
        for event in ("InteractionEvent", "EndInteractionEvent"):
            view.plotter.iren.add_observer(event, lambda *_, v=view: self._sync_from(v))
        self._layout.addWidget(view, 1)
        self._views.append(view)

    def _sync_from(self, source: SkeletonView) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            for view in self.views:
                if view is not source:
                    view.render()
        finally:
            self._syncing = False

    @property
    def count(self) -> int:
        """Number of views shown."""
        return self._count

    @property
    def views(self) -> list[SkeletonView]:
        """The views shown, left to right."""
        return self._views[: self._count]

    @property
    def camera(self):
        """The vtkCamera shared by every view (pyvista ``Camera``)."""
        return self._views[0].plotter.renderer.camera

    # ---------------------------------------------------------------- camera / output
    def reset_camera(self) -> None:
        """Fit the shared camera to the first view's skeleton and redraw every view."""
        self._views[0].reset_camera()
        self.render_all()

    def render_all(self) -> None:
        """Schedule a redraw of every shown view."""
        for view in self.views:
            view.render()

    def render_image(self) -> np.ndarray:
        """The shown views side by side as one ``(H, W, 3)`` uint8 image."""
        return hstack_images([view.render_image() for view in self.views])

    def screenshot(self, path: str | Path) -> Path:
        """Save :meth:`render_image` as a PNG and return the path."""
        return save_png(self.render_image(), path)

    def close_views(self) -> None:
        """Release every view's render window (call on shutdown)."""
        for view in self._views:
            view.close_view()
