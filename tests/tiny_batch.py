"""A small training batch for a method's ``test`` preset (random images and captions, lengths 8/6/5/3)."""
from __future__ import annotations

import torch

from harness.contract.types import Batch


def tiny_batch(cfg, vocab: int = 30) -> Batch:
    b = cfg.train.batch_size
    sizes = [cfg.data.base_size * 2 ** i for i in range(cfg.data.branch_num)]
    lengths = torch.tensor([8, 6, 5, 3])[:b]
    captions = torch.randint(1, vocab, (b, 8)) * (torch.arange(8)[None, :] < lengths[:, None])
    return Batch(images=[torch.rand(b, 3, s, s) * 2 - 1 for s in sizes], captions=captions, lengths=lengths,
                 class_ids=torch.arange(1, b + 1), keys=[str(i) for i in range(b)], indices=torch.arange(b))
