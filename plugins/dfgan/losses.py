"""DF-GAN's objective: hinge losses with the mismatched pair and the matching-aware gradient penalty (MA-GP).

D:  relu(1 − D(x, s)) + ½·[relu(1 + D(G(z, s), s)) + relu(1 + D(x', s))] + k·mean(‖∇_{x,s} D(x, s)‖^p)
G:  −D(G(z, s), s)
with x the real image, s its sentence feature, x' the next real image of the batch (a mismatched pair; the next
of the global batch under torchrun, ``Step.roll_batch``), means over the batch; the penalty's gradient is taken
with respect to the real image and the sentence together.
"""
from __future__ import annotations

import torch
from torch import Tensor

from harness.contract.types import Step


def ma_gradient_penalty(logits: Tensor, images: Tensor, sent: Tensor, weight: float, power: float) -> Tensor:
    """k·mean_i(‖(∂Σlogits/∂images_i, ∂Σlogits/∂sent_i)‖₂^p), differentiable (``create_graph``) so that the
    discriminator's backward includes it. ``images`` and ``sent`` are the leaves ``logits`` was computed from;
    the norm is taken in fp32 whatever precision the network ran in."""
    grad_img, grad_sent = torch.autograd.grad(outputs=logits, inputs=(images, sent),
                                              grad_outputs=torch.ones_like(logits), create_graph=True)
    flat = torch.cat([_fp32(grad_img).flatten(1), _fp32(grad_sent).flatten(1)], dim=1)
    return weight * flat.norm(dim=1).pow(power).mean()


def _fp32(x: Tensor) -> Tensor:
    """bf16 activations in fp32 for the loss arithmetic; float64 (gradient checks) kept as it is."""
    return x if x.dtype == torch.float64 else x.float()


def _hinge(logits: Tensor, sign: float) -> Tensor:
    """mean(relu(1 − sign·logits)) in fp32: sign +1 for pairs that should score high, −1 for low."""
    return torch.relu(1.0 - sign * _fp32(logits)).mean()


def discriminator_terms(step: Step, stage: int) -> dict[str, Tensor]:
    """The discriminator's four terms (real, fake, mismatched, MA-GP) for this step; the real image and the
    sentence become leaves requiring grad for the penalty (both arrive detached)."""
    loss = step.cfg.loss
    d = step.discriminators[stage]
    real = step.batch.images[stage].detach().requires_grad_(True)
    sent = step.text.sent.detach().requires_grad_(True)
    real_logits, mismatched_logits = d(real, sent, mismatched=step.roll_batch)
    fake_logits = d(step.output.images[stage].detach(), sent)
    return {
        "d_real": _hinge(real_logits, 1.0),
        "d_fake": 0.5 * _hinge(fake_logits, -1.0),
        "d_mismatch": 0.5 * _hinge(mismatched_logits, -1.0),
        "d_magp": ma_gradient_penalty(real_logits, real, sent, loss.gp_weight, loss.gp_power),
    }


def generator_terms(step: Step) -> dict[str, Tensor]:
    """−mean D(G(z, s), s) for the one stage."""
    d = step.discriminators[0]
    return {"g_adv": -_fp32(d(step.output.images[0], step.text.sent)).mean()}
