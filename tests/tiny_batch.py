"""Small training batches for a method's ``test`` preset: ``tiny_batch`` (random images and captions, lengths
8/6/5/3) and ``seeded_batch`` (from a fixed seed, any number of items)."""
from __future__ import annotations

import torch

from harness.config import stage_sizes
from harness.contract.types import Batch


def tiny_batch(cfg, vocab: int = 30) -> Batch:
    b = cfg.train.batch_size
    sizes = [cfg.data.base_size * 2 ** i for i in range(cfg.data.branch_num)]
    lengths = torch.tensor([8, 6, 5, 3])[:b]
    captions = torch.randint(1, vocab, (b, 8)) * (torch.arange(8)[None, :] < lengths[:, None])
    return Batch(images=[torch.rand(b, 3, s, s) * 2 - 1 for s in sizes], captions=captions, lengths=lengths,
                 class_ids=torch.arange(1, b + 1), keys=[str(i) for i in range(b)], indices=torch.arange(b))


def seeded_batch(cfg, vocab: int, n: int = 4) -> Batch:
    """n items of random images and captions from a fixed seed, lengths descending, the first one full length."""
    g = torch.Generator().manual_seed(0)
    t = cfg.data.words_num
    lengths = torch.tensor(sorted(torch.randint(3, t + 1, (n,), generator=g).tolist(), reverse=True))
    lengths[0] = t
    captions = torch.zeros(n, t, dtype=torch.long)
    for i, k in enumerate(lengths.tolist()):
        captions[i, :k] = torch.randint(1, vocab, (k,), generator=g)
    images = [torch.rand(n, 3, s, s, generator=g) * 2 - 1 for s in stage_sizes(cfg)]
    return Batch(images, captions, lengths, torch.arange(n) + 1, [str(i) for i in range(n)], torch.arange(n))
