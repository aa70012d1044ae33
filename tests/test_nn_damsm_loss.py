"""DAMSM words and sentence losses against independent, plainly looped computations of the reference
equations (one caption and one image at a time, explicit sums)."""
from __future__ import annotations

import math

import pytest
import torch

from harness.nn.damsm_loss import sent_loss, words_loss

G1, G2, G3 = 4.0, 5.0, 10.0


def _looped_words_similarity(regions, words, lengths):
    """S[j, i] = log Σ_k exp(γ2·cos(c_k, e_k)) of image j against caption i, with plain Python loops."""
    b, d = regions.shape[:2]
    v = regions.reshape(b, d, -1).double()
    e_all = words.double()
    sim = torch.zeros(b, b, dtype=torch.float64)
    attn_own = []
    for i in range(b):
        L = int(lengths[i])
        e = e_all[i, :, :L]  # D×L
        for j in range(b):
            n = v.shape[2]
            s = [[float(v[j, :, r] @ e[:, k]) for k in range(L)] for r in range(n)]
            # softmax over words for each region
            a1 = []
            for r in range(n):
                m = max(s[r])
                ex = [math.exp(x - m) for x in s[r]]
                a1.append([x / sum(ex) for x in ex])
            # gamma1 then softmax over regions for each word
            a2 = [[0.0] * L for _ in range(n)]
            for k in range(L):
                col = [G1 * a1[r][k] for r in range(n)]
                m = max(col)
                ex = [math.exp(x - m) for x in col]
                for r in range(n):
                    a2[r][k] = ex[r] / sum(ex)
            total = 0.0
            for k in range(L):
                c = sum(a2[r][k] * v[j, :, r] for r in range(n))
                cos = float(c @ e[:, k]) / max(float(c.norm() * e[:, k].norm()), 1e-8)
                total += math.exp(G2 * cos)
            sim[j, i] = math.log(total)
            if i == j:
                attn_own.append(torch.tensor(a2).t())  # L×N
    return sim, attn_own


def _ce_both(logits, mask=None):
    b = logits.shape[0]
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    def ce(m):
        total = 0.0
        for row in range(b):
            vals = [float(x) for x in m[row]]
            mx = max(vals)
            lse = mx + math.log(sum(math.exp(x - mx) for x in vals if x != float("-inf")))
            total += lse - vals[row]
        return total / b
    return ce(logits), ce(logits.t())


def _inputs(seed=0, b=4, d=6, t=5, hw=3):
    g = torch.Generator().manual_seed(seed)
    regions = torch.randn(b, d, hw, hw, generator=g)
    words = torch.randn(b, d, t, generator=g)
    lengths = torch.tensor([5, 4, 4, 2])[:b]
    return regions, words, lengths


@pytest.mark.parametrize("d,hw", [(6, 3), (12, 3)])  # N ≥ D (direct context) and N < D (Gram matrix path)
def test_words_loss_matches_plain_loop(d, hw):
    regions, words, lengths = _inputs(d=d, hw=hw)
    w0, w1, attn = words_loss(regions, words, lengths, None, G1, G2, G3)
    sim, attn_own = _looped_words_similarity(regions, words, lengths)
    r0, r1 = _ce_both(G3 * sim)
    assert w0.item() == pytest.approx(r0, rel=1e-5)
    assert w1.item() == pytest.approx(r1, rel=1e-5)
    assert attn.shape == (4, 5, hw, hw)
    for i, a in enumerate(attn_own):
        L = int(lengths[i])
        assert torch.allclose(attn[i, :L].reshape(L, -1).double(), a.double(), atol=1e-6)
        assert torch.all(attn[i, L:] == 0)


def test_words_loss_same_class_masking():
    regions, words, lengths = _inputs(seed=1, d=12)
    class_ids = torch.tensor([3, 7, 3, 5])
    w0, w1, _ = words_loss(regions, words, lengths, class_ids, G1, G2, G3)
    sim, _ = _looped_words_similarity(regions, words, lengths)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[0, 2] = mask[2, 0] = True
    r0, r1 = _ce_both(G3 * sim, mask)
    assert w0.item() == pytest.approx(r0, rel=1e-5)
    assert w1.item() == pytest.approx(r1, rel=1e-5)
    unmasked, _, _ = words_loss(regions, words, lengths, None, G1, G2, G3)
    assert unmasked.item() != pytest.approx(w0.item())


def test_words_loss_ignores_padding_features():
    regions, words, lengths = _inputs(seed=2)
    w = words.clone()
    w[1, :, 4:] = 1e3  # padding positions of caption 1 (length 4) must not matter
    w[3, :, 2:] = -7.0
    a = words_loss(regions, words, lengths, None, G1, G2, G3)
    b = words_loss(regions, w, lengths, None, G1, G2, G3)
    assert torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1]) and torch.allclose(a[2], b[2])


def test_sent_loss_matches_plain_loop():
    g = torch.Generator().manual_seed(3)
    code, sent = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    class_ids = torch.tensor([1, 2, 1, 1, 4])
    s0, s1 = sent_loss(code, sent, class_ids, G3)
    logits = torch.zeros(5, 5, dtype=torch.float64)
    for j in range(5):
        for i in range(5):
            logits[j, i] = G3 * float(code[j] @ sent[i]) / max(float(code[j].norm() * sent[i].norm()), 1e-8)
    mask = torch.tensor([[a == b and x != y for y, b in enumerate(class_ids.tolist())]
                         for x, a in enumerate(class_ids.tolist())])
    r0, r1 = _ce_both(logits, mask)
    assert s0.item() == pytest.approx(r0, rel=1e-5)
    assert s1.item() == pytest.approx(r1, rel=1e-5)


def test_losses_are_differentiable_and_fp32():
    regions, words, lengths = _inputs(seed=4)
    regions = regions.to(torch.bfloat16).requires_grad_()
    w0, w1, _ = words_loss(regions, words, lengths, None, G1, G2, G3)
    assert w0.dtype == torch.float32
    (w0 + w1).backward()
    assert torch.isfinite(regions.grad.float()).all()


def test_losses_stay_fp32_under_autocast():
    regions, words, lengths = _inputs(seed=5)
    ref = words_loss(regions, words, lengths, None, G1, G2, G3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = words_loss(regions, words, lengths, None, G1, G2, G3)
        s_amp = sent_loss(regions.mean((2, 3)), words.mean(2), None, G3)
    assert torch.allclose(ref[0], amp[0], rtol=1e-6) and torch.allclose(ref[1], amp[1], rtol=1e-6)
    assert torch.allclose(torch.stack(s_amp), torch.stack(sent_loss(regions.mean((2, 3)), words.mean(2), None, G3)))
