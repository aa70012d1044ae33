"""Spectral normalisation as DM-GAN's ``code/spectral.py`` computes it (Miyato et al. 2018; the DM-GAN family's
discriminators), as a ``torch.nn.utils.parametrize`` parametrisation with u and v buffers.

On **every** access of the weight (each forward call of the layer), in train and eval mode alike, from the
stored unit vectors u (out) and v (in) and the raw weight W viewed as out × (in·k·k):

    v ← l2normalize(Wᵀu),  u ← l2normalize(Wv)     l2normalize(x) = x / (‖x‖₂ + 1e−12)
    σ = uᵀWv,  weight = W / σ                      (gradient through W only, as the original)

u and v start as N(0, 1) vectors (u drawn first), normalised, with no warm-up iterations.
``torch.nn.utils.parametrizations.spectral_norm`` differs: it updates u first, then v, runs 15 iterations at
construction and freezes u, v in eval().

State-dict layout (the same as torch's parametrisation, so runs saved with it load unchanged):
``<layer>.bias``, ``<layer>.parametrizations.weight.original`` (W), ``<layer>.parametrizations.weight.0._u``,
``<layer>.parametrizations.weight.0._v``. The original's layout ``<layer>.module.{bias, weight_u, weight_v,
weight_bar}`` maps to it with ``from_reference_layout``.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

EPS = 1e-12


def l2normalize(x: Tensor, eps: float = EPS) -> Tensor:
    """x / (‖x‖₂ + eps): the original's normalisation (not ``F.normalize``'s max(‖x‖, eps))."""
    return x / (x.norm() + eps)


class ReferenceSpectralNorm(nn.Module):
    """The parametrisation W ↦ W / σ(W) with one power iteration (v first, then u) per call.

    weight: the layer's raw weight (out × …), used for the shapes and the device/dtype of u (out) and v (in·…).
    """

    def __init__(self, weight: Tensor, eps: float = EPS):
        super().__init__()
        self.eps = eps
        rows = weight.shape[0]
        cols = weight.numel() // rows
        with torch.no_grad():
            u = weight.new_empty(rows).normal_(0, 1)
            v = weight.new_empty(cols).normal_(0, 1)
        self.register_buffer("_u", l2normalize(u, eps))
        self.register_buffer("_v", l2normalize(v, eps))

    def forward(self, weight: Tensor) -> Tensor:
        """W (out × …) → W / σ(W) after one power step on the stored u, v (updated in place); autocast off (half
        weights computed in fp32)."""
        with torch.autocast(weight.device.type, enabled=False):
            w = weight.float() if weight.dtype in (torch.float16, torch.bfloat16) else weight
            mat = w.reshape(w.shape[0], -1)
            with torch.no_grad():
                v = l2normalize(torch.mv(mat.t(), self._u.to(w.dtype)), self.eps)
                u = l2normalize(torch.mv(mat, v), self.eps)
                self._v.copy_(v)
                self._u.copy_(u)
            sigma = torch.dot(u, torch.mv(mat, v))  # u, v: fresh tensors, so later in-place updates keep autograd valid
            return (w / sigma).to(weight.dtype)


def reference_spectral_norm(module: nn.Module, name: str = "weight") -> nn.Module:
    """Register ``ReferenceSpectralNorm`` on ``module.<name>``; returns the module (u, v buffers, W trainable)."""
    parametrize.register_parametrization(module, name, ReferenceSpectralNorm(getattr(module, name)), unsafe=True)
    return module


_REFERENCE_KEY = re.compile(r"^(.*)\.module\.(bias|weight_u|weight_v|weight_bar)$")
_HARNESS_SUFFIX = {"bias": "bias", "weight_u": "parametrizations.weight.0._u",
                   "weight_v": "parametrizations.weight.0._v", "weight_bar": "parametrizations.weight.original"}


def reference_to_harness_key(key: str) -> str:
    """``img_code_s16.0.module.weight_bar`` → ``img_code_s16.0.parametrizations.weight.original`` (and ``_u``,
    ``_v``, ``bias``); every other key is unchanged."""
    m = _REFERENCE_KEY.match(key)
    return f"{m.group(1)}.{_HARNESS_SUFFIX[m.group(2)]}" if m else key


def harness_to_reference_key(key: str) -> str:
    """The inverse of ``reference_to_harness_key`` for a spectrally normalised layer's keys (``bias`` needs the
    layer to be known as spectral: pass the keys of such a layer only through ``to_reference_layout``)."""
    for ref, ours in _HARNESS_SUFFIX.items():
        if ref != "bias" and key.endswith("." + ours):
            return f"{key[: -len(ours) - 1]}.module.{ref}"
    return key


def from_reference_layout(state: Mapping[str, Tensor]) -> "OrderedDict[str, Tensor]":
    """A state dict in the original ``SpectralNorm`` layout with its keys renamed to this module's (order kept)."""
    return OrderedDict((reference_to_harness_key(k), v) for k, v in state.items())


def to_reference_layout(state: Mapping[str, Tensor]) -> "OrderedDict[str, Tensor]":
    """This layout → the original ``SpectralNorm`` layout (``<layer>.module.{bias, weight_u, weight_v,
    weight_bar}``), for comparisons with the original code."""
    spectral = {k[: -len(".parametrizations.weight.original")] for k in state
                if k.endswith(".parametrizations.weight.original")}
    out: OrderedDict[str, Tensor] = OrderedDict()
    for k, v in state.items():
        layer, _, leaf = k.rpartition(".")
        out[f"{layer}.module.bias" if leaf == "bias" and layer in spectral else harness_to_reference_key(k)] = v
    return out
