"""2D plots (pyqtgraph): live loss curves (PRN or category terms, with marks for events such as
the end of a warm-up) and the 2D keypoint input of one frame.

``LossCurves`` keeps the whole history in growing numpy buffers and redraws at most when asked
(the Training workspace asks every two seconds during a run), so a long run never slows the
window down.
``Points2DPlot`` draws the observed 2D points and bones of the current frame; missing points are
left out (their bones too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyqtgraph as pg
from PyQt6.QtWidgets import QWidget

#: While a run trains, a workspace redraws its curves (and previews) at most this often (seconds
#: of wall clock). Every redraw runs on the GUI thread and holds the GIL and a CPU the training
#: thread needs: the log axes' grid of the curves takes ~50 ms to paint in software, and any
#: repaint of a window holding an OpenGL view (the VTK views are QOpenGLWidgets) composes the
#: whole window through software GL. Redrawn every 0.3 s, the PRN window trained at about half
#: the command line's speed, the Category tab (every 0.1 s) at 0.76 of it
#: (benchmarks/gui_training_speed.py).
LIVE_REDRAW_INTERVAL_S = 2.0

CURVE_PENS = {
    "total": pg.mkPen("#222222", width=2),
    "f": pg.mkPen("#1f77b4", width=1.5),
    "g": pg.mkPen("#d62728", width=1.5),
}
# Curves without a pen of their own (the category losses) take these in turn.
EXTRA_COLOURS = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#aec7e8",
    "#98df8a",
]
# Log axes cannot show zero: a loss of exactly 0 is drawn a decade below the smallest positive
# loss held (so that a few exact zeros, e.g. an edge-length prior before anything moved, do not
# stretch the axis over ten decades), and at this floor when no loss is positive.
LOG_FLOOR = 1e-12


class LossCurves(pg.PlotWidget):
    """Loss per training step on a log-scale y axis, one curve per loss name.

    Args:
        parent: Qt parent.
        names: the losses drawn, in legend order (``TrainEvent.losses`` keys).
    """

    def __init__(self, parent: QWidget | None = None, names: Sequence[str] = ("total", "f", "g")):
        super().__init__(parent, background="w")
        self.names = tuple(names)
        item = self.getPlotItem()
        item.setLogMode(x=False, y=True)
        item.showGrid(x=True, y=True, alpha=0.25)
        item.setLabel("bottom", "step")
        item.setLabel("left", "loss")
        item.addLegend(offset=(-10, 10))
        # The y range covers 99% of the points: a near-zero first step (the network starts at
        # an exact fit of the 2D) would otherwise stretch the log axis over ten decades.
        item.getViewBox().enableAutoRange(axis="y", enable=0.99)
        self._curves = {
            name: item.plot(
                [],
                [],
                pen=CURVE_PENS.get(
                    name, pg.mkPen(EXTRA_COLOURS[i % len(EXTRA_COLOURS)], width=1.2)
                ),
                name=name,
            )
            for i, name in enumerate(self.names)
        }
        self._marks: list[tuple[int, str, pg.InfiniteLine]] = []
        self.clear_history()

    def clear_history(self) -> None:
        """Forget every point and mark (a new run or a loaded checkpoint starts over)."""
        for _, _, line in getattr(self, "_marks", []):
            self.getPlotItem().removeItem(line)
        self._marks = []
        self._steps = np.zeros(0, np.float64)
        self._values = {name: np.zeros(0, np.float64) for name in self.names}
        self._count = 0
        self.redraw()

    def append(self, steps: Sequence[int], losses: Sequence[Mapping[str, float]]) -> None:
        """Add points; call :meth:`redraw` to show them.

        Args:
            steps: training step of each entry (length n).
            losses: n dicts mapping loss names to values (names not in ``self.names`` ignored).
        """
        n = len(steps)
        if n == 0:
            return
        needed = self._count + n
        if needed > len(self._steps):
            capacity = max(needed, 2 * len(self._steps), 256)
            self._steps = np.resize(self._steps, capacity)
            self._values = {k: np.resize(v, capacity) for k, v in self._values.items()}
        self._steps[self._count : needed] = steps
        for name in self.names:
            self._values[name][self._count : needed] = [
                float(entry.get(name, np.nan)) for entry in losses
            ]
        self._count = needed

    @property
    def count(self) -> int:
        """Number of steps held."""
        return self._count

    def data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` held for loss ``name`` (copies, length :attr:`count`)."""
        return self._steps[: self._count].copy(), self._values[name][: self._count].copy()

    def redraw(self) -> None:
        """Push the held points to the curves."""
        steps = self._steps[: self._count]
        held = [self._values[name][: self._count] for name in self._curves]
        positive = [v[np.isfinite(v) & (v > 0)] for v in held]
        smallest = min((float(p.min()) for p in positive if p.size), default=None)
        floor = LOG_FLOOR if smallest is None else max(LOG_FLOOR, 0.1 * smallest)
        for curve, values in zip(self._curves.values(), held):
            finite = np.isfinite(values)
            curve.setData(steps[finite], np.maximum(values[finite], floor))

    def add_mark(self, step: int, text: str) -> None:
        """A labelled vertical line at ``step`` (the end of a warm-up, a hypothesis drop)."""
        line = pg.InfiniteLine(
            pos=step,
            angle=90,
            pen=pg.mkPen("#888888", style=pg.QtCore.Qt.PenStyle.DashLine),
            label=text,
            labelOpts={"position": 0.9, "color": "#444444", "rotateAxis": (1, 0)},
        )
        self.getPlotItem().addItem(line)
        self._marks.append((int(step), text, line))

    @property
    def marks(self) -> list[tuple[int, str]]:
        """``(step, text)`` of the marks drawn."""
        return [(step, text) for step, text, _ in self._marks]

    def curve_points(self, name: str) -> int:
        """How many points the curve of ``name`` currently draws (tests read this)."""
        x, _ = self._curves[name].getData()
        return 0 if x is None else len(x)


class Points2DPlot(pg.PlotWidget):
    """The 2D input of one frame: bones as lines, observed points as dots, equal axis scales."""

    def __init__(self, parent: QWidget | None = None, title: str = "2D input"):
        super().__init__(parent, background="w")
        item = self.getPlotItem()
        item.setTitle(title, color="k")
        item.setAspectLocked(True)
        item.showGrid(x=True, y=True, alpha=0.2)
        self._bones = item.plot(
            [], [], pen=pg.mkPen("#555555", width=2), connect="pairs", antialias=True
        )
        self._points = pg.ScatterPlotItem(
            size=9, brush=pg.mkBrush("#1f77b4"), pen=pg.mkPen("w", width=1)
        )
        item.addItem(self._points)
        self._shown = 0

    def set_frame(
        self,
        points2d: np.ndarray,
        edges: np.ndarray | None = None,
        visibility: np.ndarray | None = None,
        *,
        autorange: bool = False,
    ) -> None:
        """Draw one frame.

        Args:
            points2d: ``(P, 2)`` observed 2D positions.
            edges: ``(E, 2)`` bone indices, or None.
            visibility: ``(P,)`` bool, False = missing (not drawn), or None for all visible.
            autorange: fit the axes to this frame (done on the first frame anyway).
        """
        pts = np.asarray(points2d, dtype=np.float64).reshape(-1, 2)
        vis = (
            np.ones(len(pts), bool) if visibility is None else np.asarray(visibility, bool).ravel()
        )
        vis = vis & np.isfinite(pts).all(axis=1)
        self._points.setData(pts[vis, 0], pts[vis, 1])
        if edges is not None and len(edges):
            e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
            e = e[vis[e[:, 0]] & vis[e[:, 1]]]
            seg = pts[e.reshape(-1)]
            self._bones.setData(seg[:, 0], seg[:, 1])
        else:
            self._bones.setData([], [])
        first = self._shown == 0
        self._shown = int(vis.sum())
        if autorange or first:
            self.getPlotItem().autoRange()

    def fit_to(self, points2d: np.ndarray, visibility: np.ndarray | None = None) -> None:
        """Set the axes to hold every visible point of a whole sequence.

        Args:
            points2d: ``(F, P, 2)`` observed 2D positions.
            visibility: ``(F, P)`` bool or None.
        """
        pts = np.asarray(points2d, dtype=np.float64).reshape(-1, 2)
        ok = np.isfinite(pts).all(axis=1)
        if visibility is not None:
            ok &= np.asarray(visibility, bool).ravel()
        if ok.any():
            lo, hi = pts[ok].min(axis=0), pts[ok].max(axis=0)
            self.getPlotItem().setRange(xRange=(lo[0], hi[0]), yRange=(lo[1], hi[1]))

    @property
    def shown_points(self) -> int:
        """Number of points drawn in the current frame."""
        return self._shown
