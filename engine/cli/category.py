"""``python main.py category ...``: batch commands for learning a category from images.

    python main.py category make-synthetic --out DIR [--template MESH] [--instances N] [--size PX] [--seed S]
    python main.py category train --data DIR|synthetic:quadruped[?..] [--template MESH] ... --out RUN.pt
    python main.py category evaluate --checkpoint RUN.pt --data DIR|synthetic:quadruped[?..] [--json FILE]
    python main.py category reconstruct --checkpoint RUN.pt --data DIR --out REC.npz

Errors a user can cause end in one line on stderr and exit code 2 (:func:`engine.cli.common.guarded`).
"""

from __future__ import annotations

import argparse

from engine.cli.common import guarded


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``category`` command and its sub-commands."""
    from engine.synthetic.category import DEFAULT_INSTANCES, DEFAULT_SOURCE_SIZE

    category = subparsers.add_parser(
        "category",
        help="learn a category's deformable mesh from images (seed 001)",
        description="Commands for image sets of one object category: make a synthetic set "
        "with hidden ground truth, train, evaluate and reconstruct.",
    )
    commands = category.add_subparsers(dest="category_command", title="category commands")
    category.set_defaults(func=lambda args: _missing_command(category))

    p = commands.add_parser(
        "make-synthetic",
        help="write a synthetic articulated category with hidden ground truth",
        description="Pose a template with a skeleton fitted to it automatically (not the "
        "Laplacian deformer that training learns), render short videos from cameras all around "
        "it, and write the image-set folder: images, masks, keypoints, sequences, flow, "
        "cameras.npz, ground_truth.npz, template.ply and template_keypoints.json.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write (new or empty)")
    p.add_argument("--template", metavar="MESH", help="template mesh (default: the demo quadruped)")
    p.add_argument(
        "--template-keypoints",
        metavar="JSON",
        help="{name: vertex index} of the template (default: MESH_keypoints.json beside the "
        "mesh, else limb tips and joints of the fitted skeleton)",
    )
    p.add_argument(
        "--instances",
        type=int,
        default=DEFAULT_INSTANCES["train"],
        metavar="N",
        help=f"number of images (default {DEFAULT_INSTANCES['train']})",
    )
    p.add_argument(
        "--size",
        type=int,
        default=DEFAULT_SOURCE_SIZE,
        metavar="PX",
        help=f"image side in pixels (default {DEFAULT_SOURCE_SIZE})",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.set_defaults(func=guarded(_make_synthetic))

    _register_train(commands)
    _register_evaluate(commands)
    _register_reconstruct(commands)


def _register_train(commands: argparse._SubParsersAction) -> None:
    from engine.category.config import CategoryConfig

    d = CategoryConfig()
    p = commands.add_parser(
        "train",
        help="learn a category's deformable mesh from an image set",
        description="Train the image encoder, the camera multiplex, the deformation database "
        "and the handle dependency matrix A on an image set (seed 001, section 2) and write a "
        "checkpoint (autosaved every --autosave-every steps; a failed run keeps the last good "
        "one).",
    )
    p.add_argument(
        "--data",
        default=d.data,
        metavar="DIR|synthetic:quadruped[?..]",
        help=f"image-set folder or built-in spec (default {d.data})",
    )
    p.add_argument(
        "--template",
        metavar="MESH",
        help="template mesh (default: the set's template.ply, else the demo quadruped)",
    )
    p.add_argument(
        "--template-keypoints",
        metavar="JSON",
        help="{name: vertex index} of the template (default: beside the template)",
    )
    p.add_argument(
        "--handles",
        type=int,
        default=d.handles,
        metavar="K",
        help=f"handles of the deformer (default {d.handles})",
    )
    p.add_argument(
        "--size",
        type=int,
        default=d.size,
        metavar="PX",
        help=f"training image size (default {d.size})",
    )
    p.add_argument(
        "--iterations",
        type=int,
        default=d.iterations,
        metavar="N",
        help=f"steps after the warm-up (default {d.iterations})",
    )
    p.add_argument(
        "--network-steps",
        type=int,
        default=d.network_steps,
        metavar="N",
        help="steps of the final phase that trains only the network on the fixed databases "
        f"(default {d.network_steps})",
    )
    p.add_argument(
        "--hypotheses",
        type=int,
        default=d.hypotheses,
        metavar="N",
        help=f"camera hypotheses per instance (default {d.hypotheses}; 1 with "
        "keypoints starts from rigid structure from motion)",
    )
    p.add_argument(
        "--no-keypoint-init",
        action="store_true",
        help="do not start the cameras from the keypoints (rigid SfM with --hypotheses 1, the keypoint fit of the hypotheses otherwise)",
    )
    p.add_argument(
        "--freeze-dependency", action="store_true", help="keep A at its initial value (a baseline)"
    )
    p.add_argument("--no-motion", action="store_true", help="leave out the motion loss")
    p.add_argument("--no-texture", action="store_true", help="leave out the texture loss")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads")
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default=None,
        help="default: cuda when present, else cpu",
    )
    p.add_argument("--seed", type=int, default=d.seed, metavar="S", help="random seed")
    p.add_argument(
        "--resume", metavar="RUN.pt", help="continue this checkpoint's run (its data and settings)"
    )
    p.add_argument(
        "--autosave-every",
        type=int,
        default=250,
        metavar="N",
        help="steps between autosaves to --out (0 = only at the end; default 250)",
    )
    p.add_argument("--out", required=True, metavar="RUN.pt", help="checkpoint to write")
    p.set_defaults(func=guarded(_train))


def _register_evaluate(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "evaluate",
        help="metrics of a category checkpoint on an image set",
        description="Print mask IoU, PCK, vertex error and camera error of the network "
        "('predicted'), of its cameras with the undeformed template ('template') and of the "
        "training databases ('fit', for images of the training set). Metrics the data cannot "
        "give (PCK without keypoints, errors without ground truth) are '-' (null in --json).",
    )
    p.add_argument("--checkpoint", required=True, metavar="RUN.pt")
    p.add_argument("--data", required=True, metavar="DIR|synthetic:quadruped[?..]")
    p.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None)
    p.set_defaults(func=guarded(_evaluate))


def _register_reconstruct(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "reconstruct",
        help="the network's mesh and camera for every image of a set",
        description="Write REC.npz with vertices (I,N,3) in template units, cameras (I,7) in "
        "the pixels of each source image ([s, tx, ty, qw, qx, qy, qz], see the README's camera "
        "convention), crop_cameras (I,7) in the pixels of the training crops, crops (I,3), "
        "faces (F,3) and names (I,).",
    )
    p.add_argument("--checkpoint", required=True, metavar="RUN.pt")
    p.add_argument("--data", required=True, metavar="DIR")
    p.add_argument("--out", required=True, metavar="REC.npz")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None)
    p.set_defaults(func=guarded(_reconstruct))


def _train(args: argparse.Namespace) -> int:
    import math
    import sys

    import torch
    from tqdm import tqdm

    from engine.category.config import CategoryConfig
    from engine.category.training import CategoryTrainer, resume_trainer
    from engine.core.errors import InputError

    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"expected an integer >= 1, got {args.threads}", field="--threads")
        torch.set_num_threads(args.threads)
    if args.resume:
        trainer = resume_trainer(
            args.resume,
            iterations=args.iterations,
            autosave_path=args.out,
            autosave_every=args.autosave_every,
        )
    else:
        config = CategoryConfig(
            data=args.data,
            template=args.template,
            template_keypoints=args.template_keypoints,
            handles=args.handles,
            size=args.size,
            iterations=args.iterations,
            network_steps=args.network_steps,
            hypotheses=args.hypotheses,
            lr_dependency=0.0 if args.freeze_dependency else CategoryConfig.lr_dependency,
            use_motion=not args.no_motion,
            use_texture=not args.no_texture,
            seed=args.seed,
            device=args.device,
            threads=args.threads,
            extra={"keypoint_init": not args.no_keypoint_init},
        )
        trainer = CategoryTrainer(
            config, autosave_path=args.out, autosave_every=args.autosave_every
        )
    quality = trainer.template.mesh.quality()
    if quality.problems():
        print(f"note: template: {quality.summary()}", file=sys.stderr)
    if trainer.proxy.note:
        print(f"note: render proxy: {trainer.proxy.note}", file=sys.stderr)
    print(
        f"{len(trainer.images)} images ({trainer.config.size} px), template "
        f"{trainer.template.mesh.num_vertices} vertices (rendered with {trainer.proxy.num_faces} "
        f"faces), {trainer.config.handles} handles, {trainer.num_hypotheses} camera hypotheses, "
        f"warm-up {trainer.warmup_steps} steps",
        file=sys.stderr,
    )
    bar = tqdm(
        total=trainer.total_iterations,
        initial=trainer.step,
        unit="step",
        file=sys.stderr,
        dynamic_ncols=True,
    )

    def on_step(event) -> None:
        bar.update(event.step - bar.n)
        bar.set_postfix_str(
            f"{event.phase}, {event.hypotheses} hyp, loss {event.losses['total']:.4g}",
            refresh=False,
        )
        for mark in event.marks:
            bar.write(f"step {event.step}: {mark}", file=sys.stderr)

    trainer.add_callback(on_step)
    try:
        metrics = trainer.run()
    except KeyboardInterrupt:
        bar.close()
        trainer.save_checkpoint(args.out)
        print(f"interrupted at step {trainer.step}; saved {args.out}", file=sys.stderr)
        return 130
    bar.close()
    if trainer.state == "failed":
        print(f"error: {trainer.error}; the last good checkpoint is kept", file=sys.stderr)
        return 1
    if args.autosave_every <= 0:
        trainer.save_checkpoint(args.out)
    text = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if not math.isnan(v))
    print(f"saved {args.out} after {trainer.step} steps ({text})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from engine.category.checkpoint import load_category_run
    from engine.category.evaluate import evaluate_model, format_table
    from engine.io.files import write_text_atomic
    from engine.io.image_sets import load_image_set

    run = load_category_run(args.checkpoint, device=args.device)
    images = load_image_set(args.data, size=run.config.size)
    rows = evaluate_model(run, images)
    print(f"{len(images)} images of {args.data}")
    print(format_table(rows))
    if args.json:
        write_text_atomic(args.json, json.dumps({"methods": rows}, indent=1))
    return 0


def _reconstruct(args: argparse.Namespace) -> int:
    import io

    import numpy as np
    import torch

    from engine.category.checkpoint import load_category_run
    from engine.io.files import write_bytes_atomic
    from engine.io.image_sets import load_image_set
    from engine.render.cameras import uncrop_resize_cameras

    run = load_category_run(args.checkpoint, device=args.device)
    images = load_image_set(args.data, size=run.config.size)
    pred = run.predict(images)
    source = uncrop_resize_cameras(
        torch.as_tensor(pred["cameras"], dtype=torch.float64),
        torch.as_tensor(images.crops, dtype=torch.float64),
        images.size,
    ).numpy()
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        vertices=pred["vertices"].astype(np.float32),
        cameras=source.astype(np.float32),
        crop_cameras=pred["cameras"].astype(np.float32),
        crops=images.crops,
        faces=run.template.mesh.faces,
        names=np.asarray(images.names, dtype=str),
    )
    write_bytes_atomic(args.out, buffer.getvalue())
    print(f"wrote {len(images)} reconstructions to {args.out}")
    return 0


def _missing_command(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _make_synthetic(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engine.core.errors import InputError
    from engine.synthetic.category import make_synthetic

    if args.instances < 1 or not 16 <= args.size <= 1024:
        raise InputError(
            f"expected --instances >= 1 and 16 <= --size <= 1024, got {args.instances} and "
            f"{args.size}"
        )
    bar = None

    def progress(fraction: float, message: str) -> None:
        nonlocal bar
        if bar is None:  # only once rendering starts, so input errors print alone
            bar = tqdm(total=100, desc="rendering", unit="%", leave=False)
        bar.n = round(100 * fraction)
        bar.set_postfix_str(message, refresh=True)

    try:
        folder = make_synthetic(
            args.out,
            template=args.template,
            template_keypoints=args.template_keypoints,
            instances=args.instances,
            size=args.size,
            seed=args.seed,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    print(f"wrote {args.instances} instances ({args.size} x {args.size} px) to {folder}")
    return 0
