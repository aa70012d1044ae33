"""Exponential moving average of the generator's parameters (``avg_param_G`` of the original AttnGAN /
DM-GAN ``code/trainer.py``).

avg ← d·avg + (1 − d)·θ after every generator step, for the **parameters** only; buffers (BatchNorm running
statistics) are not averaged: the EMA generator uses the live generator's buffers, as the reference saves
``G_NET`` with the averaged parameters loaded into it.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn


class ParameterEMA:
    """The averaged copy of a module's parameters (in ``named_parameters()`` order)."""

    def __init__(self, module: nn.Module, decay: float):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.names = [n for n, _ in module.named_parameters()]
        self.averages: list[Tensor] = [p.detach().clone() for _, p in module.named_parameters()]

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """avg ← d·avg + (1 − d)·θ (the reference's ``mul_(0.999).add_(p, alpha=0.001)``), fused over tensors.

        Frozen parameters (e.g. CAE-GAN's pretrained encoder inside G) never change, so their average is their
        value: they are skipped, which saves the work and any rounding drift."""
        pairs = [(avg, p.detach()) for avg, p in zip(self.averages, module.parameters()) if p.requires_grad]
        if not pairs:
            return
        averages, params = map(list, zip(*pairs))
        torch._foreach_mul_(averages, self.decay)
        torch._foreach_add_(averages, params, alpha=1.0 - self.decay)

    def state_dict_for(self, module: nn.Module) -> dict[str, Tensor]:
        """``module.state_dict()`` with the averaged parameters in place of the live ones (the EMA generator)."""
        sd = {k: v.detach().clone() for k, v in module.state_dict().items()}
        for name, avg in zip(self.names, self.averages):
            if name in sd:
                sd[name] = avg.detach().clone()
        return sd

    def load_from(self, ema_state: dict[str, Tensor]) -> None:
        """Take the averages from a state dict written by ``state_dict_for``."""
        missing = [n for n in self.names if n not in ema_state]
        if missing:
            raise KeyError(f"EMA state lacks parameter {missing[0]!r}")
        with torch.no_grad():
            for name, avg in zip(self.names, self.averages):
                avg.copy_(ema_state[name])

    @contextmanager
    def swapped_into(self, module: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the averaged parameters into ``module`` (for sample sheets), restoring after."""
        params = list(module.parameters())
        backup = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, avg in zip(params, self.averages):
                p.copy_(avg)
        try:
            yield module
        finally:
            with torch.no_grad():
                for p, b in zip(params, backup):
                    p.copy_(b)
