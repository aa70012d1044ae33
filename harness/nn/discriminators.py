"""Stage discriminators of AttnGAN (BatchNorm) and DM-GAN (spectral norm), one per generator stage.

Layout and names follow the reference ``D_NET64/128/256``: ``img_code_s16`` encodes the image to 8·DF channels
(at 4×4 for a 64² image), larger images add ``img_code_s32``, ``img_code_s64`` … (4×4 conv, stride 2, channels
doubling) and then as many 3×3 convs (``img_code_s64_1``, ``img_code_s64_2`` …) halving the channels back to
8·DF at 4×4. Smaller images (CPU presets) use fewer layers of ``img_code_s16``, still ending at 8·DF at 4×4.

Heads (``UNCOND_DNET``, ``COND_DNET``): the conditional one tiles the 256-d sentence feature to 4×4,
concatenates it and applies ``jointConv`` 3×3 (8·DF + D → 8·DF); both end in ``outlogits`` (conv 4×4, stride 4,
with bias) and return **logits** of shape (B,). The reference applies a sigmoid there and uses BCE on
probabilities; the losses in ``harness.nn.gan_losses`` apply the same BCE to the logits, computed stably.

Variants:
* ``spectral=False`` (AttnGAN): convs without bias, BatchNorm (none on the first layer), LeakyReLU(0.2).
* ``spectral=True`` (DM-GAN): every conv except ``outlogits`` is spectral-normalised with the original
  algorithm (one power iteration per call in train and eval, u and v buffers:
  ``harness.nn.spectral_norm.reference_spectral_norm``) with bias, no BatchNorm.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from harness.config.rules import doublings_from_4x4
from harness.nn.spectral_norm import reference_spectral_norm


def _conv_block(in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, *, spectral: bool,
                batch_norm: bool) -> list[nn.Module]:
    """conv → [BN] → LeakyReLU(0.2); spectral: SN(conv with bias) → LeakyReLU, never BN."""
    if spectral:
        return [reference_spectral_norm(nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=True)),
                nn.LeakyReLU(0.2, inplace=True)]
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=False)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


def down_block(in_ch: int, out_ch: int, *, spectral: bool = False) -> nn.Sequential:
    """Halve the spatial size: conv 4×4 stride 2 → [BN] → LeakyReLU (reference ``downBlock``)."""
    return nn.Sequential(*_conv_block(in_ch, out_ch, 4, 2, 1, spectral=spectral, batch_norm=True))


def block3x3_leaky(in_ch: int, out_ch: int, *, spectral: bool = False) -> nn.Sequential:
    """Keep the spatial size: conv 3×3 → [BN] → LeakyReLU (reference ``Block3x3_leakRelu``)."""
    return nn.Sequential(*_conv_block(in_ch, out_ch, 3, 1, 1, spectral=spectral, batch_norm=True))


def encode_image(df_dim: int, num_down: int = 4, *, spectral: bool = False) -> nn.Sequential:
    """``num_down`` 4×4 stride-2 convs from RGB to 8·DF channels (reference ``encode_image_by_16times`` for
    num_down = 4: DF, 2·DF, 4·DF, 8·DF; the first layer has no BatchNorm)."""
    layers: list[nn.Module] = []
    in_ch = 3
    for i in range(num_down):
        out_ch = df_dim * 8 // 2 ** (num_down - 1 - i)
        layers += _conv_block(in_ch, out_ch, 4, 2, 1, spectral=spectral, batch_norm=i > 0)
        in_ch = out_ch
    return nn.Sequential(*layers)


class DiscriminatorHead(nn.Module):
    """(B, 8·DF, 4, 4) features [+ sentence B×D] → logits (B,)."""

    def __init__(self, df_dim: int, embedding_dim: int = 256, conditional: bool = False, *, spectral: bool = False):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.conditional = conditional
        if conditional:
            self.jointConv = block3x3_leaky(df_dim * 8 + embedding_dim, df_dim * 8, spectral=spectral)
        self.outlogits = nn.Sequential(nn.Conv2d(df_dim * 8, 1, kernel_size=4, stride=4))

    def forward(self, features: Tensor, sent: Optional[Tensor] = None) -> Tensor:
        if self.conditional:
            if sent is None:
                raise ValueError("the conditional head needs the sentence features")
            tiled = sent.reshape(-1, self.embedding_dim, 1, 1).expand(-1, -1, features.shape[2], features.shape[3])
            features = self.jointConv(torch.cat((features, tiled.to(features.dtype)), dim=1))
        return self.outlogits(features).reshape(-1)


class StageDiscriminator(nn.Module):
    """Discriminator for one stage resolution: ``forward(image) -> features (B, 8·DF, 4, 4)``; the heads are
    ``UNCOND_DNET(features)`` and ``COND_DNET(features, sent)``."""

    def __init__(self, df_dim: int, embedding_dim: int = 256, image_size: int = 64, *, spectral: bool = False):
        super().__init__()
        n = doublings_from_4x4(image_size)
        if n is None or n < 1:
            raise ValueError(f"discriminator image size must be 4·2^n (n ≥ 1), got {image_size}")
        self.image_size = image_size
        self.img_code_s16 = encode_image(df_dim, min(n, 4), spectral=spectral)
        extra = max(0, n - 4)  # 128 → 1, 256 → 2
        self._names: list[str] = []
        ch = df_dim * 8
        for i in range(extra):  # img_code_s32, img_code_s64, …: channels doubling
            name = f"img_code_s{16 * 2 ** (i + 1)}"
            self.add_module(name, down_block(ch, ch * 2, spectral=spectral))
            self._names.append(name)
            ch *= 2
        for j in range(extra):  # img_code_s<last>_1, _2, …: channels halving back to 8·DF
            name = f"img_code_s{16 * 2 ** extra}_{j + 1}"
            self.add_module(name, block3x3_leaky(ch, ch // 2, spectral=spectral))
            self._names.append(name)
            ch //= 2
        self.UNCOND_DNET = DiscriminatorHead(df_dim, embedding_dim, conditional=False, spectral=spectral)
        self.COND_DNET = DiscriminatorHead(df_dim, embedding_dim, conditional=True, spectral=spectral)

    def forward(self, image: Tensor) -> Tensor:
        x = self.img_code_s16(image)
        for name in self._names:
            x = getattr(self, name)(x)
        return x


def build_discriminators(df_dim: int, embedding_dim: int, image_sizes: list[int], *,
                         spectral: bool = False) -> nn.ModuleList:
    """One ``StageDiscriminator`` per stage resolution, low → high."""
    return nn.ModuleList([StageDiscriminator(df_dim, embedding_dim, s, spectral=spectral) for s in image_sizes])
