"""CAE-GAN's cross-attention encoder C_E(s, F_R) (Computer Science 2022, 49(2):107-115), as this plugin reads
the paper's abstract (its README lists the choices).

Symbols (paper → code):

    s        DAMSM BiLSTM word features, B×D×T (``TextFeatures.words``), padding masked
    F_R/f_v  image region features, B×D×h×w (DAMSM image encoder regions; at generation time retrieved from
             the region bank, see ``region_bank.py``), flattened to N = h·w region tokens
    q_v      Linear(f_v)            queries of the cross attention (one per region)
    k_s, v_s Linear(s)              keys / values of the cross attention (one per word)
    s_c      Dropout(softmax(λ_c·q_v·k_sᵀ))   cross-attention map, B×heads×N×T, softmax over words
    l        s_c·v_s                 words gathered per region, B×N×D
    l_c      Norm(f_v + A1·l + B1)   "Add & Norm" (A1, B1 = output projection weight and bias)
    q_l,k_l,v_l Linear(l_c)          self attention over the N region tokens
    s_s      Dropout(softmax(λ_s·q_l·k_lᵀ)), B×heads×N×N
    l_cs     s_s·v_l
    f_c      Norm(l_c + A2·l_cs + B2), pooled to B×D by the mean over the N regions
    W        the word-feature matrix handed to DM-GAN's dynamic memory: s itself (B×D×T)

Reading of the seed text (the paper's sizes are not public):

* ``Norm(A1·l + B1)`` is read as the Transformer's post-norm "Add & Norm": A1·l + B1 is the affine output
  projection of the attention result and the residual is the query stream f_v (same width D), followed by
  LayerNorm. The same for ``Norm(A2·l_cs + B2)`` with the residual l_c.
* The seed text also names k_v, v_v (and no q_s use); they take no part in any formula, so they are not built.
* No position-wise feed-forward block and no positional encoding (none in the seed formulas); f_c is pooled by
  the mean over regions, so a region order never matters.
* Multi-head attention: ``heads`` heads of width D/heads; λ_c = λ_s = 1/√(D/heads) unless given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn


@dataclass
class EncoderOutput:
    """What C_E returns.

    f_c:        B×D pooled cross-attention feature (conditions the first generator stage)
    words:      B×D×T word-feature matrix W for the dynamic memory
    tokens:     B×N×D f_c before pooling (one token per region)
    cross_attn: B×heads×N×T cross-attention map s_c (after dropout; rows sum to 1 in eval())
    self_attn:  B×heads×N×N self-attention map s_s
    """

    f_c: Tensor
    words: Tensor
    tokens: Tensor
    cross_attn: Tensor
    self_attn: Tensor


class ScaledAttention(nn.Module):
    """One multi-head attention: queries from ``x_q``, keys and values from ``x_kv``.

    Returns (result B×Nq×D, attention map B×heads×Nq×Nk). The result is A·(map·v) + B (A, B = output
    projection), before the residual and the norm.
    """

    def __init__(self, dim: int, heads: int, dropout: float, scale: Optional[float] = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"encoder width {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.scale = scale if scale is not None else 1.0 / math.sqrt(self.head_dim)  # λ
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(dim, dim)  # A·x + B

    def _split(self, x: Tensor) -> Tensor:  # B×N×D → B×heads×N×d
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x_q: Tensor, x_kv: Tensor, key_padding: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        q, k, v = self._split(self.query(x_q)), self._split(self.key(x_kv)), self._split(self.value(x_kv))
        score = self.scale * q @ k.transpose(-1, -2)  # λ·q·kᵀ, B×heads×Nq×Nk
        if key_padding is not None:  # B×Nk bool, True = padding
            score = score.masked_fill(key_padding[:, None, None, :], float("-inf"))
        attn = self.dropout(torch.softmax(score, dim=-1))
        mixed = (attn @ v).transpose(1, 2).reshape(x_q.shape[0], x_q.shape[1], -1)  # B×Nq×D
        return self.out(mixed), attn


class CrossAttentionEncoder(nn.Module):
    """C_E(s, F_R) → f_c, W; optionally holds the region bank that supplies F_R without the real image.

    dim:     D (= the DAMSM embedding width)
    heads:   attention heads (width D/heads each)
    dropout: on both attention maps (train mode only)
    bank:    a ``RegionBank`` (its tensors are buffers, saved with any module that holds this one)
    """

    def __init__(self, dim: int, heads: int = 4, dropout: float = 0.1, bank: Optional[nn.Module] = None,
                 scale_cross: Optional[float] = None, scale_self: Optional[float] = None):
        super().__init__()
        self.dim = dim
        self.cross = ScaledAttention(dim, heads, dropout, scale_cross)  # q_v, k_s, v_s, A1/B1
        self.norm_cross = nn.LayerNorm(dim)
        self.self_attn = ScaledAttention(dim, heads, dropout, scale_self)  # q_l, k_l, v_l, A2/B2
        self.norm_self = nn.LayerNorm(dim)
        self.bank = bank

    def forward(self, words: Tensor, mask: Tensor, regions: Tensor) -> EncoderOutput:
        """words s: B×D×T, mask: B×T bool (True = padding), regions F_R: B×D×h×w (or B×D×N)."""
        s = words.transpose(1, 2)  # B×T×D
        f_v = regions.flatten(2).transpose(1, 2)  # B×N×D
        l, s_c = self.cross(f_v, s, key_padding=mask)
        l_c = self.norm_cross(f_v + l)  # Norm(f_v + A1·l + B1)
        l_cs, s_s = self.self_attn(l_c, l_c)
        tokens = self.norm_self(l_c + l_cs)  # f_c = Norm(l_c + A2·l_cs + B2)
        return EncoderOutput(tokens.mean(dim=1), words, tokens, s_c, s_s)

    def encode(self, words: Tensor, mask: Tensor, sent: Tensor) -> EncoderOutput:
        """The generation path: F_R retrieved from the bank by the DAMSM sentence feature (never an image)."""
        if self.bank is None:
            raise RuntimeError("this cross-attention encoder has no region bank")
        regions = self.bank.retrieve(sent)
        return self(words, mask, regions.to(words.dtype))
