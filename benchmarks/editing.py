"""Per-drag engine work of interactive Laplacian editing: ``EditingBasis.deform`` (``T + B_A
Delta``, incremental when one handle moves) against re-solving with the cached factorisation
(``laplacian_solve`` under ``torch.no_grad``), on icospheres. The GUI's budget is 5 ms per drag.

Also reports the one-off cost of ``build_editing_basis`` (Laplacian, handles, factorisation,
``B_A``), which the GUI runs off its thread with a progress bar.

Run ``python benchmarks/editing.py`` (a few minutes on 2 CPU cores) or ``--quick``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.deform.editing import build_editing_basis
from engine.deform.solve import laplacian_solve
from engine.geometry.primitives import icosphere

SUBDIV = {642: 3, 2562: 4, 10242: 5, 40962: 6, 163842: 7}


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N in {2562, 10242}")
    parser.add_argument("--handles", type=int, default=32, help="K (default 32)")
    args = parser.parse_args(argv)
    sizes = [2562, 10242] if args.quick else [10242, 40962, 163842]
    k = args.handles
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, CPU, K = {k}")
    print(
        "| N | build basis (once) | drag: EditingBasis.deform | all handles moved | "
        "re-solve (cached factor) | re-solve / drag | max rel diff |"
    )
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in sizes:
        v, f = icosphere(SUBDIV[n])
        start = time.perf_counter()
        basis = build_editing_basis(v, f, num_handles=k)
        t_build = time.perf_counter() - start
        offsets = np.zeros((k, 3))

        def drag(offsets=offsets, basis=basis, state=[0]) -> None:  # noqa: B006
            offsets[state[0] % k] += 1e-3  # the GUI moves one handle per mouse event
            state[0] += 1
            basis.deform(offsets)

        def move_all(basis=basis) -> None:
            basis.deform(rng.normal(scale=0.01, size=(k, 3)))

        reps = 300 if n < 163842 else 100
        t_drag = median_time(drag, reps)
        t_all = median_time(move_all, reps // 3)
        A = torch.as_tensor(basis.dependency)
        T = torch.as_tensor(basis.template)
        rest = A @ T

        def resolve(A=A, T=T, rest=rest, basis=basis, offsets=offsets):
            with torch.no_grad():
                return laplacian_solve(basis.system, A, T, rest + torch.as_tensor(offsets))

        t_solve = median_time(resolve, 5 if n < 163842 else 3)
        ref = resolve().numpy()
        got = basis.deform(offsets)
        diff = np.abs(got - ref).max() / np.abs(ref).max()
        print(
            f"| {n} | {t_build:.2f} s | {t_drag * 1e3:.3f} ms | {t_all * 1e3:.2f} ms | "
            f"{t_solve * 1e3:.0f} ms | {t_solve / t_drag:.0f}x | {diff:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
