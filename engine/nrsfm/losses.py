"""PRN's cost terms: low-rank penalties of an aligned shape group and the reprojection error.

``J = sum_i f(X_i) + lambda * g(X~)`` (seed 000, eq. 1): ``f`` is :func:`reprojection_loss`
(orthographic, missing points excluded) and ``g`` is :func:`nuclear_norm` of the aligned group
from :func:`engine.nrsfm.procrustes.align` (the authors' choice), or :func:`log_sum_penalty`, a
concave rank penalty that shrinks large singular values less (the trainer's refinement stage
on single sequences, see :mod:`engine.prn.config`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from engine.core.errors import DataError


def _rank_tol(M: Tensor, S: Tensor) -> Tensor:
    """Singular values at most max(rows, cols) * eps * sigma_max count as zero (numpy's rule)."""
    eps = torch.finfo(M.dtype).eps
    return max(M.shape[-2], M.shape[-1]) * eps * S.amax(dim=-1, keepdim=True)


class _SpectralSum(torch.autograd.Function):
    """``sum_i h(sigma_i)`` of the singular values of M for a concave h with h(0) = 0: the
    nuclear norm (``scale`` None, h(s) = s) or ``h(s) = scale * log(1 + s / scale)``.

    Backward: ``U diag(h'(sigma)) V^T`` over the singular values above the rank tolerance, the
    gradient at distinct nonzero singular values; at repeated ones it does not depend on the
    choice of singular vectors, and numerically zero ones get the minimum-norm subgradient 0.
    """

    @staticmethod
    def forward(ctx, M: Tensor, scale: float | None) -> Tensor:  # type: ignore[override]
        U, S, Vh = torch.linalg.svd(M, full_matrices=False)
        keep = (S > _rank_tol(M, S)).to(M.dtype)
        if scale is None:
            value, slope = S.sum(dim=-1), keep
        else:
            value = (scale * torch.log1p(S / scale)).sum(dim=-1)
            slope = keep / (1.0 + S / scale)
        ctx.save_for_backward(U * slope[..., None, :], Vh)
        return value

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        U_weighted, Vh = ctx.saved_tensors
        return grad[..., None, None] * (U_weighted @ Vh), None


def _group_matrix(X_aligned: Tensor) -> Tensor:
    """(n_f, P, 3) or (G, n_f, P, 3) -> (3P, n_f) or (G, 3P, n_f), checked."""
    if X_aligned.dim() not in (3, 4) or X_aligned.shape[-1] != 3:
        raise DataError(
            f"expected shape (n_f, P, 3) or (G, n_f, P, 3), got {tuple(X_aligned.shape)}",
            field="X_aligned",
        )
    if not X_aligned.dtype.is_floating_point:
        raise DataError(f"expected a floating dtype, got {X_aligned.dtype}", field="X_aligned")
    return X_aligned.flatten(-2).transpose(-1, -2)


def nuclear_norm(X_aligned: Tensor) -> Tensor:
    """Nuclear norm of an aligned group arranged as the 3P x n_f matrix of vectorised frames.

    Args:
        X_aligned: (n_f, P, 3) or (G, n_f, P, 3) float32/float64; column i of the matrix is
            frame i flattened (the ordering of the 3P entries does not change the norm).

    Returns:
        () or (G,): sum of singular values, in the units of the coordinates.

    The backward pass returns the subgradient ``U V^T`` restricted to the singular values above
    ``max(3P, n_f) * eps * sigma_max``: at distinct nonzero singular values it is the gradient;
    at repeated ones ``U V^T`` does not depend on the choice of singular vectors; at (numerically)
    zero ones it takes the minimum-norm subgradient. So it stays finite where torch's SVD
    backward divides by differences of singular values.

    Raises:
        DataError: wrong shape or non-floating dtype.
    """
    return _SpectralSum.apply(_group_matrix(X_aligned), None)


def log_sum_penalty(X_aligned: Tensor, scale: float) -> Tensor:
    """Log-sum rank penalty ``sum_i scale * log(1 + sigma_i / scale)`` of an aligned group.

    Args:
        X_aligned: (n_f, P, 3) or (G, n_f, P, 3) float32/float64, arranged as for
            :func:`nuclear_norm` (column i of the 3P x n_f matrix is frame i).
        scale: > 0, in the units of the coordinates: singular values well below it are
            penalised like the nuclear norm (slope 1), those above it ever less (slope
            ``1 / (1 + sigma / scale)``), so the dominant shape directions are hardly shrunk
            while small ones are still pushed to zero. Tends to the nuclear norm as scale grows.

    Returns:
        () or (G,): the penalty, in the units of the coordinates, at most the nuclear norm.

    Backward as :func:`nuclear_norm`'s, with slope ``1 / (1 + sigma / scale)`` instead of 1.

    Raises:
        DataError: wrong shape, non-floating dtype, or a scale that is not a finite number > 0.
    """
    if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
        raise DataError(f"expected a finite number > 0, got {scale!r}", field="scale")
    return _SpectralSum.apply(_group_matrix(X_aligned), float(scale))


def reprojection_loss(X: Tensor, U: Tensor, visibility: Tensor | None = None) -> Tensor:
    """Orthographic reprojection error ``1/2 sum ||X[..., :2] - U||^2`` over visible points.

    Args:
        X: predicted 3D points (B, P, 3) (x, y, depth).
        U: observed 2D points (B, P, 2), same units as X.
        visibility: (B, P) bool, True where the 2D point was observed; None means all visible.

    Returns:
        () scalar: the SUM over the batch and the visible points (not a mean: PRN's f is a sum
        over frames, and the weight lambda of the nuclear norm is calibrated to that).
        Missing points contribute nothing to the value and receive exactly zero gradient, even
        if their entries of U are NaN.

    Raises:
        DataError: shapes that do not match, or a non-bool visibility.
    """
    if X.dim() != 3 or X.shape[-1] != 3:
        raise DataError(f"expected shape (B, P, 3), got {tuple(X.shape)}", field="X")
    if U.shape != (*X.shape[:2], 2):
        raise DataError(f"expected shape {(*X.shape[:2], 2)}, got {tuple(U.shape)}", field="U")
    diff = X[..., :2] - U
    if visibility is not None:
        if visibility.shape != X.shape[:2] or visibility.dtype != torch.bool:
            raise DataError(
                f"expected a bool tensor of shape {tuple(X.shape[:2])}, got "
                f"{visibility.dtype} {tuple(visibility.shape)}",
                field="visibility",
            )
        diff = torch.where(visibility[..., None], diff, torch.zeros_like(diff))
    return 0.5 * diff.square().sum()
