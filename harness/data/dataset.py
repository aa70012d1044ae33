"""The one dataset interface every data set implements.

An item is a dict::

    images    list of 3×s×s float tensors in [-1, 1], one per stage, low → high resolution
    caption   LongTensor of ``words_num`` token ids (0-padded, or an order-keeping random subsample)
    length    int, the number of real words (≤ words_num)
    class_id  int
    key       str, the image key
    index     int, the item's index in the data set

All item randomness (which of the captions, the subsample, crop and flip) comes from a generator seeded with
(seed, epoch, index) only, so a resumed run and every DDP rank see the same item for the same index.
``collate`` builds a ``harness.contract.types.Batch`` sorted by caption length, descending.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from harness.data.captions import pad_or_subsample, sort_by_length
from harness.data.vocab import Vocabulary
from harness.contract.types import Batch


class TextImageDataset(Dataset):
    """Base class: captions, vocabulary, class ids and keys; subclasses provide ``_images(index, rng)``.

    Attributes: ``vocab``, ``keys``, ``class_ids`` (np.int64 array, one per image; labels for equality, not
    necessarily 0-based), ``num_classes``, ``captions_per_image``, ``words_num``, ``stage_sizes``, ``split``,
    ``train`` (random transform), ``seed``, ``epoch``.
    """

    name: str = ""

    def __init__(self, *, split: str, keys: Sequence[str], class_ids: Sequence[int],
                 captions: Sequence[Sequence[Sequence[int]]], vocab: Vocabulary, words_num: int,
                 stage_sizes: Sequence[int], captions_per_image: int, train: bool, seed: int = 0):
        if len(keys) != len(captions) or len(keys) != len(class_ids):
            raise ValueError("keys, class_ids and captions must have one entry per image")
        self.split = split
        self.keys = list(keys)
        self.class_ids = np.asarray(class_ids, dtype=np.int64)
        self._captions = [list(map(list, caps)) for caps in captions]
        self.vocab = vocab
        self.words_num = int(words_num)
        self.stage_sizes = [int(s) for s in stage_sizes]
        self.captions_per_image = int(captions_per_image)
        self.train = bool(train)
        self.seed = int(seed)
        self.epoch = 0

    # ---- size and bookkeeping ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keys)

    @property
    def num_classes(self) -> int:
        return int(len(np.unique(self.class_ids)))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose item randomness ``__getitem__`` uses (call before each epoch)."""
        self.epoch = int(epoch)

    def item_rng(self, index: int, epoch: int | None = None) -> np.random.Generator:
        """The generator of item ``index`` in ``epoch`` (default: the current one)."""
        e = self.epoch if epoch is None else int(epoch)
        return np.random.default_rng(np.random.SeedSequence([self.seed, e, int(index)]))

    # ---- captions --------------------------------------------------------------------------------------
    def captions(self, index: int) -> list[list[int]]:
        """All token lists of image ``index``."""
        return [list(c) for c in self._captions[index]]

    def caption_text(self, index: int, j: int) -> str:
        """Caption ``j`` of image ``index`` as text (the words of its tokens)."""
        return self.vocab.decode(self._captions[index][j])

    def raw_caption(self, index: int, j: int) -> str:
        """Caption ``j`` of image ``index`` as written in the data set's text (what an external model is given,
        the manifest's ``caption``); here ``caption_text``, data sets that keep the raw text override it."""
        return self.caption_text(index, j)

    # ---- items -----------------------------------------------------------------------------------------
    def _images(self, index: int, rng: np.random.Generator) -> list[Tensor]:  # pragma: no cover
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(index)
        rng = self.item_rng(index)
        caption = self._captions[index][self._caption_choice(index, rng)]
        ids, length = pad_or_subsample(caption, self.words_num, rng)
        images = self._images(index, rng)
        return {"images": images, "caption": torch.from_numpy(ids), "length": int(length),
                "class_id": int(self.class_ids[index]), "key": self.keys[index], "index": index}

    def _caption_choice(self, index: int, rng: np.random.Generator) -> int:
        """Which caption of image ``index`` an item shows: the first draw of its generator (one per fetch)."""
        return int(rng.integers(0, len(self._captions[index])))

    def collate_order(self, indices: Sequence[int]) -> list[int]:
        """``indices`` (one batch, e.g. a global batch before it is shared out over processes) in the order
        ``collate`` puts their items: caption length descending, ties in the given order. Only the captions are
        looked at (no image is read), so N processes that each take a contiguous share of the result hold,
        concatenated, the batch one process would."""
        indices = [int(i) for i in indices]
        lengths = [min(len(self._captions[i][self._caption_choice(i, self.item_rng(i))]), self.words_num)
                   for i in indices]
        return [indices[k] for k in sort_by_length(torch.tensor(lengths, dtype=torch.long)).tolist()]

    @staticmethod
    def collate(items: Sequence[dict[str, Any]]) -> Batch:
        """A ``Batch`` sorted by caption length, descending; captions trimmed to the longest of the batch."""
        lengths = torch.tensor([it["length"] for it in items], dtype=torch.long)
        order = sort_by_length(lengths).tolist()
        items = [items[k] for k in order]
        stages = len(items[0]["images"])
        images = [torch.stack([it["images"][s] for it in items]) for s in range(stages)]
        t_max = max(int(lengths.max()), 1)
        captions = torch.stack([it["caption"] for it in items])[:, :t_max].contiguous()
        return Batch(
            images=images,
            captions=captions,
            lengths=torch.tensor([it["length"] for it in items], dtype=torch.long),
            class_ids=torch.tensor([it["class_id"] for it in items], dtype=torch.long),
            keys=[it["key"] for it in items],
            indices=torch.tensor([it["index"] for it in items], dtype=torch.long),
        )

    def source_files(self, captions: bool = True) -> list[Path] | None:
        """The files this split is read from (``captions=False``: without the caption files), for the keys of the
        caches built from it; [] when nothing is read from files, None when not known (every file of the data
        directory then counts)."""
        return None

    def describe(self) -> str:
        return (f"{self.name or type(self).__name__} {self.split}: {len(self)} images, {self.num_classes} classes, "
                f"{len(self.vocab)} words, {self.captions_per_image} captions/image, stages {self.stage_sizes}")
