"""Real-time editing for a fixed dependency matrix: the closed-form basis ``V = T + B_A Delta``."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from engine.core.progress import CancelFn, Cancelled, ProgressFn
from engine.deform.deformer import LaplacianDeformer
from engine.deform.solve import HandleSystem, LaplacianSystem
from engine.geometry.handles import (
    dependency_matrix,
    farthest_point_handles,
    geodesic_distances,
    init_logits,
)
from engine.geometry.laplacian import cotangent_laplacian


class EditingBasis:
    """Closed-form editing for a FIXED dependency matrix: ``V = T + B_A Delta`` with
    ``B_A = W^-1 A^T`` (N,K) float64, so a drag costs O(N * changed handles).

    Args:
        system: the factored :class:`LaplacianSystem` of the template.
        A: (K,N) dependency matrix (fixed; no gradients).
        template: (N,3) template vertices.

    Attributes:
        template: (N,3) float64 numpy array.
        dependency: (K,N) float64 numpy array ``A`` (row k is handle k's influence).
        basis: (N,K) float64 numpy array ``B_A``.
        rest_handles: (K,3) float64 numpy array ``A T``, the handles' rest positions.
        handle_ids: (K,) int64 numpy array of the handles' vertex ids, or None if unknown
            (a handle is a soft blend of vertices; its id is where it was placed).
    """

    def __init__(
        self,
        system: LaplacianSystem,
        A: Tensor,
        template: Tensor,
        *,
        handle_ids=None,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> None:
        A = torch.as_tensor(A).detach()
        template = torch.as_tensor(template).detach()
        if A.ndim != 2 or A.shape[1] != system.n or template.shape != (system.n, 3):
            raise ValueError(
                f"expected A (K, {system.n}) and template ({system.n}, 3), got "
                f"{tuple(A.shape)} and {tuple(template.shape)}"
            )
        hs = HandleSystem(system, A, progress=progress, cancel=cancel)
        self.system = system
        self.template = template.to("cpu", torch.float64).numpy().copy()
        self.dependency = A.to("cpu", torch.float64).numpy().copy()
        # Column-major (K,N) storage: one handle's column is contiguous for incremental drags.
        self._basis_t = np.ascontiguousarray(hs.B.T.to("cpu").numpy())
        self.rest_handles = self.dependency @ self.template
        self.handle_ids = (
            None
            if handle_ids is None
            else torch.as_tensor(handle_ids).to("cpu", torch.int64).numpy().copy()
        )
        if self.handle_ids is not None and self.handle_ids.shape != (A.shape[0],):
            raise ValueError(f"handle_ids must have shape ({A.shape[0]},)")
        self._last_offsets = np.zeros((A.shape[0], 3))
        self._last_vertices = self.template.copy()
        self._updates = 0

    def __getstate__(self) -> dict:
        # The factorisation cannot be pickled and deform() does not need it: a basis sent to
        # another process (e.g. built in a worker process) arrives with ``system = None``.
        state = self.__dict__.copy()
        state["system"] = None
        return state

    @classmethod
    def from_deformer(cls, deformer: LaplacianDeformer) -> EditingBasis:
        """Basis of a (trained) :class:`LaplacianDeformer` at its current ``A``."""
        with torch.no_grad():
            return cls(
                deformer.system, deformer.A, deformer.template, handle_ids=deformer.handle_ids
            )

    @property
    def basis(self) -> np.ndarray:
        """(N,K) float64 ``B_A = W^-1 A^T`` (a transposed view)."""
        return self._basis_t.T

    @property
    def num_handles(self) -> int:
        """K."""
        return int(self._basis_t.shape[0])

    def influence(self, k: int) -> np.ndarray:
        """(N,) float64 row ``A[k]``: how strongly each vertex belongs to handle k."""
        return self.dependency[k]

    def deform(self, offsets):
        """Vertices for handle displacements.

        Args:
            offsets: (K,3) or (B,K,3) displacements ``Delta`` of the handles from their rest
                positions ``A T`` (numpy or torch).

        Returns:
            (N,3) or (B,N,3) float64 vertices ``T + B_A Delta``, numpy for numpy input and a CPU
            torch tensor for torch input. Equal to :func:`laplacian_solve` with
            ``H = A T + Delta`` up to rounding.
        """
        is_torch = isinstance(offsets, Tensor)
        d = (
            offsets.detach().to("cpu", torch.float64).numpy()
            if is_torch
            else np.asarray(offsets, dtype=np.float64)
        )
        k = self.num_handles
        if d.shape[-2:] != (k, 3) or d.ndim not in (2, 3):
            raise ValueError(f"offsets must have shape ({k}, 3) or (B, {k}, 3), got {d.shape}")
        if d.ndim == 3:
            out = self.template + np.einsum("kn,bkc->bnc", self._basis_t, d)
        else:
            out = self._deform_one(d)
        return torch.from_numpy(out) if is_torch else out

    def _deform_one(self, d: np.ndarray) -> np.ndarray:
        changed = np.flatnonzero(np.any(d != self._last_offsets, axis=1))
        # A drag moves one handle: update with its column only, and refresh from scratch now
        # and then so rounding cannot accumulate.
        if len(changed) * 4 <= self.num_handles and self._updates < 256:
            # Column-wise axpy: several times faster than a (N,1)x(1,3) BLAS product.
            for k in changed:
                for c, shift in enumerate(d[k] - self._last_offsets[k]):
                    if shift:
                        self._last_vertices[:, c] += self._basis_t[k] * shift
            self._updates += len(changed)
        else:
            self._last_vertices = self.template + self._basis_t.T @ d
            self._updates = 0
        self._last_offsets = d.copy()
        return self._last_vertices.copy()


def build_editing_basis(
    vertices,
    faces,
    num_handles: int = 16,
    handle_ids=None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    *,
    dependency=None,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> EditingBasis:
    """Everything the editor needs for a mesh, with progress and cancel (run it off the GUI
    thread): Laplacian, handles (farthest-point unless given), the authors' initial ``A`` (or
    a given one), the factorisation, and ``B_A``.

    Args:
        vertices: (N,3) float array/tensor.
        faces: (F,3) int array/tensor.
        num_handles: K when neither ``handle_ids`` nor ``dependency`` is given.
        handle_ids: optional (K,) vertex ids.
        progress: optional ``progress(fraction in [0,1], message)``.
        cancel: optional ``cancel() -> bool``; True aborts with :class:`Cancelled`.
        dependency: optional (K,N) dependency matrix to use instead of the initial one
            (e.g. a trained ``deformer.A``).
        seed: farthest-point sampling seed.
        device: where to factor and solve (default CPU; the result lives in numpy anyway).

    Returns:
        :class:`EditingBasis`.
    """
    report = progress or (lambda fraction, message: None)
    check = cancel or (lambda: False)

    def step(fraction: float, message: str) -> None:
        if check():
            raise Cancelled(message)
        report(fraction, message)

    dev = torch.device(device) if device is not None else torch.device("cpu")
    v = torch.as_tensor(np.asarray(vertices) if not isinstance(vertices, Tensor) else vertices)
    v = v.to(dev, torch.float64)
    f = torch.as_tensor(np.asarray(faces) if not isinstance(faces, Tensor) else faces)
    f = f.to(dev, torch.int64)
    step(0.0, "building the cotangent Laplacian")
    L = cotangent_laplacian(v, f)
    ids = None
    if dependency is None:
        step(0.05, "placing handles")
        if handle_ids is None:
            handle_ids = farthest_point_handles(v, f, num_handles, seed=seed)
        ids = torch.as_tensor(handle_ids).to(dev, torch.int64)
        A = dependency_matrix(init_logits(geodesic_distances(v, f, ids)))
    else:
        A = torch.as_tensor(dependency).to(dev, torch.float64)
        if handle_ids is not None:
            ids = torch.as_tensor(handle_ids).to(dev, torch.int64)
    step(0.1, "factorising")
    system = LaplacianSystem(L, progress=lambda x, m: report(0.1 + 0.6 * x, m), cancel=check)
    step(0.7, "solving for the handle basis")
    basis = EditingBasis(
        system,
        A,
        v,
        handle_ids=ids,
        progress=lambda x, m: report(0.7 + 0.3 * x, m),
        cancel=check,
    )
    report(1.0, "ready")
    return basis
