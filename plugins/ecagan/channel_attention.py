"""ECAGAN's channel attention convolution module: efficient channel attention (ECA-Net, Wang et al., CVPR 2020)
followed by a convolution.

ECA: global average pooling → a 1-D convolution across the channels (no dimensionality reduction, no bias),
kernel size k from ECA-Net's adaptive rule t = int(|(log2 C + b) / γ|), k = t if t is odd else t + 1, with
γ = 2, b = 1 → sigmoid → one weight per channel, multiplied into the input.

ECAGAN places the module before each stage's image convolution (the conv3×3 → 3 + tanh head); that is the only
place this plugin uses it (README "Assumptions").
"""
from __future__ import annotations

import math

from torch import Tensor, nn


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA-Net's adaptive kernel size: t = int(|(log2 C + b) / γ|); k = t if t is odd else t + 1."""
    if channels < 1:
        raise ValueError(f"eca_kernel_size: channels must be ≥ 1, got {channels}")
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 == 1 else t + 1


class EfficientChannelAttention(nn.Module):
    """ECA: x (B×C×H×W) → x · σ(Conv1d_k(GAP(x))) with one weight per channel."""

    def __init__(self, channels: int, gamma: int = 2, b: int = 1):
        super().__init__()
        self.kernel_size = eca_kernel_size(channels, gamma, b)
        self.conv = nn.Conv1d(1, 1, self.kernel_size, padding=(self.kernel_size - 1) // 2, bias=False)

    def channel_weights(self, x: Tensor) -> Tensor:
        """The attention weights, B×C×1×1 in (0, 1)."""
        pooled = x.mean(dim=(2, 3))  # GAP, B×C
        return self.conv(pooled.unsqueeze(1)).sigmoid().squeeze(1)[:, :, None, None]  # 1-D conv across C

    def forward(self, x: Tensor) -> Tensor:
        return x * self.channel_weights(x)


class ChannelAttentionConv(nn.Module):
    """The channel attention convolution module: ECA on the input, then ``conv`` (any module, e.g. the image
    head conv3×3 → 3 + tanh)."""

    def __init__(self, channels: int, conv: nn.Module, gamma: int = 2, b: int = 1):
        super().__init__()
        self.attention = EfficientChannelAttention(channels, gamma, b)
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.attention(x))
