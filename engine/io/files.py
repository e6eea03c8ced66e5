"""The one atomic file writer: every file the project writes (meshes, keypoints, checkpoints,
handle sets, image sets) goes to a temporary name in the destination folder and is renamed, so a
crash or a full disk never leaves a half-written file, and it gets the permissions a plain
``open()`` would give (``0666 & ~umask``; ``mkstemp`` alone makes it owner-only).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_writer(path: str | Path) -> Iterator[BinaryIO]:
    """Open a binary file object whose contents replace ``path`` when the block ends cleanly.

    Raises:
        OSError: the folder is missing or not writable (nothing is left behind).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path) as fh:
        fh.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` by the UTF-8 ``text`` atomically (see :func:`atomic_writer`)."""
    write_bytes_atomic(path, text.encode("utf-8"))
