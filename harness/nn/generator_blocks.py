"""Generator building blocks shared by AttnGAN, DM-GAN and their descendants.

Module layouts (and so state-dict keys) follow the reference ``code/model.py`` of both repositories, so the
released generators load without renaming:

* ``UpBlock``: nearest ×2 → conv3×3 (no bias) → BN → GLU        keys ``1.weight``, ``2.{weight,bias,running_*}``
* ``ResBlock``: x + [conv3×3 → BN → GLU → conv3×3 → BN](x)       keys ``block.{0,1,3,4}.*``
* ``InitStageG``: cat(c, z) → Linear (no bias) → BN1d → GLU → (ngf, 4, 4) → n upBlocks, halving channels
* ``ImageHead``: conv3×3 (no bias) → tanh                       keys ``img.0.weight``
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from harness.nn.conditioning import GLU


def conv3x3(in_channels: int, out_channels: int, bias: bool = False) -> nn.Conv2d:
    """3×3 convolution, stride 1, padding 1 (no bias unless asked)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=bias)


def conv1x1(in_channels: int, out_channels: int, bias: bool = False) -> nn.Conv2d:
    """1×1 convolution (no bias unless asked)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0, bias=bias)


class UpBlock(nn.Sequential):
    """×2 nearest upsampling then conv3×3 → BN → GLU: (B, in, H, W) → (B, out, 2H, 2W)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv3x3(in_channels, out_channels * 2),
            nn.BatchNorm2d(out_channels * 2),
            GLU(),
        )


class ResBlock(nn.Module):
    """Residual block keeping the shape: x + BN(conv(GLU(BN(conv(x)))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(
            conv3x3(channels, channels * 2),
            nn.BatchNorm2d(channels * 2),
            GLU(),
            conv3x3(channels, channels),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def residual_stack(channels: int, count: int) -> nn.Sequential:
    """``count`` ResBlocks in a row (the reference ``_make_layer``; keys ``<i>.block.*``)."""
    return nn.Sequential(*[ResBlock(channels) for _ in range(count)])


class InitStageG(nn.Module):
    """The first generator stage F0: (z, c) → h0 of shape (B, ngf / 2^n, 4·2^n, 4·2^n).

    ngf: channels at 4×4 (the reference passes 16·GF_DIM); n = ``num_upsamples`` (4 in the reference: 64×64).
    The input is cat(c, z): condition first, noise second.
    """

    def __init__(self, ngf: int, condition_dim: int = 100, z_dim: int = 100, num_upsamples: int = 4):
        super().__init__()
        if ngf % 2 ** num_upsamples:
            raise ValueError(f"ngf {ngf} cannot be halved {num_upsamples} times")
        self.ngf = ngf
        self.fc = nn.Sequential(
            nn.Linear(condition_dim + z_dim, ngf * 4 * 4 * 2, bias=False),
            nn.BatchNorm1d(ngf * 4 * 4 * 2),
            GLU(),
        )
        self.num_upsamples = num_upsamples
        for i in range(num_upsamples):
            self.add_module(f"upsample{i + 1}", UpBlock(ngf // 2 ** i, ngf // 2 ** (i + 1)))

    @property
    def out_channels(self) -> int:
        return self.ngf // 2 ** self.num_upsamples

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        h = self.fc(torch.cat((c, z), dim=1)).view(-1, self.ngf, 4, 4)
        for i in range(self.num_upsamples):
            h = getattr(self, f"upsample{i + 1}")(h)
        return h


class ImageHead(nn.Module):
    """Features → RGB image in [-1, 1]: conv3×3 (no bias) → tanh."""

    def __init__(self, channels: int):
        super().__init__()
        self.img = nn.Sequential(conv3x3(channels, 3), nn.Tanh())

    def forward(self, h: Tensor) -> Tensor:
        return self.img(h)
