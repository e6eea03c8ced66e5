"""State of the Modes workspace: which shape set, its PCA, the scrubbed coefficients and k.

:class:`PCASession` is a QObject that emits a signal on every change and is testable without a
window; the Modes workspace observes it. The computation itself is :func:`compute_modes`, a job
for :class:`app.workers.Worker` that only calls engine functions (sources + PCA) and returns a
:class:`ModesData`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from engine.analysis.pca import PCAResult

DEMO_TEMPLATE = Path(__file__).resolve().parents[2] / "assets" / "demo_template.ply"
SourceKind = Literal["demo", "checkpoint", "handles", "meshes"]


@dataclass(frozen=True)
class ShapeSetSource:
    """Which shapes to analyse.

    Attributes:
        kind: ``"demo"`` (random handle offsets on the demo template pushed through its
            Laplacian editing basis), ``"checkpoint"`` (PRN reconstructions of a data set),
            ``"handles"`` (saved handle-set JSON files of one mesh) or ``"meshes"`` (mesh files
            with the same connectivity).
        paths: checkpoint: ``(checkpoint,)``; handles: the JSON files; meshes: the mesh files.
        data: checkpoint only: data spec or file (None: the data the checkpoint was trained on).
        mesh: handles only: the mesh the handle sets belong to (None: the demo template).
        num_samples, scale, num_handles, seed: demo only (scale is relative to the template's
            bounding-box diagonal).
        num_modes: modes to keep.
        align: remove translation and rotation (Procrustes) from meshes before PCA, so neither
            shows up as a mode (PRN reconstructions are always aligned).
    """

    kind: SourceKind = "demo"
    paths: tuple[str, ...] = ()
    data: str | None = None
    mesh: str | None = None
    num_samples: int = 400
    scale: float = 0.07
    num_handles: int = 16
    seed: int = 0
    num_modes: int = 10
    align: bool = True

    def describe(self) -> str:
        """One line naming the source, for titles and the status bar."""
        if self.kind == "demo":
            return f"demo: {self.num_samples} deformations, {self.num_handles} handles"
        if self.kind == "checkpoint":
            data = self.data or "its training data"
            return f"PRN {Path(self.paths[0]).name} on {data}"
        if self.kind == "handles":
            return f"{len(self.paths)} handle sets"
        return f"{len(self.paths)} meshes"


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
    source: ShapeSetSource, progress: Callable[[float, str], None], cancelled: Callable[[], bool]
) -> ModesData:
    """Build the shape set of ``source`` and run PCA on it (a Worker job; no Qt inside).

    Progress is reported in [0, 1]; the shape set takes the first half, PCA the rest.
    """
    import torch

    from engine.analysis import pca, sources
    from engine.core.progress import Cancelled
    from engine.io.handle_sets import load_handle_sets

    def part(lo: float, hi: float) -> Callable[[float, str], None]:
        def report(fraction: float, message: str) -> None:
            if cancelled():
                raise Cancelled()
            progress(lo + (hi - lo) * fraction, message)

        return report

    faces = edges = None
    shapes_progress = part(0.0, 0.5)
    if source.kind in ("demo", "handles"):
        from engine.deform.editing import build_editing_basis
        from engine.io.mesh import load_mesh

        mesh = load_mesh(source.mesh or DEMO_TEMPLATE)
        faces = mesh.faces
        if source.kind == "demo":
            basis = build_editing_basis(
                mesh.vertices, mesh.faces, num_handles=source.num_handles, cancel=cancelled
            )
            shapes_progress(0.6, "sampling deformations")
            shapes = sources.sample_deformed_meshes(
                basis, source.num_samples, source.scale, source.seed
            )
        else:
            from engine.core.errors import InputError
            from engine.io.mesh import mesh_hash

            sets = load_handle_sets(source.paths)
            if sets.mesh_hash != mesh_hash(mesh.vertices, mesh.faces):
                raise InputError(
                    f"the handle sets were saved for another mesh ({sets.num_vertices} vertices) "
                    "than the chosen one: choose the mesh they were saved for",
                    path=source.paths[0],
                    field="mesh_hash",
                )
            basis = build_editing_basis(
                mesh.vertices,
                mesh.faces,
                handle_ids=torch.as_tensor(sets.handle_ids),
                cancel=cancelled,
            )
            shapes = sources.deform_offsets(basis, sets.offsets)
    elif source.kind == "meshes":
        from engine.io.mesh import load_mesh

        shapes = sources.load_mesh_set(source.paths)
        faces = load_mesh(source.paths[0]).faces
    elif source.kind == "checkpoint":
        from engine.io.keypoints import load_dataset, skeleton_edges
        from engine.prn.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(source.paths[0])
        sequence = load_dataset(source.data or checkpoint.config.data)
        edges = skeleton_edges(sequence)
        shapes = sources.reconstructions_for_pca(
            source.paths[0], sequence, progress=shapes_progress, cancel=cancelled
        )
    else:
        raise ValueError(f"unknown shape source {source.kind!r}")
    if source.align and source.kind != "checkpoint":
        shapes_progress(0.8, "Procrustes alignment")
        shapes = sources.align_shapes(shapes)
    shapes_progress(1.0, f"{len(shapes)} shapes ready")
    result = pca(shapes, source.num_modes, progress=part(0.5, 1.0), cancel=cancelled)
    return ModesData(
        result=result.to("cpu"),
        faces=None if faces is None else np.asarray(faces, dtype=np.int64),
        edges=None if edges is None else np.asarray(edges, dtype=np.int64),
        description=source.describe(),
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
        self.source = ShapeSetSource()

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

    def set_modes(self, data: ModesData, source: ShapeSetSource | None = None) -> None:
        """Show a new PCA; coefficients go back to the mean shape."""
        self.data = data
        if source is not None:
            self.source = source
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
