"""PCA of shape sets (engine.analysis.pca): recovery of known bases, methods agree, streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.analysis import Cancelled, pca
from engine.errors import DataError


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
    num_shapes, dim = 400, 900
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
    shapes, _, _, _ = _low_rank_set(3000, 1000, [1.0, 0.5])  # 9e6 elements > 2^23
    res = pca(shapes, 2, device="cpu", power_iterations=1)
    assert res.method == "randomized"
    small = pca(shapes[:50], 2, device="cpu")
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
