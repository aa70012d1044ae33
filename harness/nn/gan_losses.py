"""The adversarial losses of AttnGAN / DM-GAN (reference ``code/miscc/losses.py``), on discriminator logits.

The reference takes BCE of sigmoid outputs; here the discriminator heads return logits and BCE is computed by
``binary_cross_entropy_with_logits`` (the same value, without overflow when the sigmoid saturates). All in fp32.

Per stage (x real, G fake, s sentence feature, x_shift = real features of samples 0..B−2 paired with the
sentences of samples 1..B−1: the "wrong" pairs of the length-sorted batch):

    L_D = ½·[BCE(D_u(x),1) + BCE(D_c(x,s),1)] + ⅓·[BCE(D_u(G),0) + BCE(D_c(G,s),0) + BCE(D_c(x_shift,s),0)]
    L_G = BCE(D_u(G),1) + BCE(D_c(G,s),1)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def bce_logits(logits: Tensor, target: float) -> Tensor:
    """Mean BCE of sigmoid(logits) against a constant label (1 real, 0 fake), stable and in fp32."""
    with torch.autocast(logits.device.type, enabled=False):
        logits = logits.float()
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(target)))


def discriminator_loss(disc: nn.Module, real: Tensor, fake: Tensor, sent: Tensor) -> dict[str, Tensor]:
    """One stage discriminator's loss, in the reference call order (real, fake; cond real, fake, wrong;
    uncond real, fake). ``fake`` must already be detached. Returns the total and its parts:
    ``{"loss", "real", "fake", "wrong"}`` (BCE values, the cond/uncond terms of each kind summed)."""
    real_features = disc(real)
    fake_features = disc(fake)
    cond_real = bce_logits(disc.COND_DNET(real_features, sent), 1.0)
    cond_fake = bce_logits(disc.COND_DNET(fake_features, sent), 0.0)
    batch = real_features.shape[0]
    if batch > 1:
        cond_wrong = bce_logits(disc.COND_DNET(real_features[: batch - 1], sent[1:batch]), 0.0)
    else:  # no wrong pair in a batch of one
        cond_wrong = cond_fake.new_zeros(())
    uncond_real = bce_logits(disc.UNCOND_DNET(real_features), 1.0)
    uncond_fake = bce_logits(disc.UNCOND_DNET(fake_features), 0.0)
    loss = (uncond_real + cond_real) / 2.0 + (uncond_fake + cond_fake + cond_wrong) / 3.0
    return {"loss": loss, "real": uncond_real + cond_real, "fake": uncond_fake + cond_fake, "wrong": cond_wrong}


def generator_adversarial_loss(disc: nn.Module, fake: Tensor, sent: Tensor) -> Tensor:
    """BCE(D_u(G),1) + BCE(D_c(G,s),1) for one stage (``fake`` not detached)."""
    features = disc(fake)
    return bce_logits(disc.UNCOND_DNET(features), 1.0) + bce_logits(disc.COND_DNET(features, sent), 1.0)
