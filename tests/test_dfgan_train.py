"""One DF-GAN training iteration through the harness's engine (GanTrainer.train_step) on the CPU, in fp32 and under
bf16 autocast + channels_last: the D step takes the matching-aware gradient penalty's double backward inside the
loss hook, every term comes back finite and fp32, both networks move, and the optimisers carry DF-GAN's settings;
an interrupted run resumed mid-epoch equals an uninterrupted one exactly."""
from __future__ import annotations

import copy

import pytest
import torch

from harness.build import build_method, prepare_config
from harness.cli import main
from harness.config import build_config
from harness.contract.plugins import build_plugins, hookimpl
from harness.core.checkpoint import load_checkpoint
from harness.core.rundir import RunDir
from harness.core.runtime import Precision
from harness.core.seed import sample_noise
from harness.train.engine import GanTrainer, train_method
from tiny_batch import tiny_batch

PLUGINS = build_plugins()


def _cfg(preset: str = "test", dataset: str = "shapes"):
    info = PLUGINS.method("dfgan")
    return build_config("dfgan", info.defaults, preset=preset, dataset=dataset, section_types=info.config_sections)


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
def test_one_step_trains_both_networks_with_finite_fp32_terms(amp):
    cfg = _cfg()
    torch.manual_seed(0)
    modules = build_method(PLUGINS, cfg, 30)
    device = torch.device("cpu")
    prec = Precision(device, amp=amp, channels_last=amp)
    trainer = GanTrainer(PLUGINS, cfg, copy.deepcopy(modules), device, precision=prec)
    g0 = copy.deepcopy(trainer.generator.state_dict())
    d0 = copy.deepcopy(trainer.discriminators.state_dict())
    batch = tiny_batch(cfg)
    batch.images = [prec.images(x) for x in batch.images]
    noise = sample_noise(0, 1, batch.indices, cfg.model.z_dim)
    step, terms, d_totals, g_total = trainer.train_step(batch, noise, 1)
    assert set(terms) == {"d_real", "d_fake", "d_mismatch", "d_magp", "g_adv"}
    for name, value in terms.items():
        assert value.dtype == torch.float32 and torch.isfinite(value), (name, value)
    assert terms["d_magp"] > 0
    assert step.output.images[0].shape == (4, 3, 32, 32)
    moved_g = [k for k, v in trainer.generator.state_dict().items() if not torch.equal(v, g0[k])]
    moved_d = {k for k, v in trainer.discriminators.state_dict().items() if not torch.equal(v, d0[k])}
    assert "fc.weight" in moved_g and "to_rgb.1.weight" in moved_g
    assert {"0.netC.joint_conv.2.weight", "0.netD.conv_img.weight", "0.netD.DBlocks.0.gamma"} <= moved_d
    assert "0.netD.DBlocks.2.conv_s.weight" in moved_d  # widths 16 → 32: a learned shortcut


def test_optimisers_carry_the_original_settings():
    cfg = _cfg("paper-cub", "cub")
    assert (cfg.train.lr_g, cfg.train.lr_d, cfg.train.beta1, cfg.train.beta2) == (1e-4, 4e-4, 0.0, 0.9)
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.train.ema_decay) == (32, 1300, 0.0)
    assert (cfg.loss.gp_weight, cfg.loss.gp_power, cfg.data.branch_num) == (2.0, 6.0, 1)
    small = _cfg("smoke")  # 64²: D widths 16, 32, 64, 128, 128 (the last block keeps its width)
    trainer = GanTrainer(PLUGINS, small, build_method(PLUGINS, small, 30), torch.device("cpu"))
    assert trainer.opt_g.defaults["betas"] == (0.0, 0.9) and trainer.opt_d[0].defaults["lr"] == 4e-4
    # the frozen shortcut convs (equal widths) are no optimiser's parameters: the original never updates them
    frozen = {id(p) for b in trainer.discriminators[0].netD.DBlocks if not b.learned_shortcut
              for p in b.conv_s.parameters()}
    assert frozen and not frozen & {id(p) for g in trainer.opt_d[0].param_groups for p in g["params"]}


class StopAfter:
    """A cross-cutting plugin that interrupts training after a given step (as Ctrl-C would)."""

    def __init__(self) -> None:
        self.step: int | None = None

    @hookimpl
    def harness_on_step_end(self, run, step, logs):
        if self.step is not None and step.iteration == self.step:
            raise KeyboardInterrupt


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_resume_mid_epoch_equals_an_uninterrupted_run(results_root):
    stop = StopAfter()
    plugins = build_plugins(extra=[stop])
    overrides = ["train.max_steps=7", "train.checkpoint_every=3", "train.sample_every=0", "train.log_every=1",
                 "data.shapes.train_images=16"]  # 4 batches per epoch: checkpoint 3 is mid-epoch
    runs = {}
    for name, stop_after in (("straight", None), ("broken", 5)):
        cfg = prepare_config(plugins, "dfgan", dataset="shapes", data_dir=None, preset="test", overrides=overrides,
                             seed=0)
        runs[name] = RunDir.create(results_root, name=name)
        runs[name].save_config(cfg)
        stop.step = stop_after
        try:
            train_method(plugins, cfg, runs[name], resume=False, root=results_root)
        except KeyboardInterrupt:
            assert stop_after == 5
    stop.step = None
    assert main(["train", "--resume", str(runs["broken"].path), "--results-dir", str(results_root)],
                plugins=plugins) == 0
    logs = {name: [{k: v for k, v in e.items() if k not in ("images_per_s", "time")} for e in run.read_log()]
            for name, run in runs.items()}
    assert [e["step"] for e in logs["broken"]] == list(range(1, 8))
    assert logs["straight"] == logs["broken"]  # every loss term, the gradient penalty included, exactly
    end = {name: load_checkpoint(run.checkpoints / "step-7.pt") for name, run in runs.items()}
    for part in ("generator", "discriminators", "generator_ema"):
        for k, v in end["straight"][part].items():
            assert torch.equal(v, end["broken"][part][k]), (part, k)


@pytest.mark.parametrize("override,message", [
    ("data.branch_num=2", "data.branch_num=2 is not allowed; dfgan generates one image at data.image_size"),
    ("data.image_size=16", "data.base_size=16, which is not allowed; dfgan needs a first stage of 4·2^n (n >= 3)"),
    ("train.batch_size=1", "train.batch_size=1 is not allowed (1 per process); dfgan pairs each sentence with"),
])
def test_configs_the_networks_cannot_take_are_refused_in_one_line(override, message):
    from harness.util.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        prepare_config(PLUGINS, "dfgan", dataset="shapes", data_dir=None, preset="test", overrides=[override], seed=0)
    assert message in str(err.value) and "\n" not in str(err.value)
