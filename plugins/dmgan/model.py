"""DM-GAN networks (Zhu et al., "DM-GAN: Dynamic Memory Generative Adversarial Networks for Text-to-Image
Synthesis", CVPR 2019), top to bottom, as the original ``code/model.py``.

    s, w  = sentence / word features (TextFeatures.sent, .words), mask = padding
    c, μ, logvar = CA(s)                                     ``ca_net``      (harness.nn.conditioning.CANet)
    R_0 = F_0(z, c)             (B, GF, 64, 64)              ``h_net1``      (harness.nn.generator_blocks.InitStageG)
    R_k = F_k(R_{k-1}, w)       dynamic memory → cat(h′, h′) → ResBlocks → upBlock        ``h_net2``, ``h_net3``
    I_k = tanh(conv3×3(R_k))                                 ``img_net1..3`` (harness.nn.generator_blocks.ImageHead)

Discriminators: the shared stage discriminators with spectral norm (``build_dmgan_discriminators``).

Reuse by methods built on DM-GAN (ECAGAN, CAE-GAN):

* ``DynamicMemory`` (``plugins.dmgan.memory``) and ``NextStageG`` are standalone modules.
* ``DMGANGenerator(..., first_stage=module)`` replaces F_0 by any module ``forward(z, c) -> (B, GF, s, s)``;
  ``up_block=`` changes only the doubling blocks of the default F_0 (ECAGAN passes its CARAFE block) and
  ``image_head=`` the image heads (ECAGAN: ECA then the head). Nothing is replaced after construction.
* ``DMGANGenerator(..., condition_input_dim=n)`` sizes CA for another conditioning vector, and
  ``condition_input(text)`` (called in forward) picks it (default: the sentence feature; CAE-GAN returns f_c).
* ``DMGANGenerator.from_config(cfg, **kwargs)`` reads the sizes from a config and passes ``kwargs`` on.

Stage modules keep the reference attribute names ``h_net<k>`` / ``img_net<k>`` (k = 1 … branch_num); the
memory lives in ``h_net<k>.memory`` (the reference keeps its parameters directly in ``h_net<k>``: see
``checkpoint.py`` for the key mapping of released weights).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

import torch
from torch import Tensor, nn

from harness.nn.conditioning import CANet
from harness.nn.discriminators import build_discriminators
from harness.nn.generator_blocks import ImageHead, StagedGenerator, UpBlock, residual_stack
from harness.nn.generator_blocks import first_stage as dmgan_first_stage
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


class DMGANGenerator(StagedGenerator):
    """DM-GAN's generator: ``forward(noise B×z, text) -> GenOutput`` (images low → high, μ, logvar, and one
    memory-addressing map B×T×H×W per refinement stage), the shared stage skeleton with dynamic-memory stages.

    gf_dim:              GF_DIM (64 in the paper presets): channels of every stage's features R_k
    z_dim, condition_dim: noise and CA dimensions (100, 100)
    embedding_dim:       D of the word features (256) and, by default, of the conditioning input
    r_num:               ResBlocks per refinement stage (2 CUB, 3 COCO)
    branch_num:          number of stages (3 → 64, 128, 256 for base_size 64)
    base_size:           resolution of the first stage (4·2^n; 64 in the paper presets)
    first_stage:         a replacement for F_0, ``forward(z, c) -> (B, gf_dim, base_size, base_size)`` (default:
                         ``harness.nn.generator_blocks.first_stage`` with ``up_block``)
    up_block:            the doubling block of the default F_0, ``(in_channels, out_channels) -> module``
    image_head:          ``channels -> module`` building every stage's image head (default ``ImageHead``)
    condition_input_dim: size of the vector CA reads (default ``embedding_dim``)
    """

    def __init__(self, *, gf_dim: int = 64, z_dim: int = 100, condition_dim: int = 100, embedding_dim: int = 256,
                 r_num: int = 2, branch_num: int = 3, base_size: int = 64,
                 first_stage: Optional[nn.Module] = None, up_block: Callable[[int, int], nn.Module] = UpBlock,
                 image_head: Callable[[int], nn.Module] = ImageHead, condition_input_dim: Optional[int] = None):
        if branch_num < 1:
            raise ValueError(f"branch_num must be at least 1, got {branch_num}")
        ca_net = CANet(condition_input_dim or embedding_dim, condition_dim)
        if first_stage is None:
            first_stage = dmgan_first_stage(gf_dim, condition_dim, z_dim, base_size, up_block)
        super().__init__(ca_net=ca_net, first_stage=first_stage,
                         next_stage=lambda k: NextStageG(gf_dim, embedding_dim, r_num),
                         image_head=lambda k: image_head(gf_dim), branch_num=branch_num)
        self.gf_dim, self.z_dim, self.condition_dim = gf_dim, z_dim, condition_dim
        self.embedding_dim, self.r_num, self.base_size = embedding_dim, r_num, base_size

    @classmethod
    def from_config(cls, cfg: "Config", **kwargs) -> "DMGANGenerator":
        """The generator of a resolved config (model.* sizes, data.branch_num / base_size); ``kwargs`` (e.g.
        ``first_stage``, ``up_block``, ``image_head``, ``condition_input_dim``) go to the constructor."""
        m = cfg.model
        return cls(gf_dim=m.gf_dim, z_dim=m.z_dim, condition_dim=m.condition_dim, embedding_dim=m.embedding_dim,
                   r_num=m.r_num, branch_num=cfg.data.branch_num, base_size=cfg.data.base_size, **kwargs)


def build_dmgan_discriminators(cfg: "Config") -> nn.ModuleList:
    """One spectral-norm discriminator per stage resolution (DF_DIM, conditioned on the 256-d sentence)."""
    from harness.config import stage_sizes

    return build_discriminators(cfg.model.df_dim, cfg.model.embedding_dim, stage_sizes(cfg), spectral=True)
