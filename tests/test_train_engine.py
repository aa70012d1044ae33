"""The GAN training engine on the AttnGAN `test` preset (shapes): one step with finite, separately logged terms;
exact mid-epoch resume through the CLI; a non-finite loss stops the run naming the step and the term."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.util.errors import HarnessError
from harness.contract.plugins import build_plugins, hookimpl
from harness.core.rundir import RunDir
from harness.build import prepare_config
from harness.build import load_inference_models
from harness.core.checkpoint import list_checkpoints, load_checkpoint
from harness.train.engine import train_method


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models on one intra-op thread


class Interventions:
    """A cross-cutting (non-method) plugin: interrupts training after a step, or poisons a loss term."""

    def __init__(self) -> None:
        self.stop_after: int | None = None
        self.nan_at: int | None = None

    @hookimpl
    def harness_on_step_end(self, run, step, logs):
        if self.stop_after is not None and step.iteration == self.stop_after:
            raise KeyboardInterrupt

    @hookimpl(wrapper=True)
    def harness_generator_loss(self, step):
        terms = yield
        if self.nan_at is not None and step.iteration == self.nan_at:
            terms = dict(terms, kl=terms["kl"] * float("nan"))
        return terms


@pytest.fixture
def setup(results_root: Path):
    knobs = Interventions()
    plugins = build_plugins(extra=[knobs])
    return plugins, knobs, results_root


def _new_run(plugins, root: Path, overrides: list[str], name: str) -> tuple:
    cfg = prepare_config(plugins, "attngan", dataset="shapes", data_dir=None, preset="test",
                         overrides=overrides, seed=0)
    run = RunDir.create(root, name=name)
    run.save_config(cfg)
    return cfg, run


def _losses(run: RunDir) -> list[dict]:
    """The logged entries without what depends on the wall clock (images/s, the time of the entry)."""
    return [{k: v for k, v in e.items() if k not in ("images_per_s", "time")} for e in run.read_log()]


def test_one_step_logs_every_term_separately(setup):
    plugins, _, root = setup
    cfg, run = _new_run(plugins, root, ["train.max_steps=1"], "one")
    train_method(plugins, cfg, run, resume=False, root=root)
    (entry,) = run.read_log()
    assert entry["step"] == 1 and entry["epoch"] == 0 and entry["images_per_s"] > 0
    terms = entry["terms"]
    assert {"d_16", "d_32", "g_adv_16", "g_adv_32", "damsm_words", "damsm_sent", "kl"} <= set(terms)
    assert all(math.isfinite(v) for v in terms.values())
    assert entry["loss_d"] == pytest.approx(terms["d_16"] + terms["d_32"], rel=1e-5)
    assert list(list_checkpoints(run)) == [1]
    assert (run.path / "pretrained.json").is_file()
    sheets = sorted(p.name for p in run.samples.iterdir())
    assert sheets == ["step-0000001-attn.png", "step-0000001.png"]  # AttnGAN returns word-attention maps
    (damsm_dir,) = [d for d in (root / ".cache" / "damsm").iterdir() if d.is_dir()]
    assert (damsm_dir / "text_encoder.pth").is_file() and (damsm_dir / "image_encoder.pth").is_file()

    models = load_inference_models(plugins, run)  # what evaluation and sampling use
    ckpt = load_checkpoint(run.checkpoints / "step-1.pt")
    assert models.step == 1 and models.vocab_size == ckpt["vocab_size"] and not models.modules.generator.training
    for k, v in models.modules.generator.state_dict().items():
        assert torch.equal(v, ckpt["generator_ema"][k]), k
    params = dict(models.modules.generator.named_parameters())
    assert any(not torch.equal(ckpt["generator_ema"][k], ckpt["generator"][k]) for k in params)  # EMA ≠ live G


@pytest.mark.slow
def test_resume_mid_epoch_equals_an_uninterrupted_run(setup):
    plugins, knobs, root = setup
    # 16 images / batch 4 = 4 batches per epoch: checkpoint 3 is mid-epoch, the resumed run crosses epochs.
    overrides = ["train.max_steps=7", "train.checkpoint_every=3", "train.sample_every=0", "train.log_every=1",
                 "data.shapes.train_images=16"]
    cfg, straight = _new_run(plugins, root, overrides, "straight")
    train_method(plugins, cfg, straight, resume=False, root=root)

    cfg, broken = _new_run(plugins, root, overrides, "broken")
    knobs.stop_after = 5
    with pytest.raises(KeyboardInterrupt):
        train_method(plugins, cfg, broken, resume=False, root=root)
    knobs.stop_after = None
    assert [e["step"] for e in broken.read_log()] == [1, 2, 3, 4, 5]
    assert list(list_checkpoints(broken)) == [3]

    assert main(["train", "--resume", str(broken.path), "--results-dir", str(root)], plugins=plugins) == 0
    a, b = _losses(straight), _losses(broken)
    assert [e["step"] for e in b] == list(range(1, 8))
    assert [e["epoch"] for e in b] == [0, 0, 0, 0, 1, 1, 1]
    assert a == b  # exact equality of every logged loss term
    end_a = load_checkpoint(straight.checkpoints / "step-7.pt")
    end_b = load_checkpoint(broken.checkpoints / "step-7.pt")
    for part in ("generator", "generator_ema", "discriminators"):
        for k in end_a[part]:
            assert torch.equal(end_a[part][k], end_b[part][k]), (part, k)


def test_non_finite_loss_stops_naming_step_and_term(setup):
    plugins, knobs, root = setup
    cfg, run = _new_run(plugins, root, ["train.max_steps=5", "train.checkpoint_every=2", "train.sample_every=0"],
                        "nan")
    knobs.nan_at = 3
    with pytest.raises(HarnessError) as err:
        train_method(plugins, cfg, run, resume=False, root=root)
    msg = str(err.value)
    assert "step 3" in msg and "'kl'" in msg and "step-2.pt" in msg and "\n" not in msg
    # the step's captions are named (image key and the words fed, a subsample of one of its captions)
    named = re.search(r"the step's batch \(this process's, the words fed\): (\S+) \"([^\"]+)\"", msg)
    assert named, msg
    ds = plugins.dataset("shapes").build(cfg.data, "train", train=False, seed=0)
    key, text = named.groups()

    def subsequence(words: list[str], caption: list[str]) -> bool:
        it = iter(caption)
        return all(w in it for w in words)

    captions = ds.captions(ds.keys.index(key))
    assert any(subsequence(text.split(), [ds.vocab.ixtoword[t] for t in cap]) for cap in captions)
    assert list(list_checkpoints(run)) == [2]  # the last good checkpoint is kept, nothing written after it
    assert [e["step"] for e in run.read_log()] == [1, 2]


def test_resume_of_a_finished_run_does_nothing(setup, capsys):
    plugins, _, root = setup
    cfg, run = _new_run(plugins, root, ["train.max_steps=1", "train.sample_every=0"], "done")
    train_method(plugins, cfg, run, resume=False, root=root)
    train_method(plugins, cfg, run, resume=True, root=root)
    assert "complete" in capsys.readouterr().out
    assert [e["step"] for e in run.read_log()] == [1]


def test_bf16_autocast_step_is_close_to_fp32(setup):
    """The autocast path (bf16 on CUDA; exercised here on the CPU) gives the fp32 losses within 5 %."""
    plugins, _, root = setup
    logs = {}
    for amp in ("off", "bf16"):
        cfg, run = _new_run(plugins, root, ["train.max_steps=1", "train.sample_every=0", f"train.amp='{amp}'"], amp)
        train_method(plugins, cfg, run, resume=False, root=root)
        logs[amp] = run.read_log()[0]["terms"]
    assert logs["off"].keys() == logs["bf16"].keys()
    for name, value in logs["off"].items():
        assert logs["bf16"][name] == pytest.approx(value, rel=0.05, abs=1e-3), name


def test_tensorboard_gets_every_term_when_installed(setup, monkeypatch):
    import sys
    import types

    calls = []

    class FakeWriter:
        def __init__(self, log_dir):
            calls.append(("dir", log_dir))

        def add_scalar(self, tag, value, step):
            calls.append((tag, step))

        def flush(self):
            calls.append(("flush", None))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    plugins, _, root = setup
    cfg, run = _new_run(plugins, root, ["train.max_steps=2", "train.sample_every=0"], "tb")
    train_method(plugins, cfg, run, resume=False, root=root)
    assert calls[0] == ("dir", str(run.path / "tensorboard"))
    tags = {c for c in calls if c[0].startswith("loss/")}
    assert ("loss/kl", 1) in tags and ("loss/d_32", 2) in tags and ("flush", None) in calls
