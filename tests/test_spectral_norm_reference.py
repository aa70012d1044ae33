"""DM-GAN's spectral norm (code/spectral.py) in the harness: v then u, eps added to the norm, one step per call in
train and eval, u/v buffers; the original's layout maps in, and runs saved with torch's spectral_norm still load."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

from harness.nn import discriminators as disc_module
from harness.nn.discriminators import StageDiscriminator
from harness.nn.spectral_norm import from_reference_layout, reference_spectral_norm, to_reference_layout
from harness.core.state_dicts import load_state_strict


def _power_step(w: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the original, written out: v = Wᵀu/(‖Wᵀu‖+1e-12), u = Wv/(‖Wv‖+1e-12), σ = uᵀWv."""
    v = w.t() @ u
    v = v / (torch.sqrt((v * v).sum()) + 1e-12)
    u = w @ v
    u = u / (torch.sqrt((u * u).sum()) + 1e-12)
    return u, v, u @ (w @ v)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_sigma_u_v_after_one_and_three_forwards(mode):
    torch.manual_seed(0)
    conv = reference_spectral_norm(nn.Conv2d(3, 4, 2, bias=True)).double()
    conv.train(mode == "train")
    sn = conv.parametrizations.weight[0]
    w_raw = conv.parametrizations.weight.original.detach().clone()
    w = w_raw.reshape(4, -1)
    u = sn._u.clone()
    x = torch.randn(2, 3, 5, 5, dtype=torch.double)
    for calls in (1, 2, 3):
        y = conv(x)
        u, v, sigma = _power_step(w, u)
        if calls in (1, 3):
            torch.testing.assert_close(sn._u, u)
            torch.testing.assert_close(sn._v, v)
            torch.testing.assert_close(y, F.conv2d(x, w_raw / sigma, conv.bias))
    # three steps from the stored start are not yet the largest singular value (no warm-up, unlike torch's 15)
    assert sigma < torch.linalg.matrix_norm(w, ord=2)


def test_start_vectors_are_unit_normal_draws_and_buffers():
    torch.manual_seed(5)
    conv = nn.Conv2d(3, 4, 2)
    torch.manual_seed(6)
    u = torch.empty(4).normal_(0, 1)
    v = torch.empty(12).normal_(0, 1)
    torch.manual_seed(6)
    reference_spectral_norm(conv)
    sn = conv.parametrizations.weight[0]
    torch.testing.assert_close(sn._u, u / (u.norm() + 1e-12))
    torch.testing.assert_close(sn._v, v / (v.norm() + 1e-12))
    assert [n for n, _ in conv.named_parameters()] == ["bias", "parametrizations.weight.original"]


def test_gradient_flows_through_w_only_and_two_calls_before_backward_work():
    torch.manual_seed(1)
    d = StageDiscriminator(2, 4, 16, spectral=True)
    x = torch.randn(2, 3, 16, 16)
    (d(x).sum() + d(x + 1).sum()).backward()  # u, v updated in place between the calls
    conv = d.img_code_s16[0]
    assert conv.parametrizations.weight.original.grad is not None
    assert not conv.parametrizations.weight[0]._u.requires_grad


def test_original_layout_round_trip():
    d = StageDiscriminator(2, 4, 128, spectral=True)
    ours = d.state_dict()
    ref = to_reference_layout(ours)
    assert "img_code_s16.0.module.weight_bar" in ref and "img_code_s16.0.module.bias" in ref
    assert "img_code_s32.0.module.weight_u" in ref and "COND_DNET.jointConv.0.module.weight_v" in ref
    assert "COND_DNET.outlogits.0.bias" in ref  # not spectral: unchanged
    back = from_reference_layout(ref)
    assert list(back) == list(ours) and all(torch.equal(back[k], ours[k]) for k in ours)


def test_a_run_saved_with_torch_spectral_norm_still_loads(monkeypatch):
    """Runs saved before this change used torch's parametrisation: the same keys (original, _u, _v)."""
    with monkeypatch.context() as m:
        m.setattr(disc_module, "reference_spectral_norm", torch_spectral_norm)
        torch.manual_seed(2)
        old = StageDiscriminator(2, 4, 32, spectral=True)
    assert type(old.img_code_s16[0].parametrizations.weight[0]).__name__ == "_SpectralNorm"
    old_state = {k: v.clone() for k, v in old.state_dict().items()}
    new = StageDiscriminator(2, 4, 32, spectral=True)
    load_state_strict(new, old_state, source="old run")
    sn = new.img_code_s16[0].parametrizations.weight[0]
    torch.testing.assert_close(sn._u, old_state["img_code_s16.0.parametrizations.weight.0._u"])
    new(torch.randn(1, 3, 32, 32))  # and it runs with the original algorithm from there
