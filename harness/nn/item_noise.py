"""Random draws inside a network that belong to a data item, not to a batch position or a rank.

The training engine wraps each generator forward in ``per_item_draws(seed, step, indices)``. Inside it,
``item_randn(like)`` returns N(0, I) rows where row i comes from a generator seeded by (seed, step, item index
``indices[i]``, draw number), so an item gets the same draw whichever rank or batch position it lands on: N ranks
draw exactly what one process draws for the same global batch (conditioning augmentation's ε is such a draw).
Outside the block (evaluation, sampling, a method used on its own) ``item_randn`` is ``torch.randn_like``, on the
global generators (evaluation seeds those per generation batch).

    with per_item_draws(seed=0, step=12, indices=batch.indices):
        output = generator(noise, text)        # every item_randn call inside draws per item
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field
from typing import Iterator, Sequence, Union

import torch
from torch import Tensor

_MASK = 0xFFFFFFFFFFFFFFFF
_ITEM_DRAW_STREAM = 0x17E3_D8A4


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (splitmix64 finaliser over a running combination)."""
    x = _ITEM_DRAW_STREAM
    for v in values:
        x = (x * 0x9E3779B97F4A7C15 + (v & _MASK) + 0xBF58476D1CE4E5B9) & _MASK
        x ^= x >> 30
        x = (x * 0xBF58476D1CE4E5B9) & _MASK
        x ^= x >> 27
        x = (x * 0x94D049BB133111EB) & _MASK
        x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


@dataclass
class _Draws:
    seed: int
    step: int
    indices: list[int]
    calls: int = field(default=0)  # draws made so far in this block: the k-th draw has its own stream


_ACTIVE: contextvars.ContextVar["_Draws | None"] = contextvars.ContextVar("harness_item_draws", default=None)


@contextlib.contextmanager
def per_item_draws(seed: int, step: int, indices: Union[Tensor, Sequence[int]]) -> Iterator[None]:
    """Inside the block, ``item_randn`` draws row i from (seed, step, ``indices[i]``, draw number)."""
    ids = indices.tolist() if isinstance(indices, Tensor) else [int(i) for i in indices]
    token = _ACTIVE.set(_Draws(seed=int(seed), step=int(step), indices=ids))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


@torch.compiler.disable
def item_randn(like: Tensor) -> Tensor:
    """N(0, I) shaped like ``like`` (first dimension = items): per item inside ``per_item_draws``, else
    ``torch.randn_like``."""
    draws = _ACTIVE.get()
    if draws is None:
        return torch.randn_like(like)
    if like.shape[0] != len(draws.indices):
        raise ValueError(f"item_randn: {like.shape[0]} rows but per_item_draws was given {len(draws.indices)} item "
                         f"indices")
    k = draws.calls
    draws.calls += 1
    rows = [torch.randn(like.shape[1:], generator=torch.Generator().manual_seed(_mix(draws.seed, draws.step, i, k)))
            for i in draws.indices]
    out = torch.stack(rows)
    if like.device.type == "cuda":  # pinned, so the copy does not synchronise the host
        return out.pin_memory().to(like.device, like.dtype, non_blocking=True)
    return out.to(like.device, like.dtype)
