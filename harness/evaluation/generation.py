"""Captions → images from a generator, one convention for ``harness.generate``, ``harness sample`` and the report.

    out = generate_images(models, token_lists, seed=0)            # out.images: N×3×H×W fp32 on the CPU
    out = generate_images(models, token_lists, seed=0, with_attention=True)   # + out.attention per caption

Item ``i`` (its position in ``token_lists``) is generated from draws of (``seed``, ``i``) alone: its noise z
(``harness.core.seed.sample_noise``, truncated by ``harness.core.seed.truncated`` when ``eval.truncation`` > 0),
the generator's own draws such as conditioning augmentation's ε (made inside
``harness.nn.item_noise.per_item_draws``) and, for a caption longer than ``eval.words_num`` words, the order-keeping
subsample of its words. So under ``model.attention_mask=per_sample`` an image does not depend on the other captions
of the call nor on how they are batched (to fp32 rounding): ``generate_images(m, [a, b], s).images[0]`` equals
``generate_images(m, [a], s).images[0]``. The generator sees at most ``eval.batch_size`` captions at a time, so
memory does not grow with the number of captions.

A sample sheet draws every caption as if it were alone (``items=ALONE``: each one item 0, so the same noise for
every caption of a sheet): its image of caption X at seed s is ``harness.generate(run, [X], s)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from harness.config import Config
from harness.util.errors import HarnessError

GENERATE_STEP = -2  # the step (stream) of these per-item draws; training uses steps >= 0, its sheets -1
ALONE = "alone"  # generate_images(items=ALONE): every caption drawn as item 0, as if generated on its own
_SUBSAMPLE_STREAM = 0x5B5A  # the caption subsample's stream of (seed, item)


class GeneratorModels(Protocol):
    """What generation needs of a loaded run: ``harness.build.InferenceModels`` and ``harness.api.LoadedRun``."""

    cfg: Config
    text_encoder: nn.Module
    generator: nn.Module


@dataclass
class GeneratedImages:
    """images:    N×3×H×W float32 on the CPU, in caption order (values as the generator returns them, ≈ [-1, 1])
    tokens:    the token ids each caption was generated from (after subsampling to ``eval.words_num``)
    attention: with ``with_attention``, per caption one map per attention stage (low → high resolution), each
               ``len(tokens[i])×h×w`` float32 on the CPU (an empty list for a method without attention); else None
    """

    images: Tensor
    tokens: list[list[int]]
    attention: Optional[list[list[Tensor]]] = None


def fit_caption(tokens: Sequence[int], words_num: int, seed: int, item: int) -> list[int]:
    """The caption of item ``item`` as generated: itself, or an order-keeping subsample of ``words_num`` of its
    words drawn from (``seed``, ``item``)."""
    from harness.data.captions import pad_or_subsample

    ids, n = pad_or_subsample(tokens, words_num, np.random.default_rng([seed, item, _SUBSAMPLE_STREAM]))
    return ids[:n].tolist()


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters(), torch.empty(0)).device


def _batch(models: GeneratorModels, tokens: list[list[int]], seed: int, items: list[int], stage: int,
           with_attention: bool) -> tuple[Tensor, Optional[list[list[Tensor]]]]:
    """One generator call on the captions of ``items`` (their ``tokens``), sorted by length as the text encoder
    needs; images (and attention) returned in the input order."""
    from harness.core.seed import sample_noise, truncated
    from harness.data.captions import sort_by_length
    from harness.nn.item_noise import per_item_draws

    lengths = torch.tensor([len(t) for t in tokens], dtype=torch.long)
    order = sort_by_length(lengths)
    width = int(lengths.max())
    caps = torch.zeros(len(tokens), width, dtype=torch.long)
    for row, k in enumerate(order.tolist()):
        caps[row, :len(tokens[k])] = torch.tensor(tokens[k], dtype=torch.long)
    sorted_items = [items[k] for k in order.tolist()]
    noise = sample_noise(seed, GENERATE_STEP, sorted_items, models.cfg.model.z_dim)
    if models.cfg.eval.truncation:
        noise = truncated(noise, models.cfg.eval.truncation)
    device = _device(models.generator)
    with torch.no_grad(), per_item_draws(seed, GENERATE_STEP, sorted_items):
        text = models.text_encoder(caps.to(device), lengths[order].to(device))
        out = models.generator(noise.to(device), text)
    images = torch.empty_like(out.images[stage], dtype=torch.float32, device="cpu")
    images[order] = out.images[stage].float().cpu()
    if not with_attention:
        return images, None
    maps: list[list[Tensor]] = [[] for _ in tokens]
    for a in out.attn:
        a = a.float().cpu()
        for row, k in enumerate(order.tolist()):
            maps[k].append(a[row, :len(tokens[k])].clone())
    return images, maps


def generate_images(models: GeneratorModels, token_lists: Sequence[Sequence[int]], seed: int, *,
                    with_attention: bool = False, stage: int = -1, batch_size: Optional[int] = None,
                    items: Optional[Sequence[int] | str] = None) -> GeneratedImages:
    """Images of generator stage ``stage`` (default the last) for the captions ``token_lists`` (token ids of the
    run's vocabulary, each non-empty), in batches of ``batch_size`` (default ``eval.batch_size``); caption ``i``
    drawn from (``seed``, ``items[i]``) alone (module docstring; default ``items[i] = i``, ``ALONE``: every caption
    item 0). ``with_attention`` also returns each caption's attention maps. Raises HarnessError for an empty caption
    list or caption."""
    if not token_lists:
        raise HarnessError("generate_images needs at least one caption")
    empty = [i for i, t in enumerate(token_lists) if len(t) == 0]
    if empty:
        raise HarnessError(f"caption {empty[0]} has no words")
    cfg = models.cfg
    size = int(batch_size or cfg.eval.batch_size)
    draws = [0] * len(token_lists) if items == ALONE else list(items) if items is not None else range(len(token_lists))
    tokens = [fit_caption(t, cfg.eval.words_num, seed, draws[i]) for i, t in enumerate(token_lists)]
    images, attention = [], [] if with_attention else None
    for lo in range(0, len(tokens), size):
        batch, maps = _batch(models, tokens[lo:lo + size], seed, list(draws[lo:lo + size]), stage, with_attention)
        images.append(batch)
        if attention is not None:
            attention.extend(maps)
    return GeneratedImages(torch.cat(images), tokens, attention)
