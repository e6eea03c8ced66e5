"""Batch commands of ``main.py``: ``train``, ``reconstruct`` and ``evaluate`` a PRN.

    python main.py train --data synthetic:human --out run.pt
    python main.py reconstruct --checkpoint run.pt --data seq.npz --out rec.npz
    python main.py evaluate --checkpoint run.pt --data seq.npz

Every error a user can cause (bad file, bad value, wrong checkpoint) ends in one line on stderr
and exit code 2. Heavy modules (torch, the engine) are imported inside the commands so that
``python main.py --help`` stays quick.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.cli.common import device_from, guarded

_DATA_HELP = (
    "keypoint file (.npz with points2d[, points3d, visibility], or NRSfM .mat with X or W/S), "
    "or 'synthetic:human' (the built-in synthetic human motion set)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train``, ``reconstruct`` and ``evaluate`` sub-commands; each sets ``func``."""
    from engine.prn.config import (
        LARGE_DATA_ITERATIONS,
        SEQUENCE_ITERATIONS,
        SEQUENCE_MAX_FRAMES,
        WARM_ITERATIONS,
        WARM_LR,
        TrainConfig,
    )

    d = TrainConfig()
    p = subparsers.add_parser(
        "train",
        help="train a PRN on 2D keypoints and save a checkpoint",
        description="Train a Procrustean Regression Network on the 2D keypoints of a data set "
        "(3D ground truth, when present, is used only for the metrics shown) and write a "
        "checkpoint. The checkpoint is also saved every --autosave-every steps, so a failed "
        "run keeps its last good state.",
    )
    p.add_argument(
        "--data",
        default=d.data,
        metavar="PATH|synthetic:human",
        help=_DATA_HELP + f" (default {d.data})",
    )
    p.add_argument(
        "--iterations",
        type=int,
        default=None,
        metavar="N",
        help=f"optimiser steps (default: {WARM_ITERATIONS} for data of at most "
        f"{SEQUENCE_MAX_FRAMES} frames, {SEQUENCE_ITERATIONS} there with --no-warm-start, "
        f"else {LARGE_DATA_ITERATIONS})",
    )
    p.add_argument(
        "--lambda",
        dest="lam",
        type=float,
        default=d.lam,
        metavar="L",
        help="weight of the low-rank term g (default: 0.01 for data of at most 2048 frames, "
        "else 0.1)",
    )
    p.add_argument(
        "--hidden",
        type=int,
        default=d.hidden,
        metavar="H",
        help=f"hidden width (default {d.hidden})",
    )
    p.add_argument(
        "--missing-ratio",
        type=float,
        default=d.missing_ratio,
        metavar="R",
        help="fraction of 2D inputs removed at random, 0..0.9 (default 0)",
    )
    p.add_argument(
        "--seed", type=int, default=d.seed, metavar="S", help=f"random seed (default {d.seed})"
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default=None,
        help="default: cuda when present, else cpu",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        metavar="LR",
        help=f"Adam start learning rate (default: {WARM_LR:g} for data of at most "
        f"{SEQUENCE_MAX_FRAMES} frames, 1e-3 halved every 1000 steps there with "
        "--no-warm-start, else 1e-4 x0.8 every 5000 steps)",
    )
    p.add_argument(
        "--no-warm-start",
        dest="warm_start",
        action="store_false",
        default=None,
        help=f"on data of at most {SEQUENCE_MAX_FRAMES} frames, train from random weights "
        "(nuclear norm, then log-sum) instead of starting from the classic NRSfM "
        "reconstruction (nrsfm_bmm) of the same 2D",
    )
    p.add_argument(
        "--align-max-iter",
        type=int,
        default=d.align_max_iter,
        metavar="N",
        help="at most N sweeps of the Procrustes alignment in g per step; groups that do not "
        f"converge are counted and reported at the end (default {d.align_max_iter})",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=d.eval_every,
        metavar="N",
        help=f"steps between evaluations (default {d.eval_every})",
    )
    p.add_argument(
        "--autosave-every",
        type=int,
        default=500,
        metavar="N",
        help="steps between checkpoint saves, 0 = only at the end (default 500)",
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for torch (default: torch's choice; 1 is often faster on a busy CPU)",
    )
    p.add_argument("--out", required=True, metavar="CKPT", help="checkpoint file to write (.pt)")
    p.set_defaults(func=guarded(_train))

    p = subparsers.add_parser(
        "reconstruct",
        help="reconstruct 3D points from 2D keypoints with a trained PRN",
        description="Reconstruct every frame of a keypoint file with a PRN checkpoint and write "
        "an .npz with points3d (F,P,3) in the input's camera frame and units (depth centred "
        "per frame), points2d and, when present, visibility, names and edges.",
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="PRN checkpoint (.pt)")
    p.add_argument("--data", required=True, metavar="PATH", help=_DATA_HELP)
    p.add_argument("--out", required=True, metavar="OUT.npz", help="output .npz file")
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default=None,
        help="default: cuda when present, else cpu",
    )
    p.set_defaults(func=guarded(_reconstruct))

    p = subparsers.add_parser(
        "evaluate",
        help="print MPJPE and e3D of a PRN next to the baselines",
        description="Reconstruct a keypoint file that has 3D ground truth with a PRN checkpoint "
        "and with the baselines, and print MPJPE (units of the data) and the normalised error "
        "e3D of each in one table (depth sign chosen per frame).",
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="PRN checkpoint (.pt)")
    p.add_argument(
        "--data", required=True, metavar="PATH", help=_DATA_HELP + "; must hold 3D ground truth"
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default=None,
        help="default: cuda when present, else cpu",
    )
    p.set_defaults(func=guarded(_evaluate))


def _train(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from tqdm import tqdm

    from engine.core.errors import InputError
    from engine.io.keypoints import load_dataset
    from engine.prn.config import TrainConfig
    from engine.prn.training import Trainer

    out = Path(args.out)
    if not out.parent.is_dir():
        raise InputError("the output folder does not exist", path=out.parent, field="--out")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"expected an integer >= 1, got {args.threads}", field="--threads")
        import torch

        torch.set_num_threads(args.threads)
    if args.autosave_every < 0:
        raise InputError(
            f"expected an integer >= 0, got {args.autosave_every}", field="--autosave-every"
        )
    config = TrainConfig(
        data=args.data,
        iterations=args.iterations,
        lam=args.lam,
        hidden=args.hidden,
        missing_ratio=args.missing_ratio,
        seed=args.seed,
        device=None if args.device is None else str(device_from(args)),
        lr=args.lr,
        warm_start=args.warm_start,
        align_max_iter=args.align_max_iter,
        eval_every=args.eval_every,
    )
    try:
        config.validate()
    except InputError as exc:
        flag = {"lam": "lambda"}.get(exc.field or "", exc.field or "")
        raise InputError(exc.problem, field="--" + flag.replace("_", "-")) from None
    sequence = load_dataset(config.data, seed=config.seed)
    trainer = Trainer(config, sequence, autosave_path=out)
    used = trainer.config
    # 0 means only at the end, which the automatic settings decide.
    trainer.autosave_every = args.autosave_every or used.iterations
    print(
        f"training PRN (hidden {used.hidden}, lambda {used.lam:g}, lr {used.lr:g}, batch "
        f"{used.batch_size} in groups of {used.group_size}, reflections "
        f"{'on' if used.reflections else 'off'}, g {_penalty(used)}"
        f"{', started from nrsfm_bmm' if used.warm_start else ''}) on {used.data}: "
        f"{sequence.num_frames} frames x "
        f"{sequence.num_points} points, {used.iterations} steps on {trainer.device}",
        file=sys.stderr,
    )
    skipped = len(trainer.skipped_frames)
    if skipped:
        print(
            f"note: {skipped} of {sequence.num_frames} frames have fewer than 2 distinct visible "
            "points and are left out of training (they are still evaluated)",
            file=sys.stderr,
        )
    bar = tqdm(total=used.iterations, unit="step", file=sys.stderr, dynamic_ncols=True)

    def on_step(event: Any) -> None:
        bar.update(event.step - bar.n)
        post = {"f": f"{event.losses['f']:.3g}", "g": f"{event.losses['g']:.3g}"}
        if trainer.metrics:
            post.update({k: f"{v:.4g}" for k, v in trainer.metrics.items()})
        if event.step % 10 == 0 or event.metrics is not None:
            bar.set_postfix(post, refresh=False)

    trainer.add_callback(on_step)
    start = time.perf_counter()
    try:
        metrics = trainer.run()
    finally:
        bar.close()
    if trainer.state == "failed":
        print(f"error: {trainer.error}", file=sys.stderr)
        if out.exists():
            print(f"the last good checkpoint is kept in {out}", file=sys.stderr)
        _warn_not_converged(trainer)
        return 1
    trainer.save_checkpoint(out)
    last = trainer.history[-1] if trainer.history else {}
    print(
        f"trained {len(trainer.history)} steps in {time.perf_counter() - start:.1f} s; "
        "final losses: " + ", ".join(f"{k} {v:.4g}" for k, v in last.items())
    )
    if metrics:
        print(
            "metrics on the training data: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        )
    print(f"checkpoint written to {out}")
    _warn_not_converged(trainer)
    return 0


def _warn_not_converged(trainer: Any) -> None:
    """One stderr line per warning of the run (collapse to flat depth, restarts), and one when
    some alignments in g stopped at ``align_max_iter`` sweeps."""
    if trainer.restarts_done:
        print(
            f"note: the reconstruction collapsed to flat depth {trainer.restarts_done} time(s) "
            "and training restarted from other weights",
            file=sys.stderr,
        )
    for text in trainer.warnings:
        print(f"warning: {text}", file=sys.stderr)
    count = trainer.align_not_converged
    if count <= 0:
        return
    cfg = trainer.config
    done = trainer.step * (cfg.batch_size // cfg.group_size)
    sweeps = f"{cfg.align_max_iter} sweep" + ("s" if cfg.align_max_iter != 1 else "")
    print(
        f"warning: {count} of {done} Procrustes alignments (groups of {cfg.group_size} frames) "
        f"did not converge within {sweeps}; their gradients were approximate "
        "(try a larger --align-max-iter)",
        file=sys.stderr,
    )


def _penalty(config: Any) -> str:
    """The low-rank term g of a resolved config, in words."""
    text = "nuclear norm"
    if config.logsum and config.logsum_from == 0:
        text = f"log-sum (scale {config.logsum_eps:g})"
    elif config.logsum:
        text += f", log-sum (scale {config.logsum_eps:g}) from step {config.logsum_from}"
    if config.mirror_weight:
        text += f", depth-sign term {config.mirror_weight:g}"
    return text


def _load(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from engine.core.errors import DataError
    from engine.io.keypoints import load_dataset
    from engine.prn.checkpoint import load_model

    device = device_from(args)
    model, ckpt = load_model(args.checkpoint, device=device)
    sequence = load_dataset(args.data)
    if sequence.num_points != ckpt.num_points:
        raise DataError(
            f"the data has {sequence.num_points} points per frame, but the network of checkpoint "
            f"{args.checkpoint} takes {ckpt.num_points} points",
            path=args.data,
            field="points2d",
        )
    return model, ckpt, sequence


def _reconstruct(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.core.errors import InputError
    from engine.io.keypoints import KeypointSequence, save_keypoints
    from engine.prn.reconstruct import reconstruct

    out = Path(args.out)
    if out.suffix.lower() != ".npz":
        raise InputError("expected an output file name ending in .npz", path=out, field="--out")
    if not out.parent.is_dir():
        raise InputError("the output folder does not exist", path=out.parent, field="--out")
    model, ckpt, seq = _load(args)
    points3d = reconstruct(model, seq.points2d, seq.visibility)
    description = dict(seq.description)
    description.update(reconstructed_by=str(args.checkpoint), checkpoint_step=ckpt.step)
    result = KeypointSequence(
        points2d=seq.points2d,
        points3d=points3d,
        visibility=seq.visibility,
        names=seq.names,
        edges=seq.edges,
        description=description,
    )
    save_keypoints(out, result)
    print(f"reconstructed {seq.num_frames} frames x {seq.num_points} points -> {out}")
    return 0


def format_table(rows: dict[str, dict[str, float]], units: str = "") -> str:
    """Aligned text table of ``{method: {'mpjpe', 'e3d'}}`` (one line per method)."""
    head_mpjpe = f"MPJPE{f' ({units})' if units else ''}"
    width = max([len("method"), *(len(n) for n in rows)])
    lines = [f"{'method':<{width}}  {head_mpjpe:>14}  {'e3D':>8}"]
    lines.append("-" * len(lines[0]))
    for name, m in rows.items():
        lines.append(f"{name:<{width}}  {m['mpjpe']:>14.4f}  {m['e3d']:>8.4f}")
    return "\n".join(lines)


def _evaluate(args: argparse.Namespace) -> int:
    from engine.core.errors import DataError
    from engine.prn.reconstruct import evaluate_methods

    model, _ckpt, seq = _load(args)
    if seq.points3d is None:
        raise DataError(
            "evaluation needs 3D ground truth (points3d) in the data",
            path=args.data,
            field="points3d",
        )
    rows = evaluate_methods(seq, {"PRN": model})
    print(
        f"{args.data}: {seq.num_frames} frames x {seq.num_points} points; depth sign chosen per "
        "frame, MPJPE in the data's units"
    )
    print(format_table(rows))
    return 0
