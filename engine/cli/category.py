"""``python main.py category ...``: batch commands for learning a category from images.

    python main.py category make-synthetic --out DIR [--template MESH] [--instances N] [--size PX] [--seed S]

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
        "with hidden ground truth.",
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
