"""Batch commands of ``main.py`` (no window), one module per subject:

    python main.py train|reconstruct|evaluate ...      PRN on keypoints        (engine.cli.prn)
    python main.py category make-synthetic|train ...    a category from images  (engine.cli.category)
    python main.py mesh info FILE                       a mesh's quality report (engine.cli.mesh)

Every error a user can cause ends in one line on stderr and exit code 2
(:func:`engine.cli.common.guarded`). Heavy modules (torch, the engine) are imported inside the
commands so that ``python main.py --help`` stays quick.
"""

from __future__ import annotations

import argparse


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add every sub-command to ``main.py``'s parser; each sets ``func``."""
    from engine.cli import category, mesh, prn

    prn.register(subparsers)
    category.register(subparsers)
    mesh.register(subparsers)
