"""DM-GAN networks (Zhu et al., "DM-GAN: Dynamic Memory Generative Adversarial Networks for Text-to-Image
Synthesis", CVPR 2019), top to bottom, as the reference ``code/model.py`` (REFERENCE.md A1–A2).

    s, w  = sentence / word features (TextFeatures.sent, .words), mask = padding
    c, μ, logvar = CA(s)                                     ``ca_net``      (harness.nn.conditioning.CANet)
    R_0 = F_0(z, c)             (B, GF, 64, 64)              ``h_net1``      (harness.nn.generator_blocks.InitStageG)
    R_k = F_k(R_{k-1}, w)       dynamic memory → cat(h′, h′) → ResBlocks → upBlock        ``h_net2``, ``h_net3``
    I_k = tanh(conv3×3(R_k))                                 ``img_net1..3`` (harness.nn.generator_blocks.ImageHead)

Discriminators: the shared stage discriminators with spectral norm (``build_dmgan_discriminators``).

Reuse by methods built on DM-GAN (ECAGAN, CAE-GAN):

* ``DynamicMemory`` (``plugins.dmgan.memory``) and ``NextStageG`` are standalone modules.
* ``DMGANGenerator(..., first_stage=module)`` replaces F_0 by any module ``forward(z, c) -> (B, GF, s, s)``
  (ECAGAN swaps the upsampling blocks); ``DMGANGenerator.first_stage(...)`` builds the default one.
* ``DMGANGenerator(..., condition_input_dim=n)`` sizes CA for another conditioning vector, and the
  overridable method ``condition_input(text)`` picks it (default: the sentence feature; CAE-GAN returns f_c).
* The overridable method ``next_stage(index)`` builds refinement stage ``index`` (1-based: 1 → ``h_net2``).
* ``DMGANGenerator.from_config(cfg, **kwargs)`` reads the sizes from a config and passes ``kwargs`` on.

Stage modules keep the reference attribute names ``h_net<k>`` / ``img_net<k>`` (k = 1 … branch_num); the
memory lives in ``h_net<k>.memory`` (the reference keeps its parameters directly in ``h_net<k>``: see
``checkpoint.py`` for the key mapping of released weights).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor, nn

from harness.nn.conditioning import CANet
from harness.nn.discriminators import build_discriminators
from harness.nn.generator_blocks import ImageHead, InitStageG, UpBlock, residual_stack
from harness.types import GenOutput, TextFeatures
from plugins.dmgan.memory import DynamicMemory

if TYPE_CHECKING:  # pragma: no cover
    from harness.config import Config

__all__ = ["DynamicMemory", "NextStageG", "DMGANGenerator", "build_dmgan_discriminators"]


class NextStageG(nn.Module):
    """A refinement stage F_k: (R_{k-1} B×GF×H×W, words B×D×T, mask B×T) → (R_k B×GF×2H×2W, α B×T×H×W).

    h′ = DynamicMemory(R_{k-1}, w); then cat(h′, h′) (2·GF channels, as the reference), ``r_num`` ResBlocks
    (2·GF) and an upBlock (2·GF → GF).
    """

    def __init__(self, gf_dim: int = 64, word_dim: int = 256, r_num: int = 2):
        super().__init__()
        self.memory = DynamicMemory(image_dim=gf_dim, word_dim=word_dim)
        self.residual = residual_stack(2 * gf_dim, r_num)
        self.upsample = UpBlock(2 * gf_dim, gf_dim)

    def forward(self, h: Tensor, words: Tensor, mask: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        h_new, attn = self.memory(h, words, mask)
        out = self.residual(torch.cat((h_new, h_new), dim=1))  # cat(h′, h′): the gated features, twice
        return self.upsample(out), attn


class DMGANGenerator(nn.Module):
    """DM-GAN's generator: ``forward(noise B×z, text) -> GenOutput`` (images low → high, μ, logvar, and one
    memory-addressing map B×T×H×W per refinement stage).

    gf_dim:              GF_DIM (64 in the paper presets): channels of every stage's features R_k
    z_dim, condition_dim: noise and CA dimensions (100, 100)
    embedding_dim:       D of the word features (256) and, by default, of the conditioning input
    r_num:               ResBlocks per refinement stage (2 CUB, 3 COCO)
    branch_num:          number of stages (3 → 64, 128, 256 for base_size 64)
    base_size:           resolution of the first stage (4·2^n; 64 in the paper presets)
    first_stage:         a replacement for F_0, ``forward(z, c) -> (B, gf_dim, base_size, base_size)``
    condition_input_dim: size of the vector CA reads (default ``embedding_dim``)
    """

    def __init__(self, *, gf_dim: int = 64, z_dim: int = 100, condition_dim: int = 100, embedding_dim: int = 256,
                 r_num: int = 2, branch_num: int = 3, base_size: int = 64,
                 first_stage: Optional[nn.Module] = None, condition_input_dim: Optional[int] = None):
        super().__init__()
        if branch_num < 1:
            raise ValueError(f"branch_num must be at least 1, got {branch_num}")
        self.gf_dim, self.z_dim, self.condition_dim = gf_dim, z_dim, condition_dim
        self.embedding_dim, self.r_num, self.branch_num, self.base_size = embedding_dim, r_num, branch_num, base_size
        self.ca_net = CANet(condition_input_dim or embedding_dim, condition_dim)
        self.h_net1 = first_stage if first_stage is not None else self.first_stage()
        self.img_net1 = ImageHead(gf_dim)
        for k in range(2, branch_num + 1):
            self.add_module(f"h_net{k}", self.next_stage(k - 1))
            self.add_module(f"img_net{k}", ImageHead(gf_dim))

    @classmethod
    def from_config(cls, cfg: "Config", **kwargs) -> "DMGANGenerator":
        """The generator of a resolved config (model.* sizes, data.branch_num / base_size); ``kwargs`` (e.g.
        ``first_stage``, ``condition_input_dim``) go to the constructor."""
        m = cfg.model
        return cls(gf_dim=m.gf_dim, z_dim=m.z_dim, condition_dim=m.condition_dim, embedding_dim=m.embedding_dim,
                   r_num=m.r_num, branch_num=cfg.data.branch_num, base_size=cfg.data.base_size, **kwargs)

    # --- overridable construction and conditioning ------------------------------------------------------
    def first_stage(self) -> nn.Module:
        """F_0: the shared InitStageG with 16·GF channels at 4×4 for a 64² first stage (GF·2^n in general)."""
        n = int(round(math.log2(self.base_size / 4)))
        if 4 * 2 ** n != self.base_size or n < 1:
            raise ValueError(f"base_size must be 4·2^n (n ≥ 1), got {self.base_size}")
        return InitStageG(self.gf_dim * 2 ** n, self.condition_dim, self.z_dim, num_upsamples=n)

    def next_stage(self, index: int) -> nn.Module:
        """Refinement stage ``index`` (1 → h_net2): ``forward(h, words, mask) -> (h_next, attn)``."""
        return NextStageG(self.gf_dim, self.embedding_dim, self.r_num)

    def condition_input(self, text: TextFeatures) -> Tensor:
        """The vector CA conditions on: the sentence feature s (CAE-GAN overrides this with f_c)."""
        return text.sent

    # --- forward ---------------------------------------------------------------------------------------
    def stages(self) -> list[tuple[nn.Module, nn.Module]]:
        """(feature stage, image head) pairs, low → high resolution."""
        return [(getattr(self, f"h_net{k}"), getattr(self, f"img_net{k}")) for k in range(1, self.branch_num + 1)]

    def forward(self, noise: Tensor, text: TextFeatures) -> GenOutput:
        c, mu, logvar = self.ca_net(self.condition_input(text))
        pairs = self.stages()
        h = pairs[0][0](noise, c)  # R_0 = F_0(z, c): input cat(c, z)
        images, attn = [pairs[0][1](h)], []
        for stage, head in pairs[1:]:
            h, a = stage(h, text.words, text.mask)  # R_k = F_k(R_{k-1}, w)
            images.append(head(h))
            attn.append(a)
        return GenOutput(images=images, mu=mu, logvar=logvar, attn=attn)


def build_dmgan_discriminators(cfg: "Config") -> nn.ModuleList:
    """One spectral-norm discriminator per stage resolution (DF_DIM, conditioned on the 256-d sentence)."""
    from harness.config import stage_sizes

    return build_discriminators(cfg.model.df_dim, cfg.model.embedding_dim, stage_sizes(cfg), spectral=True)
