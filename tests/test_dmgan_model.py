"""DM-GAN generator, discriminators, presets and one training step (REFERENCE.md A2 "Forward shapes")."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from harness.build import build_method
from harness.config import build_config
from harness.contract.plugins import build_plugins
from harness.contract.types import TextFeatures
from plugins.dmgan.model import DMGANGenerator, NextStageG
from tiny_batch import tiny_batch


@pytest.fixture(scope="module")
def plugins():
    return build_plugins()


def _config(plugins, preset: str, dataset: str = "shapes"):
    info = plugins.method("dmgan")
    return build_config("dmgan", info.defaults, preset=preset, dataset=dataset, section_types=info.config_sections)


def _text(batch: int, dim: int, t: int, lengths: list[int]) -> TextFeatures:
    lengths_t = torch.tensor(lengths)
    mask = torch.arange(t)[None, :] >= lengths_t[:, None]
    return TextFeatures(torch.randn(batch, dim, t), torch.randn(batch, dim), mask, lengths_t)


def test_paper_size_stage2_shapes():
    """Paper sizes (GF 64, D 256, batch 2, T 18) up to stage 2: h_code1, residual input, stage-2 output."""
    torch.manual_seed(0)
    g = DMGANGenerator(branch_num=2).eval()
    seen = {}
    g.h_net1.register_forward_hook(lambda m, i, o: seen.__setitem__("h_code1", o.shape))
    g.h_net2.residual.register_forward_hook(lambda m, i, o: seen.__setitem__("residual_in", i[0].shape))
    g.h_net2.register_forward_hook(lambda m, i, o: seen.__setitem__("out", o[0].shape))
    with torch.no_grad():
        out = g(torch.randn(2, 100), _text(2, 256, 18, [18, 11]))
    assert seen == {"h_code1": (2, 64, 64, 64), "residual_in": (2, 128, 64, 64), "out": (2, 64, 128, 128)}
    assert [tuple(x.shape) for x in out.images] == [(2, 3, 64, 64), (2, 3, 128, 128)]
    assert tuple(out.attn[0].shape) == (2, 18, 64, 64)
    assert tuple(out.mu.shape) == tuple(out.logvar.shape) == (2, 100)


def test_three_stage_shapes_reduced_width():
    torch.manual_seed(0)
    g = DMGANGenerator(gf_dim=4, embedding_dim=32, z_dim=10, condition_dim=6)
    out = g(torch.randn(2, 10), _text(2, 32, 18, [18, 7]))
    assert [tuple(x.shape) for x in out.images] == [(2, 3, 64, 64), (2, 3, 128, 128), (2, 3, 256, 256)]
    assert [tuple(a.shape) for a in out.attn] == [(2, 18, 64, 64), (2, 18, 128, 128)]
    assert all(x.abs().max() <= 1 for x in out.images)
    # attention: padding words get none, each pixel's weights sum to 1
    for a in out.attn:
        assert a[1, 7:].abs().max() == 0
        torch.testing.assert_close(a.sum(1), torch.ones_like(a[:, 0]))
    # gradient reaches every parameter
    sum(x.sum() for x in out.images).backward()
    assert all(p.grad is not None for p in g.parameters())


def test_next_stage_duplicates_gated_features():
    """The residual blocks receive cat(h′, h′) with h′ the memory's response-gated output."""
    torch.manual_seed(0)
    stage = NextStageG(gf_dim=4, word_dim=6, r_num=1)
    got = {}
    stage.residual.register_forward_hook(lambda m, i, o: got.__setitem__("x", i[0]))
    h = torch.randn(2, 4, 8, 8)
    text = _text(2, 6, 5, [5, 2])
    out, attn = stage(h, text.words, text.mask)
    h_new, attn2 = stage.memory(h, text.words, text.mask)
    torch.testing.assert_close(got["x"], torch.cat((h_new, h_new), 1))
    torch.testing.assert_close(attn, attn2)
    assert tuple(out.shape) == (2, 4, 16, 16)


def test_reuse_first_stage_and_condition_input():
    """Subclass hooks for ECAGAN / CAE-GAN: a replacement first stage and another conditioning vector."""

    class ConstantStage(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))
            self.calls = []

        def forward(self, z, c):
            self.calls.append((z.shape, c.shape))
            return self.scale * torch.ones(z.shape[0], 4, 16, 16)

    class FcConditioned(DMGANGenerator):
        def condition_input(self, text):
            return text.words.mean(2)[:, :3]  # any B×3 vector

    first = ConstantStage()
    g = FcConditioned(gf_dim=4, embedding_dim=8, z_dim=5, condition_dim=6, branch_num=2, base_size=16,
                      first_stage=first, condition_input_dim=3)
    assert g.h_net1 is first and g.ca_net.fc.in_features == 3
    out = g(torch.randn(2, 5), _text(2, 8, 4, [4, 4]))
    assert first.calls == [(torch.Size([2, 5]), torch.Size([2, 6]))]
    assert [tuple(x.shape) for x in out.images] == [(2, 3, 16, 16), (2, 3, 32, 32)]


def test_discriminators_spectral_no_batchnorm(plugins):
    cfg = _config(plugins, "smoke")
    ds = plugins.method_hooks("dmgan").harness_discriminators(cfg=cfg)
    assert len(ds) == 2
    for d in ds:
        assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
        convs = [(name, m) for name, m in d.named_modules() if isinstance(m, nn.Conv2d)]
        for name, m in convs:
            spectral = hasattr(m, "parametrizations") and "weight" in m.parametrizations
            assert spectral == (not name.endswith("outlogits.0")), name
            assert m.bias is not None
        assert sum(b.numel() for b in d.buffers()) > 0  # u, v are buffers, not parameters


def test_presets(plugins):
    cub = _config(plugins, "paper", "cub")
    assert (cub.model.gf_dim, cub.model.df_dim, cub.model.z_dim, cub.model.r_num) == (64, 32, 100, 2)
    assert (cub.train.batch_size, cub.train.epochs, cub.loss.damsm_lambda, cub.train.lr_g, cub.train.lr_d) == \
        (10, 800, 5.0, 2e-4, 2e-4)
    assert cub.pretrain.damsm.image_encoder == "inception_v3"
    coco = _config(plugins, "paper", "coco")
    assert (coco.train.batch_size, coco.train.epochs, coco.loss.damsm_lambda, coco.model.r_num) == (16, 200, 50.0, 3)
    assert (coco.data.words_num, coco.data.eval_words_num, coco.model.gf_dim, coco.model.df_dim) == (12, 20, 64, 32)
    smoke = _config(plugins, "smoke")
    d = smoke.pretrain.damsm
    assert (d.image_encoder, d.max_steps, d.batch_size, d.lr) == ("small_cnn", 300, 32, 0.002)
    info = plugins.method("dmgan")
    assert {(r.metric, r.value, r.std, r.std_over) for r in info.reported} == {
        ("is_ft", 4.75, 0.07, "splits"), ("rp", 72.31, 0.91, "folds"), ("fid_tv", 16.09, None, None)}


def test_smoke_damsm_shared_with_other_methods(plugins):
    """The smoke preset's DAMSM settings equal every other method's, so one cached DAMSM serves all."""
    ours = _config(plugins, "smoke")
    for name in plugins.methods():
        if name == "dmgan":
            continue
        try:
            other = build_config(name, plugins.method(name).defaults, preset="smoke", dataset="shapes",
                                 section_types=plugins.method(name).config_sections)
        except Exception:  # another method without a smoke preset yet
            continue
        assert other.to_dict()["pretrain"]["damsm"] == ours.to_dict()["pretrain"]["damsm"], name
        assert other.data.image_size == ours.data.image_size  # the last stage: what the small-CNN DAMSM trains at


def test_one_training_step_test_preset(plugins):
    """Contract: one reference-order iteration of the `test` preset on CPU, every term finite and logged."""
    from harness.train import engine
    torch.manual_seed(0)
    cfg = _config(plugins, "test")
    modules = build_method(plugins, cfg, vocab_size=30)
    trainer = engine.GanTrainer(plugins, cfg, modules, torch.device("cpu"))
    b = cfg.train.batch_size
    batch = tiny_batch(cfg)
    before = {k: v.clone() for k, v in modules.generator.state_dict().items()}
    step, terms, d_totals, g_total = trainer.train_step(batch, torch.randn(b, cfg.model.z_dim), 0)
    assert set(terms) == {"d_16", "d_32", "g_adv_16", "g_adv_32", "damsm_words", "damsm_sent", "kl"}
    assert all(math.isfinite(float(v)) for v in terms.values())
    assert len(d_totals) == 2 and math.isfinite(float(g_total))
    assert [tuple(a.shape) for a in step.output.attn] == [(b, 8, 16, 16)]
    after = modules.generator.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.endswith("memory.M_w.0.weight"))
