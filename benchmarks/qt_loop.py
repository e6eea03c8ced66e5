"""Running a real Qt event loop from a benchmark script until a condition holds (shared by the
GUI benchmarks)."""

from __future__ import annotations

import time


def run_loop_until(done, timeout_s: float) -> bool:
    """Run the Qt event loop (a real one, not processEvents) until ``done()`` or the timeout."""
    from PyQt6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    deadline = time.monotonic() + timeout_s
    poll = QTimer()

    def check() -> None:
        if done() or time.monotonic() > deadline:
            loop.quit()

    poll.timeout.connect(check)
    poll.start(50)
    loop.exec()
    poll.stop()
    return bool(done())
