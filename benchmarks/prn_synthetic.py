"""PRN on held-out synthetic human motion: MPJPE (mm) and e3D of PRN against both baselines.

Trains a PRN on the learned setting's synthetic set
(:data:`engine.io.keypoints.LEARNED_SYNTHETIC_SPEC`: 500 motion clips, 100,000 frames) with
the default settings (or evaluates an existing checkpoint, e.g. the shipped demo), then
reconstructs held-out sequences (``split=test``: seed + 1000, other subjects, motions and
cameras) with the network and with the baselines. The classic low-rank
baseline runs in the NRSfM setting on the held-out frames themselves (it has no training
phase), PRN only sees them at test time.
Each training seed draws its own training set and weights; the held-out set stays the same.
A held-out set of more than ``--block`` frames is scored in blocks of that many (10 motion clips
each by default): the baselines are fitted to each block, PRN reconstructs each, and the table
gives the frame-weighted means (both metrics are means over frames).

    python benchmarks/prn_synthetic.py --checkpoint assets/demo_prn.pt
    python benchmarks/prn_synthetic.py --seeds 0,1,2 --threads 1
    python benchmarks/prn_synthetic.py --seeds 0,1,2 --threads 1 \
        --test "synthetic:human?split=test&frames=20000"
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.io.keypoints import LEARNED_SYNTHETIC_SPEC


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="evaluate this checkpoint instead of training")
    parser.add_argument(
        "--train",
        default=LEARNED_SYNTHETIC_SPEC,
        help=f"training data spec (default {LEARNED_SYNTHETIC_SPEC})",
    )
    parser.add_argument(
        "--test", default="synthetic:human?split=test&frames=2000", help="held-out data spec"
    )
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--hidden", type=int)
    parser.add_argument(
        "--seeds", default="0", help="comma-separated training seeds, one PRN each (default 0)"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--block", type=int, default=2000, help="held-out frames per baseline fit (default 2000)"
    )
    parser.add_argument("--save", metavar="DIR", help="also write each trained PRN to DIR/seedS.pt")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from engine.io.keypoints import load_dataset
    from engine.prn import TrainConfig, Trainer, load_model

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}"
    )
    # The held-out set does not depend on the training seed (the spec's own seed, else 0).
    test = load_dataset(args.test)
    models = {}
    if args.checkpoint:
        model, ckpt = load_model(args.checkpoint)
        models["PRN"] = model
        print(f"PRN: checkpoint {args.checkpoint} (step {ckpt.step}); {_settings(ckpt.config)}")
    else:
        for seed in [int(s) for s in args.seeds.split(",")]:
            cfg = TrainConfig(data=args.train, seed=seed, eval_every=10**9)
            if args.iterations:
                cfg.iterations = args.iterations
            if args.hidden:
                cfg.hidden = args.hidden
            trainer = Trainer(cfg)
            start = time.perf_counter()
            trainer.run()
            name = "PRN" if args.seeds == "0" else f"PRN seed {seed}"
            print(
                f"{name}: trained {trainer.step} steps in {time.perf_counter() - start:.0f} s; "
                f"{_settings(trainer.config)}"
            )
            models[name] = trainer.model
            if args.save:
                Path(args.save).mkdir(parents=True, exist_ok=True)
                trainer.save_checkpoint(Path(args.save) / f"seed{seed}.pt")
    rows = _blockwise(test, models, max(1, args.block))
    print(
        f"held-out: {args.test} ({test.num_frames} frames x {test.num_points} joints, "
        f"baselines fitted to blocks of at most {args.block} frames)"
    )
    print("| method | MPJPE (mm) | e3D |")
    print("|---|---|---|")
    for name, m in rows.items():
        print(f"| {name} | {m['mpjpe']:.1f} | {m['e3d']:.4f} |")
    return 0


def _blockwise(test, models: dict, block: int) -> dict[str, dict[str, float]]:
    """:func:`engine.prn.reconstruct.evaluate_methods` on consecutive blocks of ``block``
    frames, combined as frame-weighted means."""
    from engine.prn.reconstruct import evaluate_methods

    sums: dict[str, dict[str, float]] = {}
    for start in range(0, test.num_frames, block):
        part = test.subset(slice(start, min(start + block, test.num_frames)))
        for name, m in evaluate_methods(part, models).items():
            row = sums.setdefault(name, {"mpjpe": 0.0, "e3d": 0.0})
            for key in row:
                row[key] += m[key] * part.num_frames / test.num_frames
    return sums


def _settings(cfg) -> str:
    """The resolved settings that decide the result, in one line."""
    g = (
        f"log-sum (scale {cfg.logsum_eps:g}) from step {cfg.logsum_from}"
        if cfg.logsum
        else "nuclear norm"
    )
    return (
        f"hidden {cfg.hidden}, {cfg.iterations} iterations, lambda {cfg.lam:g}, g {g}, "
        f"depth-sign weight {cfg.mirror_weight:g}, data {cfg.data}"
    )


if __name__ == "__main__":
    sys.exit(main())
