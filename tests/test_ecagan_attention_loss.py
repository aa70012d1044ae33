"""ECA channel attention (kernel rule, forward against a direct computation) and the perceptual loss (against
a direct computation with torchvision's VGG-16 layers)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from plugins.ecagan.channel_attention import ChannelAttentionConv, EfficientChannelAttention, eca_kernel_size
from plugins.ecagan.losses import VGGPerceptualFeatures, perceptual_loss


@pytest.mark.parametrize("channels, k", [(1, 1), (2, 1), (4, 1), (8, 3), (16, 3), (32, 3), (64, 3), (128, 5),
                                         (256, 5), (512, 5), (1024, 5), (2048, 7), (4096, 7)])
def test_eca_kernel_rule(channels: int, k: int) -> None:
    # t = int(|(log2 C + 1)/2|), k = t if odd else t + 1, written out independently
    t = int(abs((math.log2(channels) + 1) / 2))
    assert (t if t % 2 else t + 1) == k
    assert eca_kernel_size(channels) == k
    assert EfficientChannelAttention(channels).conv.weight.shape == (1, 1, k)


def test_eca_forward_matches_direct_computation() -> None:
    torch.manual_seed(0)
    eca = EfficientChannelAttention(128)  # k = 5
    x = torch.randn(2, 128, 3, 3)
    w = eca.conv.weight.view(5)
    pooled = x.mean(dim=(2, 3))
    padded = F.pad(pooled, (2, 2))
    logits = torch.stack([sum(w[j] * padded[:, c + j] for j in range(5)) for c in range(128)], dim=1)
    expected = x * torch.sigmoid(logits)[:, :, None, None]
    torch.testing.assert_close(eca(x), expected)
    assert eca.conv.bias is None


def test_channel_attention_conv_applies_eca_then_conv() -> None:
    conv = nn.Sequential(nn.Conv2d(8, 3, 3, padding=1, bias=False), nn.Tanh())
    module = ChannelAttentionConv(8, conv)
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    out = module(x)
    torch.testing.assert_close(out, conv(module.attention(x)))
    out.sum().backward()
    assert module.attention.conv.weight.grad is not None


def test_vgg_layers_match_torchvision() -> None:
    """φ has exactly the layers (and state-dict keys) of torchvision's vgg16().features[:9]."""
    from torchvision.models.vgg import cfgs, make_layers

    reference = make_layers(cfgs["D"])[:9]
    phi = VGGPerceptualFeatures()
    assert [type(m) for m in phi.features] == [type(m) for m in reference]
    ref_state = reference.state_dict()
    assert {k: v.shape for k, v in phi.features.state_dict().items()} == {k: v.shape for k, v in ref_state.items()}
    assert sum(p.numel() for p in phi.parameters()) == 1792 + 36928 + 73856 + 147584
    assert not any(p.requires_grad for p in phi.parameters())


def test_vgg_loads_imagenet_file_layout(tmp_path) -> None:
    """The ImageNet file holds the full model (features.* and classifier.*); φ takes features.0…8 strictly."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(1)
    features = make_layers(cfgs["D"])
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(state, path)
    phi = VGGPerceptualFeatures(path)
    torch.testing.assert_close(phi.features[7].weight, features[7].weight)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(phi(x), features[:9](((x + 1) / 2 - mean) / std))


def test_perceptual_loss_matches_direct_computation() -> None:
    torch.manual_seed(2)
    phi = VGGPerceptualFeatures()
    fake = (torch.rand(3, 3, 16, 16) * 2 - 1).requires_grad_(True)
    real = torch.rand(3, 3, 16, 16) * 2 - 1
    loss = perceptual_loss(phi, fake, real)
    ff, fr = phi(fake), phi(real)
    c, h, w = ff.shape[1:]
    per_sample = [((ff[b] - fr[b]) ** 2).sum() / (c * h * w) for b in range(3)]
    torch.testing.assert_close(loss, sum(per_sample) / 3)
    assert ff.shape[1:] == (128, 8, 8)  # relu2_2: 128 channels at half resolution
    loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert perceptual_loss(phi, real, real).item() == 0.0
