"""The reference weight initialisation of G and D (``weights_init`` in both repositories' ``code/trainer.py``).

* Conv* and Linear weights: orthogonal (gain 1); Linear bias: 0; conv biases keep PyTorch's default.
* BatchNorm: γ ~ N(1, 0.02), β = 0.
* A spectrally normalised conv (a ``torch.nn.utils.parametrize`` parametrisation, e.g. ``harness.nn.spectral_norm``)
  gets the orthogonal init on its raw weight (the reference ``weight_bar``).
"""
from __future__ import annotations

import torch
from torch import nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _raw_weight(m: nn.Module) -> torch.Tensor:
    """The trainable weight tensor (the original of a parametrised weight)."""
    params = getattr(m, "parametrizations", None)
    if params is not None and "weight" in params:
        return params["weight"].original
    return m.weight


@torch.no_grad()
def init_module(m: nn.Module) -> None:
    """Initialise one module as the reference does (use with ``model.apply(init_module)``)."""
    if isinstance(m, _CONV):
        nn.init.orthogonal_(_raw_weight(m), 1.0)
    elif isinstance(m, _BN):
        if m.weight is not None:
            m.weight.normal_(1.0, 0.02)
            m.bias.zero_()
    elif isinstance(m, nn.Linear):
        nn.init.orthogonal_(_raw_weight(m), 1.0)
        if m.bias is not None:
            m.bias.zero_()


def reference_init(module: nn.Module) -> nn.Module:
    """Apply the reference initialisation to every submodule; returns the module."""
    module.apply(init_module)
    return module
