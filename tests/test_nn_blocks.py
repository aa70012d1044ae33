"""Shapes and behaviour of the shared blocks (REFERENCE.md A2 "Forward shapes", batch 2), and the parameter
counts of the paper-size blocks (A1 children breakdown)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.build import count_parameters
from harness.nn.conditioning import GLU, CANet
from harness.nn.discriminators import StageDiscriminator, build_discriminators
from harness.nn.generator_blocks import ImageHead, InitStageG, ResBlock, UpBlock, residual_stack
from harness.nn.word_attention import WordAttention


def test_glu_and_ca_net():
    x = torch.randn(2, 6)
    assert torch.allclose(GLU()(x), x[:, :3] * torch.sigmoid(x[:, 3:]))
    ca = CANet(256, 100)
    torch.manual_seed(0)
    c, mu, logvar = ca(torch.randn(2, 256))
    assert c.shape == mu.shape == logvar.shape == (2, 100)
    h = GLU()(ca.fc(torch.randn(1, 256)))
    assert h.shape == (1, 200)
    assert count_parameters(ca) == 102_800


def test_reparametrisation_uses_mu_and_std():
    ca = CANet(4, 3)
    s = torch.randn(5, 4)
    torch.manual_seed(1)
    c, mu, logvar = ca(s)
    torch.manual_seed(1)
    eps = torch.randn(5, 3)
    assert torch.allclose(c, mu + torch.exp(0.5 * logvar) * eps)


def test_init_stage_condition_first():
    g = InitStageG(64, condition_dim=3, z_dim=5, num_upsamples=2)
    assert g.fc[0].in_features == 8 and g.out_channels == 16
    g.eval()
    z, c = torch.randn(2, 5), torch.randn(2, 3)
    with torch.no_grad():
        out = g(z, c)
        fc_in = torch.cat((c, z), 1)
        h = g.fc(fc_in).view(-1, 64, 4, 4)
        assert torch.allclose(out, g.upsample2(g.upsample1(h)))
    assert out.shape == (2, 16, 16, 16)


def test_paper_block_counts():
    assert count_parameters(InitStageG(512)) == 6_444_928  # AttnGAN h_net1
    assert count_parameters(InitStageG(1024)) == 19_156_736  # DM-GAN h_net1
    assert count_parameters(residual_stack(64, 2)) == 221_952
    assert count_parameters(residual_stack(128, 2)) == 886_272
    assert count_parameters(UpBlock(64, 32)) == 36_992
    assert count_parameters(UpBlock(128, 64)) == 147_712
    assert count_parameters(ImageHead(32)) == 864 and count_parameters(ImageHead(64)) == 1_728
    assert count_parameters(WordAttention(32, 256)) == 8_192


def test_generator_block_shapes():
    x = torch.randn(2, 8, 5, 5)
    assert UpBlock(8, 4)(x).shape == (2, 4, 10, 10)
    assert ResBlock(8)(x).shape == x.shape
    assert ImageHead(8)(x).shape == (2, 3, 5, 5)
    assert ImageHead(8)(x).abs().max() <= 1


def test_word_attention_shapes_and_masking():
    att = WordAttention(32, 256)
    h, words = torch.randn(2, 32, 8, 8), torch.randn(2, 256, 18)
    mask = torch.zeros(2, 18, dtype=torch.bool)
    mask[0, 11:] = True
    context, a = att(h, words, mask)
    assert context.shape == (2, 32, 8, 8) and a.shape == (2, 18, 8, 8)
    assert torch.all(a[0, 11:] == 0) and (a[1, 11:] > 0).all()
    assert torch.allclose(a.sum(1), torch.ones(2, 8, 8), atol=1e-5)
    # padded words' features do not change anything
    words2 = words.clone()
    words2[0, :, 11:] = 100.0
    assert torch.allclose(att(h, words2, mask)[0][0], context[0], atol=1e-5)
    # independent computation for one pixel
    e = att.conv_context.weight[:, :, 0, 0] @ words[1]  # 32×18
    alpha = torch.softmax(h[1, :, 2, 3] @ e, dim=0)
    assert torch.allclose(context[1, :, 2, 3], e @ alpha, atol=1e-5)
    assert torch.allclose(a[1, :, 2, 3], alpha, atol=1e-6)


@pytest.mark.parametrize("spectral,df,counts", [
    (False, 64, [6_313_730, 19_424_002, 71_858_946]),
    (True, 32, [1_878_242, 5_155_810, 18_264_546]),
])
def test_paper_discriminator_counts(spectral, df, counts):
    with torch.device("meta"):
        ds = build_discriminators(df, 256, [64, 128, 256], spectral=spectral)
    assert [count_parameters(d) for d in ds] == counts
    names = [n for n, _ in ds[2].named_children()]
    assert names == ["img_code_s16", "img_code_s32", "img_code_s64", "img_code_s64_1", "img_code_s64_2",
                     "UNCOND_DNET", "COND_DNET"]
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in ds[0].modules())
    assert has_bn is (not spectral)


def test_discriminator_shapes_paper_widths():
    torch.manual_seed(0)
    for size in (64, 128):  # 256 works the same way (one more down block); kept out for speed
        d = StageDiscriminator(64, 256, size)
        f = d(torch.randn(2, 3, size, size))
        assert f.shape == (2, 512, 4, 4)
        assert d.COND_DNET(f, torch.randn(2, 256)).shape == (2,)
        assert d.UNCOND_DNET(f).shape == (2,)


@pytest.mark.parametrize("size", [8, 16, 32, 64, 128, 256])
def test_discriminator_any_stage_size(size):
    d = StageDiscriminator(2, 4, size, spectral=size % 32 == 0)
    assert d(torch.randn(2, 3, size, size)).shape == (2, 16, 4, 4)


def test_spectral_norm_uv_are_buffers_refreshed_per_call():
    d = StageDiscriminator(2, 4, 16, spectral=True)
    conv = d.img_code_s16[0]
    assert "_u" in dict(conv.parametrizations.weight[0].named_buffers())
    u0 = conv.parametrizations.weight[0]._u.clone()
    d.train()
    d(torch.randn(2, 3, 16, 16))
    assert not torch.equal(u0, conv.parametrizations.weight[0]._u)
