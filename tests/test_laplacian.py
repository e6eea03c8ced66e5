"""Tests for engine.geometry.laplacian and engine.deform against independent references: hand-computed Laplacians, dense
numpy solves of the normal equations, torch.autograd.gradcheck in float64."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.core.errors import MeshError
from engine.core.progress import Cancelled
from engine.deform.deformer import LaplacianDeformer
from engine.deform.editing import EditingBasis, build_editing_basis
from engine.deform.solve import LaplacianSystem, laplacian_solve, laplacian_system
from engine.geometry.handles import dependency_matrix
from engine.geometry.laplacian import COT_BOUND, cotangent_laplacian
from engine.geometry.primitives import grid, icosphere, octasphere
from engine.io.mesh import load_mesh

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
S3 = 3**0.5


def dense(L: torch.Tensor) -> np.ndarray:
    return L.to_dense().numpy()


def lap(v, f) -> torch.Tensor:
    return cotangent_laplacian(torch.as_tensor(v, dtype=torch.float64), torch.as_tensor(f))


# --------------------------------------------------------------------- cotangent Laplacian


def test_equilateral_triangle_exact():
    v = [[0, 0, 0], [1, 0, 0], [0.5, S3 / 2, 0]]
    L = dense(lap(v, [[0, 1, 2]]))
    w = 1 / (2 * S3)  # cot 60 / 2
    np.testing.assert_allclose(L, [[2 * w, -w, -w], [-w, 2 * w, -w], [-w, -w, 2 * w]], atol=1e-15)


def test_square_of_two_right_triangles_exact():
    v = [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]
    L = dense(lap(v, [[0, 1, 2], [0, 2, 3]]))
    # Sides are opposite 45-degree angles (cot 1 -> 1/2); the diagonal faces two right angles.
    expected = np.array(
        [[1, -0.5, 0, -0.5], [-0.5, 1, -0.5, 0], [0, -0.5, 1, -0.5], [-0.5, 0, -0.5, 1]]
    )
    np.testing.assert_allclose(L, expected, atol=1e-15)


def test_regular_tetrahedron_exact():
    v = [[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]
    f = [[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]]
    L = dense(lap(v, f))
    # Each edge lies in two equilateral faces: W_ij = 2 * cot(60)/2 = 1/sqrt(3).
    expected = -np.ones((4, 4)) / S3 + np.eye(4) * (1 / S3 + 3 / S3)
    np.testing.assert_allclose(L, expected, atol=1e-14)


def test_properties_on_irregular_mesh():
    v, f = icosphere(2)
    rng = np.random.default_rng(0)
    v = v * rng.uniform(0.5, 2.0, size=(len(v), 1))  # bumpy: obtuse angles, negative weights
    L = lap(v, f)
    assert L.is_sparse and L.is_coalesced() and L.dtype == torch.float64 and L.shape == (162, 162)
    Ld = dense(L)
    np.testing.assert_allclose(Ld, Ld.T, atol=1e-14)
    np.testing.assert_allclose(Ld.sum(1), 0, atol=1e-12)
    assert np.linalg.eigvalsh(Ld).min() > -1e-10
    # Dirichlet energy of a linear function = area-weighted |grad|^2 = sum of triangle areas
    # for the flat case; on a plane grid: x^T L x = area for x = the x coordinate.
    gv, gf = grid(5, 4, size=2.0)
    Lg = dense(lap(gv, gf))
    assert gv[:, 0] @ Lg @ gv[:, 0] == pytest.approx(4.0, rel=1e-12)


def test_float32_and_dtype_follow_vertices():
    v, f = icosphere(1)
    L32 = cotangent_laplacian(torch.tensor(v, dtype=torch.float32), torch.tensor(f))
    L64 = lap(v, f)
    assert L32.dtype == torch.float32
    np.testing.assert_allclose(dense(L32), dense(L64), atol=1e-6)


def test_degenerate_triangles_stay_finite():
    v = np.array(
        [
            [0, 0, 0],
            [1, 0, 0],
            [2, 0, 0],  # collinear with 0,1: zero-area face
            [0, 1, 0],
            [0, 1, 0],  # coincident with 3
            [0.5, 1e-12, 0],  # needle
            [5, 5, 5],  # isolated
        ],
        dtype=np.float64,
    )
    f = [[0, 1, 2], [0, 1, 3], [0, 1, 3], [3, 4, 1], [0, 1, 5], [3, 3, 3]]
    L = dense(lap(v, f))
    assert np.isfinite(L).all()
    assert np.abs(L).max() <= 4 * COT_BOUND
    np.testing.assert_allclose(L.sum(1), 0, atol=1e-9 * COT_BOUND)
    np.testing.assert_array_equal(L[6], 0)
    np.testing.assert_array_equal(L[:, 6], 0)
    # Duplicate faces count twice: edge (0,3) faces 45 degrees at vertex 1, twice.
    assert L[0, 3] == pytest.approx(-2 * 0.5 * 1.0)


def test_bad_shapes_raise():
    with pytest.raises(MeshError):
        cotangent_laplacian(torch.zeros(4, 2), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(MeshError, match="out of range"):
        cotangent_laplacian(torch.zeros(4, 3), torch.tensor([[0, 1, 4]]))


# --------------------------------------------------------------------- solve vs dense


def dense_solve(L: torch.Tensor, A: torch.Tensor, T: torch.Tensor, H: torch.Tensor):
    Ld = dense(L.double())
    isolated = ~np.any(Ld != 0, axis=1)
    Ld = Ld + np.diag(isolated.astype(float))  # the documented unit rows of isolated vertices
    An, Tn = A.detach().double().numpy(), T.detach().double().numpy()
    W = Ld.T @ Ld + An.T @ An
    rhs = Ld.T @ Ld @ Tn
    return np.stack([np.linalg.solve(W, rhs + An.T @ h) for h in H.detach().double().numpy()])


def random_problem(v, f, k, b, seed=0, sharp=0.2):
    g = torch.Generator().manual_seed(seed)
    T = torch.as_tensor(v, dtype=torch.float64)
    F = torch.as_tensor(f)
    L = cotangent_laplacian(T, F)
    logits = torch.randn(k, len(v), generator=g, dtype=torch.float64) / sharp
    A = dependency_matrix(logits)
    H = A @ T + 0.3 * torch.randn(b, k, 3, generator=g, dtype=torch.float64)
    return L, A, T, H, logits


def rel_err(x, ref):
    return np.abs(np.asarray(x) - ref).max() / np.abs(ref).max()


def test_solve_matches_dense_icosphere():
    v, f = icosphere(2)
    L, A, T, H, _ = random_problem(v, f, 6, 3)
    V = laplacian_solve(L, A, T, H)
    assert V.shape == (3, 162, 3) and V.dtype == torch.float64
    assert rel_err(V.numpy(), dense_solve(L, A, T, H)) < 1e-10
    V1 = laplacian_solve(L, A, T, H[1])
    assert V1.shape == (162, 3)
    np.testing.assert_allclose(V1.numpy(), V[1].numpy(), atol=1e-13)


def test_solve_matches_dense_horse():
    path = SHARED_DATA / "templates" / "horse.obj"
    if not path.exists():
        pytest.skip(f"reference data {path} not present (only in the team's workspace)")
    mesh = load_mesh(path)
    deformer = LaplacianDeformer(torch.tensor(mesh.vertices), torch.tensor(mesh.faces), 16)
    offsets = 0.05 * torch.randn(2, 16, 3, generator=torch.Generator().manual_seed(1)).double()
    with torch.no_grad():
        V = deformer(offsets)
        H = deformer.handle_positions() + offsets
    ref = dense_solve(deformer.laplacian, deformer.A, deformer.template, H)
    assert rel_err(V.numpy(), ref) < 1e-8
    # Handles actually moved the mesh where they sit.
    ids = deformer.handle_ids
    moved = (V[:, ids] - deformer.template[ids]).norm(dim=-1)
    assert moved.mean() > 0.5 * offsets.norm(dim=-1).mean()


def test_two_components_boundary_and_isolated_vertex():
    gv, gf = grid(4, 4)
    iv, if_ = icosphere(1)
    v = np.concatenate([gv, iv + 3.0, [[7.0, 7.0, 7.0]]])
    f = np.concatenate([gf, if_ + len(gv)])
    L, A, T, H, _ = random_problem(v, f, 5, 2, sharp=0.5)
    system = LaplacianSystem(L)
    assert system.num_components == 2 and bool(system.isolated[-1])
    V = laplacian_solve(system, A, T, H)
    assert torch.isfinite(V).all()
    assert rel_err(V.numpy(), dense_solve(L, A, T, H)) < 1e-9


def test_component_without_handle_weight_is_reported():
    gv, gf = grid(3, 3)
    iv, if_ = icosphere(0)
    v = np.concatenate([gv, iv + 3.0])
    f = np.concatenate([gf, if_ + len(gv)])
    T = torch.tensor(v)
    L = cotangent_laplacian(T, torch.tensor(f))
    A = torch.zeros(2, len(v), dtype=torch.float64)
    A[0, 0] = A[1, 4] = 1.0  # both handles on the grid, nothing holds the sphere
    with pytest.raises(MeshError, match="under-determined"):
        laplacian_solve(L, A, T, A @ T)


def test_residual_of_normal_equations():
    v, f = icosphere(4)  # 2562 vertices
    L, A, T, H, _ = random_problem(v, f, 16, 2, sharp=0.05)
    system = laplacian_system(L)
    assert laplacian_system(L) is system  # cached by tensor identity
    V = laplacian_solve(L, A, T, H)
    Ld = system.laplacian
    for b in range(2):
        rhs = torch.as_tensor(Ld.T @ (Ld @ T.numpy())) + A.T @ H[b]
        res = system.apply_w(A, V[b]) - rhs
        assert (res.norm() / rhs.norm()).item() < 1e-9


def test_float32_inputs_give_float32_close_to_float64():
    v, f = icosphere(2)
    L, A, T, H, _ = random_problem(v, f, 6, 2)
    V64 = laplacian_solve(L, A, T, H)
    V32 = laplacian_solve(L.float(), A.float(), T.float(), H.float())
    assert V32.dtype == torch.float32
    assert rel_err(V32.numpy(), V64.numpy()) < 1e-5


def test_shape_errors():
    v, f = icosphere(1)
    L, A, T, H, _ = random_problem(v, f, 4, 2)
    with pytest.raises(ValueError, match="A must have shape"):
        laplacian_solve(L, A[:, :-1], T, H)
    with pytest.raises(ValueError, match="H must have shape"):
        laplacian_solve(L, A, T, H[:, :3])
    with pytest.raises(ValueError, match="T must have shape"):
        laplacian_solve(L, A, T[:-1], H)


# --------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    ("subdiv", "k", "fast"),
    # 3B = 6 columns: k=4 sums the batch before solving, k=8 solves for the G_b themselves.
    [(1, 3, False), (1, 8, False), (2, 4, True), (2, 8, True)],
)
def test_gradcheck_logits_and_targets(subdiv, k, fast):
    v, f = octasphere(subdiv)  # 18 or 66 vertices
    L, _, T, H, logits = random_problem(v, f, k, 2, sharp=1.0)
    system = LaplacianSystem(L)
    logits = logits.clone().requires_grad_(True)
    H = H.clone().requires_grad_(True)

    def fn(lg, h):
        return laplacian_solve(system, dependency_matrix(lg), T, h)

    assert torch.autograd.gradcheck(fn, (logits, H), eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=fast)


def test_gradient_matches_dense_autograd_reference():
    v, f = icosphere(2)
    L, A, T, H, _ = random_problem(v, f, 6, 3)
    A = A.clone().requires_grad_(True)
    H = H.clone().requires_grad_(True)
    weights = torch.randn(3, 162, 3, generator=torch.Generator().manual_seed(5)).double()
    (laplacian_solve(L, A, T, H) * weights).sum().backward()
    # Reference: the authors' route, dense normal equations and autograd through the solve.
    Ad = A.detach().clone().requires_grad_(True)
    Hd = H.detach().clone().requires_grad_(True)
    Ld = L.to_dense()
    W = Ld.T @ Ld + Ad.T @ Ad
    rhs = (Ld.T @ Ld @ T) + Ad.T @ Hd
    Vd = torch.linalg.solve(W, rhs)
    (Vd * weights).sum().backward()
    assert rel_err(A.grad.numpy(), Ad.grad.numpy()) < 1e-8
    assert rel_err(H.grad.numpy(), Hd.grad.numpy()) < 1e-8


def test_no_grad_for_template_and_skips_unneeded_work():
    v, f = icosphere(1)
    L, A, T, H, _ = random_problem(v, f, 4, 1)
    T = T.clone().requires_grad_(True)
    H = H.clone().requires_grad_(True)
    laplacian_solve(L, A, T, H).sum().backward()
    assert T.grad is None and H.grad is not None


# --------------------------------------------------------------------- deformer


def test_deformer_module():
    v, f = icosphere(2)
    d = LaplacianDeformer(torch.tensor(v), torch.tensor(f), num_handles=8, seed=1)
    assert d.logits.shape == (8, 162) and d.handle_ids.shape == (8,)
    np.testing.assert_allclose(d.A.sum(1).detach().numpy(), 1.0, rtol=1e-12)
    assert d.handle_positions().shape == (8, 3)
    # Zero offsets reproduce the template.
    rest = d(torch.zeros(8, 3, dtype=torch.float64))
    np.testing.assert_allclose(rest.detach().numpy(), v, atol=1e-10)
    # Gradients reach the logits (softened so the softmax is not saturated).
    with torch.no_grad():
        d.logits.mul_(0.02)
    out = d(0.1 * torch.ones(2, 8, 3, dtype=torch.float64))
    assert out.shape == (2, 162, 3)
    out[..., 0].sum().backward()
    assert d.logits.grad is not None and d.logits.grad.abs().sum() > 0
    # state_dict carries template, faces, handles and logits; the Laplacian is rebuilt.
    d2 = LaplacianDeformer(torch.tensor(v), torch.tensor(f), handle_ids=d.handle_ids)
    d2.load_state_dict(d.state_dict())
    assert "laplacian" not in d.state_dict()
    with torch.no_grad():
        np.testing.assert_allclose(
            d2(torch.ones(8, 3, dtype=torch.float64)).numpy(),
            d(torch.ones(8, 3, dtype=torch.float64)).numpy(),
            atol=1e-12,
        )


def test_deformer_float32():
    v, f = icosphere(1)
    d = LaplacianDeformer(torch.tensor(v, dtype=torch.float32), torch.tensor(f), num_handles=4)
    out = d(torch.zeros(2, 4, 3))
    assert out.dtype == torch.float32 and out.shape == (2, 42, 3)


# --------------------------------------------------------------------- editing basis


def test_editing_basis_matches_solve():
    v, f = icosphere(3)
    L, A, T, H, _ = random_problem(v, f, 10, 3, sharp=0.1)
    system = LaplacianSystem(L)
    basis = EditingBasis(system, A, T)
    offsets = H - A @ T
    V = laplacian_solve(system, A, T, H).numpy()
    assert rel_err(basis.deform(offsets.numpy()), V) < 1e-8
    out = basis.deform(offsets)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    assert rel_err(out.numpy(), V) < 1e-8
    # A drag sequence (one handle at a time, incremental updates) stays exact.
    current = np.zeros((10, 3))
    rng = np.random.default_rng(0)
    for step in range(40):
        current[step % 10] += rng.normal(scale=0.05, size=3)
        got = basis.deform(current)
    ref = laplacian_solve(system, A, T, A @ T + torch.tensor(current)).numpy()
    assert rel_err(got, ref) < 1e-8
    np.testing.assert_allclose(basis.influence(3), A[3].numpy())
    np.testing.assert_allclose(basis.rest_handles, (A @ T).numpy(), atol=1e-14)
    with pytest.raises(ValueError, match="offsets must have shape"):
        basis.deform(np.zeros((9, 3)))
    # Picklable for worker processes (without the factorisation, which deform does not use).
    clone = pickle.loads(pickle.dumps(basis))
    assert clone.system is None and basis.system is system
    np.testing.assert_allclose(clone.deform(current * 2), basis.deform(current * 2), atol=1e-13)


def test_editing_basis_from_deformer_and_builder_progress_cancel():
    v, f = icosphere(2)
    d = LaplacianDeformer(torch.tensor(v), torch.tensor(f), num_handles=6, seed=2)
    from_deformer = EditingBasis.from_deformer(d)
    calls = []
    built = build_editing_basis(
        v, f, handle_ids=d.handle_ids.numpy(), progress=lambda x, m: calls.append((x, m))
    )
    offsets = np.random.default_rng(1).normal(size=(6, 3))
    np.testing.assert_allclose(built.deform(offsets), from_deformer.deform(offsets), atol=1e-10)
    fractions = [x for x, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(calls) >= 4
    assert all(isinstance(m, str) and m for _, m in calls)
    with pytest.raises(Cancelled):
        build_editing_basis(v, f, num_handles=6, cancel=lambda: len(calls) > 0)
    late = []
    with pytest.raises(Cancelled):
        build_editing_basis(
            v, f, num_handles=6, progress=lambda x, m: late.append(x), cancel=lambda: bool(late)
        )
    trained = build_editing_basis(v, f, dependency=d.A.detach())
    assert trained.num_handles == 6 and trained.handle_ids is None
    np.testing.assert_array_equal(built.handle_ids, d.handle_ids.numpy())
    np.testing.assert_array_equal(from_deformer.handle_ids, d.handle_ids.numpy())
    # The authors' sharp initialisation puts each handle's rest position on its vertex.
    np.testing.assert_allclose(built.rest_handles, v[built.handle_ids], atol=1e-6)


# --------------------------------------------------------------------- CUDA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    """Solve, gradients, deformer and editing basis on CUDA agree with the CPU path."""
    v, f = icosphere(3)
    L, A, T, H, _ = random_problem(v, f, 8, 4)
    weights = torch.randn(4, len(v), 3, generator=torch.Generator().manual_seed(3)).double()
    out = {}
    for device in ("cpu", "cuda"):
        Ad = A.detach().to(device).requires_grad_(True)
        Hd = H.detach().to(device).requires_grad_(True)
        V = laplacian_solve(L.to(device), Ad, T.to(device), Hd)
        assert V.device.type == device
        (V * weights.to(device)).sum().backward()
        assert Ad.grad.device.type == device and Hd.grad.device.type == device
        out[device] = (V.detach().cpu(), Ad.grad.cpu(), Hd.grad.cpu())
    for got, ref in zip(out["cuda"], out["cpu"], strict=True):
        assert rel_err(got.numpy(), ref.numpy()) < 1e-9

    d = LaplacianDeformer(torch.tensor(v), torch.tensor(f), num_handles=8, seed=1)
    offsets = 0.1 * torch.randn(2, 8, 3, generator=torch.Generator().manual_seed(4)).double()
    ref = d(offsets).detach()
    d = d.to("cuda")
    moved = d(offsets.to("cuda"))
    assert moved.device.type == "cuda"
    assert rel_err(moved.detach().cpu().numpy(), ref.numpy()) < 1e-9
    moved[..., 0].sum().backward()
    assert d.logits.grad.device.type == "cuda" and torch.isfinite(d.logits.grad).all()

    system = LaplacianSystem(L.to("cuda"))
    basis = EditingBasis(system, A.to("cuda"), T.to("cuda"))
    drag = (H[0] - A @ T).numpy()
    expected = laplacian_solve(L, A, T, H[0]).numpy()
    assert rel_err(basis.deform(drag), expected) < 1e-8


def test_load_state_dict_of_another_template_rebuilds_laplacian_and_factorisation():
    v, f = icosphere(2)
    stretched = v * np.array([2.0, 1.0, 0.5])
    d = LaplacianDeformer(torch.tensor(v), torch.tensor(f), num_handles=6, seed=0)
    d(torch.zeros(6, 3, dtype=torch.float64))  # builds and caches the factorisation of v
    other = LaplacianDeformer(torch.tensor(stretched), torch.tensor(f), num_handles=6, seed=0)
    d.load_state_dict(other.state_dict())
    offsets = 0.1 * torch.ones(2, 6, 3, dtype=torch.float64)
    with torch.no_grad():
        np.testing.assert_allclose(d(offsets).numpy(), other(offsets).numpy(), atol=1e-10)
    # Another mesh size (and handle count) loads too, with its own Laplacian.
    v3, f3 = icosphere(1)
    small = LaplacianDeformer(torch.tensor(v3), torch.tensor(f3), num_handles=4, seed=0)
    d.load_state_dict(small.state_dict())
    assert d.laplacian.shape == (len(v3), len(v3)) and d.num_handles == 4
    with torch.no_grad():
        np.testing.assert_allclose(
            d(offsets[:, :4]).numpy(), small(offsets[:, :4]).numpy(), atol=1e-10
        )


def test_double_backward_through_the_solve_is_refused():
    v, f = icosphere(1)
    d = LaplacianDeformer(torch.tensor(v), torch.tensor(f), num_handles=4, seed=0)
    offsets = torch.full((4, 3), 0.1, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad((d(offsets) ** 2).sum(), offsets, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()
