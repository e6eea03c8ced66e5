"""The one progress and cancel protocol of long computations (factorisations, PCA, training).

A long function takes ``progress(fraction, message)`` and ``cancel() -> bool`` callbacks; when
``cancel()`` answers true it raises :class:`Cancelled`, which callers (the GUI's workers, the
command line) treat as a normal end, not an error.
"""

from __future__ import annotations

from collections.abc import Callable

#: ``progress(fraction in [0, 1], message)``.
ProgressFn = Callable[[float, str], None]
#: ``cancel()``: true when the caller wants the computation to stop.
CancelFn = Callable[[], bool]


class Cancelled(Exception):
    """Raised when a ``cancel()`` callback asked a long computation to stop."""
