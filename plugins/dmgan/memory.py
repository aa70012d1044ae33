"""DM-GAN's dynamic memory (Zhu et al., CVPR 2019, §3.2): memory writing, key addressing, value reading and
the response gate, as the reference ``NEXT_STAGE_G`` (``code/model.py``) computes them.

Symbols (paper → code): w_i word features (``words``, B×D×T); R the image features of the previous stage
(``h``, B×C×H×W); r̄ their global average, **detached**; g^w the writing gate; m_i the memory slots;
φ_K / φ_V the key and value projections; α the addressing weights; o the read-out; g^r the response gate.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.nn.word_attention import masked_word_softmax


def _conv1x1_relu(cin: int, cout: int) -> nn.Sequential:
    """Conv1d k=1 (with bias) + ReLU; a ``Sequential`` so the state-dict keys read ``<name>.0.weight``."""
    return nn.Sequential(nn.Conv1d(cin, cout, kernel_size=1), nn.ReLU())


class DynamicMemory(nn.Module):
    """Dynamic memory of one refinement stage.

    ``forward(h, words, mask) -> (h_new, attn)``:
      h:     B×C×H×W image features of the previous stage (C = ``image_dim``, the generator's GF_DIM)
      words: B×D×T word features (D = ``word_dim``)
      mask:  B×T bool, True = padding (masked out of the addressing), or None; whose padding each pixel uses is
             ``attention_mask`` (``per_sample`` | ``reference``, see ``harness.nn.word_attention``)
      h_new: B×C×H×W, the response-gated features h′ = (1−g^r)·h + g^r·o
      attn:  B×T×H×W, the addressing weights α (softmax over words)

    Sizes of the reference (GF_DIM 64, D 256): memory 2·C = 128 channels, key/value C = 64 channels.
    """

    def __init__(self, image_dim: int = 64, word_dim: int = 256, memory_dim: int | None = None,
                 attention_mask: str = "per_sample"):
        super().__init__()
        self.attention_mask = attention_mask
        memory_dim = 2 * image_dim if memory_dim is None else memory_dim
        self.image_dim, self.word_dim, self.memory_dim = image_dim, word_dim, memory_dim
        self.A = nn.Linear(word_dim, 1, bias=False)  # writing gate, word side
        self.B = nn.Linear(image_dim, 1, bias=False)  # writing gate, image side
        self.M_r = _conv1x1_relu(image_dim, memory_dim)  # image → memory
        self.M_w = _conv1x1_relu(word_dim, memory_dim)  # word → memory
        self.key = _conv1x1_relu(memory_dim, image_dim)  # φ_K
        self.value = _conv1x1_relu(memory_dim, image_dim)  # φ_V
        self.response_gate = nn.Sequential(nn.Conv2d(2 * image_dim, 1, kernel_size=1), nn.Sigmoid())

    # --- the three steps, separately callable for inspection and tests -------------------------------------
    def write(self, h: Tensor, words: Tensor) -> Tensor:
        """Memory writing → memory slots m, B×M×T."""
        # r̄ = AvgPool(R), detached (reference), B×C; avg_pool2d as the original's AvgPool2d(size), which sums in
        # another order than mean() (up to ~3e-6 apart for 64² features, enough to show in the 256² image)
        r = F.avg_pool2d(h, kernel_size=tuple(h.shape[-2:])).flatten(1).detach()
        g = torch.sigmoid(self.A(words.transpose(1, 2)) + self.B(r).unsqueeze(1))  # g^w_i, B×T×1
        g = g.transpose(1, 2)  # B×1×T
        m_w = self.M_w(words)  # ReLU(M_w w_i), B×M×T
        # ReLU(M_r r̄) for every slot, B×M×T: r̄ is repeated over the T slots before the 1×1 conv, as the original
        # does (a length-1 input takes another conv kernel on one thread: 2e-7 apart, 1e-5 in the 256² image)
        m_r = self.M_r(r.unsqueeze(2).expand(-1, -1, words.shape[2]))
        return m_w * g + m_r * (1 - g)  # m_i = g^w_i·M_w(w_i) + (1−g^w_i)·M_r(r̄)

    def read(self, h: Tensor, memory: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Key addressing and value reading → (o B×C×H×W, α B×T×H×W)."""
        b, c, height, width = h.shape
        key, value = self.key(memory), self.value(memory)  # B×C×T each
        logits = torch.bmm(h.reshape(b, c, height * width).transpose(1, 2), key)  # h_j·k_i, no 1/√d, B×N×T
        alpha = masked_word_softmax(logits, mask, self.attention_mask)  # α_{j,i}: softmax over words i, padding at −∞
        o = torch.bmm(value, alpha.transpose(1, 2))  # o_j = Σ_i α_{j,i} v_i, B×C×N
        return o.reshape(b, c, height, width), alpha.transpose(1, 2).reshape(b, -1, height, width)

    def respond(self, h: Tensor, o: Tensor) -> Tensor:
        """Response gate: h′ = (1−g^r)·h + g^r·o with g^r = σ(W[h; o] + b), B×1×H×W."""
        g_r = self.response_gate(torch.cat((h, o), dim=1))
        return h * (1 - g_r) + g_r * o

    def forward(self, h: Tensor, words: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        memory = self.write(h, words)
        o, attn = self.read(h, memory, mask)
        return self.respond(h, o), attn
