"""AttnGAN's word-level attention of the refinement stages (reference ``GlobalAttentionGeneral``).

For image features h (B×C×H×W, one query per pixel j) and word features e (B×D×T):

    e′ = U·e                          (``conv_context``: 1×1, D → C, no bias)
    s_{j,i} = h_jᵀ·e′_i,  padding words masked to −∞
    α_{j,i} = softmax_i(s_{j,i})      (over words)
    c_j = Σ_i α_{j,i}·e′_i            → context B×C×H×W, attention map B×T×H×W
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from harness.nn.generator_blocks import conv1x1


def masked_word_softmax(scores: Tensor, mask: Optional[Tensor]) -> Tensor:
    """Softmax over the last axis (words) of ``scores`` (B×Q×T), padding (mask B×T, True = pad) at −∞."""
    if mask is not None:
        scores = scores.masked_fill(mask[:, None, :].bool(), float("-inf"))
    return scores.softmax(dim=-1)


class WordAttention(nn.Module):
    """Word attention with a learned projection of the words into the image feature space."""

    def __init__(self, image_channels: int, word_dim: int = 256):
        super().__init__()
        self.conv_context = conv1x1(word_dim, image_channels)  # U, kept as a 1×1 Conv2d as the reference

    def forward(self, h: Tensor, words: Tensor, mask: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """h: B×C×H×W, words: B×D×T, mask: B×T (True = padding) → (context B×C×H×W, attn B×T×H×W)."""
        b, c, height, width = h.shape
        projected = self.conv_context(words.unsqueeze(3)).squeeze(3)  # e′: B×C×T
        query = h.reshape(b, c, height * width).transpose(1, 2)  # B×HW×C
        attn = masked_word_softmax(query @ projected, mask)  # α: B×HW×T
        context = projected @ attn.transpose(1, 2)  # B×C×HW
        return context.reshape(b, c, height, width), attn.transpose(1, 2).reshape(b, -1, height, width)
