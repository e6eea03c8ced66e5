"""Tests of engine.nrsfm.procrustes.align: forward optimality, gauge, and PRN's implicit gradient.

References: finite differences of the full iterative alignment (torch.autograd.gradcheck in
float64) and autograd through the unrolled iteration run to convergence.
"""

from __future__ import annotations

import pytest
import torch

from engine.core.errors import DataError
from engine.nrsfm.losses import nuclear_norm
from engine.nrsfm.procrustes import (
    align,
    align_iterations,
    align_jacobian_dense,
    align_unrolled,
    align_vjp,
)

TIGHT = {"tol": 1e-14, "max_iter": 2000}


def random_rotations(*shape: int, generator: torch.Generator) -> torch.Tensor:
    Q, _ = torch.linalg.qr(torch.randn(*shape, 3, 3, dtype=torch.float64, generator=generator))
    return Q * torch.sign(torch.linalg.det(Q))[..., None, None]


def shape_group(G: int, n: int, P: int, seed: int = 0, noise: float = 0.3) -> torch.Tensor:
    """Frames that are one base shape plus noise, each randomly rotated and translated."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(P, 3, dtype=torch.float64, generator=gen)
    X = base + noise * torch.randn(G, n, P, 3, dtype=torch.float64, generator=gen)
    Q = random_rotations(G, n, generator=gen)
    shift = torch.randn(G, n, 1, 3, dtype=torch.float64, generator=gen)
    return X @ Q.transpose(-1, -2) + shift


def test_forward_is_a_gauge_fixed_stationary_point() -> None:
    X = shape_group(3, 6, 7)
    Z, R = align(X, **TIGHT)
    assert Z.shape == X.shape and R.shape == (3, 6, 3, 3)
    eye = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye.expand_as(R), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(3, 6, dtype=torch.float64))
    torch.testing.assert_close(R[:, 0], eye.expand(3, 3, 3), atol=1e-13, rtol=0)
    Y = X - X.mean(dim=2, keepdim=True)
    torch.testing.assert_close(Z, Y @ R.transpose(-1, -2))
    # Each frame is the Kabsch fit to the mean: Z_k^T W symmetric and positive semidefinite.
    N = Z.transpose(-1, -2) @ Z.sum(dim=1, keepdim=True)
    torch.testing.assert_close(N, N.transpose(-1, -2), atol=1e-10, rtol=0)
    assert bool((torch.linalg.eigvalsh(N) > -1e-10).all())


def test_group_results_do_not_depend_on_the_batch() -> None:
    X = torch.cat([shape_group(1, 5, 6, seed=1), shape_group(1, 5, 6, seed=2, noise=1.0)])
    Z, R = align(X)
    for g in range(2):
        Zg, Rg = align(X[g])
        assert torch.equal(Zg, Z[g]) and torch.equal(Rg, R[g])


@pytest.mark.parametrize("solver", ["dense", "woodbury"])
def test_gradcheck_against_finite_differences_of_the_full_iteration(solver: str) -> None:
    X = shape_group(2, 3, 4, seed=3).requires_grad_()

    def f(x: torch.Tensor) -> torch.Tensor:
        return align(x, backward_solver=solver, **TIGHT)[0]

    assert torch.autograd.gradcheck(f, (X,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradient_matches_autograd_through_the_converged_unrolled_iteration() -> None:
    X = shape_group(2, 6, 8, seed=4).requires_grad_()
    n_iter = int(align_iterations(X, **TIGHT).max()) + 20
    gen = torch.Generator().manual_seed(5)
    weights = torch.randn(X.shape, dtype=torch.float64, generator=gen)
    (grad,) = torch.autograd.grad((align(X, **TIGHT)[0] * weights).sum(), X)
    Zu, _ = align_unrolled(X, n_iter)
    (grad_u,) = torch.autograd.grad((Zu * weights).sum(), X)
    torch.testing.assert_close(grad, grad_u, atol=1e-9, rtol=1e-9)


def test_vjp_equals_the_transposed_dense_jacobian_of_the_authors_formulation() -> None:
    X = shape_group(1, 5, 4, seed=16)[0].requires_grad_()
    Z, R = align(X, **TIGHT)
    J = align_jacobian_dense(Z.detach(), R)
    W = torch.randn(X.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(17))
    (grad,) = torch.autograd.grad((Z * W).sum(), X)
    torch.testing.assert_close(J.T @ W.reshape(-1), grad.reshape(-1), atol=1e-12, rtol=1e-12)
    # And the Jacobian itself against a central difference of the full iteration.
    d = torch.randn(X.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(18))
    with torch.no_grad():
        h = 1e-6
        fd = (align(X + h * d, **TIGHT)[0] - align(X - h * d, **TIGHT)[0]) / (2 * h)
    torch.testing.assert_close(J @ d.reshape(-1), fd.reshape(-1), atol=1e-7, rtol=1e-6)


def test_dense_and_woodbury_solvers_agree() -> None:
    X = shape_group(2, 40, 4, seed=6)  # n_f - 1 > P: "auto" uses Woodbury
    Z, R = align(X, **TIGHT)
    G = torch.randn(X.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    dense = align_vjp(Z, R, G, "dense")
    wood = align_vjp(Z, R, G, "woodbury")
    torch.testing.assert_close(wood, dense, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(align_vjp(Z, R, G), wood)


def test_rotating_an_input_frame_leaves_the_aligned_set_unchanged_up_to_a_global_rotation() -> None:
    X = shape_group(1, 5, 6, seed=8)[0]
    gen = torch.Generator().manual_seed(9)
    Z, _ = align(X, **TIGHT)
    for j in (0, 3):
        Xr = X.clone()
        Xr[j] = Xr[j] @ random_rotations(generator=gen).T + 2.0
        Zr, _ = align(Xr, **TIGHT)
        # Best global rotation taking Zr onto Z (Kabsch over all frames at once).
        U, _, Vh = torch.linalg.svd(Zr.reshape(-1, 3).T @ Z.reshape(-1, 3))
        Q = (U @ Vh).T
        assert torch.linalg.det(Q) > 0
        torch.testing.assert_close(Zr @ Q.T, Z, atol=1e-10, rtol=0)
        if j != 0:  # the gauge R_1 = I makes it exact when frame 1 is untouched
            torch.testing.assert_close(Zr, Z, atol=1e-10, rtol=0)


def test_gradient_of_a_rotation_invariant_loss_has_no_rotation_or_translation_part() -> None:
    X = shape_group(2, 6, 7, seed=10).requires_grad_()
    (grad,) = torch.autograd.grad(nuclear_norm(align(X, **TIGHT)[0]).sum(), X)
    centred = (X - X.mean(dim=2, keepdim=True)).detach()
    torque = torch.linalg.cross(centred, grad, dim=-1).sum(dim=2)
    assert grad.abs().max() > 0.1
    torch.testing.assert_close(torque, torch.zeros_like(torque), atol=1e-10, rtol=0)
    torch.testing.assert_close(grad.sum(dim=2), torch.zeros(2, 6, 3, dtype=torch.float64))


def _degenerate_groups() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(11)
    base = torch.randn(6, 3, dtype=torch.float64, generator=gen)
    planar = base.clone()
    planar[:, 2] = 0
    line = torch.linspace(-1, 1, 6, dtype=torch.float64)[:, None] * torch.tensor([1.0, 2, -1])
    rot = random_rotations(5, generator=gen)
    return {
        "single frame": base[None],
        "identical frames": base.expand(4, 6, 3).clone(),
        "planar": planar @ rot.transpose(-1, -2),
        "collinear": line @ rot.transpose(-1, -2),
        "zero": torch.zeros(4, 6, 3, dtype=torch.float64),
        "three points": base[:3] @ rot.transpose(-1, -2),
        "one zero frame": torch.cat([base[None], torch.zeros(1, 6, 3, dtype=torch.float64)]),
    }


@pytest.mark.parametrize("name", list(_degenerate_groups()))
@pytest.mark.parametrize("solver", ["dense", "woodbury"])
def test_degenerate_groups_are_finite_and_deterministic(name: str, solver: str) -> None:
    X = _degenerate_groups()[name]
    W = torch.randn(X.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    results = []
    for _ in range(2):
        Xg = X.clone().requires_grad_()
        Z, R = align(Xg, backward_solver=solver)
        (grad,) = torch.autograd.grad((Z * W).sum() + nuclear_norm(Z), Xg)
        results.append((Z, R, grad))
    (Z, R, grad), (Z2, R2, grad2) = results
    assert torch.isfinite(Z).all() and torch.isfinite(R).all() and torch.isfinite(grad).all()
    assert torch.equal(Z, Z2) and torch.equal(R, R2) and torch.equal(grad, grad2)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(X.shape[0], dtype=torch.float64))
    # Rotations preserve each centred frame's size whatever the degeneracy.
    Y = X - X.mean(dim=1, keepdim=True)
    torch.testing.assert_close(Z.norm(dim=(1, 2)), Y.norm(dim=(1, 2)))


@pytest.mark.parametrize("name", list(_degenerate_groups()))
def test_degenerate_groups_both_solvers_agree(name: str) -> None:
    # The regularised systems are the same, so Woodbury (with nearly singular 3 x 3 blocks and
    # refinement) must reproduce the dense solve.
    X = _degenerate_groups()[name]
    Z, R = align(X)
    G = torch.randn(X.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(21))
    dense = align_vjp(Z[None], R[None], G[None], "dense")
    wood = align_vjp(Z[None], R[None], G[None], "woodbury")
    torch.testing.assert_close(wood, dense, atol=1e-10, rtol=0)


def test_identical_frames_align_to_themselves() -> None:
    X = _degenerate_groups()["identical frames"]
    Z, R = align(X)
    torch.testing.assert_close(R, torch.eye(3, dtype=torch.float64).expand_as(R))
    torch.testing.assert_close(Z, X - X.mean(dim=1, keepdim=True))


def test_single_frame_gradient_is_the_centred_incoming_gradient() -> None:
    X = shape_group(1, 1, 5, seed=13)[0].requires_grad_()
    W = torch.randn(X.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(14))
    (grad,) = torch.autograd.grad((align(X)[0] * W).sum(), X)
    torch.testing.assert_close(grad, W - W.mean(dim=1, keepdim=True))


def test_float32_matches_float64_and_returns_detached_rotations() -> None:
    X = shape_group(2, 8, 6, seed=15)
    X32 = X.float().requires_grad_()
    Z32, R32 = align(X32)
    assert Z32.dtype == torch.float32 and R32.dtype == torch.float32
    assert not R32.requires_grad and Z32.requires_grad
    Z64, _ = align(X)
    torch.testing.assert_close(Z32.double(), Z64, atol=1e-4, rtol=0)
    (g32,) = torch.autograd.grad(nuclear_norm(Z32).sum(), X32)
    X64 = X.clone().requires_grad_()
    (g64,) = torch.autograd.grad(nuclear_norm(align(X64)[0]).sum(), X64)
    assert g32.dtype == torch.float32
    torch.testing.assert_close(g32.double(), g64, atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    "bad",
    [
        torch.zeros(4, 5),
        torch.zeros(2, 4, 5, 2),
        torch.zeros(4, 5, 3, dtype=torch.int64),
        torch.full((4, 5, 3), float("nan")),
        torch.zeros(0, 5, 3),
    ],
)
def test_bad_input_is_a_data_error(bad: torch.Tensor) -> None:
    with pytest.raises(DataError, match="field 'X'"):
        align(bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("solver", ["dense", "woodbury"])
def test_cuda_matches_cpu(solver: str) -> None:
    X = shape_group(2, 12, 5, seed=19)
    W = torch.randn(X.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(20))
    out = {}
    for device in ("cpu", "cuda"):
        Xd = X.to(device).requires_grad_()
        Z, R = align(Xd, backward_solver=solver, **TIGHT)
        assert Z.device.type == device and R.device.type == device
        (grad,) = torch.autograd.grad((Z * W.to(device)).sum() + nuclear_norm(Z).sum(), Xd)
        out[device] = (Z.cpu(), grad.cpu())
    torch.testing.assert_close(out["cuda"][0], out["cpu"][0], atol=1e-10, rtol=0)
    torch.testing.assert_close(out["cuda"][1], out["cpu"][1], atol=1e-8, rtol=0)


def mirrored_group(seed: int) -> torch.Tensor:
    """A (2, 4, 5, 3) group in which some frames are mirror images (depth negated)."""
    X = shape_group(2, 4, 5, seed=seed)
    X[0, 1:3, :, 2] *= -1
    X[1, 2, :, 2] *= -1
    X[1, 3, :, 0] *= -1
    return X


def test_reflections_align_mirror_images_and_keep_the_gauge() -> None:
    X = shape_group(1, 5, 6, seed=20, noise=0.0)[0]
    Xm = X.clone()
    Xm[2, :, 2] *= -1  # frame 3 is the mirror image of the (noise-free) base shape
    Z, R = align(Xm, reflections=True, **TIGHT)
    eye = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye.expand_as(R), atol=1e-12, rtol=0)
    torch.testing.assert_close(R[0], eye, atol=1e-13, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R)[2], torch.tensor(-1.0, dtype=torch.float64))
    # All frames coincide: the nuclear norm is that of one shape (rank 1), unlike proper rotations.
    torch.testing.assert_close(Z, Z[:1].expand_as(Z), atol=1e-9, rtol=0)
    Zp, Rp = align(Xm, **TIGHT)
    assert bool((torch.linalg.det(Rp) > 0).all())
    assert float(nuclear_norm(Zp)) > float(nuclear_norm(Z)) + 0.1
    # Default stays proper rotations (same result as before the option existed).
    Z0, R0 = align(Xm, reflections=False, **TIGHT)
    assert torch.equal(Z0, Zp) and torch.equal(R0, Rp)


@pytest.mark.parametrize("solver", ["dense", "woodbury"])
def test_reflections_gradcheck_against_finite_differences(solver: str) -> None:
    X = mirrored_group(seed=21).requires_grad_()

    def f(x: torch.Tensor) -> torch.Tensor:
        return align(x, backward_solver=solver, reflections=True, **TIGHT)[0]

    _, R = align(X.detach(), reflections=True, **TIGHT)
    assert bool((torch.linalg.det(R) < 0).any())  # the test exercises reflected frames
    assert torch.autograd.gradcheck(f, (X,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_reflections_gradient_of_the_nuclear_norm_matches_a_central_difference() -> None:
    X = mirrored_group(seed=22)
    d = torch.randn(X.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(23))
    Xg = X.clone().requires_grad_()
    (grad,) = torch.autograd.grad(nuclear_norm(align(Xg, reflections=True, **TIGHT)[0]).sum(), Xg)
    h = 1e-6
    with torch.no_grad():
        plus = nuclear_norm(align(X + h * d, reflections=True, **TIGHT)[0]).sum()
        minus = nuclear_norm(align(X - h * d, reflections=True, **TIGHT)[0]).sum()
    fd = (plus - minus) / (2 * h)
    torch.testing.assert_close((grad * d).sum(), fd, atol=1e-7, rtol=1e-6)


def test_double_backward_raises_instead_of_a_silently_wrong_second_derivative() -> None:
    """The implicit gradient is first order only: differentiating it again must fail loudly."""
    X = shape_group(1, 4, 5, seed=24).requires_grad_()
    W = torch.randn(X.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(25))
    loss = (align(X, **TIGHT)[0] ** 2 * W).sum() + nuclear_norm(align(X, **TIGHT)[0]).sum()
    (grad,) = torch.autograd.grad(loss, X, create_graph=True, retain_graph=True)
    with pytest.raises(RuntimeError, match="first-order gradient only"):
        torch.autograd.grad((grad**2).sum(), X)
    # Also for a loss linear in the aligned frames (the incoming gradient is a constant, but
    # the true second derivative is not zero), and through .backward().
    (grad,) = torch.autograd.grad((align(X, **TIGHT)[0] * W).sum(), X, create_graph=True)
    with pytest.raises(RuntimeError, match="first-order gradient only"):
        torch.autograd.grad((grad**2).sum(), X)
    (grad,) = torch.autograd.grad(loss, X, create_graph=True)
    with pytest.raises(RuntimeError, match="first-order gradient only"):
        ((grad**2).sum() + (X**2).sum()).backward()
    # First-order use is unchanged (the gradient itself needs no graph).
    (plain,) = torch.autograd.grad(
        (align(X, **TIGHT)[0] ** 2 * W).sum() + nuclear_norm(align(X, **TIGHT)[0]).sum(), X
    )
    torch.testing.assert_close(grad.detach(), plain)


def test_align_reports_convergence_on_request() -> None:
    X = torch.cat([shape_group(1, 6, 7, seed=26), shape_group(1, 6, 7, seed=27, noise=1.0)])
    Z, R = align(X)  # the default return is unchanged
    Zi, Ri, info = align(X, return_info=True)
    assert torch.equal(Z, Zi) and torch.equal(R, Ri)
    assert info.converged.dtype == torch.bool and info.converged.shape == (2,)
    assert bool(info.converged.all())
    assert torch.equal(info.iterations, align_iterations(X))
    assert info.not_converged == 0
    # Too few sweeps: the groups report it (and the last iterate is still returned).
    _, _, short = align(X, max_iter=2, tol=1e-15, return_info=True)
    assert not bool(short.converged.any()) and short.not_converged == 2
    assert short.iterations.tolist() == [2, 2]
    # One sweep can never meet the tolerance (no previous mean to compare with).
    _, _, one = align(X[0], max_iter=1, return_info=True)
    assert one.converged.shape == () and not bool(one.converged)
    assert int(one.iterations) == 1 and one.not_converged == 1
    # Converging exactly on the last allowed sweep counts as converged.
    used = int(info.iterations.max())
    _, _, exact = align(X, max_iter=used, return_info=True)
    assert bool(exact.converged.all())
