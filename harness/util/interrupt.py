"""SIGTERM handled as Ctrl-C is: a ``KeyboardInterrupt`` unwinds through every cleanup (temporary files and cache
build directories removed, the command that resumes named) instead of ending the process where it stands."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator, Optional


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwinding as Ctrl-C does; the CLI exits 143 (128 + SIGTERM) for it, 130 for Ctrl-C."""


def _as_interrupt(signum: int, frame: object) -> None:
    raise Terminated


def was_terminated(e: BaseException) -> bool:
    """Whether ``e``, or an exception it was raised while handling (e.g. an "interrupted: resume with …"
    message made from it), is a SIGTERM."""
    seen: Optional[BaseException] = e
    while seen is not None:
        if isinstance(seen, Terminated):
            return True
        seen = seen.__context__
    return False


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` (a ``KeyboardInterrupt``); the previous handler comes back
    after it. Outside the main thread (where Python cannot install handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _as_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
