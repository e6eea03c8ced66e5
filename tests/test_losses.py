"""Tests of engine.nrsfm.losses: nuclear norm (value, gradient, subgradient at degenerate spectra) and
the masked reprojection loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.core.errors import DataError
from engine.nrsfm.losses import log_sum_penalty, nuclear_norm, reprojection_loss


def _frames(G: int, n: int, P: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(G, n, P, 3, dtype=torch.float64, generator=gen)


def test_nuclear_norm_value_matches_torch() -> None:
    X = _frames(3, 5, 4, seed=0)
    M = X.flatten(-2).transpose(-1, -2)
    torch.testing.assert_close(nuclear_norm(X), torch.linalg.matrix_norm(M, ord="nuc"))
    torch.testing.assert_close(nuclear_norm(X[1]), torch.linalg.matrix_norm(M[1], ord="nuc"))
    assert nuclear_norm(X[1]).shape == ()


def test_nuclear_norm_gradcheck_generic() -> None:
    X = _frames(2, 4, 3, seed=1).requires_grad_()
    assert torch.autograd.gradcheck(nuclear_norm, (X,))


def test_nuclear_norm_gradcheck_at_repeated_singular_values() -> None:
    # Orthogonal columns of equal length: all singular values equal. The norm is still smooth
    # there (nonzero singular values) and its gradient U V^T = M / 2 whatever basis SVD picks.
    gen = torch.Generator().manual_seed(2)
    Q, _ = torch.linalg.qr(torch.randn(12, 4, dtype=torch.float64, generator=gen))
    X = (2.0 * Q.T).reshape(4, 4, 3).requires_grad_()
    assert torch.autograd.gradcheck(nuclear_norm, (X,))
    (grad,) = torch.autograd.grad(nuclear_norm(X), X)
    torch.testing.assert_close(grad, X.detach() / 2)


@pytest.mark.parametrize("kind", ["zero", "rank one", "identical frames"])
def test_nuclear_norm_subgradient_is_finite_where_the_norm_is_not_differentiable(kind: str) -> None:
    base = _frames(1, 1, 4, seed=3)[0, 0]
    X = {
        "zero": torch.zeros(5, 4, 3, dtype=torch.float64),
        "rank one": torch.linspace(-1, 2, 5, dtype=torch.float64)[:, None, None] * base,
        "identical frames": base.expand(5, 4, 3).clone(),
    }[kind].requires_grad_()
    value = nuclear_norm(X)
    (grad,) = torch.autograd.grad(value, X)
    assert torch.isfinite(grad).all()
    # A subgradient of a norm: <G, X> = ||X||_* and spectral norm of G at most 1.
    torch.testing.assert_close((grad * X).sum(), value.detach())
    assert torch.linalg.matrix_norm(grad.flatten(-2), ord=2) <= 1 + 1e-12
    if kind == "zero":
        assert torch.equal(grad, torch.zeros_like(grad))


def test_nuclear_norm_rejects_bad_shapes() -> None:
    with pytest.raises(DataError, match="X_aligned"):
        nuclear_norm(torch.zeros(4, 5, 2))


def test_log_sum_penalty_value_against_numpy_singular_values() -> None:
    X = _frames(3, 5, 4, seed=4)
    sv = np.linalg.svd(X.flatten(-2).transpose(-1, -2).numpy(), compute_uv=False)
    for scale in (0.05, 1.0, 30.0):
        expected = (scale * np.log1p(sv / scale)).sum(-1)
        np.testing.assert_allclose(log_sum_penalty(X, scale).numpy(), expected, rtol=1e-12)
    assert log_sum_penalty(X[0], 1.0).shape == ()
    # Below the nuclear norm, and the nuclear norm in the limit of a large scale.
    assert (log_sum_penalty(X, 1.0) < nuclear_norm(X)).all()
    torch.testing.assert_close(log_sum_penalty(X, 1e9), nuclear_norm(X), rtol=1e-7, atol=0)


@pytest.mark.parametrize("scale", [0.1, 2.0])
def test_log_sum_penalty_gradcheck(scale: float) -> None:
    X = _frames(2, 4, 3, seed=5).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: log_sum_penalty(x, scale), (X,))


def test_log_sum_penalty_gradient_is_finite_at_rank_deficiency_and_bad_scale_is_named() -> None:
    base = _frames(1, 1, 4, seed=6)[0, 0]
    X = torch.linspace(-1, 2, 5, dtype=torch.float64)[:, None, None] * base
    X.requires_grad_()
    (grad,) = torch.autograd.grad(log_sum_penalty(X, 0.5), X)
    assert torch.isfinite(grad).all()
    Z = torch.zeros_like(X).requires_grad_()
    (zero,) = torch.autograd.grad(log_sum_penalty(Z, 0.5), Z)
    assert torch.equal(zero, torch.zeros_like(zero))
    for bad in (0.0, -1.0, float("nan"), float("inf"), "1"):
        with pytest.raises(DataError, match="scale"):
            log_sum_penalty(X, bad)
    with pytest.raises(DataError, match="X_aligned"):
        log_sum_penalty(torch.zeros(4, 5, 2), 1.0)


def test_reprojection_loss_value_and_reduction() -> None:
    X = torch.tensor([[[1.0, 2.0, 9.0], [0.0, 0.0, -3.0]], [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]])
    U = torch.tensor([[[0.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [2.0, 0.0]]])
    # 1/2 * ((1 + 4) + 1 + 0 + 4): depth is not observed, the batch is summed.
    assert reprojection_loss(X, U).item() == pytest.approx(5.0)


def test_reprojection_loss_ignores_missing_points_in_value_and_gradient() -> None:
    gen = torch.Generator().manual_seed(4)
    X = torch.randn(3, 5, 3, dtype=torch.float64, generator=gen).requires_grad_()
    U = torch.randn(3, 5, 2, dtype=torch.float64, generator=gen)
    vis = torch.rand(3, 5, generator=gen) > 0.4
    vis[0, 0], vis[1, 1] = False, True
    U_nan = torch.where(vis[..., None], U, torch.full_like(U, float("nan")))
    loss = reprojection_loss(X, U_nan, vis)
    expected = 0.5 * ((X[..., :2] - U).square().sum(-1) * vis).sum()
    torch.testing.assert_close(loss, expected)
    (grad,) = torch.autograd.grad(loss, X)
    assert torch.isfinite(grad).all()
    assert torch.equal(grad[~vis], torch.zeros_like(grad[~vis]))
    torch.testing.assert_close(grad[..., :2][vis], (X[..., :2] - U)[vis].detach())
    assert torch.equal(grad[..., 2], torch.zeros_like(grad[..., 2]))
    all_visible = reprojection_loss(X, U, torch.ones(3, 5, dtype=torch.bool))
    torch.testing.assert_close(all_visible, reprojection_loss(X, U))


@pytest.mark.parametrize(
    ("X", "U", "vis", "field"),
    [
        (torch.zeros(2, 4, 2), torch.zeros(2, 4, 2), None, "X"),
        (torch.zeros(2, 4, 3), torch.zeros(2, 3, 2), None, "U"),
        (torch.zeros(2, 4, 3), torch.zeros(2, 4, 2), torch.ones(2, 4), "visibility"),
        (
            torch.zeros(2, 4, 3),
            torch.zeros(2, 4, 2),
            torch.ones(2, 3, dtype=torch.bool),
            "visibility",
        ),
    ],
)
def test_reprojection_loss_rejects_bad_shapes(X, U, vis, field) -> None:
    with pytest.raises(DataError, match=f"field '{field}'"):
        reprojection_loss(X, U, vis)
