"""DM-GAN dynamic memory against a plain computation of the reference equations (REFERENCE.md A2)."""
from __future__ import annotations

import math

import pytest
import torch

from plugins.dmgan.memory import DynamicMemory


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _plain_memory(mem: DynamicMemory, h: torch.Tensor, words: torch.Tensor, mask: torch.Tensor):
    """The reference equations written out with loops over samples, words and pixels (float64), reading only
    the module's weights."""
    p = {k: v.detach().double() for k, v in mem.state_dict().items()}
    A, Bw = p["A.weight"][0], p["B.weight"][0]  # (D,), (C,)
    Mw, bw = p["M_w.0.weight"][:, :, 0], p["M_w.0.bias"]
    Mr, br = p["M_r.0.weight"][:, :, 0], p["M_r.0.bias"]
    Wk, bk = p["key.0.weight"][:, :, 0], p["key.0.bias"]
    Wv, bv = p["value.0.weight"][:, :, 0], p["value.0.bias"]
    Wg, bg = p["response_gate.0.weight"][0, :, 0, 0], p["response_gate.0.bias"][0]
    h, words = h.double(), words.double()
    nb, c, hh, ww = h.shape
    t = words.shape[2]
    out = torch.zeros_like(h)
    attn = torch.zeros(nb, t, hh, ww, dtype=torch.float64)
    gates, memories = [], []
    for b in range(nb):
        r = h[b].sum(dim=(1, 2)) / (hh * ww)  # global average pool
        g = torch.tensor([_sigmoid(float(A @ words[b, :, i] + Bw @ r)) for i in range(t)], dtype=torch.float64)
        m = torch.stack([g[i] * torch.relu(Mw @ words[b, :, i] + bw) + (1 - g[i]) * torch.relu(Mr @ r + br)
                         for i in range(t)], dim=1)  # M×T
        key = torch.relu(Wk @ m + bk[:, None])
        value = torch.relu(Wv @ m + bv[:, None])
        gates.append(g)
        memories.append(m)
        real = [i for i in range(t) if not bool(mask[b, i])]
        for y in range(hh):
            for x in range(ww):
                hj = h[b, :, y, x]
                s = {i: float(hj @ key[:, i]) for i in real}  # no scaling
                top = max(s.values())
                z = sum(math.exp(v - top) for v in s.values())
                alpha = {i: math.exp(s[i] - top) / z for i in real}
                o = sum(alpha[i] * value[:, i] for i in real)
                for i in real:
                    attn[b, i, y, x] = alpha[i]
                gr = _sigmoid(float(Wg[:c] @ hj + Wg[c:] @ o + bg))
                out[b, :, y, x] = (1 - gr) * hj + gr * o
    return out, attn, torch.stack(gates), torch.stack(memories)


def _inputs(nb=2, c=8, d=12, t=5, size=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(nb, c, size, size, generator=g)
    words = torch.randn(nb, d, t, generator=g)
    lengths = torch.tensor([t, 3][:nb])
    mask = torch.arange(t)[None, :] >= lengths[:, None]
    return h, words, mask


def test_memory_matches_plain_equations():
    torch.manual_seed(0)
    mem = DynamicMemory(image_dim=8, word_dim=12).double()
    for prm in mem.parameters():  # larger weights than the default init, so every gate is far from ½
        torch.nn.init.normal_(prm, std=0.5)
    h, words, mask = _inputs()
    h, words = h.double(), words.double()
    out, attn = mem(h, words, mask)
    ref_out, ref_attn, ref_gates, ref_mem = _plain_memory(mem, h, words, mask)
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=0)
    torch.testing.assert_close(attn, ref_attn, atol=1e-6, rtol=0)
    torch.testing.assert_close(mem.write(h, words), ref_mem, atol=1e-6, rtol=0)
    # padding receives no attention and every pixel's weights sum to one
    assert attn[1, 3:].abs().max() == 0
    torch.testing.assert_close(attn.sum(1), torch.ones(2, 4, 4, dtype=torch.float64))
    # the gates really are mixed (not all saturated), so the comparison exercises them
    assert ((ref_gates > 0.05) & (ref_gates < 0.95)).any()


def test_memory_float32_default_init_matches_to_1e6():
    torch.manual_seed(1)
    mem = DynamicMemory(image_dim=8, word_dim=12)
    h, words, mask = _inputs(seed=3)
    out, attn = mem(h, words, mask)
    ref_out, ref_attn, _, _ = _plain_memory(mem, h, words, mask)
    torch.testing.assert_close(out.double(), ref_out, atol=1e-6, rtol=0)
    torch.testing.assert_close(attn.double(), ref_attn, atol=1e-6, rtol=0)


def test_image_vector_is_detached():
    """r̄ is detached: the gradient reaching h comes only through addressing and the response gate."""
    torch.manual_seed(2)
    mem = DynamicMemory(image_dim=4, word_dim=6)
    h, words, mask = _inputs(c=4, d=6, size=3)
    h.requires_grad_(True)
    (out, _) = mem(h, words, mask)
    g_full = torch.autograd.grad(out.sum(), h)[0]
    # the same with r̄ computed from a constant copy of h: identical gradient if r̄ is detached
    memory = mem.write(h.detach(), words)
    o, _ = mem.read(h, memory, mask)
    g_const = torch.autograd.grad(mem.respond(h, o).sum(), h)[0]
    torch.testing.assert_close(g_full, g_const)


def test_reference_shapes_stage2():
    """REFERENCE.md "Forward shapes", DM-GAN stage 2 (batch 2, T 18, GF 64, D 256), at 64×64."""
    torch.manual_seed(0)
    mem = DynamicMemory(image_dim=64, word_dim=256)
    h = torch.randn(2, 64, 64, 64)
    words = torch.randn(2, 256, 18)
    mask = torch.zeros(2, 18, dtype=torch.bool)
    mask[1, 10:] = True
    r = torch.nn.functional.avg_pool2d(h, 64).squeeze(3)
    assert r.shape == (2, 64, 1)
    gates = torch.sigmoid(mem.A(words.transpose(1, 2)) + mem.B(r.transpose(1, 2))).transpose(1, 2)
    assert gates.shape == (2, 1, 18)
    memory = mem.write(h, words)
    assert memory.shape == (2, 128, 18)
    assert mem.key(memory).shape == (2, 64, 18) and mem.value(memory).shape == (2, 64, 18)
    o, attn = mem.read(h, memory, mask)
    assert o.shape == (2, 64, 64, 64) and attn.shape == (2, 18, 64, 64)
    assert mem.response_gate(torch.cat((h, o), 1)).shape == (2, 1, 64, 64)
    out, attn2 = mem(h, words, mask)
    assert out.shape == (2, 64, 64, 64)
    torch.testing.assert_close(attn, attn2)


def test_parameter_counts_reference():
    """REFERENCE.md A1: A / B / M_r / M_w / key / value / response_gate = 256/64/8,320/32,896/8,256/8,256/129."""
    mem = DynamicMemory(image_dim=64, word_dim=256)
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in mem.named_children()}
    assert counts == {"A": 256, "B": 64, "M_r": 8320, "M_w": 32896, "key": 8256, "value": 8256,
                      "response_gate": 129}
    assert sum(counts.values()) == 58177


@pytest.mark.parametrize("fill", [0.0, 1e3])
def test_padding_content_is_ignored(fill):
    """Changing the features at padded positions leaves the output unchanged (they are never read)."""
    torch.manual_seed(4)
    mem = DynamicMemory(image_dim=4, word_dim=6)
    h, words, mask = _inputs(c=4, d=6, size=3)
    out, _ = mem(h, words, mask)
    words2 = words.clone()
    words2[1, :, 3:] = fill
    out2, _ = mem(h, words2, mask)
    torch.testing.assert_close(out, out2)


def test_image_memory_term_is_computed_on_the_repeated_vector_as_the_original():
    """The original repeats r̄ over the T word slots before M_r (a 1×1 Conv1d); on one thread a length-1 input
    takes another conv kernel (2e-7 apart, 1e-5 in DM-GAN's train-mode 256² image). Bit-equal to the original's
    order of operations at the paper sizes (64 image channels, 256-d words, 18 words, batch 6)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mem = DynamicMemory(image_dim=64, word_dim=256)
        h, words = torch.randn(6, 64, 64, 64), torch.randn(6, 256, 18)
        with torch.no_grad():
            r = torch.nn.functional.avg_pool2d(h, kernel_size=(64, 64)).flatten(1)
            g = torch.sigmoid(mem.A(words.transpose(1, 2)) + mem.B(r).unsqueeze(1)).transpose(1, 2)
            m_r = mem.M_r(r.unsqueeze(2).repeat(1, 1, 18))  # the original: repeat, then the conv
            expected = mem.M_w(words) * g + m_r * (1 - g)
            assert torch.equal(mem.write(h, words), expected)
    finally:
        torch.set_num_threads(threads)
