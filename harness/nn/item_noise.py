"""Random draws inside a network that belong to a data item, not to a batch position or a rank.

The training engine and ``harness.evaluation.generation.generate_images`` (``harness.generate``, `harness sample`,
the report's sheets) wrap each generator forward in ``per_item_draws(seed, step, indices)``. Inside it,
``item_randn(like)`` returns N(0, I) rows where row i comes from a generator seeded by (seed, step, item index
``indices[i]``, draw number), so an item gets the same draw whichever rank or batch position it lands on: N ranks
draw exactly what one process draws for the same global batch (conditioning augmentation's ε is such a draw).
Outside the block (evaluation, a method used on its own) ``item_randn`` is ``torch.randn_like``, on the
global generators (evaluation seeds those per generation batch).

    with per_item_draws(seed=0, step=12, indices=batch.indices):
        output = generator(noise, text)        # every item_randn call inside draws per item
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Iterator, Sequence, Union

import torch
from torch import Tensor

from harness.core.seed import item_rows, mix_seed

_ITEM_DRAW_STREAM = 0x17E3_D8A4


@dataclass
class _Draws:
    seed: int
    step: int
    indices: list[int]
    calls: int = 0  # draws made so far in this block: the k-th draw has its own stream


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
    base = mix_seed(mix_seed(draws.seed, draws.step, _ITEM_DRAW_STREAM), k, _ITEM_DRAW_STREAM)
    out = item_rows(base, draws.indices, like.shape[1:], _ITEM_DRAW_STREAM)
    if like.device.type == "cuda":  # pinned, so the copy does not synchronise the host
        return out.pin_memory().to(like.device, like.dtype, non_blocking=True)
    return out.to(like.device, like.dtype)
