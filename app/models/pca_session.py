"""State of the Modes workspace: which shape set, its PCA, the scrubbed coefficients and k.

:class:`PCASession` is a QObject that emits a signal on every change and is testable without a
window; the Modes workspace observes it. The computation itself is :func:`compute_modes`, a job
for :class:`app.workers.Worker` that only calls engine functions (sources + PCA) and returns a
:class:`ModesData`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from engine.analysis.pca import PCAResult
from engine.analysis.shape_sources import DemoDeformations, ShapeSource


@dataclass(frozen=True)
class PCARequest:
    """What to compute: a shape source (:mod:`engine.analysis.shape_sources`), how many modes,
    and whether to remove rotation and translation (Procrustes) first, so that neither shows
    up as a mode (sources whose shapes are already aligned are left as they are)."""

    source: ShapeSource = field(default_factory=DemoDeformations)
    num_modes: int = 10
    align: bool = True

    def describe(self) -> str:
        """One line naming the source, for titles and the status bar."""
        return self.source.describe()


@dataclass
class ModesData:
    """A finished PCA with what is needed to draw its shapes.

    Attributes:
        result: the PCA (tensors on the CPU).
        faces: (F, 3) int64 triangles when the shapes are meshes, else None.
        edges: (E, 2) int64 bones when the shapes are skeletons, else None.
        description: where the shapes came from.
    """

    result: PCAResult
    faces: np.ndarray | None = None
    edges: np.ndarray | None = None
    description: str = ""


def compute_modes(
    request: PCARequest, progress: Callable[[float, str], None], cancelled: Callable[[], bool]
) -> ModesData:
    """Build the request's shape set and run PCA on it (a Worker job; no Qt inside).

    Progress is reported in [0, 1]; the shape set takes the first half, PCA the rest.
    """
    from engine.analysis import pca, sources
    from engine.core.progress import Cancelled

    def part(lo: float, hi: float) -> Callable[[float, str], None]:
        def report(fraction: float, message: str) -> None:
            if cancelled():
                raise Cancelled()
            progress(lo + (hi - lo) * fraction, message)

        return report

    shapes_progress = part(0.0, 0.5)
    shape_set = request.source.shapes(progress=shapes_progress, cancel=cancelled)
    shapes = shape_set.shapes
    if request.align and not shape_set.aligned:
        shapes_progress(0.8, "Procrustes alignment")
        shapes = sources.align_shapes(shapes)
    shapes_progress(1.0, f"{len(shapes)} shapes ready")
    result = pca(shapes, request.num_modes, progress=part(0.5, 1.0), cancel=cancelled)
    faces, edges = shape_set.faces, shape_set.edges
    return ModesData(
        result=result.to("cpu"),
        faces=None if faces is None else np.asarray(faces, dtype=np.int64),
        edges=None if edges is None else np.asarray(edges, dtype=np.int64),
        description=request.describe(),
    )


@dataclass
class LayoutCell:
    """One shape of Figure 2's layout: the mean (mode None) or mode ``mode`` at ``sign * k``."""

    row: int
    col: int
    mode: int | None
    sign: int
    label: str = field(default="")


# Figure 2's arrangement on a 3 x 3 grid: the mean in the centre, mode 1 left/right, mode 2
# above/below, mode 3 on the diagonal; the other two corners stay empty.
LAYOUT: list[LayoutCell] = [
    LayoutCell(1, 1, None, 0),
    LayoutCell(1, 0, 0, -1),
    LayoutCell(1, 2, 0, +1),
    LayoutCell(0, 1, 1, +1),
    LayoutCell(2, 1, 1, -1),
    LayoutCell(0, 0, 2, -1),
    LayoutCell(2, 2, 2, +1),
]


class PCASession(QObject):
    """The Modes workspace's state.

    Signals:
        modes_changed(): a new PCA (or none) is loaded; topology may have changed.
        coefficients_changed(): a scrubbed coefficient changed.
        k_changed(float): the +/- k sigma of the layout changed.
        busy_changed(bool, str): a computation started (True, what) or ended (False, "").
    """

    modes_changed = pyqtSignal()
    coefficients_changed = pyqtSignal()
    k_changed = pyqtSignal(float)
    busy_changed = pyqtSignal(bool, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.data: ModesData | None = None
        self.coefficients = np.zeros(0)
        self.k = 2.0
        self.busy = False
        self.request = PCARequest()

    # ---------------------------------------------------------------- state
    @property
    def result(self) -> PCAResult | None:
        """The current PCA, or None before the first one finished."""
        return None if self.data is None else self.data.result

    @property
    def num_modes(self) -> int:
        """Number of modes of the current PCA (0 without one)."""
        return 0 if self.result is None else self.result.num_modes

    @property
    def kind(self) -> str | None:
        """``"mesh"``, ``"skeleton"`` (bones or bare points) or None without a PCA."""
        if self.data is None:
            return None
        return "mesh" if self.data.faces is not None else "skeleton"

    def set_busy(self, busy: bool, message: str = "") -> None:
        """Mark a computation as running (the view disables the Compute button)."""
        self.busy = busy
        self.busy_changed.emit(busy, message if busy else "")

    def set_modes(self, data: ModesData, request: PCARequest | None = None) -> None:
        """Show a new PCA; coefficients go back to the mean shape."""
        self.data = data
        if request is not None:
            self.request = request
        self.coefficients = np.zeros(data.result.num_modes)
        self.modes_changed.emit()
        self.coefficients_changed.emit()

    def set_coefficient(self, mode: int, value: float) -> None:
        """Set mode ``mode``'s coefficient, in units of its standard deviation."""
        if not 0 <= mode < len(self.coefficients):
            raise IndexError(f"mode {mode} out of range 0..{len(self.coefficients) - 1}")
        if self.coefficients[mode] != value:
            self.coefficients[mode] = float(value)
            self.coefficients_changed.emit()

    def reset_coefficients(self) -> None:
        """All coefficients to 0: the mean shape."""
        if np.any(self.coefficients != 0):
            self.coefficients[:] = 0.0
            self.coefficients_changed.emit()

    def set_k(self, k: float) -> None:
        """Set the layout's +/- k sigma (k > 0)."""
        k = float(k)
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        if k != self.k:
            self.k = k
            self.k_changed.emit(k)

    # ---------------------------------------------------------------- shapes
    def current_shape(self) -> np.ndarray:
        """(P, 3) float64: the mean plus the scrubbed coefficients times sigma times modes."""
        return self.shape_at(self.coefficients)

    def shape_at(self, coefficients: np.ndarray) -> np.ndarray:
        """(P, 3) float64 shape for coefficients in sigma units (see PCAResult.shape_at)."""
        if self.result is None:
            raise RuntimeError("no PCA loaded")
        return self.result.shape_at(np.asarray(coefficients, dtype=np.float64)).numpy()

    def mode_shape(self, mode: int | None, value: float) -> np.ndarray:
        """(P, 3) shape with only ``mode`` at ``value`` sigma (the mean for mode None)."""
        coeffs = np.zeros(self.num_modes)
        if mode is not None:
            coeffs[mode] = value
        return self.shape_at(coeffs)

    def layout_cells(self) -> list[LayoutCell]:
        """The cells of Figure 2's layout that this PCA can fill (modes that exist), labelled."""
        cells = []
        for cell in LAYOUT:
            if cell.mode is not None and cell.mode >= self.num_modes:
                continue
            if cell.mode is None:
                label = "mean"
            else:
                sign = "+" if cell.sign > 0 else "\u2212"
                label = f"mode {cell.mode + 1}: {sign}{self.k:g} SD"
            cells.append(LayoutCell(cell.row, cell.col, cell.mode, cell.sign, label))
        return cells

    def sweep_values(self, frames: int) -> np.ndarray:
        """(frames,) coefficients of one animation period: k * sin(2 pi t), t in [0, 1).

        The samples are shifted by 1/8 frame so that no two of them are equal (an unshifted
        sine repeats values on its way up and down, and GIF writers merge equal frames).
        """
        n = max(int(frames), 1)
        t = (np.arange(n) + 0.125) / n
        return self.k * np.sin(2.0 * np.pi * t)
