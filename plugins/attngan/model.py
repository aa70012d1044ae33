"""AttnGAN's networks (Xu et al., CVPR 2018; reference taoxugit/AttnGAN ``code/model.py``), top to bottom.

    c, μ, logvar = F_ca(s̄)                                  conditioning augmentation
    h0 = F0(cat(c, z)),            x0 = G0(h0)              first stage (64² in the paper)
    h_i = F_i(cat(h_{i−1}, F_attn(e, h_{i−1}))),  x_i = G_i(h_i)   refinement stages with word attention

Module names equal the reference ``G_NET`` (``ca_net``, ``h_net1``, ``img_net1``, ``h_net2`` …), so the released
``bird_AttnGAN2.pth`` loads key for key (plugins/attngan/reference_keys.txt).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from harness.nn.conditioning import CANet
from harness.nn.generator_blocks import ImageHead, InitStageG, UpBlock, residual_stack
from harness.nn.word_attention import WordAttention
from harness.types import GenOutput, TextFeatures


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


class AttnGANGenerator(nn.Module):
    """``forward(noise B×z, text) -> GenOutput`` with ``branch_num`` images, the first at ``base_size``."""

    def __init__(self, *, gf_dim: int = 32, embedding_dim: int = 256, condition_dim: int = 100, z_dim: int = 100,
                 r_num: int = 2, branch_num: int = 3, base_size: int = 64):
        super().__init__()
        num_up = int(round(math.log2(base_size / 4)))
        if 4 * 2 ** num_up != base_size or num_up < 1:
            raise ValueError(f"base_size must be 4·2^n, got {base_size}")
        self.branch_num = branch_num
        self.ca_net = CANet(embedding_dim, condition_dim)
        # F0 starts from 2^n·GF channels at 4×4 (16·GF for the paper's 64² first stage)
        self.h_net1 = InitStageG(gf_dim * 2 ** num_up, condition_dim, z_dim, num_up)
        self.img_net1 = ImageHead(gf_dim)
        for i in range(2, branch_num + 1):
            self.add_module(f"h_net{i}", AttnStageG(gf_dim, embedding_dim, r_num))
            self.add_module(f"img_net{i}", ImageHead(gf_dim))

    def forward(self, noise: Tensor, text: TextFeatures) -> GenOutput:
        c, mu, logvar = self.ca_net(text.sent)
        h = self.h_net1(noise, c)
        images, attn = [self.img_net1(h)], []
        for i in range(2, self.branch_num + 1):
            h, att = getattr(self, f"h_net{i}")(h, text.words, text.mask)
            images.append(getattr(self, f"img_net{i}")(h))
            attn.append(att)
        return GenOutput(images=images, mu=mu, logvar=logvar, attn=attn)
