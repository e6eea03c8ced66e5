"""Classic, training-free 3D reconstructions of 2D keypoint sequences to compare PRN against.

* ``zero_depth``: the 2D points with every depth 0 (the floor any method must beat).
* ``nrsfm_bmm``: the "simple prior-free" method of Dai, Li & He (CVPR 2012, "A simple
  prior-free method for non-rigid structure-from-motion factorization"), for orthographic
  cameras and shapes ``S_f = sum_k c_fk B_k`` of K basis shapes seen by rotations ``R_f``:
  1. rank-3K factorisation ``W = Pi B`` of the frame-centred 2D measurements;
  2. metric upgrade: one corrective column triplet ``g`` (3K x 3) with ``Pi_f g = c_f R_f``,
     found by least squares on the orthonormality of every ``R_f``'s rows (linear start plus
     random restarts), from which every rotation follows;
  3. shapes by the block-matrix method: with the rotations fixed, each frame's camera-frame
     shape is ``[W_f; z_f]`` with unknown depths ``z_f``; choose the depths that minimise the
     nuclear norm of the F x 3P matrix of world-frame shapes ``R_f^T [W_f; z_f]`` (convex;
     solved by ADMM with closed-form steps: singular-value thresholding, then a per-frame
     projection ``z_f = r3_f^T M_f``).
  Missing 2D points are filled first by low-rank matrix completion of W.

All functions take numpy arrays ``(F, P, 2)`` (any units) and return ``(F, P, 3)`` float64 in the
input's camera frame and units: x, y as observed (model-filled for missing points), depth centred
at 0 per frame. The depth sign of a frame is not observable; metrics choose it per frame.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import least_squares

from engine.core.errors import DataError
from engine.nrsfm.normalize import checked_points2d


def _check_2d(points2d: np.ndarray, visibility: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    shape = np.shape(points2d)
    if len(shape) != 3 or shape[2] != 2 or shape[0] < 1 or shape[1] < 3:
        raise DataError(
            f"expected an (F, P, 2) array with F >= 1, P >= 3, got shape {shape}",
            field="points2d",
        )
    p, vis = checked_points2d(points2d, visibility)
    if (vis.sum(axis=1) < 1).any():
        raise DataError("every frame needs at least one visible point", field="visibility")
    return p, vis


def zero_depth(points2d: np.ndarray, visibility: np.ndarray | None = None) -> np.ndarray:
    """The 2D points with depth 0.

    Args:
        points2d: (F, P, 2) float, any units.
        visibility: (F, P) bool or None; missing points are put at their frame's visible mean.

    Returns:
        (F, P, 3) float64: ``[x, y, 0]``.
    """
    p, vis = _check_2d(points2d, visibility)
    centre = (p * vis[..., None]).sum(axis=1) / vis.sum(axis=1)[:, None]
    p = np.where(vis[..., None], p, centre[:, None, :])
    return np.concatenate([p, np.zeros((*p.shape[:2], 1))], axis=-1)


# ----------------------------------------------------------------------------------------------
# Metric upgrade


def _orthonormality_residuals(g: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """Residuals of ``Pi_f g = c_f [r1; r2]``: |a|^2 - |b|^2 and 2 a.b per frame, plus scale."""
    m = pi @ g.reshape(-1, 3)  # (F, 2, 3)
    a, b = m[:, 0], m[:, 1]
    aa, bb, ab = (a * a).sum(1), (b * b).sum(1), (a * b).sum(1)
    # Fix the free scale of g: the mean row norm is 1.
    return np.concatenate([aa - bb, 2 * ab, [np.sqrt(m.shape[0]) * ((aa + bb).mean() / 2 - 1)]])


def _linear_upgrade(pi: np.ndarray) -> np.ndarray:
    """Least-squares Q = g g^T from the linear orthonormality constraints; g from its top 3 eigenpairs."""
    n = pi.shape[2]
    iu = np.triu_indices(n)
    a, b = pi[:, 0], pi[:, 1]

    def sym_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        outer = x[:, :, None] * y[:, None, :]
        outer = outer + outer.transpose(0, 2, 1) - outer * np.eye(n)  # coefficient of q_ij, i <= j
        return outer[:, iu[0], iu[1]]

    rows = np.concatenate([sym_rows(a, a) - sym_rows(b, b), sym_rows(a, b)])
    q = np.linalg.svd(rows, full_matrices=False)[2][-1]
    qm = np.zeros((n, n))
    qm[iu] = q
    qm = qm + qm.T - np.diag(np.diag(qm))
    w, v = np.linalg.eigh(qm)
    if w.sum() < 0:  # the null vector's sign is arbitrary; Q must be positive semidefinite
        w, v = -w[::-1], v[:, ::-1]
    top = np.argsort(w)[::-1][:3]
    return v[:, top] * np.sqrt(np.maximum(w[top], 1e-12))


def _upgrade_rotations(pi: np.ndarray, rng: np.random.Generator, restarts: int) -> np.ndarray:
    """(F, 3, 3) rotations from the motion factor ``pi`` (F, 2, 3K) by a metric upgrade."""
    starts = [_linear_upgrade(pi)] + [rng.normal(size=(pi.shape[2], 3)) for _ in range(restarts)]
    best, best_cost = None, np.inf
    for g0 in starts:
        g0 = g0 / max(np.sqrt((np.linalg.norm(pi @ g0, axis=(1, 2)) ** 2).mean() / 2), 1e-12)
        sol = least_squares(
            _orthonormality_residuals, g0.ravel(), args=(pi,), method="lm", max_nfev=2000
        )
        g = sol.x.reshape(-1, 3)
        m = pi @ g
        # Relative violation of orthonormality, weighted towards frames whose c_f is not tiny.
        cost = 2 * sol.cost / max((np.linalg.norm(m, axis=(1, 2)) ** 4).sum(), 1e-300)
        if cost < best_cost:
            best, best_cost = m, cost
    u, _, vt = np.linalg.svd(best, full_matrices=False)
    rows = u @ vt  # (F, 2, 3) nearest rows with orthonormality
    return np.concatenate([rows, np.cross(rows[:, 0], rows[:, 1])[:, None, :]], axis=1)


# ----------------------------------------------------------------------------------------------
# Block-matrix method for the shapes


def _singular_value_threshold(x: np.ndarray, tau: float) -> np.ndarray:
    """``U max(S - tau, 0) V^T`` of the tall matrix ``x`` (F, n)."""
    # Right singular vectors from the small n x n Gram matrix: far cheaper than an SVD of the
    # tall matrix; values below tau are discarded, so the squared conditioning does not matter.
    w, v = np.linalg.eigh(x.T @ x)
    sv = np.sqrt(np.maximum(w, 0.0))
    keep = sv > tau
    v, sv = v[:, keep], sv[keep]
    return ((x @ v) * ((sv - tau) / sv)) @ v.T


def _bmm_depths(w: np.ndarray, rotations: np.ndarray, iterations: int, tol: float) -> np.ndarray:
    """Depths (F, P) minimising ``||[R_f^T [W_f; z_f]]_f||_*`` for centred ``w`` (F, 2, P)."""
    f, _, p = w.shape
    base = rotations[:, :2, :].transpose(0, 2, 1) @ w  # R_f^T [W_f; 0], (F, 3, P)
    axis = rotations[:, 2, :]  # r3_f: the viewing direction in world coordinates, (F, 3)

    def shapes(depth: np.ndarray) -> np.ndarray:
        return (base + axis[:, :, None] * depth[:, None, :]).reshape(f, 3 * p)

    depth = np.zeros((f, p))
    dual = np.zeros((f, 3 * p))
    mu = 1.0 / max(np.linalg.norm(shapes(depth), 2), 1e-300)
    for it in range(iterations):
        y = _singular_value_threshold(shapes(depth) + dual / mu, 1.0 / mu)
        target = (y - dual / mu).reshape(f, 3, p) - base
        depth = np.einsum("fi,fip->fp", axis, target)  # r3_f is a unit vector
        depth -= depth.mean(axis=1, keepdims=True)
        residual = shapes(depth) - y
        dual += mu * residual
        mu = min(mu * 1.1, 1e10)
        if it >= 10 and np.linalg.norm(residual) <= tol * max(np.linalg.norm(y), 1e-300):
            break
    return depth


def nrsfm_baseline(
    points2d: np.ndarray,
    visibility: np.ndarray | None = None,
    rank: int = 3,
    *,
    iterations: int = 300,
    tol: float = 1e-9,
    restarts: int = 4,
    seed: int = 0,
) -> np.ndarray:
    """Dai et al.'s prior-free NRSfM: rank-3K metric upgrade, then nuclear-norm shapes.

    Args:
        points2d: (F, P, 2) float orthographic 2D observations, any units; F >= 2, P >= 3.
        visibility: (F, P) bool, False = missing (its values are ignored), or None.
        rank: K, the number of basis shapes used for the rotations (1 = rigid).
        iterations: maximum ADMM iterations of the shape step.
        tol: stop when the ADMM constraint residual falls below this fraction.
        restarts: random restarts of the metric upgrade (besides its linear start).
        seed: random seed of those restarts.

    Returns:
        (F, P, 3) float64 in the input's camera frame and units: x, y as observed (missing
        points filled by the low-rank completion), depth centred at 0 per frame.

    Raises:
        DataError: bad shapes, non-finite visible points, bad rank, or fewer than 2 frames.
    """
    p2, vis = _check_2d(points2d, visibility)
    f, p, _ = p2.shape
    if not (isinstance(rank, int | np.integer) and rank >= 1):
        raise DataError(f"expected an integer rank >= 1, got {rank!r}", field="rank")
    if f < 2:
        raise DataError(f"needs at least 2 frames, got {f}", field="points2d")
    n = min(3 * rank, 2 * f, p)
    if n < 3:
        raise DataError(
            f"too few points ({p}) or frames ({f}) for a rank-{rank} model", field="points2d"
        )
    # Scale to unit RMS so tolerances do not depend on the input's units.
    centre = (p2 * vis[..., None]).sum(axis=1) / vis.sum(axis=1)[:, None]
    unit = float(np.sqrt(((p2 - centre[:, None]) ** 2)[vis].sum() / vis.sum())) or 1.0
    obs = np.where(vis[..., None], p2 - centre[:, None], 0.0).transpose(0, 2, 1) / unit  # (F, 2, P)
    # A frame with v visible points pins down at most v - 1 coefficients of the completion.
    filled = _complete(obs, vis, max(1, min(n, int(vis.sum(axis=1).min()) - 1)))
    w = filled - filled.mean(axis=2, keepdims=True)
    u, s, _ = np.linalg.svd(w.reshape(2 * f, p), full_matrices=False)
    pi = (u[:, :n] * np.sqrt(s[:n])).reshape(f, 2, n)
    rotations = _upgrade_rotations(pi, np.random.default_rng(seed), restarts if rank > 1 else 0)
    depth = _bmm_depths(w, rotations, iterations, tol)
    xy = filled.transpose(0, 2, 1) * unit + centre[:, None, :]
    xy = np.where(vis[..., None], p2, xy)
    return np.concatenate([xy, depth[..., None] * unit], axis=-1)


def _complete(
    obs: np.ndarray, vis: np.ndarray, rank: int, iterations: int = 300, tol: float = 1e-10
) -> np.ndarray:
    """Fill missing entries of the (F, 2, P) measurements with a rank-``rank`` model plus row means.

    Alternating least squares on ``X ~ A B^T + m 1^T`` over the visible entries only (each row
    of A and of B is a small batched least-squares solve), started from the SVD of the
    mean-filled matrix; it converges far faster than iterated SVD imputation.
    """
    if vis.all():
        return obs
    f, _, p = obs.shape
    mask = np.repeat(vis[:, None, :], 2, axis=1).reshape(2 * f, p).astype(np.float64)
    x = obs.reshape(2 * f, p) * mask
    rows_mean = x.sum(axis=1, keepdims=True) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
    u, sv, vt = np.linalg.svd(np.where(mask > 0, x, rows_mean) - rows_mean, full_matrices=False)
    a = np.concatenate([u[:, :rank] * sv[:rank], rows_mean], axis=1)  # last column: row means
    b = np.concatenate([vt[:rank].T, np.ones((p, 1))], axis=1)
    # A row or column seen fewer than rank + 1 times is underdetermined: a small ridge keeps
    # it finite (its least-norm fill) instead of letting it blow up.
    ridge = 1e-9 * float((x**2).sum() / mask.sum() + 1.0) * np.eye(rank + 1)
    previous = np.inf
    for _ in range(iterations):
        # Rows of A (including the mean) given B, then the basis columns of B given A.
        lhs = np.einsum("ij,jk,jl->ikl", mask, b, b) + ridge
        a = np.linalg.solve(lhs, np.einsum("ij,jk->ik", mask * x, b)[..., None])[..., 0]
        lhs = np.einsum("ij,ik,il->jkl", mask, a[:, :rank], a[:, :rank]) + ridge[:rank, :rank]
        rhs = np.einsum("ij,ik->jk", mask * (x - a[:, rank:]), a[:, :rank])
        b[:, :rank] = np.linalg.solve(lhs, rhs[..., None])[..., 0]
        err = float(((mask * (x - a @ b.T)) ** 2).sum())
        if previous - err <= tol * max(previous, 1e-300) and np.isfinite(previous):
            break
        previous = err
    filled = np.where(mask > 0, x, a @ b.T).reshape(f, 2, p)
    # Where the data cannot pin the model down (few points seen in a frame), keep fills within
    # three times the frame's visible extent on each side, rather than let them run off.
    seen = np.where(vis[:, None, :], obs, np.nan)
    lo, hi = np.nanmin(seen, axis=2, keepdims=True), np.nanmax(seen, axis=2, keepdims=True)
    return np.clip(filled, lo - 3 * (hi - lo), hi + 3 * (hi - lo))


DEFAULT_RANK = 3


def _nrsfm_sequence(seq) -> np.ndarray:
    return nrsfm_baseline(seq.points2d, seq.visibility, rank=DEFAULT_RANK)


def _zero_depth_sequence(seq) -> np.ndarray:
    return zero_depth(seq.points2d, seq.visibility)


BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "zero_depth": _zero_depth_sequence,
    "nrsfm_bmm": _nrsfm_sequence,
}
"""Baseline name -> callable ``(seq: KeypointSequence) -> (F, P, 3)`` float64 in the camera frame
and units of ``seq.points2d``."""
