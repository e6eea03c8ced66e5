"""Where PRN's cost leads on each NRSfM sequence: its minimisers over free depths, no network.

PRN trains a network to lower ``J = sum_i f(X_i) + lambda g(align(X))`` (seed 000): ``f`` the
2D reprojection error, ``g`` the nuclear norm of the Procrustes-aligned shapes. A network only
chooses WHICH shapes it outputs, so the shapes that minimise J directly bound what training it
well can reach. This script keeps every frame's x, y at the observed 2D (f = 0: the limit of a
small lambda, the best case for f) and minimises g over every frame's depths as free variables
with Adam, once from small random depths (as a new network starts) and once from the ground
truth's depths; then, from the ground truth, it minimises the whole cost ``f + lambda g`` (default
lambda) with x, y free as well; finally, from the small-depth minimiser, the trainer's log-sum
penalty (its second stage on sequences, :func:`engine.nrsfm.losses.log_sum_penalty`). All with the
trainer's normalisation (per frame) and automatic settings, the whole sequence as one alignment
group, as the trainer has it. It prints g of the ground truth and of the minimisers, the e3D
where each ends, and the all-zero-depth and classic ``nrsfm_bmm`` baselines on the same 2D.

If the nuclear-norm minimisers end further from the truth than the classic baseline, and the
truth's g is above theirs, that cost itself prefers shapes worse than the baseline's: a network
that minimises it cannot be expected to beat the baseline there. The last column shows where
the log-sum refinement of that minimiser leads.

    python benchmarks/prn_cost_floor.py --threads 1
    python benchmarks/prn_cost_floor.py --sequences yoga --steps 500
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nrsfm_sequences  # beside this script: shared with the other NRSfM benchmark

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    nrsfm_sequences.add_arguments(parser)
    parser.add_argument("--steps", type=int, default=1500, help="Adam steps per minimisation")
    args = parser.parse_args()
    paths = nrsfm_sequences.chosen(args)
    if paths is None:
        return 1

    import numpy as np
    import torch

    from engine.io.keypoints import load_dataset
    from engine.nrsfm.baselines import nrsfm_baseline, zero_depth
    from engine.nrsfm.losses import log_sum_penalty, nuclear_norm
    from engine.nrsfm.metrics import normalized_error
    from engine.nrsfm.normalize import normalize_2d
    from engine.nrsfm.procrustes import align
    from engine.prn import TrainConfig

    def cost(
        xy: torch.Tensor, depth: torch.Tensor, reflections: bool, logsum: bool = False
    ) -> torch.Tensor:
        """g of the shapes (x, y observed; depth free), one alignment group of all frames: the
        nuclear norm, or the trainer's log-sum penalty."""
        aligned, _ = align(torch.cat([xy, depth[..., None]], dim=-1), reflections=reflections)
        if logsum:
            return log_sum_penalty(aligned, defaults.logsum_eps * len(xy) ** 0.5)
        return nuclear_norm(aligned)

    def minimise(
        xy: torch.Tensor,
        start: torch.Tensor,
        reflections: bool,
        truth: np.ndarray,
        lam: float | None = None,
        logsum: bool = False,
    ) -> tuple[float, float, torch.Tensor]:
        """Adam on the depths from ``start``: g with x, y fixed (``lam`` None), or the whole cost
        ``f + lam g`` with x, y free too. Returns the final g, the e3D there and the depths."""
        depth = start.clone().requires_grad_(True)
        moved = torch.zeros_like(xy, requires_grad=lam is not None)  # x, y minus the observed 2D
        opt = torch.optim.Adam([depth, moved] if lam is not None else [depth], lr=1e-2)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=300, gamma=0.5)
        for _ in range(args.steps):
            loss = cost(xy + moved, depth, reflections, logsum)
            if lam is not None:
                loss = 0.5 * moved.square().sum() + lam * loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            final = float(cost(xy + moved, depth, reflections, logsum))
            shapes = torch.cat([xy + moved, depth[..., None]], dim=-1).numpy()
        return final, normalized_error(shapes, truth), depth.detach()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps")
    rows = []
    for path in paths:
        name = path.stem
        seq = load_dataset(str(path))
        defaults = TrainConfig().resolved(seq.num_frames)
        reflections = bool(defaults.reflections)
        u, _, scale = normalize_2d(seq.points2d)
        xy = torch.as_tensor(u, dtype=torch.float64)
        # The ground truth in the units the network predicts: centred, divided by the 2D scale.
        truth = seq.points3d - seq.points3d.mean(axis=1, keepdims=True)
        truth = truth / scale[:, None, None]
        truth_depth = torch.as_tensor(truth[..., 2], dtype=torch.float64)

        start = time.perf_counter()
        with torch.no_grad():
            g_truth = float(cost(xy, truth_depth, reflections))
        generator = torch.Generator().manual_seed(0)
        small = 0.01 * torch.randn(truth_depth.shape, dtype=torch.float64, generator=generator)
        g_small, e_small, found_depth = minimise(xy, small, reflections, truth)
        g_from_truth, e_from_truth, _ = minimise(xy, truth_depth, reflections, truth)
        _, e_whole, _ = minimise(xy, truth_depth, reflections, truth, lam=defaults.lam)
        _, e_logsum, _ = minimise(xy, found_depth, reflections, truth, logsum=True)
        classic = normalized_error(nrsfm_baseline(seq.points2d), seq.points3d)
        zero = normalized_error(zero_depth(seq.points2d), seq.points3d)
        seconds = time.perf_counter() - start
        found = (g_truth, g_small, e_small, g_from_truth, e_from_truth, e_whole, e_logsum)
        found += (classic, zero)
        rows.append((name, seq.num_frames, *found))
        print(
            f"  {name}: g truth {g_truth:.3f}, minimised {g_small:.3f} (e3D {e_small:.4f}) / "
            f"{g_from_truth:.3f} from the truth (e3D {e_from_truth:.4f}); f + lambda g from "
            f"the truth e3D {e_whole:.4f}; then log-sum e3D {e_logsum:.4f}; nrsfm_bmm {classic:.4f}, "
            f"{seconds:.0f} s",
            flush=True,
        )

    print()
    print(
        "| sequence | frames | g of the truth | g minimised from small depths | its e3D | "
        "g minimised from the truth | its e3D | e3D of f + lambda g minimised from the truth | "
        "e3D of the log-sum penalty minimised from the small-depth minimiser | nrsfm_bmm e3D | "
        "zero-depth e3D |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, frames, g_t, g_s, e_s, g_ft, e_ft, e_w, e_l, classic, zero in rows:
        print(
            f"| {name} | {frames} | {g_t:.3f} | {g_s:.3f} | {e_s:.4f} | {g_ft:.3f} | {e_ft:.4f} | "
            f"{e_w:.4f} | {e_l:.4f} | {classic:.4f} | {zero:.4f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
