"""One staged-generator skeleton for AttnGAN and DM-GAN, composed through constructor arguments; ECAGAN passes its
CARAFE block and ECA head instead of replacing modules after construction (issue 16)."""
from __future__ import annotations

import functools

import pytest
import torch

from harness.nn.discriminators import StageDiscriminator
from harness.nn.generator_blocks import ImageHead, StagedGenerator, UpBlock, first_stage
from harness.contract.types import TextFeatures
from plugins.attngan.model import AttnGANGenerator
from plugins.dmgan.model import DMGANGenerator
from plugins.ecagan.channel_attention import ChannelAttentionConv
from plugins.ecagan.content_aware_upsample import CAUPBlock
from plugins.ecagan.model import ECAGANGenerator

SIZES = dict(gf_dim=8, embedding_dim=16, condition_dim=6, z_dim=5, branch_num=2, base_size=16)


def _text(b: int = 2, d: int = 16, t: int = 4) -> TextFeatures:
    g = torch.Generator().manual_seed(0)
    return TextFeatures(words=torch.randn(b, d, t, generator=g), sent=torch.randn(b, d, generator=g),
                        mask=torch.zeros(b, t, dtype=torch.bool), lengths=torch.full((b,), t))


def test_attngan_and_dmgan_share_one_skeleton_without_overridable_construction():
    for cls in (AttnGANGenerator, DMGANGenerator, ECAGANGenerator):
        assert issubclass(cls, StagedGenerator) and cls.forward is StagedGenerator.forward
        assert not hasattr(cls, "first_stage") and not hasattr(cls, "next_stage")  # nothing overridable is built


def test_ecagan_is_dmgan_with_its_blocks_passed_in():
    torch.manual_seed(0)
    eca = ECAGANGenerator(**SIZES, k_up=3, compressed_channels=4)
    torch.manual_seed(0)
    up = functools.partial(CAUPBlock, k_up=3, k_enc=3, compressed_channels=4)
    composed = DMGANGenerator(**SIZES, up_block=up,
                              image_head=lambda c: ChannelAttentionConv(c, ImageHead(c), 2, 1))
    assert {k: v.shape for k, v in eca.state_dict().items()} == {k: v.shape for k, v in composed.state_dict().items()}
    assert list(eca.state_dict()) == list(composed.state_dict())
    ups = [getattr(eca.h_net1, f"upsample{i + 1}") for i in range(eca.h_net1.num_upsamples)]
    assert ups and all(isinstance(b, CAUPBlock) for b in ups)
    assert isinstance(eca.h_net2.upsample, UpBlock)  # refinement stages keep DM-GAN's upBlock
    assert all(isinstance(getattr(eca, f"img_net{k}"), ChannelAttentionConv) for k in (1, 2))
    plain = ECAGANGenerator(**SIZES, upsample="nearest", channel_attention="none")
    dmgan = DMGANGenerator(**SIZES)
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in dmgan.state_dict().items()}
    out = eca(torch.randn(2, 5), _text())
    assert [tuple(x.shape) for x in out.images] == [(2, 3, 16, 16), (2, 3, 32, 32)]


def test_attngan_generator_keeps_the_reference_names():
    g = AttnGANGenerator(**SIZES)
    assert [n for n, _ in g.named_children()] == ["ca_net", "h_net1", "img_net1", "h_net2", "img_net2"]
    out = g(torch.randn(2, 5), _text())
    assert [tuple(x.shape) for x in out.images] == [(2, 3, 16, 16), (2, 3, 32, 32)] and len(out.attn) == 1


@pytest.mark.parametrize("size", [2, 12, 48])
def test_one_power_of_two_rule_for_generators_and_discriminators(size):
    with pytest.raises(ValueError, match=rf"must be 4·2\^n \(n ≥ 1\), got {size}"):
        first_stage(8, 6, 5, size)
    with pytest.raises(ValueError, match=rf"must be 4·2\^n \(n ≥ 1\), got {size}"):
        StageDiscriminator(8, 16, size)
    with pytest.raises(ValueError, match=rf"base_size must be 4·2\^n \(n ≥ 1\), got {size}"):
        AttnGANGenerator(**{**SIZES, "base_size": size})
