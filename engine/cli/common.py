"""What every batch command shares: turning user errors into one line and exit code 2, and the
``--device`` choice."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any


def guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn user-caused errors into one stderr line and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        from engine.core.errors import InputError

        try:
            return fn(args)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return run


def device_from(args: argparse.Namespace) -> Any:
    from engine.core.device import resolve_device
    from engine.core.errors import InputError

    try:
        return resolve_device(args.device)
    except (ValueError, RuntimeError) as exc:
        raise InputError(str(exc), field="--device") from None
