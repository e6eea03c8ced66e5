"""PRN in the NRSfM setting: train on each benchmark sequence's own 2D, compare with baselines.

For every ``.mat`` in ``../shared/data/nrsfm/`` (beside the repository; the script exits with a
message when it is absent) a PRN is trained with the DEFAULT settings of
:class:`engine.prn.TrainConfig` on that sequence's 2D points only, then the normalised error
e3D of PRN, the all-zero-depth baseline and the classic low-rank NRSfM baseline are printed in
one table with the training time. Target: PRN e3D <= half of zero depth and below the classic
baseline, training <= 5 minutes per sequence on a 2-core CPU.

    python benchmarks/prn_nrsfm.py                 # all sequences, default settings
    python benchmarks/prn_nrsfm.py --sequences pickup,face --iterations 500
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nrsfm_sequences  # beside this script: shared with the other NRSfM benchmark

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    nrsfm_sequences.add_arguments(parser)
    parser.add_argument("--iterations", type=int, help="override the default iterations")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    paths = nrsfm_sequences.chosen(args)
    if paths is None:
        return 1

    import torch

    from engine.io.keypoints import load_dataset
    from engine.prn import TrainConfig, Trainer
    from engine.prn.reconstruct import evaluate_methods

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}"
    )
    rows = []
    settings = ""
    for path in paths:
        name = path.stem
        seq = load_dataset(str(path))
        cfg = TrainConfig(data=str(path), seed=args.seed, eval_every=10**9)
        if args.iterations:
            cfg.iterations = args.iterations
        trainer = Trainer(cfg, seq)
        used = trainer.config
        settings = (
            f"hidden {used.hidden}, {used.iterations} iterations, lambda {used.lam}, lr "
            f"{used.lr:g} x{used.lr_decay:g} every {used.lr_step} steps, reflections "
            f"{'on' if used.reflections else 'off'}, g the nuclear norm"
            + (
                f" then the log-sum penalty from step {used.logsum_from} (scale "
                f"{used.logsum_eps:g} sqrt(group))"
                if used.logsum
                else ""
            )
            + "; batch = one alignment group of the size shown"
        )
        start = time.perf_counter()
        trainer.run()
        seconds = time.perf_counter() - start
        if trainer.state != "finished":
            print(f"{name}: training {trainer.state}: {trainer.error}")
            continue
        res = evaluate_methods(seq, {"PRN": trainer.model})
        classic_name = next(k for k in res if k not in ("PRN", "zero_depth"))
        prn, zero, classic = (res[k]["e3d"] for k in ("PRN", "zero_depth", classic_name))
        ok = prn <= 0.5 * zero and prn < classic and seconds <= 300
        rows.append(
            (name, seq.num_frames, used.group_size, prn, zero, classic, seconds, ok, classic_name)
        )
        print(
            f"  {name}: PRN {prn:.4f}, zero depth {zero:.4f}, classic {classic:.4f}, {seconds:.0f} s",
            flush=True,
        )

    print()
    print(f"PRN default settings as resolved for these sequences: {settings}")
    classic_label = rows[0][8] if rows else "classic"
    print(
        f"| sequence | frames | group | PRN e3D | zero-depth e3D | {classic_label} e3D | "
        "PRN / zero | PRN train time (s) | target met |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, frames, group, prn, zero, classic, seconds, ok, _ in rows:
        print(
            f"| {name} | {frames} | {group} | {prn:.4f} | {zero:.4f} | {classic:.4f} | "
            f"{prn / zero:.2f} | {seconds:.0f} | {'yes' if ok else 'no'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
