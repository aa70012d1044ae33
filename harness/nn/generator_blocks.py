"""Generator building blocks shared by AttnGAN, DM-GAN and their descendants.

Module layouts (and so state-dict keys) follow the reference ``code/model.py`` of both repositories, so the
released generators load without renaming:

* ``UpBlock``: nearest ×2 → conv3×3 (no bias) → BN → GLU        keys ``1.weight``, ``2.{weight,bias,running_*}``
* ``ResBlock``: x + [conv3×3 → BN → GLU → conv3×3 → BN](x)       keys ``block.{0,1,3,4}.*``
* ``InitStageG``: cat(c, z) → Linear (no bias) → BN1d → GLU → (ngf, 4, 4) → n upBlocks, halving channels
* ``ImageHead``: conv3×3 (no bias) → tanh                       keys ``img.0.weight``
* ``StagedGenerator``: the stage skeleton both generators share (``ca_net``, ``h_net<k>``, ``img_net<k>``),
  composed from constructor arguments: the first stage, a factory of refinement stages, a factory of image heads
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from harness.config.rules import doublings_from_4x4
from harness.nn.conditioning import GLU
from harness.contract.types import GenOutput, TextFeatures


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
    The input is cat(c, z): condition first, noise second. ``up_block(in_channels, out_channels)`` builds each
    doubling block (default ``UpBlock``; ECAGAN passes its CARAFE block).
    """

    def __init__(self, ngf: int, condition_dim: int = 100, z_dim: int = 100, num_upsamples: int = 4,
                 up_block: Callable[[int, int], nn.Module] = UpBlock):
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
            self.add_module(f"upsample{i + 1}", up_block(ngf // 2 ** i, ngf // 2 ** (i + 1)))

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


def first_stage(gf_dim: int, condition_dim: int, z_dim: int, base_size: int,
                up_block: Callable[[int, int], nn.Module] = UpBlock) -> InitStageG:
    """F0 of AttnGAN and DM-GAN: ``InitStageG`` from GF·2ⁿ channels at 4×4 to (GF, base_size, base_size), with
    base_size = 4·2ⁿ, n ≥ 1 (16·GF for the paper's 64²). Raises ValueError for another base_size."""
    n = doublings_from_4x4(base_size)
    if n is None or n < 1:
        raise ValueError(f"base_size must be 4·2^n (n ≥ 1), got {base_size}")
    return InitStageG(gf_dim * 2 ** n, condition_dim, z_dim, num_upsamples=n, up_block=up_block)


class StagedGenerator(nn.Module):
    """The staged generator of AttnGAN and DM-GAN: ``forward(noise B×z, text) -> GenOutput``.

        c, μ, logvar = ca_net(condition_input(text));  h_1 = first_stage(z, c);  x_1 = img_net1(h_1)
        h_k, α_k = h_net<k>(h_{k−1}, words, mask);      x_k = img_net<k>(h_k)      k = 2 … branch_num

    Composed from its arguments (the reference module names, so released weights load key for key):
    ``ca_net`` (conditioning augmentation), ``first_stage`` (``forward(z, c) -> h``), ``next_stage(k)`` building
    refinement stage k = 2 … branch_num (``forward(h, words, mask) -> (h, attention)``) and ``image_head(k)``
    building the head of stage k = 1 … branch_num. Modules are created in the reference order (ca_net,
    h_net1, img_net1, h_net2, img_net2, …).
    """

    def __init__(self, *, ca_net: nn.Module, first_stage: nn.Module, next_stage: Callable[[int], nn.Module],
                 image_head: Callable[[int], nn.Module], branch_num: int):
        super().__init__()
        if branch_num < 1:
            raise ValueError(f"branch_num must be at least 1, got {branch_num}")
        self.branch_num = branch_num
        self.ca_net = ca_net
        self.h_net1 = first_stage
        self.img_net1 = image_head(1)
        for k in range(2, branch_num + 1):
            self.add_module(f"h_net{k}", next_stage(k))
            self.add_module(f"img_net{k}", image_head(k))

    def condition_input(self, text: TextFeatures) -> Tensor:
        """The vector CA conditions on: the sentence feature s (a subclass may return another, e.g. CAE-GAN's
        f_c)."""
        return text.sent

    def stages(self) -> list[tuple[nn.Module, nn.Module]]:
        """(feature stage, image head) pairs, low → high resolution."""
        return [(getattr(self, f"h_net{k}"), getattr(self, f"img_net{k}")) for k in range(1, self.branch_num + 1)]

    def forward(self, noise: Tensor, text: TextFeatures) -> GenOutput:
        c, mu, logvar = self.ca_net(self.condition_input(text))
        pairs = self.stages()
        h = pairs[0][0](noise, c)  # h_1 = F_0(z, c): input cat(c, z)
        images, attn = [pairs[0][1](h)], []
        for stage, head in pairs[1:]:
            h, a = stage(h, text.words, text.mask)  # h_k = F_k(h_{k-1}, w)
            images.append(head(h))
            attn.append(a)
        return GenOutput(images=images, mu=mu, logvar=logvar, attn=attn)

