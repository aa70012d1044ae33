"""Image transforms of the reference GAN training (AttnGAN / DM-GAN ``code/datasets.py``:
``get_imgs`` and the loader's ``transforms``).

* CUB crop: a square of side 1.5·max(w, h) around the bounding-box centre, clipped to the image
  (``r = int(max(w, h) * 0.75)``, centre ``int((2x + w) / 2)``).
* Training: resize the shorter side to ``int(final · 76/64)`` (304 for 256), random crop ``final``,
  horizontal flip with probability ½; the lower stages are downscaled from that crop.
* Evaluation / real-image statistics: resize the shorter side to ``final``, centre crop, no randomness.
* Every stage is normalised to [-1, 1] (``ToTensor`` then ``Normalize(0.5, 0.5)``).

The random draws come from a ``numpy.random.Generator`` the caller derives from (seed, epoch, index).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from harness.data.image_file import rgb8


def bbox_crop_box(bbox: Sequence[int], width: int, height: int) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) of the reference crop around ``bbox = (x, y, w, h)`` in an image of width×height."""
    x, y, w, h = (int(v) for v in bbox)
    r = int(max(w, h) * 0.75)  # half the side of a 1.5·max(w, h) square
    cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
    return max(0, cx - r), max(0, cy - r), min(width, cx + r), min(height, cy + r)


def load_size(final_size: int, train: bool) -> int:
    """Shorter side before cropping: ``int(final · 76/64)`` for training (304 for 256), ``final`` otherwise."""
    return int(final_size * 76 / 64) if train else final_size


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """torchvision ``Resize(size)`` on a PIL image: shorter side to ``size``, bilinear, long side truncated."""
    w, h = img.size
    if min(w, h) == size:
        return img
    if w <= h:
        new = (size, int(size * h / w))
    else:
        new = (int(size * w / h), size)
    return img.resize(new, Image.BILINEAR)


def to_tensor(img: Image.Image) -> Tensor:
    """3×H×W float tensor in [-1, 1] (``ToTensor`` + ``Normalize(0.5, 0.5)``)."""
    arr = np.asarray(rgb8(img), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


@dataclass
class StageTransform:
    """The per-item image transform: a (cropped) PIL image → one tensor per stage, low → high resolution."""

    stage_sizes: list[int]
    train: bool

    @property
    def final_size(self) -> int:
        return self.stage_sizes[-1]

    @property
    def load_size(self) -> int:
        return load_size(self.final_size, self.train)

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> list[Tensor]:
        """``img`` may already be resized to ``load_size`` (a decode cache); resizing again is a no-op."""
        img = resize_shorter(img, self.load_size)
        s = self.final_size
        w, h = img.size
        if self.train:  # RandomCrop(final), RandomHorizontalFlip()
            top = int(rng.integers(0, h - s + 1))
            left = int(rng.integers(0, w - s + 1))
            img = img.crop((left, top, left + s, top + s))
            if rng.random() < 0.5:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
        else:  # CenterCrop(final)
            top, left = int(round((h - s) / 2.0)), int(round((w - s) / 2.0))
            img = img.crop((left, top, left + s, top + s))
        return stage_images(img, self.stage_sizes)


def stage_images(img: Image.Image, stage_sizes: Sequence[int]) -> list[Tensor]:
    """The final-size square image and its downscales (bilinear, as ``Scale(size)``), as tensors."""
    out = []
    for s in stage_sizes:
        im = img if img.size == (s, s) else img.resize((s, s), Image.BILINEAR)
        out.append(to_tensor(im))
    return out
