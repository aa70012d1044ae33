"""AttnGAN's word-level attention of the refinement stages (reference ``GlobalAttentionGeneral``).

For image features h (B×C×H×W, one query per pixel j) and word features e (B×D×T):

    e′ = U·e                          (``conv_context``: 1×1, D → C, no bias)
    s_{j,i} = h_jᵀ·e′_i,  padding words masked to −∞
    α_{j,i} = softmax_i(s_{j,i})      (over words)
    c_j = Σ_i α_{j,i}·e′_i            → context B×C×H×W, attention map B×T×H×W

Padding mask (``model.attention_mask``, set on every module with an ``attention_mask`` attribute by
``set_attention_mask``):

* ``per_sample`` (default): query j of image b masks the padding of caption b.
* ``reference``: the original code's row pattern. It flattens the scores to (B·Q)×T and masks them with
  ``mask.repeat(Q, 1)``, so row r = b·Q + j gets the padding of caption r mod B: an image's output depends on the
  other captions of its batch (unless all have the same length). Released AttnGAN / DM-GAN weights were trained,
  and their published numbers computed, this way.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from harness.nn.generator_blocks import conv1x1

ATTENTION_MASKS = ("per_sample", "reference")


def query_padding_mask(mask: Tensor, queries: int, mode: str = "per_sample") -> Tensor:
    """The padding mask of each query: mask B×T (True = padding) → B×Q×T (``reference``) or B×1×T (``per_sample``,
    broadcast over the Q queries). ``reference``: query j of image b uses caption (b·Q + j) mod B.
    Raises ValueError for an unknown ``mode``."""
    if mode == "per_sample":
        return mask[:, None, :].bool()
    if mode != "reference":
        raise ValueError(f"attention mask {mode!r} is not one of {', '.join(ATTENTION_MASKS)}")
    b = mask.shape[0]
    rows = torch.arange(b, device=mask.device)[:, None] * queries + torch.arange(queries, device=mask.device)
    return mask.bool()[rows % b]  # B×Q×T


def masked_word_softmax(scores: Tensor, mask: Optional[Tensor], mode: str = "per_sample") -> Tensor:
    """Softmax over the last axis (words) of ``scores`` (B×Q×T), padding (mask B×T, True = pad) at −∞; ``mode``
    chooses whose padding each query uses (``query_padding_mask``)."""
    if mask is not None:
        scores = scores.masked_fill(query_padding_mask(mask, scores.shape[1], mode), float("-inf"))
    return scores.softmax(dim=-1)


def set_attention_mask(module: nn.Module, mode: str) -> nn.Module:
    """Set ``attention_mask = mode`` on every submodule that has that attribute (word attention, DM-GAN's memory);
    returns ``module``. Raises ValueError for an unknown mode."""
    if mode not in ATTENTION_MASKS:
        raise ValueError(f"attention mask {mode!r} is not one of {', '.join(ATTENTION_MASKS)}")
    for m in module.modules():
        if hasattr(m, "attention_mask"):
            m.attention_mask = mode
    return module


class WordAttention(nn.Module):
    """Word attention with a learned projection of the words into the image feature space."""

    def __init__(self, image_channels: int, word_dim: int = 256, attention_mask: str = "per_sample"):
        super().__init__()
        self.conv_context = conv1x1(word_dim, image_channels)  # U, kept as a 1×1 Conv2d as the reference
        self.attention_mask = attention_mask

    def forward(self, h: Tensor, words: Tensor, mask: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """h: B×C×H×W, words: B×D×T, mask: B×T (True = padding) → (context B×C×H×W, attn B×T×H×W)."""
        b, c, height, width = h.shape
        projected = self.conv_context(words.unsqueeze(3)).squeeze(3)  # e′: B×C×T
        query = h.reshape(b, c, height * width).transpose(1, 2)  # B×HW×C
        attn = masked_word_softmax(query @ projected, mask, self.attention_mask)  # α: B×HW×T
        context = projected @ attn.transpose(1, 2)  # B×C×HW
        return context.reshape(b, c, height, width), attn.transpose(1, 2).reshape(b, -1, height, width)
