"""The AttnGAN / DM-GAN training objective on a ``Step`` (reference ``code/miscc/losses.py`` and
``code/trainer.py``), shared by every method built on them; a method's loss hooks return these terms.

Discriminator of stage i: ``{"d_<size>": L_D}`` (``harness.nn.gan_losses.discriminator_loss``).
Generator: ``{"g_adv_<size>": L_G per stage, "damsm_words": λ·(w0+w1), "damsm_sent": λ·(s0+s1), "kl": KL·weight}``,
the DAMSM terms on the last (largest) image with the frozen DAMSM image encoder and the DAMSM text features.
"""
from __future__ import annotations

from torch import Tensor, nn

from harness.nn.conditioning import kl_loss
from harness.nn.damsm_loss import sent_loss, words_loss
from harness.nn.gan_losses import discriminator_loss, generator_adversarial_loss
from harness.contract.types import Step, TextFeatures


def stage_name(image: Tensor) -> str:
    """A stage's label in loss names: its resolution (64, 128, 256)."""
    return str(int(image.shape[-1]))


def discriminator_terms(step: Step, stage: int) -> dict[str, Tensor]:
    """``{"d_<size>": loss}`` of discriminator ``stage`` on real, detached fake and shifted ("wrong") pairs."""
    fake = step.output.images[stage].detach()
    real = step.batch.images[stage]
    out = discriminator_loss(step.discriminators[stage], real, fake, step.text.sent.detach())
    return {f"d_{stage_name(fake)}": out["loss"]}


def damsm_terms(image_encoder: nn.Module, image: Tensor, text: TextFeatures, class_ids: Tensor | None, *,
                gamma1: float, gamma2: float, gamma3: float, weight: float) -> dict[str, Tensor]:
    """λ·(w0+w1) and λ·(s0+s1) of a generated image against its captions' DAMSM features."""
    regions, code = image_encoder(image)
    w0, w1, _ = words_loss(regions, text.words, text.lengths, class_ids, gamma1, gamma2, gamma3)
    s0, s1 = sent_loss(code, text.sent, class_ids, gamma3)
    return {"damsm_words": weight * (w0 + w1), "damsm_sent": weight * (s0 + s1)}


def generator_terms(step: Step) -> dict[str, Tensor]:
    """Adversarial terms through every discriminator, the DAMSM terms and the KL term, already weighted."""
    loss_cfg = step.cfg.loss
    sent = step.text.sent.detach()
    terms: dict[str, Tensor] = {}
    for disc, fake in zip(step.discriminators, step.output.images):
        terms[f"g_adv_{stage_name(fake)}"] = generator_adversarial_loss(disc, fake, sent)
    terms.update(damsm_terms(step.image_encoder, step.output.images[-1], step.damsm_text.detach(),
                             step.batch.class_ids, gamma1=loss_cfg.gamma1, gamma2=loss_cfg.gamma2,
                             gamma3=loss_cfg.gamma3, weight=loss_cfg.damsm_lambda))
    terms["kl"] = loss_cfg.kl_weight * kl_loss(step.output.mu, step.output.logvar)
    return terms
