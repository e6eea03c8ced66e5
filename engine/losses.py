"""PRN's two cost terms: the nuclear norm of an aligned shape group and the reprojection error.

``J = sum_i f(X_i) + lambda * g(X~)`` (seed 000, eq. 1): ``f`` is :func:`reprojection_loss`
(orthographic, missing points excluded) and ``g`` is :func:`nuclear_norm` of the aligned group
from :func:`engine.procrustes.align`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from engine.errors import DataError


def _rank_tol(M: Tensor, S: Tensor) -> Tensor:
    """Singular values at most max(rows, cols) * eps * sigma_max count as zero (numpy's rule)."""
    eps = torch.finfo(M.dtype).eps
    return max(M.shape[-2], M.shape[-1]) * eps * S.amax(dim=-1, keepdim=True)


class _NuclearNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, M: Tensor) -> Tensor:  # type: ignore[override]
        U, S, Vh = torch.linalg.svd(M, full_matrices=False)
        keep = (S > _rank_tol(M, S)).to(M.dtype)
        ctx.save_for_backward(U * keep[..., None, :], Vh)
        return S.sum(dim=-1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        U_kept, Vh = ctx.saved_tensors
        return grad[..., None, None] * (U_kept @ Vh)


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
    if X_aligned.dim() not in (3, 4) or X_aligned.shape[-1] != 3:
        raise DataError(
            f"expected shape (n_f, P, 3) or (G, n_f, P, 3), got {tuple(X_aligned.shape)}",
            field="X_aligned",
        )
    if not X_aligned.dtype.is_floating_point:
        raise DataError(f"expected a floating dtype, got {X_aligned.dtype}", field="X_aligned")
    M = X_aligned.flatten(-2).transpose(-1, -2)
    return _NuclearNorm.apply(M)


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
