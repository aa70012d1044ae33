"""CARAFE (content-aware upsampling): the reassembly against a plain loop of its formula, the kernel predictor's
shapes and normalisation, gradients, and the CAUPBlock."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from plugins.ecagan.content_aware_upsample import CARAFEUpsample, CAUPBlock, KernelPredictor, carafe


def carafe_loop(x: torch.Tensor, kernels: torch.Tensor, k_up: int, scale: int) -> torch.Tensor:
    """out[b,c,i',j'] = Σ_{m,n∈[-r,r]} W[b,(m+r)·k_up+(n+r),i',j'] · x[b,c,⌊i'/σ⌋+m,⌊j'/σ⌋+n], zero outside."""
    B, C, H, W = x.shape
    r = k_up // 2
    out = torch.zeros(B, C, H * scale, W * scale, dtype=x.dtype)
    for i in range(H * scale):
        for j in range(W * scale):
            for m in range(-r, r + 1):
                for n in range(-r, r + 1):
                    si, sj = i // scale + m, j // scale + n
                    if 0 <= si < H and 0 <= sj < W:
                        out[:, :, i, j] += kernels[:, (m + r) * k_up + (n + r), i, j, None] * x[:, :, si, sj]
    return out


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("k_up", [3, 5])
def test_carafe_matches_formula(scale: int, k_up: int) -> None:
    g = torch.Generator().manual_seed(scale * 10 + k_up)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    kernels = torch.randn(2, k_up * k_up, 4 * scale, 5 * scale, generator=g, dtype=torch.float64).softmax(dim=1)
    out = carafe(x, kernels, k_up, scale)
    assert out.shape == (2, 3, 4 * scale, 5 * scale)
    torch.testing.assert_close(out, carafe_loop(x, kernels, k_up, scale), rtol=0, atol=1e-6)
    # float32 too (the dtype training uses)
    out32 = carafe(x.float(), kernels.float(), k_up, scale)
    torch.testing.assert_close(out32.double(), out, rtol=0, atol=1e-6)


def test_carafe_uniform_centre_kernel_is_nearest_upsampling() -> None:
    """A kernel that puts all weight on the centre tap reproduces nearest-neighbour upsampling."""
    x = torch.randn(1, 4, 3, 3)
    k_up, scale = 5, 2
    kernels = torch.zeros(1, k_up * k_up, 6, 6)
    kernels[:, (k_up * k_up) // 2] = 1.0
    torch.testing.assert_close(carafe(x, kernels, k_up, scale), F.interpolate(x, scale_factor=2, mode="nearest"))


def test_carafe_gradients_match_loop() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 9, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 2, 6, 6, generator=g, dtype=torch.float64)
    gx, gk = torch.autograd.grad((carafe(x, k, 3, 2) * w).sum(), (x, k))
    rx, rk = torch.autograd.grad((carafe_loop(x, k, 3, 2) * w).sum(), (x, k))
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gk, rk)


def test_carafe_rejects_wrong_kernel_shape() -> None:
    with pytest.raises(ValueError, match="expected"):
        carafe(torch.zeros(1, 2, 3, 3), torch.zeros(1, 25, 3, 3), 5, 2)


def test_kernel_predictor_shapes_and_softmax() -> None:
    psi = KernelPredictor(8, scale=2, k_up=5, k_enc=3, compressed_channels=4)
    assert psi.compressor.weight.shape == (4, 8, 1, 1)  # C → C_m, 1×1
    assert psi.encoder.weight.shape == (2 * 2 * 25, 4, 3, 3)  # C_m → σ²·k_up², k_enc×k_enc
    kernels = psi(torch.randn(2, 8, 4, 4))
    assert kernels.shape == (2, 25, 8, 8)
    assert (kernels >= 0).all()
    torch.testing.assert_close(kernels.sum(dim=1), torch.ones(2, 8, 8))


def test_kernel_predictor_pixel_shuffle_layout() -> None:
    """The encoder's channel c·σ² + (s_i·σ + s_j) is kernel tap c at sub-pixel phase (s_i, s_j)."""
    psi = KernelPredictor(2, scale=2, k_up=3, k_enc=1, compressed_channels=2)
    x = torch.randn(1, 2, 3, 3)
    logits = psi.encoder(psi.compressor(x))  # 1 × 36 × 3 × 3
    kernels = psi(x)
    tap, si, sj, h, w = 4, 1, 0, 2, 1
    expected = logits[0, [c * 4 + si * 2 + sj for c in range(9)], h, w].softmax(dim=0)[tap]
    torch.testing.assert_close(kernels[0, tap, h * 2 + si, w * 2 + sj], expected)


def test_carafe_upsample_and_caup_block_gradients() -> None:
    up = CARAFEUpsample(6, scale=2, k_up=5, k_enc=3, compressed_channels=4)
    x = torch.randn(2, 6, 4, 4, requires_grad=True)
    y = up(x)
    assert y.shape == (2, 6, 8, 8)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for p in up.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()

    block = CAUPBlock(8, 4, k_up=5, k_enc=3, compressed_channels=4)
    out = block(torch.randn(2, 8, 4, 4))
    assert out.shape == (2, 4, 8, 8)
    out.sum().backward()
    assert block.upsample.kernel_predictor.encoder.weight.grad.abs().sum() > 0
    assert block.conv.weight.shape == (8, 8, 3, 3) and block.conv.bias is None  # conv3×3 → 2·out, no bias
    assert block.norm.num_features == 8


@pytest.mark.parametrize("scale, k_up", [(2, 3), (3, 5)])
def test_carafe_gradcheck(scale: int, k_up: int) -> None:
    """The hand-written backward against finite differences (float64)."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 2, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.rand(1, k_up * k_up, 2 * scale, 3 * scale, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: carafe(a, b, k_up, scale), (x, k))


def test_carafe_mixed_precision_inputs() -> None:
    """bf16 features with fp32 softmax kernels (autocast): computed in fp32, gradients in each input's dtype."""
    x = torch.randn(1, 3, 4, 4).to(torch.bfloat16).requires_grad_(True)
    k = torch.rand(1, 25, 8, 8, requires_grad=True)
    out = carafe(x, k, 5, 2)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, carafe(x.detach().float(), k.detach(), 5, 2))
    out.sum().backward()
    assert x.grad.dtype == torch.bfloat16 and k.grad.dtype == torch.float32
