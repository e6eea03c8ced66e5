"""PCA of shape sets (engine.analysis.pca): recovery of known bases, methods agree, streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.analysis import pca
from engine.core.errors import DataError
from engine.core.progress import Cancelled


def _low_rank_set(num_shapes: int, num_points: int, sigmas: list[float], seed: int = 0):
    """Shapes = mean + C B with orthonormal basis rows B (M, D) and coefficients C whose
    columns are centred, orthogonal and of exactly the given sample standard deviations."""
    gen = torch.Generator().manual_seed(seed)
    dim = num_points * 3
    m = len(sigmas)
    basis = torch.linalg.qr(torch.randn(dim, m, generator=gen, dtype=torch.float64))[0].T
    raw = torch.randn(num_shapes, m, generator=gen, dtype=torch.float64)
    raw -= raw.mean(dim=0)
    q = torch.linalg.qr(raw)[0]
    coeffs = q * (num_shapes - 1) ** 0.5 * torch.tensor(sigmas, dtype=torch.float64)
    mean = 5.0 * torch.randn(dim, generator=gen, dtype=torch.float64)
    shapes = (mean + coeffs @ basis).reshape(num_shapes, num_points, 3)
    return shapes, basis, mean, coeffs


def _max_principal_angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest principal angle (radians) between the row spaces of a and b."""
    qa = torch.linalg.qr(a.T)[0]
    qb = torch.linalg.qr(b.T)[0]
    cos = torch.linalg.svdvals(qa.T @ qb).clamp(max=1.0)
    return float(torch.arccos(cos.min()))


@pytest.mark.parametrize("method", ["full", "randomized"])
def test_recovers_known_low_rank_basis_and_variances(method):
    sigmas = [4.0, 2.0, 1.0, 0.5]
    shapes, basis, mean, _ = _low_rank_set(120, 50, sigmas)
    res = pca(shapes, num_modes=6, method=method, device="cpu")
    assert res.method == method
    assert res.modes.shape == (6, 150) and res.shape == (50, 3)
    assert _max_principal_angle(res.modes[:4], basis) < 1e-7
    # each mode matches its basis vector (distinct variances), up to sign
    overlap = (res.modes[:4] @ basis.T).abs()
    torch.testing.assert_close(overlap, torch.eye(4, dtype=torch.float64), atol=1e-8, rtol=0)
    torch.testing.assert_close(res.std[:4], torch.tensor(sigmas, dtype=torch.float64))
    total = sum(s * s for s in sigmas)
    expected_ratio = torch.tensor([s * s / total for s in sigmas], dtype=torch.float64)
    torch.testing.assert_close(res.explained_variance_ratio[:4], expected_ratio)
    assert float(res.explained_variance_ratio[4:].sum()) < 1e-20
    torch.testing.assert_close(res.mean, mean)
    gram = res.modes @ res.modes.T
    torch.testing.assert_close(gram, torch.eye(6, dtype=torch.float64), atol=1e-10, rtol=0)


def test_randomized_agrees_with_full_on_noisy_data():
    # A decaying spectrum plus isotropic noise: no exact low rank to make it easy.
    gen = torch.Generator().manual_seed(3)
    num_shapes, dim = 200, 600
    spectrum = 10.0 * 0.6 ** torch.arange(30, dtype=torch.float64)
    u = torch.linalg.qr(torch.randn(num_shapes, 30, generator=gen, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(dim, 30, generator=gen, dtype=torch.float64))[0]
    x = (u * spectrum) @ v.T + 1e-3 * torch.randn(
        num_shapes, dim, generator=gen, dtype=torch.float64
    )
    shapes = x.reshape(num_shapes, dim // 3, 3)
    full = pca(shapes, 5, method="full", device="cpu")
    rand = pca(shapes, 5, method="randomized", device="cpu", chunk_size=64)
    torch.testing.assert_close(rand.std, full.std, rtol=1e-9, atol=0)
    torch.testing.assert_close(rand.explained_variance_ratio, full.explained_variance_ratio)
    torch.testing.assert_close(rand.modes, full.modes, atol=1e-7, rtol=0)
    torch.testing.assert_close(rand.mean, full.mean)


def test_float32_input_and_compute_dtype():
    shapes, basis, _, _ = _low_rank_set(60, 20, [3.0, 1.0])
    res = pca(shapes.float(), 2, method="randomized", device="cpu", dtype=torch.float32)
    assert res.modes.dtype == torch.float32
    assert _max_principal_angle(res.modes.double(), basis) < 1e-3
    torch.testing.assert_close(
        res.std.double(), torch.tensor([3.0, 1.0], dtype=torch.float64), rtol=1e-4, atol=0
    )


def test_shape_at_and_coefficients():
    shapes, _, _, _ = _low_rank_set(40, 10, [2.0, 1.0, 0.5])
    res = pca(shapes, 3, device="cpu")
    out = res.shape_at([1.5, -2.0])
    expected = res.mean + 1.5 * res.std[0] * res.modes[0] - 2.0 * res.std[1] * res.modes[1]
    torch.testing.assert_close(out, expected.reshape(10, 3), rtol=0, atol=1e-14)
    absolute = res.shape_at([0.25], sigma=False)
    torch.testing.assert_close(
        absolute, (res.mean + 0.25 * res.modes[0]).reshape(10, 3), rtol=0, atol=1e-14
    )
    # the data lie in the span of 3 modes: projecting and rebuilding gives them back
    coeffs = res.coefficients(shapes)
    torch.testing.assert_close(res.shape_at(coeffs[7]), shapes[7])
    with pytest.raises(ValueError):
        res.shape_at([0.0] * 4)


def test_streams_a_memmap_in_chunks_without_forming_covariance(tmp_path):
    # D = 30000: a D x D float64 covariance would take 7.2 GB; the data itself is 24 MB.
    num_shapes, num_points = 100, 10_000
    shapes, basis, _, _ = _low_rank_set(num_shapes, num_points, [3.0, 2.0, 1.0], seed=5)
    path = tmp_path / "shapes.f64"
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=(num_shapes, num_points, 3))
    mm[:] = shapes.numpy()
    mm.flush()
    data = np.memmap(path, dtype=np.float64, mode="r", shape=(num_shapes, num_points, 3))

    class Recording:
        """Sliceable view of the memmap that records the largest block read."""

        shape = data.shape

        def __init__(self):
            self.max_rows = 0
            self.reads = 0

        def __getitem__(self, index):
            block = data[index]
            self.max_rows = max(self.max_rows, block.shape[0])
            self.reads += 1
            return block

    rec = Recording()
    res = pca(rec, 3, method="randomized", device="cpu", chunk_size=16, power_iterations=2)
    assert rec.max_rows <= 16
    assert rec.reads > 10
    assert _max_principal_angle(res.modes, basis) < 1e-7
    torch.testing.assert_close(res.std, torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64))


def test_auto_picks_randomized_for_large_data():
    shapes, _, _, _ = _low_rank_set(1200, 300, [1.0, 0.5])  # 1.08e6 elements > 2^20
    res = pca(shapes, 2, device="cpu", power_iterations=1)
    assert res.method == "randomized"
    small = pca(shapes[:40], 2, device="cpu")
    assert small.method == "full"


def test_num_modes_clamped_to_rank_bound():
    shapes, _, _, _ = _low_rank_set(4, 5, [1.0, 0.5])
    res = pca(shapes, 10, device="cpu")
    assert res.num_modes == 3  # S - 1


def test_progress_and_cancel():
    shapes, _, _, _ = _low_rank_set(50, 10, [1.0])
    seen = []
    pca(shapes, 1, method="randomized", device="cpu", progress=lambda f, m: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 3
    with pytest.raises(Cancelled):
        pca(shapes, 1, method="randomized", device="cpu", cancel=lambda: True)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (np.zeros((5, 4, 2)), "(S, P, 3)"),
        (np.zeros((1, 4, 3)), "at least 2"),
        (np.ones((5, 4, 3)), "identical"),
    ],
)
def test_bad_input_raises_data_error(data, needle):
    with pytest.raises(DataError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        pca(data, 2, device="cpu")


def test_nan_names_the_shape():
    data = np.random.default_rng(0).normal(size=(6, 4, 3))
    data[4, 2, 1] = np.nan
    with pytest.raises(DataError, match="shape 4"):
        pca(data, 2, device="cpu")


# ---------------------------------------------------------------------- shape-set sources


def _random_rotations(n: int, gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    det = torch.linalg.det(q)
    q[det < 0, :, 0] *= -1
    return q


@pytest.mark.parametrize("group_size", [512, 3])
def test_align_shapes_removes_rotation_and_translation(group_size):
    from engine.analysis.sources import align_shapes

    gen = torch.Generator().manual_seed(1)
    base = torch.randn(9, 3, generator=gen, dtype=torch.float64)
    rots = _random_rotations(10, gen)
    shifts = torch.randn(10, 1, 3, generator=gen, dtype=torch.float64)
    shapes = base @ rots.transpose(1, 2) + shifts  # 10 rigid copies: 3 groups of 3 + 1 left
    aligned = align_shapes(shapes, group_size=group_size)
    torch.testing.assert_close(aligned, aligned[:1].expand_as(aligned), atol=1e-9, rtol=0)
    torch.testing.assert_close(
        aligned.mean(dim=1), torch.zeros(10, 3, dtype=torch.float64), atol=1e-12, rtol=0
    )
    # a rigid motion, not a deformation: pairwise distances are kept
    torch.testing.assert_close(torch.cdist(aligned[0], aligned[0]), torch.cdist(base, base))


@pytest.fixture(scope="module")
def small_basis():
    from engine.deform.editing import build_editing_basis
    from engine.geometry.primitives import icosphere

    vertices, faces = icosphere(2)
    return build_editing_basis(vertices, faces, num_handles=4), vertices, faces


def test_sampled_deformations_span_the_editing_basis(small_basis):
    from engine.analysis.sources import sample_deformed_meshes, sample_handle_offsets

    basis, vertices, _ = small_basis
    offsets = sample_handle_offsets(basis, 200, 0.05, seed=2)
    assert offsets.shape == (200, 4, 3)
    torch.testing.assert_close(offsets, sample_handle_offsets(basis, 200, 0.05, seed=2))
    assert not torch.equal(offsets, sample_handle_offsets(basis, 200, 0.05, seed=3))
    diag = float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0)))
    assert abs(float(offsets.std()) / (0.05 * diag) - 1.0) < 0.1
    meshes = sample_deformed_meshes(basis, 200, 0.05, seed=2)
    assert meshes.shape == (200, len(vertices), 3)
    torch.testing.assert_close(meshes[5], torch.from_numpy(basis.deform(offsets[5].numpy())))
    # V = T + B_A offsets is linear in 3K = 12 numbers: PCA finds exactly 12 modes, inside the
    # span of B_A's columns per coordinate.
    res = pca(meshes, 14, device="cpu")
    assert float(res.std[11]) > 1e-6 and float(res.std[12]) < 1e-9 * float(res.std[0])
    span = torch.from_numpy(np.kron(basis.basis, np.eye(3)))  # (3N, 3K), vertex-major like flatten
    q = torch.linalg.qr(span)[0]
    residual = res.modes[:12] - (res.modes[:12] @ q) @ q.T
    assert float(residual.abs().max()) < 1e-9
    # PCA of the offsets themselves: 12 modes with the same variances pushed through B_A
    off = pca(offsets, 12, device="cpu")
    assert off.shape == (4, 3)


def test_independent_offsets_option(small_basis):
    from engine.analysis.sources import sample_handle_offsets

    basis, _, _ = small_basis
    corr = sample_handle_offsets(basis, 4000, 0.05, seed=0, length_scale=1.0)
    iid = sample_handle_offsets(basis, 4000, 0.05, seed=0, length_scale=None)
    c_corr = np.corrcoef(corr[:, :, 0].T.numpy())
    c_iid = np.corrcoef(iid[:, :, 0].T.numpy())
    off = ~np.eye(4, dtype=bool)
    assert np.abs(c_iid[off]).max() < 0.1
    assert np.abs(c_corr[off]).max() > 0.2


def _write_handle_set(path, vertices, faces, ids, offsets, mesh_hash_value=None):
    import json

    from engine.io.mesh import mesh_hash

    doc = {
        "format": "shapebench-handle-set",
        "version": 1,
        "mesh_hash": mesh_hash_value or mesh_hash(vertices, faces),
        "num_vertices": len(vertices),
        "num_handles": len(ids),
        "handle_ids": [int(i) for i in ids],
        "offsets": np.asarray(offsets).tolist(),
    }
    path.write_text(json.dumps(doc))
    return path


def test_load_handle_sets(tmp_path, small_basis):
    from engine.core.errors import InputError
    from engine.io.handle_sets import load_handle_sets

    _, vertices, faces = small_basis
    ids = [0, 5, 9]
    rng = np.random.default_rng(0)
    offs = rng.normal(size=(3, 3, 3))
    paths = [
        _write_handle_set(tmp_path / f"h{i}.json", vertices, faces, ids, offs[i]) for i in range(3)
    ]
    sets = load_handle_sets(paths)
    assert sets.handle_ids.tolist() == ids and sets.num_vertices == len(vertices)
    np.testing.assert_array_equal(sets.offsets.numpy(), offs)

    other = _write_handle_set(tmp_path / "other.json", vertices, faces, [0, 5, 8], offs[0])
    with pytest.raises(InputError, match="other handles") as err:
        load_handle_sets([paths[0], other])
    assert "other.json" in str(err.value)
    foreign = _write_handle_set(tmp_path / "foreign.json", vertices, faces, ids, offs[0], "abc")
    with pytest.raises(InputError, match="another mesh"):
        load_handle_sets([paths[0], foreign])
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"format": "shapebench-handle-set", "version": 1, "num_handles": 1, "mesh_hash": "x", "num_vertices": 5, "handle_ids": [1], "offsets": [[1, 2]]}'
    )
    with pytest.raises(InputError, match="offsets"):
        load_handle_sets([paths[0], bad])
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(InputError, match=r"broken\.json"):
        load_handle_sets([broken, paths[0]])
    with pytest.raises(InputError, match="at least 2"):
        load_handle_sets(paths[:1])


def test_load_mesh_set(tmp_path, small_basis):
    from engine.analysis.sources import load_mesh_set
    from engine.core.errors import MeshError
    from engine.geometry.primitives import icosphere
    from engine.io.mesh import save_mesh

    _, vertices, faces = small_basis
    paths = []
    for i in range(3):
        path = tmp_path / f"m{i}.ply"
        save_mesh(path, vertices * (1.0 + 0.1 * i), faces)
        paths.append(path)
    stack = load_mesh_set(paths)
    assert stack.shape == (3, len(vertices), 3)
    torch.testing.assert_close(stack[2], torch.from_numpy(vertices * 1.2))
    coarse = tmp_path / "coarse.ply"
    save_mesh(coarse, *icosphere(1))
    with pytest.raises(MeshError, match=r"coarse\.ply"):
        load_mesh_set([paths[0], coarse])


def test_reconstructions_for_pca(tmp_path):
    from engine.analysis.sources import reconstructions_for_pca
    from engine.io.keypoints import load_dataset, skeleton_edges
    from engine.prn.checkpoint import save_checkpoint
    from engine.prn.config import TrainConfig
    from engine.prn.model import PRNFCN
    from engine.prn.reconstruct import reconstruct

    torch.manual_seed(0)
    model = PRNFCN(17, hidden=16).eval()
    path = tmp_path / "tiny.pt"
    config = TrainConfig(hidden=16, data="synthetic:human?frames=60")
    save_checkpoint(
        path,
        model_state=model.state_dict(),
        config=config.to_dict(),
        data_description={},
        metrics={},
    )
    sequence = load_dataset("synthetic:human?frames=60")
    fractions = []
    shapes = reconstructions_for_pca(
        path, sequence, group_size=16, progress=lambda f, m: fractions.append(f)
    )
    assert shapes.shape == (60, 17, 3) and shapes.dtype == torch.float64
    assert fractions[-1] == 1.0
    raw = torch.from_numpy(np.asarray(reconstruct(model, sequence.points2d, sequence.visibility)))
    # same shapes up to a rigid motion per frame: distances between joints are kept
    torch.testing.assert_close(
        torch.cdist(shapes, shapes), torch.cdist(raw.double(), raw.double()), atol=1e-6, rtol=1e-6
    )
    torch.testing.assert_close(
        shapes.mean(dim=1), torch.zeros(60, 3, dtype=torch.float64), atol=1e-9, rtol=0
    )
    assert skeleton_edges(sequence).shape == (16, 2)
    wrong = load_dataset("synthetic:human?frames=10")
    wrong.points2d = wrong.points2d[:, :10]
    wrong.points3d = None
    with pytest.raises(DataError, match="17 points"):
        reconstructions_for_pca(path, wrong)
