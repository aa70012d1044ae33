"""A stopwatch for the phases of one training iteration, shared by the speed benchmarks.

    clock = PhaseClock()                 # starts now
    trainer.train_step(..., mark=clock.mark)   # mark("g_forward"): seconds since the previous mark
    stamps = clock.stop()                # {"text": …, "g_forward": …, …, "total": …}

``sync`` (e.g. ``torch.cuda.synchronize``) runs before every reading, so queued GPU work is counted in its phase.
"""
from __future__ import annotations

import time
from typing import Callable


class PhaseClock:
    def __init__(self, sync: Callable[[], None] = lambda: None):
        self.sync = sync
        self.stamps: dict[str, float] = {}
        self.sync()
        self.start = self.last = time.perf_counter()

    def mark(self, phase: str) -> None:
        self.sync()
        now = time.perf_counter()
        self.stamps[phase], self.last = now - self.last, now

    def stop(self) -> dict[str, float]:
        """The phases and the ``total`` since the clock started."""
        self.sync()
        self.stamps["total"] = time.perf_counter() - self.start
        return self.stamps
