"""DF-GAN's networks: the generator NetG (noise → 4×4 → up-blocks of deep text-image fusion), the discriminator
NetD (image → 4×4 features) and its conditional head NetC (features + sentence → one logit).

Sub-module names follow the original's ``state_dict`` keys (``fc``, ``GBlocks.i.fuse1.affine0.fc_gamma.linear1``,
``DBlocks.i.conv_r.0``, ``joint_conv.2``, ...), so a released checkpoint loads by name.
"""
from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.contract.types import GenOutput, TextFeatures


def _doublings(image_size: int) -> int:
    """n with image_size = 4·2ⁿ (the generator starts from 4×4; the discriminator ends at 4×4)."""
    n = image_size.bit_length() - 3
    if n < 1 or 4 * 2 ** n != image_size:
        raise ValueError(f"DF-GAN needs an image side of 4·2^n (n >= 1), got {image_size}")
    return n


def feature_widths(nf: int, image_size: int) -> list[int]:
    """Feature widths from the image side down to 4×4: nf·min(2^i, 8) for i = 0..n (n doublings)."""
    return [nf * min(2 ** i, 8) for i in range(_doublings(image_size) + 1)]


class Affine(nn.Module):
    """Channel-wise scale and shift of a feature map, each predicted from the condition by a two-layer MLP; the
    second layers start at scale 1, shift 0 (the identity transform)."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.fc_gamma = self._mlp(cond_dim, channels)
        self.fc_beta = self._mlp(cond_dim, channels)
        nn.init.zeros_(self.fc_gamma.linear2.weight)
        nn.init.ones_(self.fc_gamma.linear2.bias)
        nn.init.zeros_(self.fc_beta.linear2.weight)
        nn.init.zeros_(self.fc_beta.linear2.bias)

    @staticmethod
    def _mlp(cond_dim: int, channels: int) -> nn.Sequential:
        return nn.Sequential(OrderedDict(linear1=nn.Linear(cond_dim, channels), relu1=nn.ReLU(),
                                         linear2=nn.Linear(channels, channels)))

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale = self.fc_gamma(cond)[:, :, None, None]
        shift = self.fc_beta(cond)[:, :, None, None]
        return x * scale + shift


class DeepFusion(nn.Module):
    """A deep fusion block: two (affine, LeakyReLU 0.2) pairs, both conditioned on the same vector."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.affine0 = Affine(cond_dim, channels)
        self.affine1 = Affine(cond_dim, channels)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        x = F.leaky_relu(self.affine0(x, cond), 0.2)
        return F.leaky_relu(self.affine1(x, cond), 0.2)


class GBlock(nn.Module):
    """Nearest ×2 upsampling, then shortcut (a 1×1 conv when the width changes) + residual
    (fusion → 3×3 conv → fusion → 3×3 conv)."""

    def __init__(self, cond_dim: int, in_ch: int, out_ch: int):
        super().__init__()
        self.fuse1 = DeepFusion(cond_dim, in_ch)
        self.c1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.fuse2 = DeepFusion(cond_dim, out_ch)
        self.c2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.c_sc = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        shortcut = self.c_sc(x) if self.c_sc is not None else x
        h = self.c1(self.fuse1(x, cond))
        h = self.c2(self.fuse2(h, cond))
        return shortcut + h


class NetG(nn.Module):
    """forward(noise B×z, sentence B×D) -> images B×3×s×s in [-1, 1]; each block is conditioned on [noise, sentence]."""

    def __init__(self, nf: int, z_dim: int, cond_dim: int, image_size: int):
        super().__init__()
        widths = feature_widths(nf, image_size)[::-1]  # 4×4 (widest) → image side
        self.top = widths[0]
        self.fc = nn.Linear(z_dim, self.top * 4 * 4)
        self.GBlocks = nn.ModuleList(GBlock(z_dim + cond_dim, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.to_rgb = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(widths[-1], 3, 3, 1, 1), nn.Tanh())

    def forward(self, noise: Tensor, sent: Tensor) -> Tensor:
        x = self.fc(noise).view(noise.shape[0], self.top, 4, 4)
        cond = torch.cat([noise, sent], dim=1)
        for block in self.GBlocks:
            x = block(x, cond)
        return self.to_rgb(x)


class DFGANGenerator(NetG):
    """NetG behind the harness's generator interface: ``forward(noise, text) -> GenOutput`` with the one image,
    conditioned on the sentence feature (no conditioning augmentation: ``mu``/``logvar`` are B×0)."""

    def forward(self, noise: Tensor, text: TextFeatures) -> GenOutput:  # type: ignore[override]
        image = super().forward(noise, text.sent)
        empty = noise.new_zeros(noise.shape[0], 0)
        return GenOutput(images=[image], mu=empty, logvar=empty, attn=[])


class DBlock(nn.Module):
    """Residual down-block: x' = avgpool(shortcut(x)) + γ·(4×4 stride-2 conv → LReLU → 3×3 conv → LReLU)(x), γ
    learned from 0. The 1×1 shortcut conv exists in every block (its parameters are part of the original's
    count and checkpoint) but acts only where the width changes; elsewhere it is frozen (no gradient reaches it,
    and a frozen parameter keeps DistributedDataParallel from waiting for one)."""

    def __init__(self, fin: int, fout: int):
        super().__init__()
        self.conv_r = nn.Sequential(nn.Conv2d(fin, fout, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                                    nn.Conv2d(fout, fout, 3, 1, 1, bias=False), nn.LeakyReLU(0.2))
        self.conv_s = nn.Conv2d(fin, fout, 1)
        self.learned_shortcut = fin != fout
        self.conv_s.requires_grad_(self.learned_shortcut)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        residual = self.conv_r(x)
        shortcut = self.conv_s(x) if self.learned_shortcut else x
        return F.avg_pool2d(shortcut, 2) + self.gamma * residual


class NetD(nn.Module):
    """forward(images B×3×s×s) -> features B×(8·nf)×4×4."""

    def __init__(self, nf: int, image_size: int):
        super().__init__()
        widths = feature_widths(nf, image_size)
        self.conv_img = nn.Conv2d(3, widths[0], 3, 1, 1)
        self.DBlocks = nn.ModuleList(DBlock(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out_channels = widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_img(x)
        for block in self.DBlocks:
            x = block(x)
        return x


class NetC(nn.Module):
    """forward(features B×C×4×4, sentence B×D) -> logits B: the sentence tiled to 4×4, concatenated, 3×3 conv
    to 2·nf, LReLU, 4×4 conv to one value."""

    def __init__(self, nf: int, feature_channels: int, cond_dim: int):
        super().__init__()
        self.joint_conv = nn.Sequential(nn.Conv2d(feature_channels + cond_dim, nf * 2, 3, 1, 1, bias=False),
                                        nn.LeakyReLU(0.2), nn.Conv2d(nf * 2, 1, 4, 1, 0, bias=False))

    def forward(self, features: Tensor, sent: Tensor) -> Tensor:
        tiled = sent[:, :, None, None].expand(-1, -1, *features.shape[2:])
        return self.joint_conv(torch.cat([features, tiled.to(features.dtype)], dim=1)).flatten()


class DFGANDiscriminator(nn.Module):
    """NetD and NetC as one module (one optimiser, as the original's D_params):
    ``forward(images, sent, mismatched=False)`` -> logits B of (image i, sentence i); with ``mismatched`` also the
    logits of (image i+1, sentence i) from the same features (the original's rolled real features). ``mismatched``
    may be the roll itself (a training step's ``Step.roll_batch``: the next item of the global batch under
    torchrun); ``True`` rolls within ``images``."""

    parts = ("netD", "netC")  # harness inspect counts each (the original's two networks)

    def __init__(self, nf: int, cond_dim: int, image_size: int):
        super().__init__()
        self.netD = NetD(nf, image_size)
        self.netC = NetC(nf, self.netD.out_channels, cond_dim)

    def forward(self, images: Tensor, sent: Tensor,
                mismatched: bool | Callable[[Tensor], Tensor] = False) -> Tensor | tuple[Tensor, Tensor]:
        features = self.netD(images)
        logits = self.netC(features, sent)
        if not mismatched:
            return logits
        roll = mismatched if callable(mismatched) else partial(torch.roll, shifts=-1, dims=0)  # Step.roll_batch
        return logits, self.netC(roll(features), sent)
