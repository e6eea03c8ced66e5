"""State of one handle-editing session: mesh, editing basis, handle offsets, selection, history.

A QObject that emits signals and never touches widgets, so it is tested without a window.
The numerics are the engine's: :func:`engine.deform.editing.build_editing_basis` (run off the GUI
thread through :class:`app.workers.Worker`) and ``EditingBasis.deform`` (O(NK) per drag event).

Units and shapes: vertices (N,3) float64 in the mesh's units; handle offsets (K,3) float64 in
the same units; handle *targets* are ``A @ template + offsets`` (K,3); the history holds offset
arrays, so undo gives back bit-identical vertices.

Handle-set files are read and written by :mod:`engine.io.handle_sets`.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from app.workers import Worker
from engine.core.errors import InputError
from engine.io.handle_sets import read_handle_set, write_handle_set
from engine.io.mesh import Mesh, load_mesh, mesh_hash, save_mesh

DEFAULT_NUM_HANDLES = 16
DEMO_TEMPLATE = Path(__file__).resolve().parents[2] / "assets" / "demo_template.ply"


#: Floor of the weights before their log10 (a softmax row underflows to 0 far from its handle).
LOG_WEIGHT_FLOOR = 1e-300
#: Percentile of |A[k] - A0[k]| that spans a change colour scale (see :func:`symmetric_range`).
CHANGE_PERCENTILE = 99.0


def symmetric_range(
    values: np.ndarray, percentile: float = CHANGE_PERCENTILE
) -> tuple[float, float]:
    """A colour range ``(-m, m)`` centred on 0 for (N,) signed values (a change of weights).

    ``m`` is the ``percentile`` of ``|values|``: a learned row differs from the initial one
    most at the handle's own vertex (its weight of about 1 shrinks), and a scale up to that
    one difference would paint every other vertex the middle colour; the few vertices beyond
    ``m`` take the end colours. Falls back to ``max |values|``, then to 1 (the largest
    possible change of a weight in [0, 1]) when nothing changed.
    """
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    magnitude = magnitude[np.isfinite(magnitude)]
    if magnitude.size == 0:
        return -1.0, 1.0
    m = float(np.percentile(magnitude, percentile))
    if m <= 0:
        m = float(magnitude.max())
    if m <= 0:
        m = 1.0
    return -m, m


#: Where the editing basis starts on the progress bar (reading the mesh, starting a process
#: and placing the handles come before it).
BASIS_START = 0.25


def _prepare(mesh_or_path, num_handles: int, handle_ids, progress, cancelled):
    """Worker job: load (if a path), place handles, build the editing basis.

    Returns:
        (mesh, handle_ids (K,) int64, EditingBasis)
    """
    import torch

    from engine.core.progress import Cancelled
    from engine.deform.editing import build_editing_basis
    from engine.geometry.handles import farthest_point_handles

    if isinstance(mesh_or_path, Mesh):
        mesh = mesh_or_path
    else:
        progress(0.0, f"Reading {Path(mesh_or_path).name}")
        mesh = load_mesh(mesh_or_path)
    if handle_ids is None and num_handles > len(mesh.vertices):
        raise InputError(
            f"{num_handles} handles asked for but the mesh has only {len(mesh.vertices)} vertices",
            path=mesh.path,
        )
    if handle_ids is None:
        progress(0.05, f"Placing {num_handles} handles")
        handle_ids = farthest_point_handles(
            torch.from_numpy(mesh.vertices), torch.from_numpy(mesh.faces), num_handles
        )
    handle_ids = np.asarray(handle_ids, dtype=np.int64)
    if cancelled():
        raise Cancelled("cancelled")
    basis = build_editing_basis(
        mesh.vertices,
        mesh.faces,
        num_handles=len(handle_ids),
        handle_ids=handle_ids,
        # Placing the handles (geodesic farthest points) took the first part of the bar.
        progress=lambda fraction, message: progress(
            BASIS_START + (1 - BASIS_START) * fraction, message
        ),
        cancel=cancelled,
    )
    return mesh, handle_ids, basis


# Above this many vertices the precomputation runs in a child process: cholespy's
# factorisation (and scipy's Dijkstra for the handles) hold the GIL for seconds to a minute at
# 40k-160k vertices, which would freeze the GUI thread even though they run on a worker thread.
# Below it they take milliseconds and a process start (~2 s of imports) would dominate.
PROCESS_THRESHOLD = 20_000


def _child(mesh: Mesh, num_handles: int, handle_ids, queue) -> None:
    """Child-process side of :func:`_prepare_in_process`: progress and the result by queue."""
    try:
        mesh, ids, basis = _prepare(
            mesh,
            num_handles,
            handle_ids,
            lambda f, m: queue.put(("progress", (f, m))),
            lambda: False,
        )
        # The factorisation (a native solver object) cannot cross processes and editing does
        # not need it: deform() only uses the (N,K) basis, the template and A.
        basis.system = None
        queue.put(("result", (mesh, ids, basis)))
    except Exception as exc:
        queue.put(("error", exc))


def _prepare_in_process(mesh: Mesh, num_handles: int, handle_ids, progress, cancelled):
    """:func:`_prepare` in a spawned process, so the GUI thread keeps the GIL; cancel kills it."""
    import multiprocessing as mp
    import queue as queue_module

    from engine.core.progress import Cancelled

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(mesh, num_handles, handle_ids, queue), daemon=True)
    progress(0.02, "Starting the precomputation process")
    process.start()
    try:
        while True:
            if cancelled():
                raise Cancelled("cancelled")
            try:
                kind, payload = queue.get(timeout=0.05)
            except queue_module.Empty:
                if not process.is_alive():
                    raise RuntimeError(
                        f"the precomputation process ended unexpectedly (exit code "
                        f"{process.exitcode})"
                    ) from None
                continue
            if kind == "progress":
                progress(*payload)
            elif kind == "error":
                raise payload
            else:
                return payload
    finally:
        if process.is_alive():
            process.terminate()
        process.join(5)


def _prepare_learned(mesh: Mesh, handle_ids, dependency, progress, cancelled):
    """Worker job: the editing basis of a mesh with a given (learned) dependency matrix."""
    from engine.deform.editing import build_editing_basis

    basis = build_editing_basis(
        mesh.vertices,
        mesh.faces,
        handle_ids=handle_ids,
        dependency=dependency,
        progress=progress,
        cancel=cancelled,
    )
    return mesh, np.asarray(handle_ids, dtype=np.int64), basis


def _prepare_off_thread(mesh_or_path, num_handles: int, handle_ids, progress, cancelled):
    """Worker job: load the mesh here, then prepare in-thread (small) or in a process (large)."""
    if isinstance(mesh_or_path, Mesh):
        mesh = mesh_or_path
    else:
        progress(0.0, f"Reading {Path(mesh_or_path).name}")
        mesh = load_mesh(mesh_or_path)
    if len(mesh.vertices) > PROCESS_THRESHOLD:
        return _prepare_in_process(mesh, num_handles, handle_ids, progress, cancelled)
    return _prepare(mesh, num_handles, handle_ids, progress, cancelled)


class MeshSession(QObject):
    """Everything the editor edits. Signals carry no data; read the properties.

    Signals:
        mesh_changed(): a new mesh and basis are in place (handles re-initialised).
        deformation_changed(): ``vertices`` / ``offsets`` changed.
        selection_changed(): ``selection`` changed.
        history_changed(): undo/redo availability changed.
        busy(bool, str): precomputation started (True, message) / ended (False, "").
        failed(object): loading or precomputation raised this exception; the previous mesh
            and handles stay in place.
        worker_started(object): a :class:`Worker` is starting (emitted just before it starts,
            so the window can show its progress from the first message).
    """

    mesh_changed = pyqtSignal()
    deformation_changed = pyqtSignal()
    selection_changed = pyqtSignal()
    history_changed = pyqtSignal()
    busy = pyqtSignal(bool, str)
    failed = pyqtSignal(object)
    worker_started = pyqtSignal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.mesh: Mesh | None = None
        self.basis = None
        #: (K,N) the dependency matrix a learned A started from (shown beside it), or None.
        self.initial_dependency: np.ndarray | None = None
        self._next_initial: np.ndarray | None = None
        self._handle_ids = np.zeros(0, dtype=np.int64)
        self._handle_base = np.zeros((0, 3))  # A @ template, (K,3)
        self._offsets = np.zeros((0, 3))
        self._vertices = np.zeros((0, 3))
        self._selection: tuple[int, ...] = ()
        self._undo: list[np.ndarray] = []
        self._redo: list[np.ndarray] = []
        self._drag_start: np.ndarray | None = None
        self._worker: Worker | None = None
        self._pending_offsets: np.ndarray | None = None
        self.last_update_ms: float = 0.0

    # ------------------------------------------------------------------ read access
    @property
    def ready(self) -> bool:
        """A mesh and its editing basis are in place."""
        return self.basis is not None

    @property
    def is_busy(self) -> bool:
        return self._worker is not None

    @property
    def num_handles(self) -> int:
        return len(self._handle_ids)

    @property
    def handle_ids(self) -> np.ndarray:
        """(K,) int64 vertex ids the handles were seeded at."""
        return self._handle_ids.copy()

    @property
    def offsets(self) -> np.ndarray:
        """(K,3) float64 handle offsets from their rest positions."""
        return self._offsets.copy()

    @property
    def vertices(self) -> np.ndarray:
        """(N,3) float64 current deformed vertices (read-only view)."""
        view = self._vertices.view()
        view.flags.writeable = False
        return view

    @property
    def faces(self) -> np.ndarray:
        return self.mesh.faces

    def rest_handle_positions(self) -> np.ndarray:
        """(K,3) ``A @ template``: where the handles sit with zero offset."""
        return self._handle_base.copy()

    def handle_targets(self) -> np.ndarray:
        """(K,3) current handle targets ``A @ template + offsets`` (the drawn spheres)."""
        return self._handle_base + self._offsets

    def influence(self, handle: int) -> np.ndarray:
        """(N,) float64 row ``A[handle]`` of the dependency matrix (non-negative, sums to 1)."""
        return np.asarray(self.basis.influence(handle), dtype=np.float64)

    @property
    def has_initial_dependency(self) -> bool:
        """The open A was learned and the A it started from is held (:attr:`initial_dependency`)."""
        return self.initial_dependency is not None

    def initial_influence(self, handle: int) -> np.ndarray:
        """(N,) float64 row ``A0[handle]`` of the initial dependency matrix.

        Raises:
            InputError: no initial matrix is held (a mesh opened without a learned A).
        """
        if self.initial_dependency is None:
            raise InputError(
                "no initial dependency matrix: the open A was not learned",
                field="initial_dependency",
            )
        return np.asarray(self.initial_dependency[handle], dtype=np.float64)

    def log_influence(self, handle: int, initial: bool = False) -> np.ndarray:
        """(N,) float64 ``log10 A[handle]`` (``A0`` when ``initial``), weights floored at
        :data:`LOG_WEIGHT_FLOOR`: softmax weights initialised as d^-16 span tens of decades, a
        linear scale would show one hot vertex, log10 shows how the weight falls off."""
        row = self.initial_influence(handle) if initial else self.influence(handle)
        return np.log10(np.maximum(row, LOG_WEIGHT_FLOOR))

    def influence_change(self, handle: int) -> np.ndarray:
        """(N,) float64 ``A[handle] - A0[handle]``: what learning changed in the handle's row
        (its colour range: :func:`symmetric_range`).

        Raises:
            InputError: no initial matrix is held.
        """
        return self.influence(handle) - self.initial_influence(handle)

    def response(self, handle: int) -> np.ndarray:
        """(N,) float64 ``|B_A[:, handle]|``: how far each vertex moves per unit move of the
        handle (column of ``W^-1 A^T``), the effective reach of the handle."""
        column = np.asarray(self.basis.basis[:, handle], dtype=np.float64)
        return np.abs(column)

    @property
    def selection(self) -> tuple[int, ...]:
        """Selected handle indices in click order (the last one is the 'current' handle)."""
        return self._selection

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    # ------------------------------------------------------------------ loading
    def open(
        self,
        mesh_or_path: Mesh | str | Path,
        num_handles: int = DEFAULT_NUM_HANDLES,
        handle_ids: np.ndarray | None = None,
        offsets: np.ndarray | None = None,
        dependency: np.ndarray | None = None,
        initial_dependency: np.ndarray | None = None,
    ) -> Worker:
        """Load a mesh (or take a Mesh) and build its editing basis off the GUI thread.

        The current mesh stays in place until the new one is ready; on failure ``failed``
        is emitted and nothing changes. A run still going is cancelled first.

        Args:
            mesh_or_path: a file (PLY/OBJ/STL/VTK/VTP) or a :class:`Mesh`.
            num_handles: K, used when ``handle_ids`` is None (farthest-point sampling).
            handle_ids: (K,) vertex ids to use as handles instead.
            offsets: (K,3) offsets applied once ready (loading a handle set).
            dependency: (K,N) dependency matrix to edit with (a learned A; needs a Mesh and
                ``handle_ids``) instead of the authors' initial one.
            initial_dependency: (K,N) the A it was learned from, kept for comparison
                (:attr:`initial_dependency`); only with ``dependency``, of the same shape.

        Raises:
            InputError: ``initial_dependency`` without ``dependency`` or of another shape.
        """
        if initial_dependency is not None:
            initial_dependency = np.array(initial_dependency, dtype=np.float64)
            shape = None if dependency is None else np.shape(dependency)
            if initial_dependency.shape != shape:
                raise InputError(
                    f"expected an initial dependency matrix of the learned one's shape {shape}, "
                    f"got {initial_dependency.shape}",
                    field="initial_dependency",
                )
        self.cancel()
        k = len(handle_ids) if handle_ids is not None else int(num_handles)
        if dependency is not None:
            job = partial(_prepare_learned, mesh_or_path, handle_ids, dependency)
        else:
            job = partial(_prepare_off_thread, mesh_or_path, k, handle_ids)
        self._next_initial = initial_dependency
        worker = Worker(job, name="editing-basis")
        self._worker = worker
        self._pending_offsets = None if offsets is None else np.array(offsets, dtype=np.float64)
        worker.finished.connect(lambda result, w=worker: self._on_ready(w, result))
        worker.error.connect(lambda exc, w=worker: self._on_failed(w, exc))
        worker.cancelled.connect(lambda w=worker: self._on_cancelled(w))
        name = mesh_or_path.path if isinstance(mesh_or_path, Mesh) else mesh_or_path
        self.busy.emit(True, f"Preparing {Path(str(name)).name if name else 'mesh'} ({k} handles)")
        # Announced before it starts, so that whoever shows its progress (the window's status
        # bar) is connected before the first messages ("Reading ...") are emitted.
        self.worker_started.emit(worker)
        worker.start()
        return worker

    def set_num_handles(self, k: int) -> Worker | None:
        """Re-initialise K handles on the current mesh (offsets and history are cleared)."""
        if self.mesh is None:
            return None
        return self.open(self.mesh, num_handles=k)

    def cancel(self) -> None:
        """Cancel a running precomputation; the current mesh stays."""
        if self._worker is not None:
            self._worker.cancel()

    def wait(self, timeout_ms: int = 60_000) -> bool:
        """Block until a running precomputation's thread ends (shutdown/tests)."""
        return self._worker is None or self._worker.wait(timeout_ms)

    def _finish(self, worker: Worker) -> bool:
        if worker is not self._worker:
            return False  # a superseded run
        self._worker = None
        self.busy.emit(False, "")
        return True

    def _on_failed(self, worker: Worker, exc: BaseException) -> None:
        if self._finish(worker):
            self.failed.emit(exc)

    def _on_cancelled(self, worker: Worker) -> None:
        self._finish(worker)

    def _on_ready(self, worker: Worker, result) -> None:
        if not self._finish(worker):
            return
        mesh, handle_ids, basis = result
        self.install(mesh, handle_ids, basis)
        if self._pending_offsets is not None:
            self.apply_offsets(self._pending_offsets)
            self._pending_offsets = None

    def install(self, mesh: Mesh, handle_ids: np.ndarray, basis) -> None:
        """Take a mesh, its (K,) handle vertex ids and their ready ``EditingBasis``
        (synchronous; offsets, selection and history are reset)."""
        self.mesh = mesh
        self.quality = mesh.quality()
        self.initial_dependency = self._next_initial
        self._next_initial = None
        self.basis = basis
        self._handle_ids = np.asarray(handle_ids, dtype=np.int64)
        k = len(self._handle_ids)
        self._handle_base = np.asarray(basis.rest_handles, dtype=np.float64)
        self._offsets = np.zeros((k, 3))
        self._selection = ()
        self._undo.clear()
        self._redo.clear()
        self._drag_start = None
        self._recompute()
        self.mesh_changed.emit()
        self.selection_changed.emit()
        self.history_changed.emit()
        self.deformation_changed.emit()

    # ------------------------------------------------------------------ deformation
    def _recompute(self, live: bool = False) -> None:
        start = time.perf_counter()
        if live:
            # Drag events: the basis updates incrementally from its last result (fastest).
            vertices = self.basis.deform(self._offsets)
        else:
            # Committed states are computed from scratch (the batched path keeps no running
            # sum), so undo/redo/reset give bit-identical vertices for equal offsets.
            vertices = self.basis.deform(self._offsets[None])[0]
        self._vertices = np.asarray(vertices, dtype=np.float64)
        self.last_update_ms = (time.perf_counter() - start) * 1e3

    def _set_offsets(self, offsets: np.ndarray, live: bool = False) -> None:
        self._offsets = np.array(offsets, dtype=np.float64)
        self._recompute(live)
        self.deformation_changed.emit()

    def _push_history(self, before: np.ndarray) -> None:
        self._undo.append(before.copy())
        self._redo.clear()
        self.history_changed.emit()

    def apply_offsets(self, offsets: np.ndarray) -> None:
        """Set all (K,3) offsets as ONE undoable edit (no-op if unchanged)."""
        self._require_ready()
        offsets = np.asarray(offsets, dtype=np.float64)
        if offsets.shape != self._offsets.shape or not np.all(np.isfinite(offsets)):
            raise InputError(
                f"expected {self._offsets.shape} finite offsets, got {offsets.shape}",
                field="offsets",
            )
        if np.array_equal(offsets, self._offsets):
            return
        before = self._offsets.copy()
        self._set_offsets(offsets)
        self._push_history(before)

    def set_offset(self, handles, offset) -> None:
        """Give each handle in ``handles`` the offset (3,) as one undoable edit."""
        offsets = self._offsets.copy()
        offsets[list(handles)] = np.asarray(offset, dtype=np.float64)
        self.apply_offsets(offsets)

    def begin_drag(self) -> None:
        """Start moving the selection; :meth:`drag_to` updates, :meth:`end_drag` commits."""
        self._require_ready()
        self._drag_start = self._offsets.copy()

    def drag_to(self, delta) -> None:
        """Move the selected handles by ``delta`` (3,) from where the drag began (live)."""
        if self._drag_start is None or not self._selection:
            return
        offsets = self._drag_start.copy()
        offsets[list(self._selection)] += np.asarray(delta, dtype=np.float64)
        self._set_offsets(offsets, live=True)

    def end_drag(self) -> None:
        """Finish the drag: one undo entry if anything moved."""
        if self._drag_start is None:
            return
        before, self._drag_start = self._drag_start, None
        if not np.array_equal(before, self._offsets):
            self._set_offsets(self._offsets)  # the committed state, from scratch
            self._push_history(before)

    def reset(self) -> None:
        """All offsets back to zero (undoable)."""
        if self.ready:
            self.apply_offsets(np.zeros_like(self._offsets))

    def undo(self) -> None:
        if not self._undo:
            return
        self._redo.append(self._offsets.copy())
        self._set_offsets(self._undo.pop())
        self.history_changed.emit()

    def redo(self) -> None:
        if not self._redo:
            return
        self._undo.append(self._offsets.copy())
        self._set_offsets(self._redo.pop())
        self.history_changed.emit()

    # ------------------------------------------------------------------ selection
    def select(self, handles, add: bool = False) -> None:
        """Select handle indices; ``add`` toggles them into the current selection."""
        handles = [int(h) for h in handles]
        for h in handles:
            if not 0 <= h < self.num_handles:
                raise IndexError(f"handle {h} out of range [0, {self.num_handles})")
        if add:
            current = list(self._selection)
            for h in handles:
                if h in current:
                    current.remove(h)
                else:
                    current.append(h)
            new = tuple(current)
        else:
            new = tuple(dict.fromkeys(handles))
        if new != self._selection:
            self._selection = new
            self.selection_changed.emit()

    def clear_selection(self) -> None:
        self.select([])

    # ------------------------------------------------------------------ files
    def save_handle_set(self, path: str | Path) -> None:
        """Write the handle ids, offsets and the mesh hash as JSON."""
        self._require_ready()
        write_handle_set(path, self.mesh.vertices, self.mesh.faces, self._handle_ids, self._offsets)

    def load_handle_set(self, path: str | Path) -> Worker | None:
        """Apply a saved handle set to the open mesh.

        Same handle ids: the offsets are applied at once as one undoable edit (returns None).
        Other ids: the basis is rebuilt for them off-thread, then the offsets applied
        (returns the Worker).

        Raises:
            InputError: bad file, the set was made for another mesh (hash differs), or it has
                other handles than a learned A (which is tied to its handles; rebuilding would
                silently replace it with the default A).
        """
        self._require_ready()
        data = read_handle_set(path)
        current = mesh_hash(self.mesh.vertices, self.mesh.faces)
        if data["mesh_hash"] != current:
            raise InputError(
                f"this handle set was made for another mesh ({data['num_vertices']} vertices, "
                f"hash {data['mesh_hash'][:12]}…), not the open one ({len(self.mesh.vertices)} "
                f"vertices, hash {current[:12]}…)",
                path=path,
                field="mesh_hash",
            )
        if np.array_equal(data["handle_ids"], self._handle_ids):
            self.apply_offsets(data["offsets"])
            return None
        if self.has_initial_dependency:
            raise InputError(
                f"this handle set has other handles ({len(data['handle_ids'])}) than the open "
                f"learned dependency matrix A ({len(self._handle_ids)} handles); A is tied to "
                "its handles, so the set cannot be applied to it: open the template without "
                "the learned A to use this set",
                path=path,
                field="handle_ids",
            )
        return self.open(self.mesh, handle_ids=data["handle_ids"], offsets=data["offsets"])

    def export_deformed(self, path: str | Path) -> None:
        """Save the deformed mesh (PLY/OBJ/STL by suffix)."""
        self._require_ready()
        save_mesh(path, self._vertices, self.mesh.faces)

    def _require_ready(self) -> None:
        if not self.ready:
            raise InputError("no mesh is open yet (or its handles are still being prepared)")
