"""Principal component analysis of shape sets, scalable to huge sets of large meshes.

A set of S shapes of P points is the S x D data matrix X (D = 3P, one flattened shape a row).
:func:`pca` returns the mean shape, the leading principal directions ("deformation modes"), their
standard deviations and the fraction of the total variance each explains (seed 001, section 4 /
Figure 2 visualises these).

Two decompositions:

* ``"full"``: thin SVD of the centred data matrix (``torch.linalg.svd``), exact to round-off.
  Needs the whole S x D matrix in memory once (plus the SVD's workspace).
* ``"randomized"``: a randomised range finder with subspace (power) iterations (Halko,
  Martinsson & Tropp 2011, Alg. 4.4 + 5.1). It only ever multiplies the centred data by thin
  matrices with ``l = num_modes + oversample`` columns, reading the data in chunks of rows, so
  memory is O((S + D) l + chunk) and neither the D x D covariance nor the S x S Gram matrix is
  ever formed. The data may be an ``np.memmap`` on disk: tens of thousands of 100k-vertex shapes
  (tens of GB) stream through a few hundred MB of memory. Cost: ``3 + 2 q`` passes over the data.

Accuracy of ``"randomized"``: with q power iterations the error of the k-th singular value /
direction is governed by ``(sigma_{l+1} / sigma_k)^(2q+1)`` (Halko et al., Thm. 10.8 / Cor.
10.10); with the defaults (q = 4, oversample = 10) modes whose variance is well separated from
the (M+10)-th agree with the full SVD to ~1e-10 on exactly low-rank data and to ~1e-6 on
typical shape data (tests check both). Arithmetic is in float64 by default whatever the input
dtype; float32 (``dtype=torch.float32``) is faster on GPUs and loses about 7 digits.

Sign convention: each mode is flipped so that its entry of largest magnitude is positive, so
runs and methods give comparable modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from engine.core.device import resolve_device
from engine.core.errors import DataError
from engine.core.progress import CancelFn, Cancelled, ProgressFn

# Elements of one chunk of rows read at a time (float64: 128 MB).
_CHUNK_ELEMENTS = 1 << 24
# "auto" uses the exact SVD while the centred data matrix stays below this many elements.
_FULL_LIMIT_ELEMENTS = 1 << 20


@dataclass
class PCAResult:
    """Mean, modes and variances of a set of shapes.

    Attributes:
        mean: (D,) the mean shape, flattened (D = P * 3).
        modes: (M, D) orthonormal principal directions, by decreasing variance.
        std: (M,) standard deviation of the data along each mode: sqrt of the unbiased
            covariance eigenvalue, ``singular_value / sqrt(S - 1)``; units of the shapes.
        explained_variance_ratio: (M,) each mode's variance over the TOTAL variance of the set
            (all modes, not only the M kept), so the entries sum to <= 1.
        shape: (P, 3), to reshape a flattened shape.
        num_samples: S, the number of shapes analysed.
        method: ``"full"`` or ``"randomized"``, the decomposition actually used.
    """

    mean: Tensor
    modes: Tensor
    std: Tensor
    explained_variance_ratio: Tensor
    shape: tuple[int, int]
    num_samples: int = 0
    method: str = "full"

    @property
    def num_modes(self) -> int:
        """M, the number of modes kept."""
        return int(self.modes.shape[0])

    def shape_at(self, coeffs: Tensor | np.ndarray | list[float], *, sigma: bool = True) -> Tensor:
        """The shape ``mean + sum_i c_i * mode_i`` reshaped to (P, 3).

        Args:
            coeffs: (M',) with M' <= M coefficients of the first M' modes (missing ones are 0).
                With ``sigma=True`` (default) they are in units of each mode's standard
                deviation (``c_i = 2`` means +2 sigma, so the shape moves by ``2 * std_i *
                mode_i``); with ``sigma=False`` they are absolute lengths in the shapes' units.

        Returns:
            (P, 3) tensor, dtype and device of :attr:`mean`.
        """
        c = torch.as_tensor(coeffs, dtype=self.mean.dtype, device=self.mean.device).reshape(-1)
        if c.numel() > self.num_modes:
            raise ValueError(f"got {c.numel()} coefficients for {self.num_modes} modes")
        if sigma:
            c = c * self.std[: c.numel()]
        flat = self.mean + c @ self.modes[: c.numel()]
        return flat.reshape(self.shape)

    def coefficients(self, shapes: Tensor | np.ndarray, *, sigma: bool = True) -> Tensor:
        """Project shapes onto the modes.

        Args:
            shapes: (S, P, 3) shapes of the analysed kind.
            sigma: return coefficients in units of standard deviations (else absolute).

        Returns:
            (S, M) coefficients such that :meth:`shape_at` of row s is the projection of shape s.
        """
        x = torch.as_tensor(np.asarray(shapes) if not isinstance(shapes, Tensor) else shapes)
        x = x.to(dtype=self.mean.dtype, device=self.mean.device).reshape(x.shape[0], -1)
        c = (x - self.mean) @ self.modes.T
        if sigma:
            c = c / torch.where(self.std > 0, self.std, torch.ones_like(self.std))
        return c

    def to(self, device: str | torch.device) -> PCAResult:
        """A copy with every tensor on ``device``."""
        return PCAResult(
            mean=self.mean.to(device),
            modes=self.modes.to(device),
            std=self.std.to(device),
            explained_variance_ratio=self.explained_variance_ratio.to(device),
            shape=self.shape,
            num_samples=self.num_samples,
            method=self.method,
        )


def pca(
    shapes: Tensor | np.ndarray,
    num_modes: int = 10,
    *,
    method: Literal["auto", "full", "randomized"] = "auto",
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    chunk_size: int | None = None,
    oversample: int = 10,
    power_iterations: int = 4,
    seed: int = 0,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> PCAResult:
    """Principal component analysis of a set of shapes.

    Args:
        shapes: (S, P, 3) float array: a torch tensor, a numpy array or anything sliceable
            along its first axis that yields arrays (an ``np.memmap`` streams from disk).
            Needs S >= 2.
        num_modes: M, the number of modes to keep; clamped to ``min(S - 1, 3P)`` (the rank of
            the centred data cannot exceed that).
        method: ``"full"`` (exact thin SVD, whole matrix in memory), ``"randomized"``
            (streaming randomised SVD, see the module docstring) or ``"auto"`` (full while the
            data matrix has at most 2^20 elements or ``4 (M + oversample) >= min(S, D)``, else
            randomized).
        device: where to compute; None means the engine's default device.
        dtype: arithmetic dtype (float64 default; float32 loses ~7 digits).
        chunk_size: rows read per chunk in the randomized path (default: 2^24 elements' worth).
        oversample: extra columns of the random range finder.
        power_iterations: q, subspace iterations of the range finder.
        seed: seeds the random test matrix, so the result is deterministic.
        progress: called with (fraction in [0, 1], message) as passes over the data finish.
        cancel: polled between chunks; returning True raises :class:`Cancelled`.

    Returns:
        :class:`PCAResult` with tensors of ``dtype`` on ``device``.

    Raises:
        DataError: wrong shape, fewer than 2 shapes, NaN/inf values, or no variation at all.
    """
    dev = resolve_device(device)
    num_shapes, shape = _check_shapes(shapes)
    dim = shape[0] * shape[1]
    rank_bound = min(num_shapes - 1, dim)
    m = min(int(num_modes), rank_bound)
    if m < 1:
        raise DataError(f"num_modes must be >= 1, got {num_modes}", field="num_modes")
    if method not in ("auto", "full", "randomized"):
        raise DataError(
            f"method must be 'auto', 'full' or 'randomized', got {method!r}", field="method"
        )
    if method == "auto":
        # The exact SVD computes all min(S, D) directions: worth it only for small data or
        # when the modes asked for are a good part of them anyway.
        small = num_shapes * dim <= _FULL_LIMIT_ELEMENTS
        many = 4 * (m + oversample) >= min(num_shapes, dim)
        method = "full" if small or many else "randomized"
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMENTS // dim)
    reader = _ChunkReader(shapes, num_shapes, dim, dev, dtype, int(chunk_size), cancel)

    if method == "full":
        mean, modes, sing, total = _full_svd(reader, m)
    else:
        mean, modes, sing, total = _randomized_svd(
            reader, m, oversample, power_iterations, seed, progress
        )
    if not total > 0:
        raise DataError(
            "all shapes are identical: there is no variation to analyse", field="shapes"
        )
    modes = _fix_signs(modes)
    var = sing**2
    std = torch.sqrt(var / (num_shapes - 1))
    ratio = var / total
    if progress is not None:
        progress(1.0, "PCA done")
    return PCAResult(
        mean=mean,
        modes=modes,
        std=std,
        explained_variance_ratio=ratio,
        shape=shape,
        num_samples=num_shapes,
        method=method,
    )


def _check_shapes(shapes: Any) -> tuple[int, tuple[int, int]]:
    if not hasattr(shapes, "shape") or len(shapes.shape) != 3 or shapes.shape[2] != 3:
        got = tuple(shapes.shape) if hasattr(shapes, "shape") else type(shapes).__name__
        raise DataError(f"expected shapes of shape (S, P, 3), got {got}", field="shapes")
    num_shapes, num_points = int(shapes.shape[0]), int(shapes.shape[1])
    if num_shapes < 2:
        raise DataError(f"PCA needs at least 2 shapes, got {num_shapes}", field="shapes")
    if num_points < 1:
        raise DataError("shapes have no points", field="shapes")
    return num_shapes, (num_points, 3)


class _ChunkReader:
    """Reads rows [i0, i1) of the data as a (n, D) tensor on the compute device."""

    def __init__(
        self,
        data: Any,
        num_rows: int,
        dim: int,
        device: torch.device,
        dtype: torch.dtype,
        chunk_size: int,
        cancel: CancelFn | None,
    ) -> None:
        self.data = data
        self.num_rows = num_rows
        self.dim = dim
        self.device = device
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.cancel = cancel

    def ranges(self) -> list[tuple[int, int]]:
        step = self.chunk_size
        return [(i, min(i + step, self.num_rows)) for i in range(0, self.num_rows, step)]

    def read(self, i0: int, i1: int) -> Tensor:
        if self.cancel is not None and self.cancel():
            raise Cancelled()
        block = self.data[i0:i1]
        if not isinstance(block, Tensor):
            block = np.ascontiguousarray(block)
            if not block.flags.writeable:  # read-only memmaps: torch wants writable memory
                block = block.copy()
            block = torch.from_numpy(block)
        x = block.to(device=self.device, dtype=self.dtype).reshape(i1 - i0, self.dim)
        finite = torch.isfinite(x).all(dim=1)
        if not bool(finite.all()):
            bad = i0 + int(torch.nonzero(~finite)[0, 0])
            raise DataError(f"shape {bad} contains NaN or infinite coordinates", field="shapes")
        return x


def _mean_and_total(reader: _ChunkReader) -> tuple[Tensor, Tensor]:
    """Mean (D,) and total sum of squares of the centred data, in one pass.

    Sums are taken about the first shape (a shift), so the sum of squares does not lose digits
    to cancellation when the mean is large compared with the variation.
    """
    shift = reader.read(0, 1)[0]
    total = torch.zeros(reader.dim, dtype=reader.dtype, device=reader.device)
    sq = torch.zeros((), dtype=reader.dtype, device=reader.device)
    for i0, i1 in reader.ranges():
        d = reader.read(i0, i1) - shift
        total += d.sum(dim=0)
        sq += (d * d).sum()
    mean_shift = total / reader.num_rows
    sum_sq = sq - reader.num_rows * (mean_shift @ mean_shift)
    return shift + mean_shift, torch.clamp(sum_sq, min=0.0)


def _full_svd(reader: _ChunkReader, m: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    x = torch.cat([reader.read(i0, i1) for i0, i1 in reader.ranges()])
    mean = x.mean(dim=0)
    x -= mean
    total = (x * x).sum()
    _, sing, vh = torch.linalg.svd(x, full_matrices=False)
    return mean, vh[:m].contiguous(), sing[:m].contiguous(), total


def _randomized_svd(
    reader: _ChunkReader,
    m: int,
    oversample: int,
    power_iterations: int,
    seed: int,
    progress: ProgressFn | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    s_rows, dim = reader.num_rows, reader.dim
    cols = min(m + max(int(oversample), 0), s_rows, dim)
    passes = 3 + 2 * max(int(power_iterations), 0)
    done = 0

    def step(message: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done / (passes + 1), message)

    mean, total = _mean_and_total(reader)
    step("mean and total variance")

    def times(right: Tensor) -> Tensor:
        # (X - 1 mean^T) @ right, (S, l), streamed over rows.
        shift = mean @ right
        return torch.cat([reader.read(i0, i1) @ right - shift for i0, i1 in reader.ranges()])

    def transposed_times(left: Tensor) -> Tensor:
        # (X - 1 mean^T)^T @ left, (D, l), streamed over rows.
        out = -torch.outer(mean, left.sum(dim=0))
        for i0, i1 in reader.ranges():
            out += reader.read(i0, i1).T @ left[i0:i1]
        return out

    # The test matrix is drawn on the CPU so that the result does not depend on the device.
    gen = torch.Generator().manual_seed(int(seed))
    omega = torch.randn(dim, cols, generator=gen, dtype=torch.float64)
    omega = omega.to(device=reader.device, dtype=reader.dtype)
    q, _ = torch.linalg.qr(times(omega))
    step("range finder")
    for it in range(max(int(power_iterations), 0)):
        # Re-orthonormalise between the two products: without it the columns collapse onto the
        # top direction in floating point and the smaller modes are lost.
        z, _ = torch.linalg.qr(transposed_times(q))
        step(f"power iteration {it + 1}")
        q, _ = torch.linalg.qr(times(z))
        step(f"power iteration {it + 1}")
    # B^T = X_c^T Q (D, l); its thin SVD gives the right singular vectors of X_c.
    bt = transposed_times(q)
    step("projection")
    u, sing, _ = torch.linalg.svd(bt, full_matrices=False)
    return mean, u[:, :m].T.contiguous(), sing[:m].contiguous(), total


def _fix_signs(modes: Tensor) -> Tensor:
    idx = modes.abs().argmax(dim=1)
    signs = torch.sign(modes.gather(1, idx[:, None]))
    signs[signs == 0] = 1
    return modes * signs
