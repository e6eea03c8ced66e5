"""Generalised Procrustes alignment (rotation only) with PRN's implicit analytic gradient.

(Optionally reflections too: ``align(..., reflections=True)``, see :func:`align`.)

``align`` removes each frame's translation and rotates every frame onto the mean of the aligned
set (the official PRN iteration: the first shape is the first reference, then the mean; one SVD
per frame with the det < 0 fix). Its backward pass is the vector-Jacobian product of PRN's
implicit derivative (seed 000, eqs. 3-21), ``dL/dX = D^T (A B^-1 C + I)^T dL/dX~``, computed
without ever building the 3 P n_f x 3 P n_f Jacobian:

* Optimality. At the fixed point every aligned frame ``Z_k`` (P x 3, rows are points) satisfies
  ``skew(Z_k^T W) = 0`` with ``W = sum_i Z_i`` (seed eq. 10; ``Z_k^T Z_k`` is symmetric, so the
  sum may include ``i = k``). Perturbing the rotations by infinitesimal rotation vectors
  ``w_i`` (``Z_i -> Z_i + w_i x Z_i``) and differentiating gives ``B w = C vec(dZ')`` with the
  symmetric 3 n_f x 3 n_f matrix

      B_kk = tr(N_k) I - N_k - (tr(K_kk) I - K_kk),   N_k = Z_k^T W,
      B_ki = -(tr(K_ki) I - K_ki^T)                    K_ki = Z_k^T Z_i   (i != k).

* Gauge. ``B`` is singular along ``w_i = w`` for all ``i`` (a global rotation). The forward pass
  fixes that freedom deterministically with ``R_1 = I`` (the aligned set is expressed in the
  orientation of the first frame), so the backward pass uses the same constraint ``w_1 = 0``:
  frame 1's row and column of ``B`` are dropped (``B_r``, size 3(n_f - 1)).

* VJP. With ``G_i = dL/dZ_i``, ``a_i = sum_p z_ip x g_ip`` (this is ``A^T G``: the skew part of
  ``G_i^T Z_i`` as a 3-vector) and ``lambda = B_r^-1 a`` (``B`` is symmetric), the gradient with
  respect to the centred, pre-rotated frames is

      H_i = G_i - lambda_i x w_p + sum_k lambda_k x z_kp      (row p of each term)

  (``C^T lambda``), and ``dL/dX_i = T (H_i R_i)`` (``D^T``: undo the rotation, remove the mean).

* Solve. ``B_r = blockdiag(D_k) - L^T L`` where ``D_k = tr(N_k) I - N_k`` and ``L`` maps the
  rotation vectors to the P vectors ``c_p = sum_i z_ip x w_i`` (so ``(L^T L w)_k =
  sum_p c_p x z_kp``): the off-diagonal part has rank at most 3P whatever n_f is. For
  ``n_f - 1 <= P`` the dense ``B_r`` is assembled from its 3 x 3 blocks (which only involve
  ``Z_k^T Z_i``) and solved directly; above that the Sherman-Morrison-Woodbury identity reduces
  the solve to n_f 3 x 3 inverses and one 3P x 3P LU (O(n_f P^2) time, O(n_f P + P^2) memory),
  followed by two steps of iterative refinement of the residual (computed with an O(n_f P)
  matrix-vector product) so that ill-conditioned blocks cost little accuracy. Neither builds
  the 3 P n_f x 3 P n_f Jacobian.

* Degenerate groups. A collinear frame can spin about its line and a zero frame can turn
  freely without changing anything, so ``B_r`` is singular beyond the gauge (one null direction
  per collinear frame, three per zero frame). (Three points, P = 3, are planar but not
  singular in general: the smallest eigenvalue of ``B_r`` stays of the order of the others.)
  The backward pass therefore always solves the Tikhonov-regularised system
  ``(B_r + delta I) lambda = a`` with ``delta = 1e-12 * mean diagonal of the D_k``
  (``delta = 1`` for an all-zero group), in float64 whatever the input dtype. For well-posed
  groups this changes the gradient by a relative ``~1e-12 * cond(B_r)``; for singular ones
  ``a`` has no component along the null directions (``a_i`` is perpendicular to a collinear
  frame's line and zero for a zero frame), so the result is the minimum-norm solution, finite
  and deterministic.

Everything is batched over groups and frames (no Python loop over frames) and runs on the
device of the input.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, overload

import torch
from torch import Tensor

from engine.core.errors import DataError

_REG = 1e-12
_REFINE_STEPS = 2


class AlignInfo(NamedTuple):
    """How the iteration of one :func:`align` call ended (``align(..., return_info=True)``).

    Attributes:
        iterations: Kabsch sweeps each group used, (G,) int64, or () for unbatched input.
        converged: (G,) or () bool: the group met ``tol`` within ``max_iter`` sweeps. False
            means :func:`align` returned the last iterate of an unfinished iteration, and the
            implicit gradient (which assumes a converged alignment) is only approximate.
    """

    iterations: Tensor
    converged: Tensor

    @property
    def not_converged(self) -> int:
        """Number of groups that did not converge (one host sync)."""
        return int((~self.converged).sum())


def default_tol(dtype: torch.dtype) -> float:
    """Default stopping tolerance of :func:`align` for ``dtype``.

    The iteration stops when ``||m_new - m_old||_F <= tol * ||m_new||_F`` for the mean shape
    ``m`` of every group: ``1e-10`` in float64, ``1e-6`` in float32 / lower precisions.
    """
    return 1e-10 if dtype == torch.float64 else 1e-6


def _check_points(X: Tensor) -> None:
    if not isinstance(X, Tensor):
        raise DataError(f"expected a torch.Tensor, got {type(X).__name__}", field="X")
    if X.dim() not in (3, 4) or X.shape[-1] != 3:
        raise DataError(
            f"expected shape (n_f, P, 3) or (G, n_f, P, 3), got {tuple(X.shape)}", field="X"
        )
    if X.dtype not in (torch.float32, torch.float64):
        raise DataError(f"expected float32 or float64, got {X.dtype}", field="X")
    if X.shape[-3] < 1 or X.shape[-2] < 1:
        raise DataError(
            f"expected at least one frame and one point, got {tuple(X.shape)}", field="X"
        )
    if not bool(torch.isfinite(X).all()):
        raise DataError("contains NaN or infinite coordinates", field="X")


def _cross(a: Tensor, b: Tensor) -> Tensor:
    return torch.linalg.cross(a, b, dim=-1)


def _det3(M: Tensor) -> Tensor:
    """Determinant of (..., 3, 3) matrices as a triple product (torch.linalg.det's batched LU
    costs milliseconds for a handful of 3 x 3 matrices on CPU)."""
    return (M[..., 0, :] * _cross(M[..., 1, :], M[..., 2, :])).sum(-1)


def _inv3(M: Tensor) -> Tensor:
    """Inverse of (..., 3, 3) matrices by the adjugate: batched LAPACK LU has a large per-call
    overhead on CPU. Its rounding error is corrected by the iterative refinement."""
    r0, r1, r2 = M[..., 0, :], M[..., 1, :], M[..., 2, :]
    cols = torch.stack([_cross(r1, r2), _cross(r2, r0), _cross(r0, r1)], dim=-1)
    return cols / _det3(M)[..., None, None]


def _kabsch(H: Tensor, reflections: bool = False) -> Tensor:
    """Proper rotations R maximising tr(R H) for H (..., 3, 3): R = V diag(1, 1, d) U^T.

    With ``reflections`` the maximiser over all orthogonal matrices, R = V U^T (det +-1).
    """
    U, _, Vh = torch.linalg.svd(H)
    V = Vh.transpose(-1, -2)
    if reflections:
        return V @ U.transpose(-1, -2)
    d = torch.sign(_det3(V @ U.transpose(-1, -2)))
    # det of an orthogonal matrix is +-1; sign(0) cannot occur but keep it a proper rotation.
    d = torch.where(d == 0, torch.ones_like(d), d)
    V = torch.cat([V[..., :2], V[..., 2:] * d[..., None, None]], dim=-1)
    return V @ U.transpose(-1, -2)


def _gauge_fix(R: Tensor) -> Tensor:
    """Apply the global rotation that makes R_1 = I: R_i <- R_1^T R_i. R (G, n, 3, 3)."""
    return R[:, :1].transpose(-1, -2) @ R


def _rotate(Y: Tensor, R: Tensor) -> Tensor:
    """Z_i = Y_i R_i^T for Y (G, n, P, 3), R (G, n, 3, 3)."""
    return Y @ R.transpose(-1, -2)


def _gpa_rotations(
    Y: Tensor, tol: float, max_iter: int, reflections: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """The official iteration on centred frames Y (G, n, P, 3), without autograd.

    Returns the gauge-fixed rotations (G, n, 3, 3), the number of iterations each group used
    (G,) int64 and whether it met ``tol`` (G,) bool (never after a single sweep: the first
    sweep has no previous mean to compare with). A group that has converged is frozen while
    others continue, so a group's result does not depend on what else is in the batch.
    """
    G, n = Y.shape[:2]
    eye = torch.eye(3, dtype=Y.dtype, device=Y.device)
    R = eye.expand(G, n, 3, 3).clone()
    ref = Y[:, 0]
    mean_old = None
    done = torch.zeros(G, dtype=torch.bool, device=Y.device)
    iters = torch.zeros(G, dtype=torch.int64, device=Y.device)
    for _ in range(max_iter):
        R_new = _kabsch(Y.transpose(-1, -2) @ ref[:, None], reflections)
        R = torch.where(done[:, None, None, None], R, R_new)
        iters = iters + (~done).long()
        mean = _rotate(Y, R).mean(dim=1)
        if mean_old is not None:
            change = torch.linalg.vector_norm((mean - mean_old).flatten(1), dim=1)
            size = torch.linalg.vector_norm(mean.flatten(1), dim=1)
            done = done | (change <= tol * size)
            # One host sync per iteration; the loop is O(n P) per step, so this is cheap.
            if bool(done.all()):
                break
        mean_old = mean
        ref = mean
    return _gauge_fix(R), iters, done


def _diag_blocks(Z: Tensor) -> Tensor:
    """D_k = tr(N_k) I - N_k with N_k = Z_k^T W, for Z (G, n, P, 3) -> (G, n, 3, 3)."""
    W = Z.sum(dim=1, keepdim=True)
    N = Z.transpose(-1, -2) @ W
    tr = N.diagonal(dim1=-2, dim2=-1).sum(-1)
    eye = torch.eye(3, dtype=Z.dtype, device=Z.device)
    return tr[..., None, None] * eye - N


def _regulariser(D: Tensor) -> Tensor:
    """delta (G,) = 1e-12 * mean diagonal of the blocks D (G, m, 3, 3); 1 for all-zero groups."""
    scale = D.diagonal(dim1=-2, dim2=-1).mean(dim=(-1, -2)).abs()
    return torch.where(scale > 0, _REG * scale, torch.ones_like(scale))


def _skew_stack(Zr: Tensor) -> Tensor:
    """L_i = [[z_i1]x; ...; [z_iP]x] as (G, m, 3P, 3) for Zr (G, m, P, 3)."""
    x, y, z = Zr.unbind(-1)
    o = torch.zeros_like(x)
    rows = torch.stack(
        [torch.stack([o, -z, y], -1), torch.stack([z, o, -x], -1), torch.stack([-y, x, o], -1)],
        dim=-2,
    )
    return rows.reshape(*Zr.shape[:2], 3 * Zr.shape[2], 3)


def _vee_antisym(M: Tensor) -> Tensor:
    """v_a = eps_abc M_bc for M (..., 3, 3): for M = x y^T this is x cross y."""
    return torch.stack(
        [M[..., 1, 2] - M[..., 2, 1], M[..., 2, 0] - M[..., 0, 2], M[..., 0, 1] - M[..., 1, 0]],
        dim=-1,
    )


def _L(Zr: Tensor, w: Tensor) -> Tensor:
    """c_p = sum_i z_ip x w_i as one GEMM. Zr (G, m, P, 3), w (G, m, 3) -> (G, P, 3)."""
    G, m, P, _ = Zr.shape
    M = Zr.reshape(G, m, 3 * P).transpose(1, 2) @ w  # [(p, b), c] = sum_i z_ipb w_ic
    return _vee_antisym(M.reshape(G, P, 3, 3))


def _Lt(Zr: Tensor, c: Tensor) -> Tensor:
    """(L^T c)_i = sum_p c_p x z_ip as one GEMM. Zr (G, m, P, 3), c (G, P, 3) -> (G, m, 3)."""
    G, m, P, _ = Zr.shape
    return -(Zr.reshape(G, m, 3 * P) @ _skew_stack(c[:, None])[:, 0])


def _solve_dense(Zr: Tensor, D: Tensor, delta: Tensor, a: Tensor) -> Tensor:
    """Solve (B_r + delta I) lam = a with B_r assembled densely. Zr (G, m, P, 3), a (G, m, 3)."""
    G, m = Zr.shape[:2]
    K = torch.einsum("gkpa,gipb->gkiab", Zr, Zr)
    eye = torch.eye(3, dtype=Zr.dtype, device=Zr.device)
    B = K.transpose(-1, -2) - K.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None] * eye
    idx = torch.arange(m, device=Zr.device)
    B[:, idx, idx] += D + delta[:, None, None, None] * eye
    B = B.permute(0, 1, 3, 2, 4).reshape(G, 3 * m, 3 * m)
    return torch.linalg.solve(B, a.reshape(G, 3 * m, 1)).reshape(G, m, 3)


def _solve_woodbury(Zr: Tensor, D: Tensor, delta: Tensor, a: Tensor) -> Tensor:
    """Solve (B_r + delta I) lam = a through Woodbury on blockdiag(D) - L^T L.

    Zr (G, m, P, 3), D (G, m, 3, 3), delta (G,), a (G, m, 3) -> (G, m, 3). The capacitance
    matrix S = I - L Dinv L^T is 3P x 3P.
    """
    G, m, P, _ = Zr.shape
    eye = torch.eye(3, dtype=Zr.dtype, device=Zr.device)
    Dreg = D + delta[:, None, None, None] * eye
    Dinv = _inv3(Dreg)
    L = _skew_stack(Zr)
    LD = (L @ Dinv).transpose(1, 2).reshape(G, 3 * P, 3 * m)
    LDL = LD @ L.transpose(1, 2).reshape(G, 3 * P, 3 * m).transpose(1, 2)
    S = torch.eye(3 * P, dtype=Zr.dtype, device=Zr.device) - LDL
    lu, piv = torch.linalg.lu_factor(S)

    def approx_inverse(r: Tensor) -> Tensor:
        y = (Dinv @ r[..., None])[..., 0]
        s = torch.linalg.lu_solve(lu, piv, _L(Zr, y).reshape(G, 3 * P, 1)).reshape(G, P, 3)
        return y + (Dinv @ _Lt(Zr, s)[..., None])[..., 0]

    def apply(w: Tensor) -> Tensor:
        return (Dreg @ w[..., None])[..., 0] - _Lt(Zr, _L(Zr, w))

    lam = approx_inverse(a)
    for _ in range(_REFINE_STEPS):
        lam = lam + approx_inverse(a - apply(lam))
    return lam


def _solve_gauge_fixed(Z: Tensor, a: Tensor, method: str) -> Tensor:
    """lambda (G, n, 3) with lambda_1 = 0 solving (B_r + delta I) lambda_r = a_r. Z (G,n,P,3)."""
    n, P = Z.shape[1:3]
    lam = torch.zeros_like(a)
    if n == 1:
        return lam
    m = n - 1
    D = _diag_blocks(Z)[:, 1:]
    delta = _regulariser(D)
    Zr, ar = Z[:, 1:], a[:, 1:]
    if method == "auto":
        method = "dense" if m <= P else "woodbury"
    if method == "dense":
        lam[:, 1:] = _solve_dense(Zr, D, delta, ar)
    elif method == "woodbury":
        lam[:, 1:] = _solve_woodbury(Zr, D, delta, ar)
    else:
        raise ValueError(f"unknown backward solver {method!r}; expected auto, dense or woodbury")
    return lam


def align_vjp(Z: Tensor, R: Tensor, grad_Z: Tensor, method: str = "auto") -> Tensor:
    """Vector-Jacobian product of :func:`align` at a converged, gauge-fixed alignment.

    Args:
        Z: aligned frames (G, n_f, P, 3) as returned by :func:`align` (centred, R_1 = I).
        R: their rotations (G, n_f, 3, 3).
        grad_Z: dL/dZ (G, n_f, P, 3).
        method: ``"auto"`` (dense if n_f - 1 <= P, else Woodbury), ``"dense"``,
            ``"woodbury"``: how the 3(n_f-1) x 3(n_f-1) gauge-fixed system is solved.

    Returns:
        dL/dX (G, n_f, P, 3) in the dtype of ``grad_Z``; computed in float64.
    """
    out_dtype = grad_Z.dtype
    Z, R, Gz = Z.double(), R.double(), grad_Z.double()
    a = _cross(Z, Gz).sum(dim=2)
    lam = _solve_gauge_fixed(Z, a, method)
    G, n, P, _ = Z.shape
    # H_i = G_i - lambda_i x w_p + sum_k lambda_k x z_kp, the last two as GEMMs.
    skew_w = _skew_stack(Z.sum(dim=1, keepdim=True))[:, 0]  # (G, 3P, 3): [w_p]x
    spin = (skew_w @ lam.transpose(1, 2)).reshape(G, P, 3, n).permute(0, 3, 1, 2)
    H = Gz + spin - _L(Z, lam)[:, None]
    gY = H @ R
    gX = gY - gY.mean(dim=2, keepdim=True)
    return gX.to(out_dtype)


_FIRST_ORDER_ONLY = (
    "align() has a first-order gradient only (PRN's implicit derivative, computed without "
    "autograd): differentiating a gradient of it (double backward after create_graph=True) "
    "is not supported"
)


class _FirstOrderOnly(torch.autograd.Function):
    """Passes a computed gradient through; differentiating it again raises a RuntimeError.

    What ``torch.autograd.function.once_differentiable`` does, except that the error node is
    connected to the graph (through the incoming gradient and the saved aligned frames), so
    a second ``torch.autograd.grad(..., X)`` reaches it and reports why instead of saying
    that ``X`` was not used in the graph.
    """

    @staticmethod
    def forward(ctx, grad_X: Tensor, *connected: Tensor) -> Tensor:  # type: ignore[override]
        return grad_X.clone()

    @staticmethod
    def backward(ctx, *grads: Tensor):  # type: ignore[override]
        raise RuntimeError(_FIRST_ORDER_ONLY)


class _AlignFunction(torch.autograd.Function):
    """Forward: the iteration; backward: :func:`align_vjp`, once differentiable.

    The VJP is computed from the saved, converged alignment in float64 without autograd (as
    under ``once_differentiable``), so it has no second derivative: when the backward runs
    with ``create_graph=True`` its result goes through :class:`_FirstOrderOnly`, and a double
    backward raises a RuntimeError instead of returning a silently wrong second derivative.
    """

    @staticmethod
    def forward(ctx, X: Tensor, tol: float, max_iter: int, method: str, reflections: bool):  # type: ignore[override]
        Y = X - X.mean(dim=2, keepdim=True)
        R, iters, converged = _gpa_rotations(Y, tol, max_iter, reflections)
        Z = _rotate(Y, R)
        ctx.save_for_backward(Z, R)
        ctx.method = method
        ctx.mark_non_differentiable(R, iters, converged)
        return Z, R, iters, converged

    @staticmethod
    def backward(ctx, grad_Z: Tensor | None, *_unused: Tensor | None):  # type: ignore[override]
        Z, R = ctx.saved_tensors
        if grad_Z is None:
            return None, None, None, None, None
        with torch.no_grad():
            grad_X = align_vjp(Z, R, grad_Z, ctx.method)
        if torch.is_grad_enabled():  # create_graph=True: make a second backward fail loudly
            grad_X = _FirstOrderOnly.apply(grad_X, grad_Z, Z)
        return grad_X, None, None, None, None


@overload
def align(
    X: Tensor,
    *,
    tol: float | None = ...,
    max_iter: int = ...,
    backward_solver: str = ...,
    reflections: bool = ...,
    return_info: Literal[False] = ...,
) -> tuple[Tensor, Tensor]: ...


@overload
def align(
    X: Tensor,
    *,
    tol: float | None = ...,
    max_iter: int = ...,
    backward_solver: str = ...,
    reflections: bool = ...,
    return_info: Literal[True],
) -> tuple[Tensor, Tensor, AlignInfo]: ...


def align(
    X: Tensor,
    *,
    tol: float | None = None,
    max_iter: int = 100,
    backward_solver: str = "auto",
    reflections: bool = False,
    return_info: bool = False,
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, AlignInfo]:
    """Generalised Procrustes alignment (translation and rotation, no scale) of groups of frames.

    Args:
        X: frames (n_f, P, 3) or groups of frames (G, n_f, P, 3), float32 or float64, any
            device. Each group is aligned independently, all in one batched computation.
        tol: stop when the relative change of every group's mean shape,
            ``||m_new - m_old||_F / ||m_new||_F``, is at most ``tol``
            (default :func:`default_tol`: 1e-10 for float64, 1e-6 for float32).
        max_iter: at most this many Kabsch sweeps (the official code uses 100). A group that
            has not met ``tol`` by then returns its last iterate without error; ask for
            ``return_info`` to know (:func:`align_iterations` reports the sweeps used).
        backward_solver: ``"auto"``, ``"dense"`` or ``"woodbury"`` (see :func:`align_vjp`);
            only changes how the gradient is computed, not its value.
        reflections: allow each frame an orthogonal matrix with det -1 (a reflection) as well
            as a rotation (the Kabsch step without the det < 0 fix), so a mirror image of a
            shape aligns onto it. The gradient formula is unchanged: near a reflection
            ``R_i = Q S`` (S fixed) the alignment is locally a rotation of ``X_i S``, and the
            optimality condition ``skew(Z_k^T W) = 0`` and the gauge ``R_1 = I`` are the same.
            Default False: proper rotations only.
        return_info: also return an :class:`AlignInfo` (sweeps used and whether each group
            converged) as a third element. Default False: the two-element return.

    Returns:
        X_aligned: same shape and dtype as ``X``: frame i centred then rotated,
            ``(X_i - mean_i) @ R_i^T``. The global rotation is fixed by ``R_1 = I`` (the first
            frame of each group keeps its orientation). Differentiable with respect to ``X``
            through PRN's implicit gradient (module docstring); the gradient treats the
            alignment as exactly converged.
        R: proper rotations (n_f, 3, 3) or (G, n_f, 3, 3), det +1 (det +-1 with
            ``reflections``). Returned DETACHED: no
            gradient flows through ``R``; differentiate through ``X_aligned``.
        info: only with ``return_info``: :class:`AlignInfo` with (G,) or () tensors on the
            device of ``X``.

    The gradient is first order only: a double backward through ``X_aligned`` (a second
    derivative of a gradient taken with ``create_graph=True``) raises a RuntimeError.

    Raises:
        DataError: wrong shape or dtype, or non-finite coordinates.
    """
    _check_points(X)
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")
    if tol is None:
        tol = default_tol(X.dtype)
    batched = X.dim() == 4
    Xg = X if batched else X.unsqueeze(0)
    Z, R, iters, converged = _AlignFunction.apply(
        Xg, float(tol), int(max_iter), backward_solver, bool(reflections)
    )
    if not batched:
        Z, R = Z.squeeze(0), R.squeeze(0)
        iters, converged = iters.squeeze(0), converged.squeeze(0)
    if return_info:
        return Z, R, AlignInfo(iters, converged)
    return Z, R


def align_iterations(X: Tensor, *, tol: float | None = None, max_iter: int = 100) -> Tensor:
    """Number of Kabsch sweeps :func:`align` uses on each group: (G,) or () int64, no autograd."""
    _check_points(X)
    if tol is None:
        tol = default_tol(X.dtype)
    Xg = X if X.dim() == 4 else X.unsqueeze(0)
    with torch.no_grad():
        _, iters, _ = _gpa_rotations(Xg - Xg.mean(dim=2, keepdim=True), float(tol), int(max_iter))
    return iters if X.dim() == 4 else iters.squeeze(0)


def align_unrolled(X: Tensor, n_iter: int) -> tuple[Tensor, Tensor]:
    """Slow reference: the same iteration for exactly ``n_iter`` sweeps, differentiated by autograd.

    Autograd runs through every SVD (memory grows with ``n_iter``; torch's SVD backward is
    unstable at repeated singular values). Same gauge (R_1 = I) and outputs as :func:`align`;
    used by the tests and the benchmark, not by the application.

    Args:
        X: (n_f, P, 3) or (G, n_f, P, 3) float32/float64.
        n_iter: number of Kabsch sweeps (>= 1).

    Returns:
        X_aligned (same shape as X) and R (.., n_f, 3, 3), both attached to the graph.
    """
    _check_points(X)
    Xg = X if X.dim() == 4 else X.unsqueeze(0)
    Y = Xg - Xg.mean(dim=2, keepdim=True)
    ref = Y[:, 0]
    R = None
    for _ in range(n_iter):
        R = _kabsch(Y.transpose(-1, -2) @ ref[:, None])
        ref = _rotate(Y, R).mean(dim=1)
    R = _gauge_fix(R)
    Z = _rotate(Y, R)
    if X.dim() == 3:
        Z, R = Z.squeeze(0), R.squeeze(0)
    return Z, R


def align_jacobian_dense(Z: Tensor, R: Tensor) -> Tensor:
    """Slow reference: the full Jacobian ``d vec(X~) / d vec(X) = (A B^-1 C + I) D`` (seed eq. 19).

    This is the authors' dense formulation: A (3Pn x 3n), B (3n x 3n, gauge fixed by w_1 = 0,
    regularised like :func:`align_vjp`), C (3n x 3Pn) and D (3Pn x 3Pn) are built explicitly and
    multiplied. O((P n_f)^2) memory and O((P n_f)^3) time: for tests and the benchmark only.

    Args:
        Z: aligned frames (n_f, P, 3) from :func:`align` (one group), float64.
        R: their rotations (n_f, 3, 3).

    Returns:
        (3 P n_f, 3 P n_f): row-major vec of X~ (frame, point, coordinate) by the same of X.
    """
    n, P, _ = Z.shape
    dt, dev = Z.dtype, Z.device
    eye3 = torch.eye(3, dtype=dt, device=dev)
    skew = _skew_stack(Z[None])[0].reshape(n, P, 3, 3)  # [z_ip]x
    W = Z.sum(dim=0)
    skew_w = _skew_stack(W[None, None])[0, 0].reshape(P, 3, 3)
    # A: dvec(Z_i) = -[z_ip]x w_i (rows rotate as w x z).
    A = torch.zeros(n, P, 3, n, 3, dtype=dt, device=dev)
    idx = torch.arange(n, device=dev)
    A[idx, :, :, idx, :] = -skew
    A = A.reshape(3 * P * n, 3 * n)
    # C: r_k = -sum_p [w_p]x dz'_kp + sum_i sum_p [z_kp]x dz'_ip.
    C = skew.permute(0, 2, 1, 3)[:, :, None, :, :].expand(n, 3, n, P, 3).clone()
    C[idx, :, idx] -= skew_w.permute(1, 0, 2)
    C = C.reshape(3 * n, 3 * P * n)
    # B from its blocks, then the gauge w_1 = 0: drop frame 1's rows and columns.
    K = torch.einsum("kpa,ipb->kiab", Z, Z)
    B = K.transpose(-1, -2) - K.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None] * eye3
    D_blocks = _diag_blocks(Z[None])[0]
    B[idx, idx] += D_blocks + _regulariser(D_blocks[None, 1:])[0] * eye3
    B = B.permute(0, 2, 1, 3).reshape(3 * n, 3 * n)
    Binv_C = torch.zeros(3 * n, 3 * P * n, dtype=dt, device=dev)
    Binv_C[3:] = torch.linalg.solve(B[3:, 3:], C[3:])
    # D: vec(Z'_i) = vec(T X_i R_i^T) -> kron(T, R_i) per frame (row-major vec).
    T = torch.eye(P, dtype=dt, device=dev) - 1.0 / P
    Dmat = torch.block_diag(*[torch.kron(T, R[i]) for i in range(n)])
    return (A @ Binv_C + torch.eye(3 * P * n, dtype=dt, device=dev)) @ Dmat
