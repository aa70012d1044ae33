"""ECAGAN generator, hooks, presets, parameter counts against DM-GAN's, the ablation switches, the perceptual
term of the generator loss and the VGG weight-file handling."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from harness.build import build_method
from harness.config import build_config
from harness.util.errors import MissingWeightsError
from harness.contract.plugins import build_plugins
from harness.contract.types import Batch
from plugins.ecagan.channel_attention import ChannelAttentionConv, eca_kernel_size
from plugins.ecagan.content_aware_upsample import CAUPBlock, KernelPredictor
from plugins.ecagan.losses import PERCEPTUAL_MODULE, VGGPerceptualFeatures, perceptual_loss
from tiny_batch import tiny_batch


@pytest.fixture(scope="module")
def plugins():
    return build_plugins()


def _config(plugins, preset: str, dataset: str = "shapes", overrides: list[str] | None = None):
    info = plugins.method("ecagan")
    return build_config("ecagan", info.defaults, preset=preset, dataset=dataset, overrides=overrides,
                        section_types=info.config_sections)


def test_paper_parameters_differ_from_dmgan_by_the_added_modules(plugins, capsys):
    """generator(ECAGAN) − generator(DM-GAN) = Σ kernel predictors ψ of the 4 CAUPBlocks + 3 ECA convs; the
    rest (encoders, discriminators) is DM-GAN's; φ (VGG-16 to relu2_2) is listed under `other`."""
    from harness.cli import main

    assert main(["inspect", "--plugins", "ecagan", "--preset", "paper", "--vocab-size", "5450", "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    assert main(["inspect", "--plugins", "dmgan", "--preset", "paper", "--vocab-size", "5450", "--json"]) == 0
    dmgan = json.loads(capsys.readouterr().out)

    gf, k_up, k_enc, c_m, sigma = 64, 5, 3, 64, 2
    ngf = 16 * gf  # channels at 4×4; upBlocks 1024→512→256→128→64
    # a CAUPBlock = DM-GAN's upBlock (same conv and BN) + ψ: 1×1 C→C_m (+bias), k_enc² C_m→σ²k_up² (+bias)
    psi = sum(c * c_m + c_m + k_enc * k_enc * c_m * sigma ** 2 * k_up ** 2 + sigma ** 2 * k_up ** 2
              for c in (ngf, ngf // 2, ngf // 4, ngf // 8))
    eca = 3 * 3  # one Conv1d(1, 1, k) per stage without bias; k = 3 for C = 64 (t = int(3.5) = 3)
    assert ours["generator"] - dmgan["generator"] == psi + eca == 353_945
    assert ours["generator"] == 21_449_042 + 353_945
    for key in ("text_encoder", "image_encoder", "image_encoder_trainable", "discriminators"):
        assert ours[key] == dmgan[key], key
    assert ours["other"] == {PERCEPTUAL_MODULE: 1792 + 36928 + 73856 + 147584}


def test_generator_structure_paper(plugins):
    cfg = _config(plugins, "paper", "cub")
    with torch.device("meta"):
        g = plugins.method_hooks("ecagan").harness_generator(cfg=cfg, aux={})
    blocks = [getattr(g.h_net1, f"upsample{i}") for i in range(1, 5)]
    assert all(isinstance(b, CAUPBlock) for b in blocks)
    assert [b.conv.in_channels for b in blocks] == [1024, 512, 256, 128]
    assert all(b.upsample.k_up == 5 and b.upsample.scale == 2 for b in blocks)
    assert [b.upsample.kernel_predictor.encoder.kernel_size for b in blocks] == [(3, 3)] * 4
    heads = [g.img_net1, g.img_net2, g.img_net3]
    assert all(isinstance(h, ChannelAttentionConv) for h in heads)
    assert [h.attention.kernel_size for h in heads] == [eca_kernel_size(64)] * 3
    assert not isinstance(g.h_net2.upsample, CAUPBlock)  # refinement stages keep DM-GAN's upBlocks


def test_carafe_keeps_its_own_initialisation(plugins):
    """DM-GAN's orthogonal init everywhere, except ψ: N(0, 0.001²) content encoder and a centre-tap bias, so the
    first kernels put ≈ e⁵/(e⁵ + 24) ≈ 0.86 on the centre tap (close to nearest-neighbour upsampling)."""
    torch.manual_seed(0)
    cfg = _config(plugins, "test")
    g = plugins.method_hooks("ecagan").harness_generator(cfg=cfg, aux={})
    predictors = [m for m in g.modules() if isinstance(m, KernelPredictor)]
    assert predictors and all(p.encoder.weight.std() < 0.01 for p in predictors)
    p = predictors[0]
    x = torch.randn(2, p.compressor.in_channels, 4, 4)
    kernels = p(x)  # B × k_up² × 2H × 2W
    k2 = p.k_up * p.k_up
    expected_centre = math.exp(p.CENTRE_LOGIT) / (math.exp(p.CENTRE_LOGIT) + k2 - 1)
    torch.testing.assert_close(kernels[:, k2 // 2], torch.full_like(kernels[:, 0], expected_centre), atol=0.02, rtol=0)
    w = g.h_net1.upsample1.conv.weight.flatten(1)  # orthogonal rows (reference init)
    torch.testing.assert_close(w @ w.t(), torch.eye(w.shape[0]), atol=1e-5, rtol=0)


def test_presets(plugins):
    cub = _config(plugins, "paper", "cub")
    m, loss = cub.model, cub.loss
    assert (m.gf_dim, m.df_dim, m.z_dim, m.r_num, cub.train.batch_size, cub.train.epochs) == (64, 32, 100, 2, 10, 800)
    assert (m.upsample, m.channel_attention, m.carafe.k_up, m.carafe.k_enc, m.carafe.compressed_channels) == \
        ("carafe", "eca", 5, 3, 64)
    assert (loss.perceptual.weight, loss.kl_weight, loss.damsm_lambda) == (1.0, 1.0, 5.0)  # λ1, λ2, λ3
    assert loss.perceptual.weights == "imagenet"
    assert loss.perceptual.stages is None  # every stage
    for preset in ("smoke", "test"):
        assert _config(plugins, preset).loss.perceptual.weights == "random"
    assert _config(plugins, "smoke").loss.perceptual.stages == [0]
    with pytest.raises(Exception, match="paper-coco"):
        _config(plugins, "paper", "coco")
    # DM-GAN's bird settings everywhere else, and its smoke DAMSM / data settings (one shared DAMSM cache)
    dm = plugins.method("dmgan")
    for preset, dataset in (("paper", "cub"), ("smoke", "shapes")):
        ours = _config(plugins, preset, dataset).to_dict()
        theirs = build_config("dmgan", dm.defaults, preset=preset, dataset=dataset).to_dict()
        for section in ("data", "pretrain", "train", "eval"):
            assert ours[section] == theirs[section], (preset, section)
        assert {k: v for k, v in ours["model"].items() if k in theirs["model"]} == theirs["model"]
    info = plugins.method("ecagan")
    assert {(r.metric, r.value, r.std) for r in info.reported} == {("is_ft", 4.83, None), ("rp", 75.62, None)}
    assert {"model.upsample", "model.channel_attention", "loss.perceptual.weight"} <= set(info.ablation_keys)


def _step(modules, cfg, batch: Batch):
    from harness.contract.types import Step

    text = modules.text_encoder(batch.captions, batch.lengths).detach()
    output = modules.generator(torch.randn(len(batch), cfg.model.z_dim), text)
    return Step(batch=batch, text=text, damsm_text=text, noise=None, output=output,
                discriminators=modules.discriminators, image_encoder=modules.image_encoder, aux=modules.aux, cfg=cfg)


@pytest.mark.parametrize("overrides", [
    ["model.upsample=nearest"],
    ["model.channel_attention=none"],
    ["loss.perceptual.weight=0"],
])
def test_ablation_switches_build_and_run(plugins, overrides):
    """Each switch builds, runs a forward and its generator loss (test preset); no perceptual term at λ1 = 0."""
    torch.manual_seed(0)
    cfg = _config(plugins, "test", overrides=overrides)
    modules = build_method(plugins, cfg, vocab_size=30)
    g = modules.generator
    assert isinstance(g.h_net1.upsample1, CAUPBlock) == (cfg.model.upsample == "carafe")
    assert isinstance(g.img_net1, ChannelAttentionConv) == (cfg.model.channel_attention == "eca")
    assert (PERCEPTUAL_MODULE in modules.aux) == (cfg.loss.perceptual.weight > 0)
    step = _step(modules, cfg, tiny_batch(cfg))
    assert [tuple(x.shape[-2:]) for x in step.output.images] == [(16, 16), (32, 32)]
    terms = plugins.method_hooks("ecagan").harness_generator_loss(step=step)
    assert any(k.startswith("perceptual_") for k in terms) == (cfg.loss.perceptual.weight > 0)
    sum(terms.values()).backward()
    assert all(math.isfinite(float(v.detach())) for v in terms.values())


def test_every_switch_off_is_dmgan(plugins):
    """upsample=nearest, channel_attention=none: the generator is DM-GAN's, key for key and shape for shape."""
    cfg = _config(plugins, "paper", "cub", overrides=["model.upsample=nearest", "model.channel_attention=none"])
    dm = plugins.method("dmgan")
    dm_cfg = build_config("dmgan", dm.defaults, preset="paper", dataset="cub")
    with torch.device("meta"):
        ours = plugins.method_hooks("ecagan").harness_generator(cfg=cfg, aux={})
        theirs = plugins.method_hooks("dmgan").harness_generator(cfg=dm_cfg, aux={})
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_one_training_step_test_preset(plugins):
    """Contract: one reference-order iteration with every ECAGAN module on; all terms finite and logged."""
    from harness.train import engine
    torch.manual_seed(0)
    cfg = _config(plugins, "test")
    modules = build_method(plugins, cfg, vocab_size=30)
    trainer = engine.GanTrainer(plugins, cfg, modules, torch.device("cpu"))
    before = modules.generator.h_net1.upsample1.upsample.kernel_predictor.encoder.weight.clone()
    step, terms, _, g_total = trainer.train_step(tiny_batch(cfg), torch.randn(cfg.train.batch_size, cfg.model.z_dim), 0)
    assert set(terms) == {"d_16", "d_32", "g_adv_16", "g_adv_32", "damsm_words", "damsm_sent", "kl",
                          "perceptual_16", "perceptual_32"}
    assert all(math.isfinite(float(v)) for v in terms.values()) and math.isfinite(float(g_total))
    after = modules.generator.h_net1.upsample1.upsample.kernel_predictor.encoder.weight
    assert not torch.equal(before, after)  # ψ is trained


def test_perceptual_terms_equal_direct_computation(plugins):
    torch.manual_seed(1)
    cfg = _config(plugins, "test", overrides=["loss.perceptual.weight=2.5"])
    modules = build_method(plugins, cfg, vocab_size=30)
    step = _step(modules, cfg, tiny_batch(cfg))
    terms = plugins.method_hooks("ecagan").harness_generator_loss(step=step)
    phi = modules.aux[PERCEPTUAL_MODULE]
    for fake, real in zip(step.output.images, step.batch.images):
        f, r = phi(fake), phi(real)
        direct = 2.5 * ((f - r) ** 2).flatten(1).sum(1).div(f[0].numel()).mean()
        torch.testing.assert_close(terms[f"perceptual_{fake.shape[-1]}"], direct)
    assert not any(p.requires_grad for p in phi.parameters())
    cfg.loss.perceptual.stages = [1]  # the smoke preset's shortcut, here at the second stage only
    terms = plugins.method_hooks("ecagan").harness_generator_loss(step=step)
    assert [k for k in terms if k.startswith("perceptual_")] == ["perceptual_32"]


def test_imagenet_weights_required_when_training(plugins, tmp_path):
    """paper preset: building for training without vgg16-397923af.pth stops with the missing-file line;
    evaluation and `inspect` (training=False) need no file; a wrong file fails its hash check."""
    import dataclasses

    from harness.core.weights import find_weight

    cfg = _config(plugins, "paper", "cub")
    hooks = plugins.method_hooks("ecagan")

    def aux(cfg, training, weights_dir=None):
        found = dataclasses.replace(plugins, weights_dir=weights_dir)
        return hooks.harness_auxiliary_modules(cfg=cfg, damsm=None, pretrained={"damsm": tmp_path}, training=training,
                                               find_weight=lambda name: find_weight(found, name))

    with pytest.raises(MissingWeightsError, match=r"vgg16_imagenet.*missing.*vgg16-397923af\.pth"):
        aux(cfg, True)
    with torch.device("meta"):
        assert PERCEPTUAL_MODULE in aux(cfg, False)
    (weights := tmp_path / "w").mkdir()
    torch.save({"features.0.weight": torch.zeros(1)}, weights / "vgg16-397923af.pth")
    with pytest.raises(MissingWeightsError, match="fails its sha256 check"):
        aux(cfg, True, weights_dir=weights)
    smoke = _config(plugins, "smoke")  # random weights: no file needed
    assert PERCEPTUAL_MODULE in aux(smoke, True)


def test_imagenet_weights_loaded_from_the_found_file(plugins, tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(3)
    features = make_layers(cfgs["D"])
    path = tmp_path / "vgg16-397923af.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    cfg = _config(plugins, "paper", "cub")
    asked = []
    aux = plugins.method_hooks("ecagan").harness_auxiliary_modules(cfg=cfg, damsm=None, pretrained={"damsm": tmp_path},
                                                                  training=True,
                                                                  find_weight=lambda name: asked.append(name) or path)
    assert asked == ["vgg16_imagenet"]
    phi = aux[PERCEPTUAL_MODULE]
    assert isinstance(phi, VGGPerceptualFeatures)
    torch.testing.assert_close(phi.features[5].weight, features[5].weight)
    assert isinstance(phi.features[8], nn.ReLU)
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    assert perceptual_loss(phi, x, x).item() == 0.0
