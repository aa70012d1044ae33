"""CAE-GAN's cross-attention encoder C_E and its region bank: shapes, masking, attention maps, the equations
against a plain computation, and the bank's clustering / retrieval / checkpointing."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from plugins.caegan.cross_attention_encoder import CrossAttentionEncoder
from plugins.caegan.region_bank import RegionBank, spherical_kmeans

D, T, HEADS = 16, 7, 4


def _inputs(b: int = 3, h: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    words = torch.randn(b, D, T, generator=g)
    lengths = torch.tensor([7, 5, 2][:b])
    mask = torch.arange(T)[None, :] >= lengths[:, None]  # True = padding
    regions = torch.randn(b, D, h, h, generator=g)
    return words, mask, lengths, regions


def _encoder(heads: int = HEADS, dropout: float = 0.1) -> CrossAttentionEncoder:
    torch.manual_seed(0)
    return CrossAttentionEncoder(D, heads=heads, dropout=dropout).eval()


def test_shapes():
    enc = _encoder()
    words, mask, _, regions = _inputs()
    out = enc(words, mask, regions)
    assert out.f_c.shape == (3, D)
    assert out.words.shape == (3, D, T) and torch.equal(out.words, words)  # W = s
    assert out.tokens.shape == (3, 16, D)
    assert out.cross_attn.shape == (3, HEADS, 16, T)
    assert out.self_attn.shape == (3, HEADS, 16, 16)
    assert torch.allclose(out.f_c, out.tokens.mean(1))


def test_padded_words_change_nothing():
    enc = _encoder()
    words, mask, _, regions = _inputs()
    out = enc(words, mask, regions)
    changed = words.clone()
    changed[mask[:, None, :].expand_as(words)] = 1e3 * torch.randn(int(mask.sum()) * D)
    out2 = enc(changed, mask, regions)
    assert torch.equal(out.f_c, out2.f_c)
    assert torch.equal(out.cross_attn, out2.cross_attn)
    # and the real words do matter
    changed[0, :, 0] += 1.0
    assert not torch.allclose(enc(changed, mask, regions).f_c[0], out.f_c[0])


def test_attention_rows_sum_to_one_and_padding_gets_zero():
    enc = _encoder()
    words, mask, _, regions = _inputs()
    out = enc(words, mask, regions)
    ones = torch.ones(3, HEADS, 16)
    assert torch.allclose(out.cross_attn.sum(-1), ones, atol=1e-6)
    assert torch.allclose(out.self_attn.sum(-1), ones, atol=1e-6)
    assert torch.all(out.cross_attn.masked_select(mask[:, None, None, :].expand_as(out.cross_attn)) == 0)


def test_dropout_only_in_train_mode():
    enc = _encoder(dropout=0.5)
    words, mask, _, regions = _inputs()
    a = enc(words, mask, regions).f_c
    assert torch.equal(a, enc(words, mask, regions).f_c)
    enc.train()
    assert not torch.allclose(a, enc(words, mask, regions).f_c)


def test_equations_against_plain_computation():
    """One head, computed region by region with the seed formulas and λ = 1/√D."""
    enc = _encoder(heads=1)
    words, mask, lengths, regions = _inputs(b=2)
    out = enc(words, mask, regions)
    lam = 1 / math.sqrt(D)
    c, s = enc.cross, enc.self_attn
    for b in range(2):
        f_v = regions[b].reshape(D, -1).t()  # N×D
        sw = words[b, :, : lengths[b]].t()  # L×D, real words only
        q_v = f_v @ c.query.weight.t() + c.query.bias
        k_s = sw @ c.key.weight.t() + c.key.bias
        v_s = sw @ c.value.weight.t() + c.value.bias
        s_c = torch.softmax(lam * q_v @ k_s.t(), dim=1)
        l = s_c @ v_s
        l_c = F.layer_norm(f_v + l @ c.out.weight.t() + c.out.bias, (D,), enc.norm_cross.weight, enc.norm_cross.bias)
        q_l = l_c @ s.query.weight.t() + s.query.bias
        k_l = l_c @ s.key.weight.t() + s.key.bias
        v_l = l_c @ s.value.weight.t() + s.value.bias
        s_s = torch.softmax(lam * q_l @ k_l.t(), dim=1)
        l_cs = s_s @ v_l
        f_c = F.layer_norm(l_c + l_cs @ s.out.weight.t() + s.out.bias, (D,), enc.norm_self.weight,
                           enc.norm_self.bias)
        assert torch.allclose(out.cross_attn[b, 0, :, : lengths[b]], s_c, atol=1e-6)
        assert torch.allclose(out.f_c[b], f_c.mean(0), atol=1e-5)


def test_width_must_divide_heads():
    with pytest.raises(ValueError, match="divisible"):
        CrossAttentionEncoder(10, heads=4)


# ---------------------------------------------------------------------------------------------------------
# Region bank
# ---------------------------------------------------------------------------------------------------------
def _clustered(n_per: int = 20, k: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(k, D, generator=g), dim=1)
    labels = torch.arange(k).repeat_interleave(n_per)
    codes = centres[labels] + 0.05 * torch.randn(k * n_per, D, generator=g)
    regions = labels.float().view(-1, 1, 1, 1).expand(-1, D, 6, 6).clone()  # region value = cluster id
    return centres, labels, codes, regions


def test_kmeans_recovers_clusters_and_is_deterministic():
    centres, labels, codes, _ = _clustered()
    cent = spherical_kmeans(codes, 4, seed=3)
    assign = (F.normalize(codes, dim=1) @ cent.t()).argmax(1)
    for k in range(4):  # each true cluster maps to exactly one centroid
        assert assign[labels == k].unique().numel() == 1
    assert assign.unique().numel() == 4
    assert torch.equal(cent, spherical_kmeans(codes, 4, seed=3))
    assert spherical_kmeans(codes[:3], 8).shape == (3, D)  # k capped by N


def test_bank_build_and_retrieve():
    centres, labels, codes, regions = _clustered()
    bank = RegionBank(entries=8, dim=D, pool=3, topk=1, gamma=10.0)
    members = bank.build(codes, [(codes[i:i + 7], regions[i:i + 7]) for i in range(0, 80, 7)], seed=0)
    assert int(bank.count) == members.numel() <= 8 and int(members.sum()) == 80
    # top-1 retrieval with a cluster's centre as the sentence returns that cluster's (pure) prototype regions
    got = bank.retrieve(centres)
    assert got.shape == (4, D, 3, 3)
    for k in range(4):
        assert torch.allclose(got[k], torch.full((D, 3, 3), float(k)))
    # entries past count never get weight
    bank.topk = 8
    _, w = bank.retrieve(torch.randn(5, D), return_weights=True)
    assert torch.allclose(w.sum(1), torch.ones(5), atol=1e-6)
    assert torch.all(w[:, int(bank.count):] == 0)


def test_bank_is_buffers_and_round_trips():
    _, _, codes, regions = _clustered()
    bank = RegionBank(entries=4, dim=D, pool=2)
    bank.build(codes, [(codes, regions)])
    assert list(bank.parameters()) == []
    sd = bank.state_dict()
    assert set(sd) == {"keys", "regions", "count"}
    fresh = RegionBank(entries=4, dim=D, pool=2)
    fresh.load_state_dict(sd)
    s = torch.randn(3, D)
    assert torch.equal(fresh.retrieve(s), bank.retrieve(s))


def test_empty_bank_retrieves_finite_zeros():
    bank = RegionBank(entries=4, dim=D, pool=2)
    out = bank.retrieve(torch.randn(2, D))
    assert torch.equal(out, torch.zeros(2, D, 2, 2))


def test_encoder_encode_uses_bank():
    _, _, codes, regions = _clustered()
    bank = RegionBank(entries=4, dim=D, pool=2)
    bank.build(codes, [(codes, regions)])
    torch.manual_seed(0)
    enc = CrossAttentionEncoder(D, heads=HEADS, bank=bank).eval()
    words, mask, _, _ = _inputs()
    sent = torch.randn(3, D)
    out = enc.encode(words, mask, sent)
    assert torch.equal(out.f_c, enc(words, mask, bank.retrieve(sent)).f_c)
    assert "bank.regions" in enc.state_dict()
