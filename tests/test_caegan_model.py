"""CAE-GAN's generator and hooks: shapes, f_c conditioning, the frozen encoder inside G, the `damsm`
ablation, one training step of the `test` preset, `inspect` and the method info."""
from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest
import torch

from harness.build import build_method
from harness.util.errors import ConfigError
from harness.data.shapes import ShapesDataset
from harness.contract.plugins import build_plugins
from harness.build import prepare_config
from harness.contract.types import TextFeatures
from plugins.caegan.model import CAEGANGenerator
from plugins.dmgan.model import DMGANGenerator

VOCAB = 60


@pytest.fixture(scope="module")
def plugins():
    return build_plugins()


def _cfg(plugins, *overrides: str):
    return prepare_config(plugins, "caegan", dataset="shapes", data_dir=None, preset="test",
                          overrides=list(overrides), seed=0)


def _text(cfg, b: int = 3) -> TextFeatures:
    g = torch.Generator().manual_seed(0)
    d, t = cfg.model.embedding_dim, 6
    lengths = torch.tensor([6, 4, 2][:b])
    mask = torch.arange(t)[None] >= lengths[:, None]
    return TextFeatures(torch.randn(b, d, t, generator=g), torch.randn(b, d, generator=g), mask, lengths)


def test_generator_shapes_and_f_c_conditioning(plugins):
    cfg = _cfg(plugins)
    m = build_method(plugins, cfg, VOCAB)
    g = m.generator
    assert isinstance(g, CAEGANGenerator) and g.encoder is m.aux["cross_attention_encoder"]
    g.eval()
    text = _text(cfg)
    torch.manual_seed(0)
    out = g(torch.randn(3, cfg.model.z_dim), text)
    assert [tuple(im.shape) for im in out.images] == [(3, 3, 16, 16), (3, 3, 32, 32)]
    assert out.mu.shape == out.logvar.shape == (3, cfg.model.condition_dim)
    assert [tuple(a.shape) for a in out.attn] == [(3, 6, 16, 16)]
    f_c = g.encoder.encode(text.words, text.mask, text.sent).f_c
    assert torch.equal(g.condition_input(text), f_c)
    mu, _ = g.ca_net.encode(f_c)
    assert torch.allclose(out.mu, mu)  # CA reads f_c, not the sentence
    assert not torch.allclose(mu, g.ca_net.encode(text.sent)[0])


def test_encoder_is_frozen_buffers_in_state_and_eval_while_training(plugins):
    cfg = _cfg(plugins)
    g = build_method(plugins, cfg, VOCAB).generator
    g.train()
    assert not g.encoder.training and g.training
    assert all(not p.requires_grad for p in g.encoder.parameters())
    sd = g.state_dict()
    assert {"encoder.bank.keys", "encoder.bank.regions", "encoder.bank.count"} <= set(sd)
    assert sd["encoder.bank.regions"].shape == (8, 16, 2, 2)


def test_damsm_ablation_is_dmgan(plugins):
    cfg = _cfg(plugins, "model.text_encoder=damsm")
    hooks = plugins.method_hooks("caegan")
    assert hooks.harness_pretrain_stages(cfg=cfg) == []
    m = build_method(plugins, cfg, VOCAB)
    assert m.aux == {} and m.generator.encoder is None
    dmgan = DMGANGenerator.from_config(cfg)
    assert list(m.generator.state_dict()) == list(dmgan.state_dict())
    text = _text(cfg)
    assert torch.equal(m.generator.condition_input(text), text.sent)
    with pytest.raises(ConfigError):
        _cfg(plugins, "model.text_encoder=bert")


def test_encoder_is_a_constructor_argument_and_never_reinitialised(plugins):
    """C_E joins through the constructor (no module surgery); ``initialise`` draws DM-GAN's reference init for every
    other submodule, in DM-GAN's order, and leaves the pretrained encoder's weights as they were."""
    from harness.nn.init import reference_init
    from plugins.caegan.encoder_pretraining import build_encoder

    cfg = _cfg(plugins)
    encoder = build_encoder(cfg)
    enc_before = {k: v.clone() for k, v in encoder.state_dict().items()}
    torch.manual_seed(7)
    g = CAEGANGenerator.from_config(cfg, encoder=encoder).initialise()
    torch.manual_seed(7)
    dmgan = reference_init(DMGANGenerator.from_config(cfg))
    assert g.encoder is encoder and not any(p.requires_grad for p in encoder.parameters())
    sd = g.state_dict()
    assert all(torch.equal(sd[f"encoder.{k}"], v) for k, v in enc_before.items())
    own = {k: v for k, v in sd.items() if not k.startswith("encoder.")}
    assert list(own) == list(dmgan.state_dict())
    assert all(torch.equal(v, dmgan.state_dict()[k]) for k, v in own.items())
    assert not hasattr(CAEGANGenerator, "attach_encoder")


def test_pretrain_stage_declared(plugins):
    cfg = _cfg(plugins)
    (stage,) = plugins.method_hooks("caegan").harness_pretrain_stages(cfg=cfg)
    assert stage.name == "caegan_encoder" and callable(stage.train)
    other = _cfg(plugins, "model.bank_entries=16")
    assert plugins.method_hooks("caegan").harness_pretrain_stages(cfg=other)[0].key != stage.key


def test_one_training_step_leaves_encoder_unchanged(plugins):
    from harness.train.engine import GanTrainer

    cfg = _cfg(plugins)
    torch.manual_seed(0)
    m = build_method(plugins, cfg, VOCAB)
    before = {k: v.clone() for k, v in m.aux["cross_attention_encoder"].state_dict().items()}
    trainer = GanTrainer(plugins, cfg, m, torch.device("cpu"))
    data = ShapesDataset(cfg.data, "train", train=True, seed=0)
    batch = data.collate([data[i] for i in range(4)])
    batch.captions = batch.captions.clamp(max=VOCAB - 1)
    _, terms, d_totals, g_total = trainer.train_step(batch, torch.randn(4, cfg.model.z_dim), 0)
    assert {"d_16", "d_32", "g_adv_16", "g_adv_32", "damsm_words", "damsm_sent", "kl"} <= set(terms)
    assert all(torch.isfinite(v) for v in terms.values()) and torch.isfinite(g_total)
    after = m.aux["cross_attention_encoder"].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p is q for p in m.aux["cross_attention_encoder"].parameters()
                   for group in trainer.opt_g.param_groups for q in group["params"])


def test_inspect_lists_encoder_under_other():
    from harness.cli import main

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["inspect", "--plugins", "caegan", "--preset", "paper", "--vocab-size", "5450", "--json"]) == 0
    report = json.loads(buf.getvalue())
    # C_E: 2 attentions × 4 Linear(256, 256) + 2 LayerNorm(256)
    assert report["other"] == {"cross_attention_encoder": 8 * (256 * 256 + 256) + 2 * 512}
    assert report["generator"] == 21_449_042  # DM-GAN's: CA reads a 256-d f_c instead of the 256-d sentence


def test_method_info(plugins):
    info = plugins.method("caegan")
    assert info.ablation_keys == ["model.text_encoder", "model.attention_mask"]
    rep = {r.metric: r for r in info.reported if r.dataset == "cub"}
    assert rep["is_ft"].value == 2.53 and rep["is_ft"].relative_to == "dmgan"
    assert rep["fid_tv"].value == -15.10 and rep["fid_tv"].relative_to == "dmgan"
    for preset in ("paper-cub", "paper-coco", "smoke", "test"):
        cfg = prepare_config(plugins, "caegan", dataset=preset.split("-")[-1] if "paper" in preset else "shapes",
                             data_dir=None, preset=preset, overrides=[], seed=0)
        assert cfg.model.embedding_dim % cfg.model.encoder_heads == 0


def test_missing_encoder_file_is_one_line_error(plugins, tmp_path):
    from harness.util.errors import HarnessError

    cfg = _cfg(plugins)
    with pytest.raises(HarnessError, match="encoder.pth does not exist"):
        build_method(plugins, cfg, VOCAB, pretrained={"caegan_encoder": tmp_path})
