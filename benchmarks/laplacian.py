"""Speed and memory of the differentiable Laplacian solve: ours against the seed's listing and the
authors' dense path, in one run, on icospheres of growing size.

Methods (each does one forward + backward of ``loss = sum(V * weights)`` w.r.t. ``A`` and ``H``):

(a) seed   -- the listing of seed 001: forward ``scipy.sparse.linalg.lsqr`` on ``[L; A]`` per
              column, backward a dense ``W = L^T L + A^T A`` and ``scipy.linalg.solve`` (one
              sample at a time, as the listing is written).
(b) dense  -- the authors' code path: dense N x N normal equations, ``torch.linalg.cholesky``,
              autograd through it (one factorisation shared by the batch).
(c) ours   -- ``engine.deform.solve.laplacian_solve`` with a cached factorisation (factorisation time
              reported separately), and the editing-basis update ``T + B_A Delta``.

Times of (a), (b), (c) are the best of several runs (one run, marked, where a single run takes
seconds): the machine is shared and the minimum is the least disturbed run. Memory is the peak
resident set size during the first run minus the resident size just before it (Linux
``/proc/self/status`` VmHWM after resetting it through ``/proc/self/clear_refs``; "n/a"
elsewhere). The editing update is the median of many calls. Reference methods are skipped where
a run would take longer than ``--budget`` seconds (estimated from the previous size by O(N^3)
scaling, or from the batch of one).

(c) runs on ``--device`` (``cpu`` or ``cuda``); (a) and (b) always run on the CPU.

Run ``python benchmarks/laplacian.py`` (about 10 minutes on 2 CPU cores) or ``--quick``.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.deform.editing import EditingBasis
from engine.deform.solve import LaplacianSystem, laplacian_solve
from engine.geometry.handles import dependency_matrix
from engine.geometry.laplacian import cotangent_laplacian
from engine.geometry.primitives import icosphere

SUBDIV = {642: 3, 2562: 4, 10242: 5, 40962: 6, 163842: 7}


# ----------------------------------------------------------------------------- measurement


def _proc_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        # Hand freed heap pages back to the OS so that reused memory counts again.
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def measure(fn, repeats: int) -> tuple[float, float | None]:
    """Best seconds of ``fn()`` over ``repeats`` runs (the machine is shared: the minimum is the
    least disturbed run), and the peak RSS growth (MiB) of the first run."""
    times, peak = [], None
    for r in range(repeats):
        ok = r == 0 and _reset_peak()
        before = _proc_kib("VmRSS")
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if ok and before is not None:
            hwm = _proc_kib("VmHWM")
            peak = None if hwm is None else max(0.0, (hwm - before) / 1024)
    return min(times), peak


# ----------------------------------------------------------------------------- problem


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timing covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Problem:
    """One template, K handles and B targets; (a) and (b) run on the CPU, (c) on ``device``."""

    def __init__(self, n: int, k: int, b: int, seed: int = 0, device: str = "cpu") -> None:
        v, f = icosphere(SUBDIV[n])
        g = torch.Generator().manual_seed(seed)
        self.T = torch.tensor(v)
        self.L = cotangent_laplacian(self.T, torch.tensor(f))
        self.logits = torch.randn(k, n, generator=g, dtype=torch.float64) * 3.0
        self.offsets = 0.1 * torch.randn(b, k, 3, generator=g, dtype=torch.float64)
        self.weights = torch.randn(b, n, 3, generator=g, dtype=torch.float64)
        idx = self.L.indices().numpy()
        self.L_sp = sp.csr_matrix((self.L.values().numpy(), (idx[0], idx[1])), shape=(n, n))
        self._ltl = None
        self.device = torch.device(device)
        self.T_dev = self.T.to(self.device)
        self.weights_dev = self.weights.to(self.device)

    def dense_ltl(self) -> torch.Tensor:
        if self._ltl is None:
            self._ltl = torch.as_tensor((self.L_sp.T @ self.L_sp).toarray())
        return self._ltl

    def inputs(self, device: torch.device | None = None):
        device = device or torch.device("cpu")
        logits = self.logits.to(device).clone().requires_grad_(True)
        A = dependency_matrix(logits)
        H = (A @ self.T.to(device) + self.offsets.to(device)).detach().requires_grad_(True)
        return logits, A, H


def step_ours(p: Problem, system: LaplacianSystem) -> None:
    _, A, H = p.inputs(p.device)
    V = laplacian_solve(system, A, p.T_dev, H)
    (V * p.weights_dev).sum().backward()
    _sync(p.device)


def step_dense(p: Problem) -> None:
    _, A, H = p.inputs()
    LtL = p.dense_ltl()  # fixed per template: built once, outside the timing
    W = LtL + A.T @ A
    rhs = (LtL @ p.T).unsqueeze(0) + A.T @ H  # (B,N,3)
    chol = torch.linalg.cholesky(W)
    V = torch.cholesky_solve(rhs.permute(1, 0, 2).reshape(len(p.T), -1), chol)
    V = V.reshape(len(p.T), H.shape[0], 3).permute(1, 0, 2)
    (V * p.weights).sum().backward()


def step_seed(p: Problem) -> None:
    """The seed's listing, one sample at a time: lsqr forward, dense solve backward."""
    _, A, H = p.inputs()
    An = A.detach().numpy()
    L = p.L_sp
    stacked = sp.vstack([L, sp.csr_matrix(An)]).tocsr()
    delta = L @ p.T.numpy()
    grad_a = np.zeros_like(An)
    grad_h = np.zeros(H.shape)
    for b in range(H.shape[0]):
        Hb = H[b].detach().numpy()
        rhs = np.concatenate([delta, Hb])
        V = np.stack(
            [
                spla.lsqr(stacked, rhs[:, c], atol=1e-12, btol=1e-12, iter_lim=20000)[0]
                for c in range(3)
            ],
            axis=1,
        )
        grad_out = p.weights[b].numpy()
        W = (L.T @ L).toarray() + An.T @ An
        grad_b = scipy.linalg.solve(W, grad_out, assume_a="pos")
        grad_w = -grad_b @ V.T
        grad_h[b] = An @ grad_b
        grad_a += Hb @ grad_b.T + An @ grad_w + An @ grad_w.T
    # Hand the gradients to autograd as the listing's Function would.
    A.backward(torch.as_tensor(grad_a))
    H.grad = torch.as_tensor(grad_h)


def solve_columns(system: LaplacianSystem, rhs: torch.Tensor) -> None:
    system.solve_m(rhs)
    _sync(system.device)


def residual(p: Problem, system: LaplacianSystem) -> float:
    """Largest relative residual ``||W V_b - b_b|| / ||b_b||`` of our solution over the batch."""
    with torch.no_grad():
        _, A, H = p.inputs(p.device)
        V = laplacian_solve(system, A, p.T_dev, H)
        lap = system.laplacian
        base = torch.as_tensor(lap.T @ (lap @ p.T.numpy()), device=p.device)
        worst = 0.0
        for b in range(V.shape[0]):
            rhs = base + A.T @ H[b]
            worst = max(worst, float((system.apply_w(A, V[b]) - rhs).norm() / rhs.norm()))
    return worst


def accuracy_check(p: Problem, system: LaplacianSystem) -> float:
    """Relative difference of our V to the dense solve (small sizes only)."""
    with torch.no_grad():
        _, A, H = p.inputs()
        V = laplacian_solve(system, A.to(p.device), p.T_dev, H.to(p.device)).cpu()
        Ld = p.L.to_dense()
        W = Ld.T @ Ld + A.T @ A
        ref = torch.linalg.solve(W, (Ld.T @ Ld @ p.T).unsqueeze(0) + A.T @ H)
    return float((V - ref).abs().max() / ref.abs().max())


# ----------------------------------------------------------------------------- main


def fmt_time(t: float | None) -> str:
    if t is None:
        return "—"
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def fmt_mem(m: float | None) -> str:
    return "n/a" if m is None else f"{m:.0f} MiB"


def estimate(done: dict, method: str, n: int, k: int, b: int) -> float | None:
    """Expected seconds from earlier runs: O(N^3) in N; the seed loops over samples."""
    guesses = []
    if (method, k, b) in done:
        n0, t0 = done[(method, k, b)]
        guesses.append(t0 * (n / n0) ** 3)
    if (method, k, 1) in done and done[(method, k, 1)][0] == n:
        guesses.append(done[(method, k, 1)][1] * (b if method == "seed" else 1))
    return min(guesses) if guesses else None


def run_case(p: Problem, n: int, k: int, b: int, system: LaplacianSystem, done: dict, args):
    big = n >= 40962
    t_ours, m_ours = measure(lambda: step_ours(p, system), 2 if big else 5)
    results = {}
    for name, fn in (("seed", lambda: step_seed(p)), ("dense", lambda: step_dense(p))):
        if n > args.ref_max_n:
            results[name] = (None, None, "")
            continue
        guess = estimate(done, name, n, k, b)
        if guess is not None and guess > args.budget:
            results[name] = (None, None, f" (skipped: est. {guess:.0f} s)")
            continue
        reps = 1 if n >= 10242 or (guess is not None and guess > 5) else 2
        t, m = measure(fn, reps)
        done[(name, k, b)] = (n, t)
        results[name] = (t, m, " (1 run)" if reps == 1 else "")
    with torch.no_grad():
        basis = EditingBasis(system, dependency_matrix(p.logits).to(p.device), p.T_dev)
    offsets = p.offsets[0].numpy().copy()
    calls = []

    def drag() -> None:
        offsets[len(calls) % k] += 1e-3
        calls.append(1)
        basis.deform(offsets)

    t_edit = statistics.median([measure(drag, 1)[0] for _ in range(200 if not big else 50)])
    err = accuracy_check(p, system) if n <= 2562 else None
    return t_ours, m_ours, results, t_edit, err, residual(p, system)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N <= 2562, K = 16, B in {1, 8}")
    parser.add_argument(
        "--budget", type=float, default=90.0, help="skip reference runs estimated above this (s)"
    )
    parser.add_argument(
        "--ref-max-n", type=int, default=10242, help="largest N for the reference methods"
    )
    parser.add_argument("--sizes", help=f"comma-separated N (from {sorted(SUBDIV)})")
    parser.add_argument("--handles", help="comma-separated K (default 16,32)")
    parser.add_argument("--batches", help="comma-separated B (default 1,32)")
    parser.add_argument("--device", default="cpu", help="where (c) runs: cpu or cuda")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(True)
    sizes = [642, 2562] if args.quick else [642, 2562, 10242, 40962, 163842]
    ks = [16] if args.quick else [16, 32]
    bs = [1, 8] if args.quick else [1, 32]
    if args.sizes:
        sizes = [int(n) for n in args.sizes.split(",")]
        unknown = sorted(set(sizes) - set(SUBDIV))
        if unknown:
            parser.error(f"no icosphere with N in {unknown}: choose from {sorted(SUBDIV)}")
    if args.handles:
        ks = [int(k) for k in args.handles.split(",")]
    if args.batches:
        bs = [int(b) for b in args.batches.split(",")]

    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, (c) on {where}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        "| N | K | B | (a) seed fwd+bwd | (a) peak | (b) dense fwd+bwd | (b) peak | "
        "(c) factor | (c) fwd+bwd | (c) peak | (a)/(c) | (b)/(c) | edit update | "
        "(c) vs dense | (c) residual |"
    )
    print("|" + "---|" * 15)
    done: dict[tuple, tuple[int, float]] = {}  # (method, k, b) -> (n, seconds)
    column_ms: dict[int, float] = {}  # n -> ms per column of a 32-column solve with the factor
    for n in sizes:
        L = Problem(n, 1, 1).L.to(device)
        t0 = time.perf_counter()
        system = LaplacianSystem(L)
        _sync(device)
        t_factor = time.perf_counter() - t0
        rhs = torch.randn(n, 32, dtype=torch.float64, device=device)
        column_ms[n] = 1e3 * measure(partial(solve_columns, system, rhs), 3)[0] / 32
        for k in ks:
            for b in bs:
                p = Problem(n, k, b, device=args.device)
                if n <= args.ref_max_n:
                    p.dense_ltl()
                row = run_case(p, n, k, b, system, done, args)
                t_ours, m_ours, results, t_edit, err, res = row
                (ta, ma, na), (tb, mb, nb) = results["seed"], results["dense"]
                ratio_a = f"{ta / t_ours:.0f}x" if ta else "—"
                ratio_b = f"{tb / t_ours:.0f}x" if tb else "—"
                err_text = "—" if err is None else f"{err:.1e}"
                print(
                    f"| {n} | {k} | {b} | {fmt_time(ta)}{na} | {fmt_mem(ma) if ta else '—'} | "
                    f"{fmt_time(tb)}{nb} | {fmt_mem(mb) if tb else '—'} | {fmt_time(t_factor)} | "
                    f"{fmt_time(t_ours)} | {fmt_mem(m_ours)} | {ratio_a} | {ratio_b} | "
                    f"{t_edit * 1e3:.3f} ms | {err_text} | {res:.1e} |",
                    flush=True,
                )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(
        "sparse solve per column (32 columns at once, cached factor; a training step needs "
        "about 2K columns): " + ", ".join(f"N={n}: {ms:.2f} ms" for n, ms in column_ms.items())
    )
    print(
        "\n(c) fwd+bwd uses the cached factorisation; 'edit update' is EditingBasis.deform for a "
        "one-handle drag (median). Peak = RSS high-water mark growth during one step. "
        "'(c) vs dense' = max|V - V_dense| / max|V_dense| (N <= 2562); '(c) residual' = "
        "max_b ||W V_b - b_b|| / ||b_b||."
    )


if __name__ == "__main__":
    main()
