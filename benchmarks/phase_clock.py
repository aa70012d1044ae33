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


def time_reference_iterations(iteration: Callable[[Callable[[str], None]], None], warmup: int,
                              reps: int) -> list[dict[str, float]]:
    """Run a reference checkout's ``iteration(mark)`` ``warmup + reps`` times, printing each one's phase times;
    returns the stamps of the ``reps`` measured ones (warm-ups dropped)."""
    times = []
    for k in range(warmup + reps):
        clock = PhaseClock()
        iteration(clock.mark)
        stamps = clock.stop()
        print(f"  reference {'warm-up' if k < warmup else 'rep'} {k + 1} "
              + " ".join(f"{p} {v:.3f}" for p, v in stamps.items()), flush=True)
        times.append(stamps)
    return times[warmup:]
