"""``python main.py mesh info FILE``: a mesh's size and quality report, without opening a window."""

from __future__ import annotations

import argparse

from engine.cli.common import guarded


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``mesh`` command and its ``info`` sub-command."""
    mesh = subparsers.add_parser("mesh", help="inspect mesh files")
    commands = mesh.add_subparsers(dest="mesh_command", title="mesh commands")
    mesh.set_defaults(func=lambda args: (mesh.print_help(), 2)[1])
    p = commands.add_parser(
        "info",
        help="print a mesh's size and quality report",
        description="Components, open boundary loops, non-manifold edges, degenerate faces, "
        "unused vertices and texture coordinates of a mesh file. Exit code 0 for a readable "
        "mesh (problems are reported, not errors), 2 for an unreadable one.",
    )
    p.add_argument("file", metavar="FILE", help="PLY/OBJ/STL/VTK/VTP mesh")
    p.set_defaults(func=guarded(_info))


def _info(args: argparse.Namespace) -> int:
    from engine.io.mesh import load_mesh

    mesh = load_mesh(args.file)
    quality = mesh.quality()
    print(f"{args.file}: {quality.summary()}")
    uv = "none" if mesh.uv is None else f"{len(mesh.uv):,} uv coordinates"
    print(f"texture coordinates: {uv}")
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    print(f"bounding box: {lo.round(4).tolist()} .. {hi.round(4).tolist()}")
    return 0
