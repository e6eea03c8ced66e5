"""Benchmark: forward + backward of generalised Procrustes alignment, three ways, one table.

(a) dense: the authors' formulation, the full 3Pn_f x 3Pn_f Jacobian (A B^-1 C + I) D built
    explicitly and multiplied by the incoming gradient (only where it fits in ~8 GB);
(b) unrolled: autograd through the iteration, run for the number of sweeps the forward used;
(c) ours: :func:`engine.nrsfm.procrustes.align` with PRN's implicit gradient as a vector-Jacobian
    product (no Jacobian; Woodbury solve for large groups).

The loss is ``sum(X_aligned * W)`` for a fixed random W, so the backward pass is exactly the
VJP. Each group is n_f frames of a random base shape plus 20% noise, each randomly rotated and
translated (like a batch of a non-rigid sequence). Times are the best of a few repeats of
forward + backward. "mem" comes from one more, untimed run: the peak resident memory (RSS,
sampled every 0.5 ms by a thread reading /proc/self/statm, after malloc_trim) above the RSS at
the start of the call, since tracemalloc does not see torch's CPU allocations; on CUDA it is
torch.cuda.max_memory_allocated above the allocation at the start.
"rel.err" is the largest difference of (a) and (b) from (c), relative to the largest entry.

    python benchmarks/procrustes.py            # full table, a few minutes on 2 cores
    python benchmarks/procrustes.py --quick    # small sizes only, about a minute
    python benchmarks/procrustes.py --threads 1

On a machine whose cores are busy with other processes, use ``--threads 1``: with more torch
threads every MKL GEMM waits for its OpenMP team (we measured ~20 ms per GEMM, whatever its
size, at load 10 on 2 cores), which swamps small problems.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.nrsfm.procrustes import (
    align,
    align_iterations,
    align_jacobian_dense,
    align_unrolled,
)

DENSE_LIMIT_BYTES = 8e9
_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform.startswith("linux") else None


class PeakMemory:
    """Peak memory above the starting level during a ``with`` block, in bytes."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss() - self._start)
            time.sleep(0.0005)

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if _LIBC is not None:
            # Hand freed heap back to the OS so that the RSS baseline does not hide new
            # allocations that reuse it.
            _LIBC.malloc_trim(0)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._start
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self._rss() - self._start)


def make_group(n: int, P: int, dtype: torch.dtype, device: torch.device, seed: int) -> torch.Tensor:
    """(n, P, 3): a random base shape plus 20% noise per frame, randomly rotated and shifted."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(P, 3, dtype=torch.float64, generator=gen)
    X = base + 0.2 * torch.randn(n, P, 3, dtype=torch.float64, generator=gen)
    Q, _ = torch.linalg.qr(torch.randn(n, 3, 3, dtype=torch.float64, generator=gen))
    Q = Q * torch.sign(torch.linalg.det(Q))[:, None, None]
    X = X @ Q.transpose(-1, -2) + torch.randn(n, 1, 3, dtype=torch.float64, generator=gen)
    return X.to(dtype=dtype, device=device)


def run_ours(X: torch.Tensor, W: torch.Tensor, _iters: int) -> torch.Tensor:
    Xg = X.clone().requires_grad_()
    Z, _ = align(Xg)
    (grad,) = torch.autograd.grad((Z * W).sum(), Xg)
    return grad


def run_unrolled(X: torch.Tensor, W: torch.Tensor, iters: int) -> torch.Tensor:
    Xg = X.clone().requires_grad_()
    Z, _ = align_unrolled(Xg, iters)
    (grad,) = torch.autograd.grad((Z * W).sum(), Xg)
    return grad


def run_dense(X: torch.Tensor, W: torch.Tensor, _iters: int) -> torch.Tensor:
    with torch.no_grad():
        Z, R = align(X)
        J = align_jacobian_dense(Z.double(), R.double())
        return (J.T @ W.double().reshape(-1)).reshape(X.shape).to(X.dtype)


def dense_bytes(n: int, P: int) -> float:
    """Rough peak of the dense path: about four (3Pn)^2 float64 matrices alive at once."""
    return 4 * (3 * P * n) ** 2 * 8


def measure(
    fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    X: torch.Tensor,
    W: torch.Tensor,
    iters: int,
    repeats: int,
) -> tuple[float, int, torch.Tensor]:
    """Best wall time over ``repeats`` (s), peak memory (bytes) of one more run, the gradient.

    The memory run is separate so that the sampling thread does not disturb the timings.
    """
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(X, W, iters)
        if X.device.type == "cuda":
            torch.cuda.synchronize(X.device)
        best = min(best, time.perf_counter() - t0)
    with PeakMemory(X.device) as mem:
        grad = fn(X, W, iters)
    return best, mem.peak, grad


def fmt_time(t: float) -> str:
    return f"{t * 1e3:9.1f} ms" if t < 10 else f"{t:10.2f} s"


def fmt_mem(b: float) -> str:
    return f"{b / 2**20:8.1f} MB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="n_f in {32, 128}, one repeat")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    sizes_n = [32, 128] if args.quick else [32, 128, 512, 2048]
    sizes_p = [17, 68]
    repeats = 2 if args.quick else 5

    print(
        f"torch {torch.__version__}, {args.dtype}, device {device}, "
        f"{torch.get_num_threads()} threads; forward+backward of sum(align(X) * W), one group"
    )
    header = (
        f"{'n_f':>5} {'P':>3} {'iters':>5} | {'(a) dense J':>12} {'mem':>11} | "
        f"{'(b) unrolled':>12} {'mem':>11} | {'(c) ours':>12} {'mem':>11} | "
        f"{'a/c':>7} {'b/c':>6} | {'rel.err a':>9} {'rel.err b':>9}"
    )
    print(header)
    print("-" * len(header))
    for n in sizes_n:
        for P in sizes_p:
            X = make_group(n, P, dtype, device, seed=n * 1000 + P)
            W = torch.randn(X.shape, generator=torch.Generator().manual_seed(1)).to(X)
            iters = int(align_iterations(X))
            run_ours(X, W, iters)  # warm-up (thread pools, allocator)
            t_c, m_c, g_c = measure(run_ours, X, W, iters, repeats)
            scale = g_c.abs().max().item()
            t_b, m_b, g_b = measure(run_unrolled, X, W, iters, max(1, repeats - 1))
            err_b = (g_b - g_c).abs().max().item() / scale
            need = dense_bytes(n, P)
            if need <= DENSE_LIMIT_BYTES:
                t_a, m_a, g_a = measure(run_dense, X, W, iters, 1)
                err_a = (g_a - g_c).abs().max().item() / scale
                a_cols = f"{fmt_time(t_a):>12} {fmt_mem(m_a):>11}"
                a_ratio, a_err = f"{t_a / t_c:6.0f}x", f"{err_a:9.1e}"
            else:
                a_cols = f"{'n/a':>12} {f'({need / 1e9:.0f} GB)':>11}"
                a_ratio, a_err = f"{'-':>7}", f"{'-':>9}"
            print(
                f"{n:>5} {P:>3} {iters:>5} | {a_cols} | {fmt_time(t_b):>12} {fmt_mem(m_b):>11} | "
                f"{fmt_time(t_c):>12} {fmt_mem(m_c):>11} | {a_ratio} {t_b / t_c:5.1f}x | "
                f"{a_err} {err_b:9.1e}",
                flush=True,
            )


if __name__ == "__main__":
    main()
