"""The one error type for everything a user can get wrong: files, fields, shapes, values.

The CLI turns an :class:`InputError` into one line on stderr and exit code 2; the GUI turns it
into a dialog and keeps what was already loaded. Subclasses only say which kind of input it was.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad user input. ``str(err)`` is a complete one-line message.

    Args:
        problem: what is wrong and what was expected, e.g. ``"expected 3 vertex indices, got 2"``.
        path: the file it concerns, if any.
        line: 1-based line number in that file, if it applies.
        field: the field / variable / key it concerns (``"points2d"``, ``"X"``), if it applies.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        where = []
        if self.path is not None:
            where.append(self.path + (f":{line}" if line is not None else ""))
        elif line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {problem}" if prefix else problem)


class MeshError(InputError):
    """A mesh file or mesh array that cannot be used."""


class DataError(InputError):
    """A keypoint / point-set file or array that cannot be used."""


class CheckpointError(InputError):
    """A checkpoint that is damaged, foreign, or from an incompatible format version."""


class ImageSetError(InputError):
    """An image set folder or file that cannot be used."""
