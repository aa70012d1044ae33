"""AttnGAN plugin: reference key layout and import round trip, forward shapes, loss terms of one step."""
from __future__ import annotations

import pytest
import torch

from harness.build import build_method, count_parameters
from harness.config import build_config, stage_sizes
from harness.util.errors import HarnessError
from harness.core.state_dicts import load_state_strict
from harness.contract.plugins import build_plugins
from harness.contract.types import Batch, GenOutput, Step, TextFeatures

from plugins.attngan.model import AttnGANGenerator

from reference_manifest import reference_keys


@pytest.fixture(scope="module")
def plugins():
    return build_plugins()


def _cfg(plugins, preset="test", dataset="shapes", overrides=()):
    info = plugins.method("attngan")
    return build_config("attngan", info.defaults, preset=preset, dataset=dataset, overrides=list(overrides),
                        section_types=info.config_sections)


def _paper_generator(plugins):
    cfg = _cfg(plugins, "paper", "cub")
    return cfg, plugins.method_hooks("attngan").harness_generator(cfg=cfg, aux={})


def test_generator_keys_equal_reference(plugins):
    with torch.device("meta"):
        cfg, g = _paper_generator(plugins)
    assert [(k, list(v.shape)) for k, v in g.state_dict().items()] == reference_keys("generator")
    assert count_parameters(g) == 7_084_592
    assert len(reference_keys("generator")) == 97


def test_import_round_trip_identical_outputs(plugins):
    """A reference-style file (reference keys, no num_batches_tracked, saved from DataParallel) imported through
    the hook and loaded strictly gives a generator with identical outputs."""
    torch.manual_seed(0)
    cfg = _cfg(plugins)
    hooks = plugins.method_hooks("attngan")
    g = hooks.harness_generator(cfg=cfg, aux={})
    g.train()
    g(torch.randn(4, cfg.model.z_dim), _text(cfg, 4))  # move the BN running stats away from their init
    released = {"module." + k: v.clone() for k, v in g.state_dict().items() if "num_batches_tracked" not in k}
    g2 = hooks.harness_generator(cfg=cfg, aux={})
    load_state_strict(g2, hooks.harness_import_generator_state(cfg=cfg, state_dict=released))
    g.eval(), g2.eval()
    noise, text = torch.randn(3, cfg.model.z_dim), _text(cfg, 3)
    torch.manual_seed(5)
    a = g(noise, text)
    torch.manual_seed(5)
    b = g2(noise, text)
    for x, y in zip(a.images + a.attn, b.images + b.attn):
        assert torch.equal(x, y)


def test_mismatching_file_names_first_key_and_shapes(plugins):
    cfg = _cfg(plugins)
    hooks = plugins.method_hooks("attngan")
    g = hooks.harness_generator(cfg=cfg, aux={})
    state = g.state_dict()
    state["h_net2.att.conv_context.weight"] = torch.zeros(7, 16, 1, 1)
    with pytest.raises(HarnessError, match=r"h_net2\.att\.conv_context\.weight.*\[7, 16, 1, 1\].*\[4, 16, 1, 1\]"):
        load_state_strict(g, hooks.harness_import_generator_state(cfg=cfg, state_dict=state))


def _text(cfg, b, t=6, d=None):
    d = d or cfg.model.embedding_dim
    lengths = torch.arange(t, t - b, -1).clamp(min=1)
    mask = torch.arange(t)[None, :] >= lengths[:, None]
    return TextFeatures(torch.randn(b, d, t), torch.randn(b, d), mask, lengths)


def test_paper_forward_shapes():
    """REFERENCE.md A2 "Forward shapes": batch 2, T = 18, train mode."""
    torch.manual_seed(0)
    g = AttnGANGenerator()
    text = _text(None, 2, 18, d=256)
    with torch.no_grad():
        out = g(torch.randn(2, 100), text)
    assert isinstance(out, GenOutput)
    assert [tuple(x.shape) for x in out.images] == [(2, 3, 64, 64), (2, 3, 128, 128), (2, 3, 256, 256)]
    assert [tuple(a.shape) for a in out.attn] == [(2, 18, 64, 64), (2, 18, 128, 128)]
    assert out.mu.shape == out.logvar.shape == (2, 100)
    assert all(x.abs().max() <= 1 for x in out.images)
    assert torch.all(out.attn[0][1, 17] == 0)  # the padding word of caption 1 gets no attention


def test_one_step_loss_terms_finite(plugins):
    """D and G loss hooks of the test preset on a fake batch: named, finite, differentiable terms."""
    torch.manual_seed(0)
    cfg = _cfg(plugins)
    m = build_method(plugins, cfg, vocab_size=30)
    b = 4
    captions = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 11, 0], [12, 13, 14, 0, 0], [15, 16, 0, 0, 0]])
    lengths = torch.tensor([5, 4, 3, 2])
    images = [torch.rand(b, 3, s, s) * 2 - 1 for s in stage_sizes(cfg)]
    batch = Batch(images, captions, lengths, torch.tensor([0, 1, 0, 2]), ["a", "b", "c", "d"], torch.arange(b))
    for enc in (m.text_encoder, m.image_encoder):
        enc.eval().requires_grad_(False)
    text = m.text_encoder(captions, lengths).detach()
    noise = torch.randn(b, cfg.model.z_dim)
    out = m.generator(noise, text)
    step = Step(batch, text, text, noise, out, m.discriminators, m.image_encoder, {}, cfg, 0)
    hooks = plugins.method_hooks("attngan")
    size = stage_sizes(cfg)
    for i in range(len(m.discriminators)):
        terms = hooks.harness_discriminator_loss(step=step, stage=i)
        assert list(terms) == [f"d_{size[i]}"] and torch.isfinite(terms[f"d_{size[i]}"])
    terms = hooks.harness_generator_loss(step=step)
    assert set(terms) == {f"g_adv_{s}" for s in size} | {"damsm_words", "damsm_sent", "kl"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in terms.values())
    sum(terms.values()).backward()
    assert all(p.grad is not None for p in m.generator.h_net2.att.parameters())
    # the DAMSM terms carry λ: with λ = 0 they vanish
    cfg.loss.damsm_lambda = 0.0
    assert hooks.harness_generator_loss(step=step)["damsm_words"].item() == 0.0


def test_method_info_and_presets(plugins):
    info = plugins.method("attngan")
    rep = {r.metric: r for r in info.reported}
    assert (rep["is_ft"].value, rep["is_ft"].std, rep["is_ft"].std_over) == (4.36, 0.03, "splits")
    assert (rep["rp"].value, rep["rp"].std, rep["rp"].std_over) == (67.82, 4.43, "folds")
    assert rep["fid_tv"].value == 23.98
    cub, coco = _cfg(plugins, "paper", "cub"), _cfg(plugins, "paper", "coco")
    assert (cub.model.gf_dim, cub.model.df_dim, cub.model.r_num, cub.train.batch_size) == (32, 64, 2, 20)
    assert (cub.loss.damsm_lambda, cub.train.epochs, cub.pretrain.damsm.image_encoder) == (5.0, 600, "inception_v3")
    assert (coco.model.gf_dim, coco.model.df_dim, coco.model.r_num, coco.train.batch_size) == (48, 96, 3, 14)
    got = (coco.loss.damsm_lambda, coco.train.epochs, coco.data.words_num, coco.data.eval_words_num)
    assert got == (50.0, 120, 12, 20)
    smoke = _cfg(plugins, "smoke")
    d = smoke.pretrain.damsm
    assert (d.image_encoder, d.max_steps, d.batch_size, d.lr) == ("small_cnn", 300, 32, 0.002)
    assert plugins.method_hooks("attngan").harness_pretrain_stages(cfg=smoke) == []
