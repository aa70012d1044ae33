"""AttnGAN's networks (Xu et al., CVPR 2018; reference taoxugit/AttnGAN ``code/model.py``), top to bottom.

    c, μ, logvar = F_ca(s̄)                                  conditioning augmentation
    h0 = F0(cat(c, z)),            x0 = G0(h0)              first stage (64² in the paper)
    h_i = F_i(cat(h_{i−1}, F_attn(e, h_{i−1}))),  x_i = G_i(h_i)   refinement stages with word attention

Module names equal the reference ``G_NET`` (``ca_net``, ``h_net1``, ``img_net1``, ``h_net2`` …), so the released
``bird_AttnGAN2.pth`` loads key for key (plugins/attngan/reference_keys.txt).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from harness.nn.conditioning import CANet
from harness.nn.generator_blocks import ImageHead, StagedGenerator, UpBlock, first_stage, residual_stack
from harness.nn.word_attention import WordAttention


class AttnStageG(nn.Module):
    """A refinement stage F_i (reference ``NEXT_STAGE_G``): word attention, cat(h, context), R_NUM ResBlocks on
    2·GF channels, upBlock to GF channels at twice the resolution. (B, GF, s, s) → (B, GF, 2s, 2s)."""

    def __init__(self, gf_dim: int, embedding_dim: int, r_num: int):
        super().__init__()
        self.att = WordAttention(gf_dim, embedding_dim)
        self.residual = residual_stack(gf_dim * 2, r_num)
        self.upsample = UpBlock(gf_dim * 2, gf_dim)

    def forward(self, h: Tensor, words: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        context, attn = self.att(h, words, mask)
        return self.upsample(self.residual(torch.cat((h, context), dim=1))), attn


class AttnGANGenerator(StagedGenerator):
    """``forward(noise B×z, text) -> GenOutput`` with ``branch_num`` images, the first at ``base_size``: the
    shared stage skeleton with word-attention refinement stages."""

    def __init__(self, *, gf_dim: int = 32, embedding_dim: int = 256, condition_dim: int = 100, z_dim: int = 100,
                 r_num: int = 2, branch_num: int = 3, base_size: int = 64):
        super().__init__(ca_net=CANet(embedding_dim, condition_dim),
                         first_stage=first_stage(gf_dim, condition_dim, z_dim, base_size),
                         next_stage=lambda k: AttnStageG(gf_dim, embedding_dim, r_num),
                         image_head=lambda k: ImageHead(gf_dim), branch_num=branch_num)
