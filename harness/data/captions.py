"""Caption tensors: padding or order-keeping subsampling to ``words_num``, and length-sorted batches.

The reference (`datasets.py` ``get_caption``) pads a caption with 0 (``<end>``) up to WORDS_NUM; a longer
caption is not truncated but randomly subsampled to WORDS_NUM words, keeping their order.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor


def pad_or_subsample(tokens: Sequence[int], words_num: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``(ids, length)``: ids is an int64 array of ``words_num`` (0-padded); length = min(len, words_num)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    out = np.zeros(words_num, dtype=np.int64)
    n = len(tokens)
    if n <= words_num:
        out[:n] = tokens
        return out, n
    keep = np.sort(rng.permutation(n)[:words_num])  # a random subset, in caption order
    out[:] = tokens[keep]
    return out, words_num


def sort_by_length(lengths: Tensor) -> Tensor:
    """Indices sorting ``lengths`` descending (stable: ties keep their input order)."""
    return torch.sort(lengths, descending=True, stable=True).indices


def encode_caption_batch(token_lists: Sequence[Sequence[int]], words_num: int,
                         rng: np.random.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``(captions B×T, lengths B, order B)`` sorted by length, descending.

    T is the longest (padded/subsampled) caption; ``order[k]`` is the input position of sorted row k, so
    ``inputs[order[k]]`` belongs to ``captions[k]``.
    """
    rows, lengths = zip(*(pad_or_subsample(t, words_num, rng) for t in token_lists))
    lengths_t = torch.tensor(lengths, dtype=torch.long)
    order = sort_by_length(lengths_t)
    captions = torch.from_numpy(np.stack(rows))[order]
    lengths_t = lengths_t[order]
    return captions[:, : int(lengths_t.max())].contiguous(), lengths_t, order
