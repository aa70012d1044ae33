"""Conditioning augmentation (StackGAN/AttnGAN "CA_NET") and its KL term, plus the GLU gate they share.

    c = μ + exp(½·logvar)·ε,   [μ | logvar] = GLU(W·s + b),   ε ~ N(0, I)

ε is drawn per data item in training (``harness.nn.item_noise``), so it does not depend on the number of ranks.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from harness.nn.item_noise import item_randn


class GLU(nn.Module):
    """Gated linear unit over channels: the first half times sigmoid(second half)."""

    def forward(self, x: Tensor) -> Tensor:
        half = x.shape[1] // 2
        if x.shape[1] != 2 * half:
            raise ValueError(f"GLU needs an even number of channels, got {x.shape[1]}")
        return x[:, :half] * torch.sigmoid(x[:, half:])


class CANet(nn.Module):
    """Conditioning augmentation: sentence feature s (B×D) → (c, μ, logvar), each B×c_dim.

    Reference layout: ``fc`` Linear(D → 4·c_dim) with bias, then GLU → 2·c_dim = [μ | logvar].
    """

    def __init__(self, embedding_dim: int = 256, condition_dim: int = 100):
        super().__init__()
        self.condition_dim = condition_dim
        self.fc = nn.Linear(embedding_dim, condition_dim * 4, bias=True)
        self.glu = GLU()

    def encode(self, sent: Tensor) -> tuple[Tensor, Tensor]:
        x = self.glu(self.fc(sent))
        return x[:, : self.condition_dim], x[:, self.condition_dim:]

    def forward(self, sent: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(sent)
        eps = item_randn(mu)  # ε ~ N(0, I), drawn in training and at inference alike (as the reference)
        c = mu + torch.exp(0.5 * logvar) * eps
        return c, mu, logvar


def kl_loss(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) as the reference: −½·mean(1 + logvar − μ² − e^logvar) over all B×c elements."""
    with torch.autocast(mu.device.type, enabled=False):
        mu, logvar = mu.float(), logvar.float()
        return -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
