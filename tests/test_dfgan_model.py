"""DF-GAN's networks and objective (plugins/dfgan): the shape of every block, the parameter counts of the original
code, the matching-aware gradient penalty against a per-item computation written here, and the discriminator
step's gradients (penalty included: a double backward) against finite differences."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.contract.plugins import build_plugins
from harness.contract.types import Batch, GenOutput, Step, TextFeatures
from harness.runs.inspect import format_inspection, inspect_method
from plugins.dfgan.config import DFGANLossConfig
from plugins.dfgan.losses import discriminator_terms, generator_terms, ma_gradient_penalty
from plugins.dfgan.model import (Affine, DBlock, DeepFusion, DFGANDiscriminator, DFGANGenerator, GBlock, NetC,
                                 NetD, NetG, feature_widths)

# Parameter counts of the original modules, instantiated from tobran/DF-GAN code/models/GAN.py as
# code/lib/perpare.py builds them (NetG(nf, z_dim, cond_dim, imsize, 3), NetD(nf, imsize, 3), NetC(nf, cond_dim))
# with code/cfg/bird.yml and code/cfg/coco.yml (both: nf 32, z_dim 100, cond_dim 256, imsize 256).
ORIGINAL_NETG = 9_744_131
ORIGINAL_NETD = 6_619_206
ORIGINAL_NETC = 295_936


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_feature_widths_double_up_to_eight_times_nf():
    assert feature_widths(32, 256) == [32, 64, 128, 256, 256, 256, 256]
    assert feature_widths(4, 32) == [4, 8, 16, 32]
    with pytest.raises(ValueError, match="4·2\\^n"):
        feature_widths(4, 48)


def test_affine_starts_as_the_identity_and_scales_per_channel():
    a = Affine(6, 5)
    x, c = torch.randn(3, 5, 4, 4), torch.randn(3, 6)
    assert torch.equal(a(x, c), x)
    with torch.no_grad():
        a.fc_gamma.linear2.bias.fill_(2.0)
        a.fc_beta.linear2.bias.copy_(torch.arange(5.0))
    assert torch.allclose(a(x, c), 2 * x + torch.arange(5.0)[None, :, None, None])


def test_block_shapes():
    c = torch.randn(2, 7)
    assert DeepFusion(7, 6)(torch.randn(2, 6, 4, 4), c).shape == (2, 6, 4, 4)
    assert GBlock(7, 6, 3)(torch.randn(2, 6, 4, 4), c).shape == (2, 3, 8, 8)
    assert GBlock(7, 6, 6).c_sc is None
    assert DBlock(3, 6)(torch.randn(2, 3, 8, 8)).shape == (2, 6, 4, 4)
    g = NetG(nf=2, z_dim=5, cond_dim=3, image_size=32)
    img = g(torch.randn(2, 5), torch.randn(2, 3))
    assert img.shape == (2, 3, 32, 32) and img.abs().max() <= 1
    features = NetD(nf=2, image_size=32)(img)
    assert features.shape == (2, 16, 4, 4)
    assert NetC(2, 16, 3)(features, torch.randn(2, 3)).shape == (2,)
    out = DFGANGenerator(2, 5, 3, 64)(torch.randn(2, 5), TextFeatures(torch.zeros(2, 3, 4), torch.randn(2, 3),
                                                                       torch.zeros(2, 4, dtype=torch.bool),
                                                                       torch.full((2,), 4)))
    assert [x.shape for x in out.images] == [(2, 3, 64, 64)] and out.mu.shape == (2, 0) and out.attn == []


def test_dblock_shortcut_conv_acts_and_trains_only_where_the_width_changes():
    same, wider = DBlock(4, 4), DBlock(4, 8)
    assert not any(p.requires_grad for p in same.conv_s.parameters())
    assert all(p.requires_grad for p in wider.conv_s.parameters())
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(same(x), F.avg_pool2d(x, 2))  # γ = 0 at initialisation: the shortcut alone
    assert torch.allclose(wider(x), F.avg_pool2d(wider.conv_s(x), 2))


def test_discriminator_mismatched_logits_pair_each_sentence_with_the_next_image():
    d = DFGANDiscriminator(nf=2, cond_dim=3, image_size=32)
    images, sent = torch.randn(4, 3, 32, 32), torch.randn(4, 3)
    matched, mismatched = d(images, sent, mismatched=True)
    assert torch.allclose(matched, d(images, sent))
    expected = torch.stack([d(images[(i + 1) % 4:(i + 1) % 4 + 1], sent[i:i + 1])[0] for i in range(4)])
    assert torch.allclose(mismatched, expected, atol=1e-6)


@pytest.mark.parametrize("preset,dataset", [("paper-cub", "cub"), ("paper-coco", "coco")])
def test_inspect_counts_equal_the_original_code(preset, dataset):
    report = inspect_method(build_plugins(), "dfgan", preset=preset, dataset=dataset)
    assert report["generator"] == ORIGINAL_NETG
    assert report["discriminators"] == [ORIGINAL_NETD + ORIGINAL_NETC]
    assert report["discriminator_parts"] == [{"netD": ORIGINAL_NETD, "netC": ORIGINAL_NETC}]
    text = format_inspection(report)  # the original's three counts, as `harness inspect` prints them
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert {f"generator {ORIGINAL_NETG:,}", f"netD {ORIGINAL_NETD:,}", f"netC {ORIGINAL_NETC:,}"} <= set(lines)
    d = DFGANDiscriminator(nf=32, cond_dim=256, image_size=256)
    assert (_count(d.netD), _count(d.netC)) == (ORIGINAL_NETD, ORIGINAL_NETC)


def test_magp_equals_a_per_item_gradient_norm_computed_here():
    torch.manual_seed(0)
    d = DFGANDiscriminator(nf=2, cond_dim=3, image_size=32)
    for block in d.netD.DBlocks:
        block.gamma.data.fill_(0.7)
    images = torch.randn(3, 3, 32, 32, requires_grad=True)
    sent = torch.randn(3, 3, requires_grad=True)
    got = ma_gradient_penalty(d(images, sent), images, sent, weight=2.0, power=6.0)
    norms = []
    for i in range(3):  # item by item: the gradient of its own logit
        x, s = images[i:i + 1].detach().requires_grad_(), sent[i:i + 1].detach().requires_grad_()
        gx, gs = torch.autograd.grad(d(x, s).sum(), (x, s))
        norms.append(torch.sqrt((gx ** 2).sum() + (gs ** 2).sum()))
    expected = 2.0 * torch.stack(norms).pow(6).mean()
    assert torch.allclose(got, expected, rtol=1e-5)


def _tiny_step(d: torch.nn.Module, images: torch.Tensor, fakes: torch.Tensor, sent: torch.Tensor) -> Step:
    cfg = type("Cfg", (), {"loss": DFGANLossConfig()})()
    n, t = sent.shape[0], 3
    text = TextFeatures(torch.zeros(n, sent.shape[1], t, dtype=sent.dtype), sent,
                        torch.zeros(n, t, dtype=torch.bool), torch.full((n,), t))
    batch = Batch([images], torch.ones(n, t, dtype=torch.long), torch.full((n,), t), torch.arange(n),
                  [str(i) for i in range(n)], torch.arange(n))
    empty = sent.new_zeros(n, 0)
    return Step(batch=batch, text=text, damsm_text=text, noise=sent.new_zeros(n, 1),
                output=GenOutput([fakes], empty, empty), discriminators=torch.nn.ModuleList([d]),
                image_encoder=torch.nn.Identity(), aux={}, cfg=cfg)


def test_discriminator_step_gradients_with_the_penalty_equal_finite_differences():
    torch.manual_seed(0)
    d = DFGANDiscriminator(nf=1, cond_dim=2, image_size=32).double()
    with torch.no_grad():
        for block in d.netD.DBlocks:
            block.gamma.fill_(0.5)  # so the residual branches matter
        for p in d.parameters():
            p.mul_(2.0)  # a penalty well above rounding (≈ 0.6)
    images, fakes = torch.rand(3, 3, 32, 32).double() * 2 - 1, torch.rand(3, 3, 32, 32).double() * 2 - 1
    sent = torch.randn(3, 2).double()
    params = [p for p in d.parameters() if p.requires_grad]

    def total() -> torch.Tensor:
        return sum(discriminator_terms(_tiny_step(d, images, fakes, sent), 0).values())

    terms = discriminator_terms(_tiny_step(d, images, fakes, sent), 0)
    assert terms["d_magp"].item() > 0.1 and terms["d_magp"].dtype == torch.float64
    grads = torch.autograd.grad(sum(terms.values()), params)
    eps = 1e-6
    checked = 0
    for p, g in zip(params, grads):
        flat = p.data.view(-1)
        for j in range(0, flat.numel(), max(1, flat.numel() // 4)):  # a few entries of every parameter
            old = flat[j].item()
            flat[j] = old + eps
            up = total().item()
            flat[j] = old - eps
            down = total().item()
            flat[j] = old
            fd = (up - down) / (2 * eps)
            assert abs(fd - g.reshape(-1)[j].item()) <= 1e-6 + 1e-4 * abs(fd), (p.shape, j, fd, g.reshape(-1)[j].item())
            checked += 1
    assert checked > 40


def test_generator_loss_is_the_negative_mean_logit_of_the_fakes():
    torch.manual_seed(0)
    d = DFGANDiscriminator(nf=2, cond_dim=3, image_size=32)
    images, fakes, sent = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32), torch.randn(4, 3)
    step = _tiny_step(d, images, fakes, sent)
    assert torch.allclose(generator_terms(step)["g_adv"], -d(fakes, sent).mean())
    terms = discriminator_terms(step, 0)
    real, mis = d(images, sent, mismatched=True)
    assert torch.allclose(terms["d_real"], torch.relu(1 - real).mean())
    assert torch.allclose(terms["d_fake"], 0.5 * torch.relu(1 + d(fakes, sent)).mean())
    assert torch.allclose(terms["d_mismatch"], 0.5 * torch.relu(1 + mis).mean())
