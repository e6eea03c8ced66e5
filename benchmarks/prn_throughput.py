"""PRN training throughput (frames per second) on the CPU, and on CUDA when present.

Times full training steps (forward, Procrustes alignment of the batch's groups, nuclear norm,
backward, Adam) with the default settings resolved for a 4,000-frame synthetic human set
(17 joints; batches of 256 in groups of 128) for several hidden widths and thread counts, after
a warm-up. Median of repeats; the CPU is shared, so the load average is printed.

    python benchmarks/prn_throughput.py
    python benchmarks/prn_throughput.py --steps 20 --hidden 256,512,1024
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="256,512,1024")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="1,2", help="CPU thread counts to try")
    args = parser.parse_args()

    import torch

    from engine.io.keypoints import load_dataset
    from engine.prn import TrainConfig, Trainer

    data = load_dataset("synthetic:human?frames=4000")
    targets = [("cpu", int(t)) for t in args.threads.split(",")]
    if torch.cuda.is_available():
        targets.append(("cuda", torch.get_num_threads()))
    default_threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    print("| device | threads | hidden | batch | s/step | frames/s |")
    print("|---|---|---|---|---|---|")
    for device, threads in targets:
        torch.set_num_threads(threads)
        for hidden in (int(h) for h in args.hidden.split(",")):
            cfg = TrainConfig(
                data="synthetic:human?frames=4000",
                hidden=hidden,
                device=device,
                iterations=10**9,
                eval_every=10**9,
            )
            trainer = Trainer(cfg, data)
            trainer.run(until_step=3)  # warm-up
            times = []
            for _ in range(args.repeats):
                if device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                trainer.run(until_step=trainer.step + args.steps)
                if device == "cuda":
                    torch.cuda.synchronize()
                times.append((time.perf_counter() - start) / args.steps)
            t = statistics.median(times)
            batch = trainer.config.batch_size
            print(
                f"| {device} | {threads} | {hidden} | {batch} | {t:.4f} | {batch / t:.0f} |",
                flush=True,
            )
    torch.set_num_threads(default_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
