"""Tests for engine.geometry.handles: edge-graph geodesics, farthest-point handles, the authors' logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.geometry.handles import (
    UNREACHABLE_GAP,
    dependency_matrix,
    farthest_point_handles,
    geodesic_distances,
    init_logits,
)
from engine.geometry.primitives import grid, icosphere


def two_components():
    """A 3x3 grid (9 vertices) beside a shifted icosahedron (12), plus one isolated vertex."""
    gv, gf = grid(3, 3)
    iv, if_ = icosphere(0)
    v = np.concatenate([gv, iv + 5.0, [[9.0, 9.0, 9.0]]])
    f = np.concatenate([gf, if_ + len(gv)])
    return torch.tensor(v), torch.tensor(f)


def test_geodesic_on_grid_matches_edge_paths():
    v, f = grid(3, 3, size=2.0)  # spacing 1, diagonals from (i,j) to (i+1,j+1)
    d = geodesic_distances(torch.tensor(v), torch.tensor(f), torch.tensor([0]))
    assert d.shape == (1, 9) and d.dtype == torch.float64
    expected = np.array([0, 1, 2, 1, 2**0.5, 1 + 2**0.5, 2, 1 + 2**0.5, 2 * 2**0.5])
    np.testing.assert_allclose(d[0].numpy(), expected, rtol=1e-12)


def test_geodesic_unreachable_is_inf():
    v, f = two_components()
    d = geodesic_distances(v, f, torch.tensor([0, 9]))
    assert torch.isinf(d[0, 9:]).all() and torch.isfinite(d[0, :9]).all()
    assert torch.isinf(d[1, :9]).all() and torch.isfinite(d[1, 9:21]).all()
    assert torch.isinf(d[:, 21]).all()
    with pytest.raises(ValueError, match="source vertex ids"):
        geodesic_distances(v, f, torch.tensor([22]))


def test_fps_deterministic_distinct_and_spread():
    v, f = icosphere(2)
    a = farthest_point_handles(torch.tensor(v), torch.tensor(f), 12, seed=3)
    b = farthest_point_handles(torch.tensor(v), torch.tensor(f), 12, seed=3)
    assert a.dtype == torch.int64 and torch.equal(a, b)
    assert len(set(a.tolist())) == 12
    # The second handle is the farthest point from the first: the antipode on a sphere.
    np.testing.assert_allclose(v[a[1]], -v[a[0]], atol=1e-12)
    c = farthest_point_handles(torch.tensor(v), torch.tensor(f), 12, seed=4)
    assert not torch.equal(a, c)


def test_fps_covers_components_and_skips_isolated():
    v, f = two_components()
    ids = farthest_point_handles(v, f, 2, seed=0)
    comp = [0 if i < 9 else 1 for i in ids.tolist()]
    assert sorted(comp) == [0, 1]
    ids = farthest_point_handles(v, f, 21, seed=0)  # every face vertex, never the isolated one
    assert sorted(ids.tolist()) == list(range(21))


@pytest.mark.parametrize("k", [0, -1, 22, 2.5])
def test_fps_bad_k(k):
    v, f = two_components()
    with pytest.raises(ValueError, match="number of handles"):
        farthest_point_handles(v, f, k)


def test_init_logits_formula_and_unreachable():
    d = torch.tensor([[0.0, 1.0, 2.0, torch.inf], [torch.inf, 0.5, 0.0, 3.0]], dtype=torch.float64)
    logits = init_logits(d, eps=1e-3)
    assert torch.isfinite(logits).all()
    np.testing.assert_allclose(logits[0, :3].numpy(), -16 * np.log(np.array([0, 1, 2]) + 1e-3))
    assert logits[0, 3] == pytest.approx(logits[0, :3].min().item() - UNREACHABLE_GAP)
    assert logits[1, 0] == pytest.approx(logits[1, 1:].min().item() - UNREACHABLE_GAP)
    a = dependency_matrix(logits)
    np.testing.assert_allclose(a.sum(1).numpy(), 1.0, rtol=1e-12)
    assert (a >= 0).all() and a[0, 3] == 0
    # weights fall off like 1/d^16 relative to each other
    ratio = (a[0, 1] / a[0, 2]).item()
    assert ratio == pytest.approx(((2 + 1e-3) / (1 + 1e-3)) ** 16, rel=1e-10)
    with pytest.raises(ValueError):
        init_logits(-d.abs())
    with pytest.raises(ValueError):
        init_logits(d, eps=0)


def test_init_logits_all_unreachable_row_is_finite():
    logits = init_logits(torch.full((1, 3), torch.inf))
    assert torch.isfinite(logits).all()


def test_dependency_matrix_keeps_gradients():
    logits = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    a = dependency_matrix(logits)
    (a * torch.arange(7.0, dtype=torch.float64)).sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_gaussian_logits_pass_gradient_and_do_not_depend_on_units_or_mesh_size():
    from engine.deform.deformer import LaplacianDeformer

    v, f = icosphere(3)
    t = torch.tensor(v)
    authors = LaplacianDeformer(t, torch.tensor(f), num_handles=12, seed=0)
    learned = LaplacianDeformer(t, torch.tensor(f), num_handles=12, seed=0, init="gaussian")
    # The authors' rows are one-hot to machine precision; the Gaussian ones spread.
    assert float(authors.A.detach().sort(1, descending=True).values[:, 1].max()) < 1e-20
    second = learned.A.detach().sort(1, descending=True).values[:, 1]
    assert float(second.min()) > 1e-3
    offsets = torch.zeros(1, 12, 3, dtype=torch.float64)
    offsets[0, 0, 2] = 0.2
    for d in (authors, learned):
        (d(offsets)[..., 2] ** 2).sum().backward()
    assert float(authors.logits.grad.abs().max()) < 1e-30  # no usable gradient
    assert float((learned.logits.grad.abs() > 1e-10).float().mean()) > 0.2
    scaled = LaplacianDeformer(
        100 * t, torch.tensor(f), handle_ids=learned.handle_ids, init="gaussian"
    )
    torch.testing.assert_close(scaled.A, learned.A, rtol=1e-9, atol=1e-12)
    fine_v, fine_f = icosphere(4)
    fine = LaplacianDeformer(
        torch.tensor(fine_v), torch.tensor(fine_f), num_handles=12, seed=0, init="gaussian"
    )

    # Effective vertices per row grow with resolution, but the blend's geodesic radius does
    # not: the share of the surface each handle moves stays about the same.
    def share(d):
        a = d.A.detach()
        return float((1.0 / (a**2).sum(1)).mean()) / a.shape[1]

    assert share(fine) == pytest.approx(share(learned), rel=0.25)
