"""Sample sheets written during training: the EMA generator's images for fixed test captions and noise, captions
under the images, and for attentional methods a second sheet with each word's attention map over the image."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch.nn.functional as F
from torch import Tensor

MAX_WORDS = 10  # attention maps per caption shown on the attention sheet
MIN_CELL = 128  # small images are enlarged (nearest) so the captions under them stay readable


def attention_overlay(image: Tensor, attn: Tensor) -> Tensor:
    """One word's attention map (h×w) over an image (3×H×W in [-1, 1]): attended regions keep their colour,
    the rest is dimmed. Returns 3×H×W in [-1, 1]."""
    a = attn.float()
    a = (a - a.min()) / (a.max() - a.min()).clamp(min=1e-8)
    a = F.interpolate(a[None, None], size=image.shape[-2:], mode="bilinear", align_corners=False)[0]
    return ((image.float() + 1) * (0.15 + 0.85 * a)) - 1


def write_training_sheets(images: list[Tensor], captions: list[str], words: list[list[str]],
                          attn: Optional[list[Tensor]], path: Path) -> list[Path]:
    """``path`` (final-stage images with captions) and, when ``attn`` is given, ``<stem>-attn.png``: one row per
    caption, its image followed by the last attention stage's map of each of its words (labelled)."""
    from harness.core.sheets import save_sheet

    final = images[-1].float().cpu()
    if final.shape[-1] < MIN_CELL:
        final = F.interpolate(final, scale_factor=-(-MIN_CELL // final.shape[-1]), mode="nearest")
    out = [save_sheet(final, captions, path)]
    if attn:
        maps = attn[-1].float().cpu()  # B×T×h×w of the highest-resolution attention stage
        rows, labels = [], []
        for i in range(final.shape[0]):
            n = min(len(words[i]), maps.shape[1], MAX_WORDS)
            rows.append([final[i]] + [attention_overlay(final[i], maps[i, k]) for k in range(n)])
            labels.append([captions[i]] + words[i][:n])
        out.append(save_sheet(rows, labels, path.with_name(path.stem + "-attn.png")))
    return out
