"""Progress bars: tqdm when it is installed, else a silent stand-in with the same methods (a bare machine with
only torch, pluggy and pyyaml still trains and evaluates)."""
from __future__ import annotations

from typing import Any

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover - exercised on machines without tqdm

    class tqdm:  # type: ignore[no-redef]
        """The subset of tqdm's interface the harness uses; draws nothing."""

        def __init__(self, iterable: Any = None, total: Any = None, initial: int = 0, **kwargs: Any):
            self.iterable, self.total, self.n = iterable, total, initial

        def __iter__(self):
            return iter(self.iterable if self.iterable is not None else ())

        def update(self, n: int = 1) -> None:
            self.n += n

        def set_postfix(self, *args: Any, **kwargs: Any) -> None:
            return None

        def set_description(self, *args: Any, **kwargs: Any) -> None:
            return None

        def write(self, text: str, *args: Any, **kwargs: Any) -> None:
            print(text)

        def close(self) -> None:
            return None

        def __enter__(self) -> "tqdm":
            return self

        def __exit__(self, *exc: Any) -> None:
            return None

__all__ = ["tqdm"]
