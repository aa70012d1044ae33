"""Adversarial losses on hand-made discriminator outputs, the KL term, and the reference initialisation."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from harness.nn.conditioning import kl_loss
from harness.nn.discriminators import StageDiscriminator
from harness.nn.gan_losses import bce_logits, discriminator_loss, generator_adversarial_loss
from harness.nn.init import reference_init


class HandMadeD(nn.Module):
    """A 'discriminator' whose features are the input's first channel mean and whose heads return fixed
    logits chosen per call, so every probability of the loss is known."""

    def __init__(self, uncond: dict, cond: dict):
        super().__init__()
        self.UNCOND_DNET = _Head(uncond)
        self.COND_DNET = _Head(cond)

    def forward(self, x):
        return x  # the tag of the image ("real" images are +1, fake −1) goes straight to the heads


class _Head(nn.Module):
    def __init__(self, table):
        super().__init__()
        self.table = table

    def forward(self, features, sent=None):
        tag = "real" if features[0, 0, 0, 0] > 0 else "fake"
        if sent is not None and sent.shape[0] < 3:
            tag = "wrong"
        return self.table[tag][: features.shape[0]]


def _bce(p, y):
    return -sum(y * math.log(q) + (1 - y) * math.log(1 - q) for q in p) / len(p)


def test_discriminator_loss_on_known_probabilities():
    logit = lambda p: math.log(p / (1 - p))
    pu = {"real": [0.9, 0.8, 0.7], "fake": [0.2, 0.4, 0.1]}
    pc = {"real": [0.6, 0.95, 0.5], "fake": [0.3, 0.25, 0.05], "wrong": [0.45, 0.35]}
    uncond = {k: torch.tensor([logit(p) for p in v]) for k, v in pu.items()}
    cond = {k: torch.tensor([logit(p) for p in v]) for k, v in pc.items()}
    disc = HandMadeD(uncond, cond)
    real, fake = torch.ones(3, 1, 1, 1), -torch.ones(3, 1, 1, 1)
    out = discriminator_loss(disc, real, fake, torch.zeros(3, 4))
    expected = (_bce(pu["real"], 1) + _bce(pc["real"], 1)) / 2 + (
        _bce(pu["fake"], 0) + _bce(pc["fake"], 0) + _bce(pc["wrong"], 0)) / 3
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)
    assert out["wrong"].item() == pytest.approx(_bce(pc["wrong"], 0), rel=1e-6)
    g = generator_adversarial_loss(disc, fake, torch.zeros(3, 4))
    assert g.item() == pytest.approx(_bce(pu["fake"], 1) + _bce(pc["fake"], 1), rel=1e-6)


def test_wrong_pairs_are_shift_by_one():
    torch.manual_seed(0)
    d = StageDiscriminator(2, 4, 16)
    seen = {}
    orig = d.COND_DNET.forward

    def spy(features, sent=None):
        seen.setdefault("calls", []).append((features.clone(), sent.clone()))
        return orig(features, sent)

    d.COND_DNET.forward = spy
    real, fake, sent = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16), torch.randn(4, 4)
    d.eval()
    discriminator_loss(d, real, fake, sent)
    feats, s = seen["calls"][2]
    assert torch.equal(s, sent[1:]) and torch.allclose(feats, d(real)[:3])


def test_bce_logits_stable_when_saturated():
    assert torch.isfinite(bce_logits(torch.tensor([200.0, -200.0]), 1.0))
    assert bce_logits(torch.tensor([-200.0]), 1.0).item() == pytest.approx(200.0)


def test_kl_loss_formula():
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.2, -0.3]])
    expected = -0.5 * sum(1 + lv - m * m - math.exp(lv) for m, lv in zip([0.5, -1.0], [0.2, -0.3])) / 2
    assert kl_loss(mu, logvar).item() == pytest.approx(expected, rel=1e-6)
    assert kl_loss(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0


def test_reference_init_orthogonal_and_batchnorm():
    torch.manual_seed(0)
    m = reference_init(nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4), nn.Conv2d(3, 5, 3)))
    w = m[0].weight
    assert torch.allclose(w @ w.t(), torch.eye(4), atol=1e-5) and torch.all(m[0].bias == 0)
    assert torch.all(m[1].bias == 0) and (m[1].weight - 1).abs().max() < 0.2
    c = m[2].weight.reshape(5, -1)
    assert torch.allclose(c @ c.t(), torch.eye(5), atol=1e-5)
    sn = reference_init(StageDiscriminator(2, 4, 16, spectral=True))
    raw = sn.img_code_s16[0].parametrizations.weight.original.reshape(8, -1)
    assert torch.allclose(raw @ raw.t(), torch.eye(8), atol=1e-5)
