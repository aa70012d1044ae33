"""SIGTERM handled as Ctrl-C is: a ``KeyboardInterrupt`` unwinds through every cleanup (temporary files and cache
build directories removed, the command that resumes named) instead of ending the process where it stands."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


def _as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt``; the previous handler comes back after it. Outside
    the main thread (where Python cannot install handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _as_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
