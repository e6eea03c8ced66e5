"""PRN with missing 2D points (seed 000, Table 1): MPJPE for 0, 5, 10, 15, 20 % missing.

For each ratio a PRN is trained on the synthetic human set with that fraction of its 2D inputs
removed at random (input 0, excluded from f) and tested on held-out sequences with the same
fraction removed (the 3D ground truth stays complete). The paper's numbers (Human3.6M,
70k iterations, hidden 1024) are printed alongside for the trend, not for the values.

    python benchmarks/prn_missing.py                       # default: 1500 iterations, hidden 256
    python benchmarks/prn_missing.py --iterations 3000 --hidden 512
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAPER = {0: 66.7, 5: 69.8, 10: 70.8, 15: 72.1, 20: 73.8}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="synthetic:human?frames=10000")
    parser.add_argument("--test", default="synthetic:human?split=test&frames=2000")
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--ratios", default="0,5,10,15,20", help="percent, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from engine.io.keypoints import load_dataset, with_missing
    from engine.nrsfm.metrics import evaluate
    from engine.prn import TrainConfig, Trainer
    from engine.prn.reconstruct import reconstruct

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}"
    )
    train = load_dataset(args.train, seed=args.seed)
    test = load_dataset(args.test, seed=args.seed)
    rows = []
    for pct in (int(r) for r in args.ratios.split(",")):
        cfg = TrainConfig(
            data=args.train,
            iterations=args.iterations,
            hidden=args.hidden,
            missing_ratio=pct / 100,
            seed=args.seed,
            eval_every=10**9,
        )
        trainer = Trainer(cfg, train)
        start = time.perf_counter()
        trainer.run()
        seconds = time.perf_counter() - start
        held = with_missing(test, pct / 100, seed=args.seed + 1) if pct else test
        pred = reconstruct(trainer.model, held.points2d, held.visibility)
        m = evaluate(pred, test.points3d)
        rows.append((pct, m["mpjpe"], m["e3d"], seconds))
        print(
            f"  {pct:2d} %: MPJPE {m['mpjpe']:.1f} mm, e3D {m['e3d']:.4f} ({seconds:.0f} s)",
            flush=True,
        )
    print(
        f"train {args.train}, test {args.test}; hidden {args.hidden}, {args.iterations} iterations"
    )
    print("| missing points (%) | " + " | ".join(str(r[0]) for r in rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    print("| PRN MPJPE (mm), synthetic | " + " | ".join(f"{r[1]:.1f}" for r in rows) + " |")
    print("| PRN e3D, synthetic | " + " | ".join(f"{r[2]:.4f}" for r in rows) + " |")
    print(
        "| paper PRN-FCN MPJPE (mm), Human3.6M | "
        + " | ".join(str(PAPER.get(r[0], "-")) for r in rows)
        + " |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
