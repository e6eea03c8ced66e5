"""Entry point: opens the workbench window by default; subcommands do batch work.

    python main.py                       # the app on its built-in demo
    python main.py --mesh horse.obj      # the app on a given mesh
    python main.py train --data synthetic:human --out run.pt
    python main.py reconstruct|evaluate ...

Errors a user can cause end in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from engine.cli import register_commands

    parser = argparse.ArgumentParser(
        prog="main.py",
        description="Workbench for learning and editing non-rigid 3D shape: interactive "
        "Laplacian handle editing, Procrustean Regression Network training, reconstruction "
        "comparison and PCA deformation modes. With no command it opens the window.",
    )
    parser.add_argument(
        "--mesh", metavar="FILE", help="open this mesh (PLY/OBJ/STL/VTK) in the editor"
    )
    parser.add_argument("--checkpoint", metavar="CKPT", help="load this PRN checkpoint in the app")
    parser.add_argument("--handles", type=int, metavar="K", help="number of handles on the mesh")
    parser.add_argument(
        "--device",
        dest="app_device",
        metavar="cpu|cuda",
        help="compute device of the app's engine for this session (default: cuda when "
        "present, else cpu; the same as setting SHAPEBENCH_DEVICE)",
    )
    sub = parser.add_subparsers(dest="command", title="commands (batch work, no window)")
    register_commands(sub)
    return parser


def _check_app_arguments(args: argparse.Namespace) -> str | None:
    """What keeps the app from opening with ``args`` (one line), or None. Runs before any
    window exists: a device the engine cannot use, a mesh file the engine cannot read."""
    import os

    from engine.core.device import default_device, resolve_device

    if args.app_device is not None:
        try:
            device = resolve_device(args.app_device)
        except ValueError as exc:
            return f"--device {args.app_device}: {exc}"
        # The engine reads its device from here for the whole session (engine.core.device).
        os.environ["SHAPEBENCH_DEVICE"] = str(device)
    try:
        default_device()
    except ValueError as exc:
        return str(exc)
    if args.mesh:
        from engine.core.errors import InputError
        from engine.io.mesh import load_mesh

        try:
            load_mesh(args.mesh)
        except InputError as exc:
            return str(exc)
        except OSError as exc:
            return f"{args.mesh}: {exc.strerror or exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is not None:
        return args.func(args)
    problem = _check_app_arguments(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from app.application import run_app

    return run_app(args)


if __name__ == "__main__":
    sys.exit(main())
