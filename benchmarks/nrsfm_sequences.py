"""The NRSfM reference sequences the PRN benchmarks run on (``../shared/data/nrsfm``, beside the
clone, never copied into it) and the command-line options that choose them."""

from __future__ import annotations

import argparse
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nrsfm"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--sequences`` (comma-separated names) and ``--threads`` (torch CPU threads)."""
    parser.add_argument("--sequences", help="comma-separated names (default: every .mat)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")


def chosen(args: argparse.Namespace) -> list[Path] | None:
    """Paths of the sequences ``args`` asks for (all by default), after applying ``--threads``;
    None, with a message, when the reference data is not beside this clone."""
    if not DATA.is_dir():
        print(f"no NRSfM data at {DATA} (the shared reference data is not beside this clone)")
        return None
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.sequences:
        return [DATA / f"{name}.mat" for name in args.sequences.split(",")]
    return sorted(DATA.glob("*.mat"))
