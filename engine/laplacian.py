"""Learnable Laplacian deformation (seed 001, section 3): cotangent Laplacian, the exact and fast
differentiable solve, the learnable deformer module, and the editing basis for real-time drags.

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
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components
from torch import Tensor, nn

from engine.errors import MeshError
from engine.handles import (
    dependency_matrix,
    farthest_point_handles,
    geodesic_distances,
    init_logits,
)

#: Bound on |cot| of a triangle angle: angles within ~1e-5 rad of 0 or pi are clamped here so
#: that needles and zero-area triangles keep the Laplacian finite.
COT_BOUND = 1e5

#: Most right-hand sides cholespy accepts in one CUDA solve.
_MAX_RHS = 128


class Cancelled(Exception):
    """Raised when a ``cancel()`` callback asked a long computation to stop."""


ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]

_LIVE_SYSTEMS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _release_factors() -> None:
    # cholespy's bindings report every solver still alive at interpreter exit as a "leak" on
    # stderr; free the factors first so command-line runs end quietly.
    for system in list(_LIVE_SYSTEMS):
        system._factor = None


# ------------------------------------------------------------------------- cotangent Laplacian


def cotangent_laplacian(vertices: Tensor, faces: Tensor) -> Tensor:
    """Cotangent Laplacian ``L = D - W`` of a triangle mesh.

    ``W_ij = (cot a_ij + cot b_ij) / 2`` over the (one or two) angles opposite edge ij, and
    ``D = diag(sum_j W_ij)``. Sign convention: ``L`` is positive semi-definite (the stiffness
    matrix of piecewise-linear FEM; ``x^T L x`` is the Dirichlet energy), symmetric, with rows and
    columns summing to zero; no mass matrix. Every face contributes, so duplicate faces count
    twice. Cotangents are clamped to ``[-COT_BOUND, COT_BOUND]`` and a zero-area triangle
    with coincident corners contributes 0, so the result is finite for any finite input.
    Vertices in no face get a row (and column) of zeros.

    Args:
        vertices: (N,3) float tensor.
        faces: (F,3) long tensor, indices in ``[0, N)``.

    Returns:
        (N,N) coalesced sparse COO tensor of the dtype and device of ``vertices``.
    """
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise MeshError(f"expected vertices of shape (N, 3), got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise MeshError(f"expected faces of shape (F, 3), got {tuple(faces.shape)}")
    n = vertices.shape[0]
    faces = faces.to(device=vertices.device, dtype=torch.int64)
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= n):
        raise MeshError(f"face index out of range: expected 0 <= index < {n}")
    tiny = torch.finfo(vertices.dtype).tiny
    rows, cols, vals = [], [], []
    for corner in range(3):
        i = faces[:, corner]
        j = faces[:, (corner + 1) % 3]
        k = faces[:, (corner + 2) % 3]
        u = vertices[j] - vertices[i]
        v = vertices[k] - vertices[i]
        dot = (u * v).sum(-1)
        cross = torch.linalg.vector_norm(torch.linalg.cross(u, v), dim=-1)
        scale = torch.linalg.vector_norm(u, dim=-1) * torch.linalg.vector_norm(v, dim=-1)
        # Relative floor on |u x v| so the clamp, not an inf, decides for flat triangles.
        denom = torch.maximum(cross, scale * (1.0 / COT_BOUND) ** 2).clamp_min(tiny)
        half_cot = 0.5 * (dot / denom).clamp(-COT_BOUND, COT_BOUND)
        rows += [j, k, j, k]
        cols += [k, j, j, k]
        vals += [-half_cot, -half_cot, half_cot, half_cot]
    indices = torch.stack([torch.cat(rows), torch.cat(cols)])
    values = torch.cat(vals)
    return torch.sparse_coo_tensor(
        indices,
        values,
        (n, n),
        dtype=vertices.dtype,
        device=vertices.device,
        check_invariants=False,  # indices are in range by the check above
    ).coalesce()


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


class _HandleSystem:
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
        hs = _HandleSystem(system, A)
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
    def backward(ctx, grad_v: Tensor):
        A64, H64, V = ctx.saved_tensors
        hs: _HandleSystem = ctx.hs
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


# ------------------------------------------------------------------------ deformer module


class LaplacianDeformer(nn.Module):
    """Template mesh deformed by K handles through a learnable dependency matrix.

    ``A = softmax(logits)`` (K,N), ``handle_positions() = A T``, and ``forward(offsets)`` returns
    the Laplacian deformation with handle targets ``H = A T + offsets``.

    Args:
        vertices: (N,3) float template ``T`` (its dtype is the module's dtype).
        faces: (F,3) long triangles.
        num_handles: K, used when ``handle_ids`` is None (farthest-point sampling).
        handle_ids: optional (K,) long vertex ids of the handles.
        seed: seed of the farthest-point sampling.

    Buffers: ``template`` (N,3), ``faces`` (F,3), ``handle_ids`` (K,), and the non-persistent
    ``laplacian`` (sparse (N,N), rebuilt from the template). Parameter: ``logits`` (K,N)
    initialised to ``-16 log(d + eps)`` of the edge-graph geodesic distances ``d``.
    """

    def __init__(
        self,
        vertices: Tensor,
        faces: Tensor,
        num_handles: int = 16,
        handle_ids: Tensor | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        vertices = torch.as_tensor(vertices)
        if not vertices.is_floating_point():
            vertices = vertices.to(torch.float64)
        faces = torch.as_tensor(faces).to(device=vertices.device, dtype=torch.int64)
        if handle_ids is None:
            handle_ids = farthest_point_handles(vertices, faces, num_handles, seed=seed)
        handle_ids = torch.as_tensor(handle_ids).to(device=vertices.device, dtype=torch.int64)
        if handle_ids.ndim != 1 or handle_ids.numel() < 1:
            raise ValueError("handle_ids must be a non-empty 1-D tensor of vertex ids")
        if int(handle_ids.min()) < 0 or int(handle_ids.max()) >= vertices.shape[0]:
            raise ValueError(f"handle ids must lie in [0, {vertices.shape[0]})")
        dist = geodesic_distances(vertices, faces, handle_ids)
        self.register_buffer("template", vertices.detach().clone())
        self.register_buffer("faces", faces.clone())
        self.register_buffer("handle_ids", handle_ids.clone())
        self.register_buffer(
            "laplacian", cotangent_laplacian(self.template, self.faces), persistent=False
        )
        self.logits = nn.Parameter(init_logits(dist).to(vertices.dtype))
        self._system: LaplacianSystem | None = None

    @property
    def A(self) -> Tensor:
        """(K,N) dependency matrix ``softmax(logits)``, rows sum to 1."""
        return dependency_matrix(self.logits)

    @property
    def num_handles(self) -> int:
        """K."""
        return int(self.logits.shape[0])

    @property
    def system(self) -> LaplacianSystem:
        """The factored :class:`LaplacianSystem` of the template, built on first use and
        rebuilt after the module moves to another device."""
        if self._system is None or self._system.device != self.laplacian.device:
            self._system = LaplacianSystem(self.laplacian)
        return self._system

    def handle_positions(self) -> Tensor:
        """(K,3) rest positions of the handles, ``A T``."""
        return self.A @ self.template

    def forward(self, offsets: Tensor) -> Tensor:
        """Deform the template.

        Args:
            offsets: (B,K,3) or (K,3) handle displacements ``Delta`` from ``A T``.

        Returns:
            (B,N,3) or (N,3) deformed vertices (dtype of the module's parameters).
        """
        A = self.A
        H = (A @ self.template) + offsets
        return laplacian_solve(self.system, A, self.template, H)


# ------------------------------------------------------------------------ editing basis


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
        hs = _HandleSystem(system, A, progress=progress, cancel=cancel)
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
