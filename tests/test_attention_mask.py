"""model.attention_mask: per_sample (each caption's own padding) and reference (the original's
``mask.repeat(queryL, 1)`` rows: row r = b·Q + q uses caption r mod B), in AttnGAN's word attention and DM-GAN's
memory addressing, against an independent loop."""
from __future__ import annotations

import pytest
import torch

from harness.build import build_method
from harness.config import build_config
from harness.util.errors import ConfigError
from harness.nn.word_attention import WordAttention, query_padding_mask
from harness.contract.plugins import build_plugins
from plugins.dmgan.memory import DynamicMemory

B, C, T, D = 3, 4, 3, 5
LENGTHS = [3, 2, 1]


def _mask() -> torch.Tensor:
    return torch.arange(T)[None, :] >= torch.tensor(LENGTHS)[:, None]  # True = padding


def _loop_softmax(scores: torch.Tensor, reference: bool) -> torch.Tensor:
    """scores B×Q×T → softmax per (image, pixel) with the padding of the caption the original would use."""
    out = torch.empty_like(scores)
    q_count = scores.shape[1]
    for b in range(B):
        for q in range(q_count):
            caption = (b * q_count + q) % B if reference else b
            row = scores[b, q].clone()
            row[LENGTHS[caption]:] = float("-inf")
            out[b, q] = row.softmax(0)
    return out


def test_reference_rows_follow_the_original_repeat():
    m = query_padding_mask(_mask(), 4, "reference")  # 2×2 pixels
    # image 1, pixel 0 = row 4 → caption 4 mod 3 = 1; image 0, pixel 1 = row 1 → caption 1; image 2, pixel 0 = row 8
    assert m[1, 0].tolist() == [False, False, True]
    assert m[0, 1].tolist() == [False, False, True]
    assert m[2, 0].tolist() == [False, True, True]  # row 8 → caption 2 (its own, by chance)
    assert m[2, 1].tolist() == [False, False, False]  # row 9 → caption 0: image 2 sees three words
    assert query_padding_mask(_mask(), 4, "per_sample")[0, 0].tolist() == [False, False, False]
    with pytest.raises(ValueError, match="per_sample, reference"):
        query_padding_mask(_mask(), 4, "sorted")


@pytest.mark.parametrize("mode", ["per_sample", "reference"])
def test_word_attention_against_a_loop(mode):
    torch.manual_seed(0)
    att = WordAttention(C, D, attention_mask=mode).double()
    h, words = torch.randn(B, C, 2, 2, dtype=torch.double), torch.randn(B, D, T, dtype=torch.double)
    context, attn = att(h, words, _mask())
    projected = att.conv_context.weight[:, :, 0, 0] @ words  # B×C×T
    scores = h.reshape(B, C, 4).transpose(1, 2) @ projected
    alpha = _loop_softmax(scores, mode == "reference")
    torch.testing.assert_close(attn, alpha.transpose(1, 2).reshape(B, T, 2, 2))
    torch.testing.assert_close(context, (projected @ alpha.transpose(1, 2)).reshape(B, C, 2, 2))
    # image 0, pixel 1 reads caption 1's padding under reference: its word 2 gets no weight
    assert bool(attn[0, 2, 0, 1] == 0) is (mode == "reference")


@pytest.mark.parametrize("mode", ["per_sample", "reference"])
def test_memory_addressing_against_a_loop(mode):
    torch.manual_seed(1)
    mem = DynamicMemory(image_dim=C, word_dim=D, attention_mask=mode).double()
    h, words = torch.randn(B, C, 2, 2, dtype=torch.double), torch.randn(B, D, T, dtype=torch.double)
    memory = mem.write(h, words)
    o, alpha = mem.read(h, memory, _mask())
    key, value = mem.key(memory), mem.value(memory)
    expected = _loop_softmax(h.reshape(B, C, 4).transpose(1, 2) @ key, mode == "reference")
    torch.testing.assert_close(alpha, expected.transpose(1, 2).reshape(B, T, 2, 2))
    torch.testing.assert_close(o, (value @ expected.transpose(1, 2)).reshape(B, C, 2, 2))


@pytest.mark.parametrize("method,kind", [("attngan", WordAttention), ("dmgan", DynamicMemory),
                                         ("ecagan", DynamicMemory), ("caegan", DynamicMemory)])
def test_config_key_reaches_every_attention_module(method, kind):
    plugins = build_plugins()
    info = plugins.method(method)
    for mode in ("per_sample", "reference"):
        cfg = build_config(method, info.defaults, preset="test", dataset="shapes",
                           overrides=[f"model.attention_mask={mode}"], section_types=info.config_sections)
        modules = build_method(plugins, cfg, 20)
        found = [m for m in modules.generator.modules() if isinstance(m, kind)]
        assert found and all(m.attention_mask == mode for m in found)
    assert "model.attention_mask" in info.ablation_keys


def test_reference_mask_makes_an_image_depend_on_its_batch():
    torch.manual_seed(2)
    att = WordAttention(C, D, attention_mask="reference").double()
    h, words = torch.randn(B, C, 2, 2, dtype=torch.double), torch.randn(B, D, T, dtype=torch.double)
    whole, _ = att(h, words, _mask())
    alone, _ = att(h[:1], words[:1], _mask()[:1])
    assert not torch.allclose(whole[0], alone[0])  # image 0 read captions 1 and 2's padding in the batch
    att.attention_mask = "per_sample"
    torch.testing.assert_close(att(h, words, _mask())[0][0], att(h[:1], words[:1], _mask()[:1])[0][0])


def test_a_bad_value_names_the_key():
    info = build_plugins().method("attngan")
    with pytest.raises(ConfigError, match="model.attention_mask.*per_sample, reference"):
        build_config("attngan", info.defaults, preset="test", dataset="shapes",
                     overrides=["model.attention_mask=sorted"])
