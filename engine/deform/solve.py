"""Learnable Laplacian deformation (seed 001, section 3): cotangent Laplacian, the exact and fast
differentiable solve (the deformer and the editing basis build on it).

The solve minimises ``1/2 ||L V - L T||^2 + 1/2 ||A V - H||^2`` over the vertices ``V``:

    W V = L^T L T + A^T H,      W = L^T L + A^T A,

with the template ``T`` (N,3), the cotangent Laplacian ``L`` (N,N, sparse), the dense
right-stochastic handle dependency matrix ``A`` (K,N) and the handle targets ``H`` (B,K,3).

How it is made fast (never an N x N dense matrix, one factorisation per mesh):

- ``M = L^T L + c E E^T`` is sparse SPD and depends on the mesh only: ``E`` (N x n_c) pins one
  vertex per connected component (``L^T L`` is singular on per-component constants), ``c`` is
  the mean diagonal of ``L^T L``. It is factored once with CHOLMOD through
  ``cholespy.CholeskySolverD`` (float64, CPU and CUDA) and cached in a :class:`LaplacianSystem`.
- ``W = M + U S U^T`` with ``U = [A^T, E]``, ``S = diag(I_K, -c I)``; Woodbury applies ``W^-1``
  with a (K+n_c)-square capacitance matrix. Because ``L^T L`` annihilates per-component
  constants, ``M^-1 E = 1_components / c`` exactly, so only ``M^-1 A^T`` (K columns) is solved.
- ``V`` is linear in ``H``: ``V_b = T + B_A (H_b - A T)`` with ``B_A = W^-1 A^T`` (N,K), since
  ``W T = L^T L T + A^T A T``. The forward pass costs K column solves whatever the batch.
- Backward with ``Gb_b = W^-1 G_b``: ``dH_b = A Gb_b = B_A^T G_b`` (no solve) and
  ``dA = sum_b [(H_b - A V_b) Gb_b^T - (A Gb_b) V_b^T]``, which is the seed's listing
  ``grad_A = H Gb^T - A Gb V^T - A V Gb^T`` summed over the batch. The batch is summed before
  solving: ``sum_b (H_b - A V_b) Gb_b^T = (W^-1 sum_b G_b (H_b - A V_b)^T)^T``, so the backward
  costs min(K, 3B) column solves. A training step thus costs about 2K column solves.
- Everything runs in float64 (``L^T L`` squares the Laplacian's condition number); float32
  inputs give float32 outputs.

Vertices whose Laplacian row is all zero (used by no face, or only by triangles of zero area)
have no surface to keep; the solve gives them a unit Laplacian row (``L' = L + diag(isolated)``)
so that they stay at their template position unless handles pull them, and the problem stays
well posed. The gradient with respect to the template ``T`` is not computed (``T`` is the fixed
template; :func:`laplacian_solve` returns ``None`` for it).
"""

from __future__ import annotations

import atexit
import weakref
from collections import OrderedDict

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components
from torch import Tensor
from torch.autograd.function import once_differentiable

from engine.core.errors import MeshError
from engine.core.progress import CancelFn, Cancelled, ProgressFn

#: Most right-hand sides cholespy accepts in one CUDA solve.
_MAX_RHS = 128


_LIVE_SYSTEMS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _release_factors() -> None:
    # cholespy's bindings report every solver still alive at interpreter exit as a "leak" on
    # stderr; free the factors first so command-line runs end quietly.
    for system in list(_LIVE_SYSTEMS):
        system._factor = None


# ------------------------------------------------------------------------ factored system


class LaplacianSystem:
    """The per-mesh part of the solve: ``L``, its components, and the Cholesky factor of
    ``M = L'^T L' + c E E^T`` (see the module docstring). Build once per mesh, reuse for every
    ``A``, batch and training step.

    Args:
        L: (N,N) sparse Laplacian (any float dtype; used in float64), e.g. from
            :func:`cotangent_laplacian`. Treated as immutable.
        progress: optional ``progress(fraction, message)`` callback.
        cancel: optional ``cancel() -> bool``; returning True raises :class:`Cancelled` at the
            next check point (the factorisation itself cannot be interrupted).

    Attributes:
        n: number of vertices N.
        device: device of ``L``; the factor and all solves live there.
        labels: (N,) int64 tensor, connected component of each vertex (isolated vertices have
            their own labels but no pin).
        num_components: n_c, number of pinned components.
        pins: (n_c,) int64 tensor, the pinned vertex of each component.
        isolated: (N,) bool tensor, vertices whose Laplacian row is all zero.
        pin_weight: c.

    Raises:
        MeshError: the Laplacian is not square, has non-finite entries, or ``M`` is not positive
            definite (a null space beyond per-component constants: a degenerate mesh).
    """

    def __init__(
        self, L: Tensor, *, progress: ProgressFn | None = None, cancel: CancelFn | None = None
    ) -> None:
        report = progress or (lambda fraction, message: None)
        check = cancel or (lambda: False)
        if not L.is_sparse or L.ndim != 2 or L.shape[0] != L.shape[1]:
            raise MeshError("expected the Laplacian as a square sparse (N, N) tensor")
        self.n = int(L.shape[0])
        self.device = L.device
        report(0.0, "assembling L^T L")
        Lc = L.coalesce()
        idx = Lc.indices().cpu().numpy()
        val = Lc.values().detach().to("cpu", torch.float64).numpy()
        if not np.isfinite(val).all():
            raise MeshError("the Laplacian has NaN or infinite entries")
        lap = sp.csr_matrix((val, (idx[0], idx[1])), shape=(self.n, self.n))
        lap.eliminate_zeros()
        isolated = np.diff(lap.indptr) == 0
        lap = (lap + sp.diags(isolated.astype(np.float64))).tocsr()
        offdiag = lap - sp.diags(lap.diagonal())
        offdiag.eliminate_zeros()
        _, labels = connected_components(offdiag, directed=False)
        labels = labels.astype(np.int64)
        normal = (lap.T @ lap).tocsr()
        pin_labels, pins = np.unique(labels[~isolated], return_index=True)
        pins = np.flatnonzero(~isolated)[pins]
        # Renumber components so pinned ones are 0..n_c-1 and isolated vertices come after.
        relabel = np.full(labels.max() + 1, -1, dtype=np.int64)
        relabel[pin_labels] = np.arange(len(pin_labels))
        spare = np.setdiff1d(np.unique(labels), pin_labels)
        relabel[spare] = len(pin_labels) + np.arange(len(spare))
        labels = relabel[labels]
        diag = normal.diagonal()
        self.pin_weight = float(diag[~isolated].mean()) if (~isolated).any() else 1.0
        normal = normal + sp.coo_matrix(
            (np.full(len(pins), self.pin_weight), (pins, pins)), shape=(self.n, self.n)
        )
        normal = normal.tocoo()
        if check():
            raise Cancelled("factorisation cancelled")
        report(0.1, f"factorising L^T L ({self.n} vertices, {normal.nnz} non-zeros)")
        self._factor = _factor(normal, self.device)
        _LIVE_SYSTEMS.add(self)
        if check():
            raise Cancelled("factorisation cancelled")
        report(1.0, "factorised")
        self.labels = torch.as_tensor(labels, device=self.device)
        self.num_components = len(pins)
        self.pins = torch.as_tensor(pins, dtype=torch.int64, device=self.device)
        self.isolated = torch.as_tensor(isolated, device=self.device)
        self.laplacian = lap  # scipy CSR, float64, with the unit rows of isolated vertices
        self._slot = self.labels.clamp(max=self.num_components)
        self._single_component = self.num_components == 1 and not isolated.any()
        self.L = L

    def solve_m(
        self, rhs: Tensor, progress: ProgressFn | None = None, cancel: CancelFn | None = None
    ) -> Tensor:
        """``M^-1 rhs`` for rhs (N,m) float64 on ``self.device``; returns (N,m) float64."""
        rhs = rhs.to(self.device, torch.float64)
        squeeze = rhs.ndim == 1
        if squeeze:
            rhs = rhs[:, None]
        out = torch.empty_like(rhs)
        m = rhs.shape[1]
        # Smaller chunks when someone watches: progress and cancel checks between them.
        step = _MAX_RHS if progress is None and cancel is None else 8
        for start in range(0, m, step):
            if cancel is not None and cancel():
                raise Cancelled("solve cancelled")
            b = rhs[:, start : start + step].contiguous()
            x = torch.zeros_like(b)
            self._factor.solve(b, x)
            out[:, start : start + step] = x
            if progress is not None:
                progress(min(1.0, (start + step) / m), f"solving {min(m, start + step)}/{m}")
        return out[:, 0] if squeeze else out

    def component_sums(self, X: Tensor) -> Tensor:
        """``N^T X``: (N,m) -> (n_c,m), sums over each pinned component's vertices."""
        if self._single_component:
            return X.sum(0, keepdim=True)
        out = torch.zeros(self.num_components + 1, X.shape[1], dtype=X.dtype, device=X.device)
        out.index_add_(0, self._slot, X)  # isolated vertices land in the spare last row
        return out[: self.num_components]

    def component_expand(self, Y: Tensor) -> Tensor:
        """``N Y``: (n_c,m) -> (N,m), each vertex gets its component's row (0 if isolated);
        a broadcastable (1,m) view for a single component without isolated vertices."""
        if self._single_component:
            return Y
        padded = torch.cat([Y, torch.zeros(1, Y.shape[1], dtype=Y.dtype, device=Y.device)])
        return padded[self._slot]

    def apply_w(self, A: Tensor, X: Tensor) -> Tensor:
        """``W X = (L'^T L' + A^T A) X`` for checks; A (K,N), X (N,m) -> (N,m) float64."""
        lap = self.laplacian
        x = X.detach().to("cpu", torch.float64).numpy()
        lx = torch.as_tensor(lap.T @ (lap @ x), device=X.device)
        A64 = A.detach().to(X.device, torch.float64)
        return lx + A64.T @ (A64 @ X.to(torch.float64))


def _factor(matrix: sp.coo_matrix, device: torch.device):
    import cholespy

    rows = torch.as_tensor(matrix.row.astype(np.int32), device=device)
    cols = torch.as_tensor(matrix.col.astype(np.int32), device=device)
    vals = torch.as_tensor(matrix.data.astype(np.float64), device=device)
    try:
        return cholespy.CholeskySolverD(matrix.shape[0], rows, cols, vals, cholespy.MatrixType.COO)
    except ValueError as exc:
        raise MeshError(
            "the Laplacian system is not positive definite: the mesh is too degenerate "
            f"(a null space beyond per-component constants) ({exc})"
        ) from None


class HandleSystem:
    """Woodbury pieces of ``W^-1`` for one ``A``: ``Y = M^-1 A^T`` and the LU of the
    capacitance matrix ``C = [[I + A Y, A N / c], [(A N)^T / c, 0]]``."""

    def __init__(
        self,
        system: LaplacianSystem,
        A: Tensor,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> None:
        self.system = system
        A = A.detach().to(system.device, torch.float64)
        k = A.shape[0]
        self.Y = system.solve_m(A.T, progress=progress, cancel=cancel)  # (N,K)
        c = system.pin_weight
        self.AN = system.component_sums(A.T).T / c  # (K,n_c)
        Q = A @ self.Y
        nc = system.num_components
        C = torch.zeros(k + nc, k + nc, dtype=torch.float64, device=system.device)
        C[:k, :k] = Q + torch.eye(k, dtype=torch.float64, device=system.device)
        C[:k, k:] = self.AN
        C[k:, :k] = self.AN.T
        self.lu, self.pivots, info = torch.linalg.lu_factor_ex(C)
        pivots = self.lu.diagonal().abs()
        if (
            int(info) != 0
            or not torch.isfinite(self.lu).all()
            or pivots.min() <= 1e-13 * pivots.max()
        ):
            raise MeshError(
                "the deformation is under-determined: some connected component has no handle "
                "weight (use at least one handle per component)"
            )
        self.k = k
        # B_A = W^-1 A^T with Z^T A^T = [A Y ; (A N)^T / c]^T stacked.
        self.B = self.apply_correction(self.Y, torch.cat([Q.T, self.AN.T]))

    def apply_correction(self, MinvX: Tensor, ZtX: Tensor) -> Tensor:
        """``W^-1 X = M^-1 X - Z C^-1 Z^T X`` given ``M^-1 X`` and ``Z^T X``."""
        sol = torch.linalg.lu_solve(self.lu, self.pivots, ZtX)
        out = MinvX - self.Y @ sol[: self.k]
        if self.system.num_components:
            out = out - self.system.component_expand(sol[self.k :]) / self.system.pin_weight
        return out

    def solve_w(self, X: Tensor) -> Tensor:
        """``W^-1 X`` for X (N,m) float64."""
        MinvX = self.system.solve_m(X)
        ZtX = torch.cat([self.Y.T @ X, self.system.component_sums(X) / self.system.pin_weight])
        return self.apply_correction(MinvX, ZtX)


# ------------------------------------------------------------------------ differentiable solve

_SYSTEM_CACHE: OrderedDict[int, tuple[weakref.ref, LaplacianSystem]] = OrderedDict()
_CACHE_SIZE = 4


def laplacian_system(L: Tensor | LaplacianSystem) -> LaplacianSystem:
    """The :class:`LaplacianSystem` of a sparse ``L``, factored on first use and cached by the
    identity of the ``L`` tensor (a few most recent ones). Pass a system through unchanged."""
    if isinstance(L, LaplacianSystem):
        return L
    key = id(L)
    hit = _SYSTEM_CACHE.get(key)
    if hit is not None and hit[0]() is L:
        _SYSTEM_CACHE.move_to_end(key)
        return hit[1]
    system = LaplacianSystem(L)
    _SYSTEM_CACHE[key] = (weakref.ref(L), system)
    while len(_SYSTEM_CACHE) > _CACHE_SIZE:
        _SYSTEM_CACHE.popitem(last=False)
    return system


class _LaplacianSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, system: LaplacianSystem, A: Tensor, T: Tensor, H: Tensor) -> Tensor:
        out_dtype = torch.promote_types(A.dtype, H.dtype)
        hs = HandleSystem(system, A)
        A64 = A.detach().to(system.device, torch.float64)
        T64 = T.detach().to(system.device, torch.float64)
        H64 = H.detach().to(system.device, torch.float64)
        D = H64 - (A64 @ T64)  # (B,K,3)
        V = T64 + torch.einsum("nk,bkc->bnc", hs.B, D)
        ctx.hs = hs
        ctx.save_for_backward(A64, H64, V)
        ctx.dtypes = (A.dtype, H.dtype)
        return V.to(out_dtype)

    @staticmethod
    @once_differentiable  # the backward is not itself differentiable: refuse double backward
    def backward(ctx, grad_v: Tensor):
        A64, H64, V = ctx.saved_tensors
        hs: HandleSystem = ctx.hs
        G = grad_v.to(torch.float64)
        need_a, need_h = ctx.needs_input_grad[1], ctx.needs_input_grad[3]
        dH_core = torch.einsum("nk,bnc->bkc", hs.B, G)  # A W^-1 G_b = B_A^T G_b
        grad_a = grad_h = None
        if need_a:
            E = H64 - torch.einsum("kn,bnc->bkc", A64, V)  # H_b - A V_b
            b = G.shape[0]
            if 3 * b < hs.k:
                # Fewer columns in the batch than handles: solve for the G_b themselves.
                Gb = hs.solve_w(G.permute(1, 0, 2).reshape(G.shape[1], 3 * b))
                Gb = Gb.reshape(G.shape[1], b, 3).permute(1, 0, 2)
                term1 = torch.einsum("bkc,bnc->kn", E, Gb)
            else:
                R = torch.einsum("bnc,bkc->nk", G, E)  # sum_b G_b (H_b - A V_b)^T
                term1 = hs.solve_w(R).T
            grad_a = (term1 - torch.einsum("bkc,bnc->kn", dH_core, V)).to(ctx.dtypes[0])
        if need_h:
            grad_h = dH_core.to(ctx.dtypes[1])
        return None, grad_a, None, grad_h


def laplacian_solve(L: Tensor | LaplacianSystem, A: Tensor, T: Tensor, H: Tensor) -> Tensor:
    """Differentiable Laplacian deformation ``V = argmin 1/2||LV - LT||^2 + 1/2||AV - H||^2``.

    Args:
        L: (N,N) sparse Laplacian, or a prepared :class:`LaplacianSystem` (recommended: it holds
            the factorisation). A sparse ``L`` is factored on first use and cached by tensor
            identity, so pass the same tensor object every step.
        A: (K,N) float handle dependency matrix (rows typically softmax over vertices).
        T: (N,3) float template vertices (no gradient is computed for it).
        H: (B,K,3) or (K,3) float handle targets.

    Returns:
        V: (B,N,3) or (N,3) deformed vertices in the promoted dtype of ``A`` and ``H``, on the
        device of the system. Computed in float64 throughout. Gradients flow to ``A`` and
        ``H``; ``T`` gets none.

    Raises:
        ValueError: inconsistent shapes.
        MeshError: under-determined problem (a component without handle weight) or a
            degenerate Laplacian.
    """
    system = laplacian_system(L)
    n = system.n
    if A.ndim != 2 or A.shape[1] != n:
        raise ValueError(f"A must have shape (K, {n}), got {tuple(A.shape)}")
    if T.shape != (n, 3):
        raise ValueError(f"T must have shape ({n}, 3), got {tuple(T.shape)}")
    single = H.ndim == 2
    if single:
        H = H.unsqueeze(0)
    if H.ndim != 3 or H.shape[1:] != (A.shape[0], 3):
        raise ValueError(f"H must have shape (B, {A.shape[0]}, 3) or ({A.shape[0]}, 3)")
    V = _LaplacianSolve.apply(system, A, T, H)
    return V[0] if single else V
