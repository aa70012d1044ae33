"""The loss contract (harness/contract/hookspecs.py, types.Step): what a loss hook runs under and what it returns,
checked on the README's example method for one CPU training step with train.amp=bf16."""
from __future__ import annotations

import pytest
import torch

from harness import hookimpl
from harness.build import build_method, prepare_config
from harness.util.errors import HarnessError
from harness.core.runtime import Precision
from harness.core.seed import sample_noise
from harness.train.engine import GanTrainer
from readme_method import readme_method_plugins
from tiny_batch import seeded_batch

VOCAB = 40


class Recorder:
    """Wraps both loss hooks: what each call ran under, and what the method returned."""

    def __init__(self, to_bf16: bool = False):
        self.calls: list[dict] = []
        self.to_bf16 = to_bf16

    def _state(self, hook: str, step) -> dict:
        return {"hook": hook, "autocast": torch.is_autocast_enabled("cpu"),
                "autocast_dtype": torch.get_autocast_dtype("cpu"),
                "d_grad": {p.requires_grad for p in step.discriminators.parameters()}}

    @hookimpl(wrapper=True)
    def harness_discriminator_loss(self, step, stage):
        state = self._state("d", step)
        terms = yield
        self.calls.append({**state, "terms": dict(terms)})
        return {k: v.bfloat16() for k, v in terms.items()} if self.to_bf16 else terms

    @hookimpl(wrapper=True)
    def harness_generator_loss(self, step):
        state = self._state("g", step)
        terms = yield
        self.calls.append({**state, "terms": dict(terms)})
        return terms


def _one_step(tmp_path, recorder: Recorder, amp: str = "bf16"):
    plugins = readme_method_plugins(tmp_path)
    plugins.pm.register(recorder)
    cfg = prepare_config(plugins, "mymethod", dataset="shapes", data_dir=None, preset="test",
                         overrides=[f"train.amp={amp}"], seed=0)
    torch.manual_seed(0)
    modules = build_method(plugins, cfg, VOCAB)
    device = torch.device("cpu")
    trainer = GanTrainer(plugins, cfg, modules, device, precision=Precision.from_config(cfg, device))
    batch = seeded_batch(cfg, VOCAB)
    return trainer, trainer.train_step(batch, sample_noise(0, 1, batch.indices, cfg.model.z_dim), 1)


def test_readme_method_bf16_step_gives_finite_fp32_terms(tmp_path):
    recorder = Recorder()
    trainer, (step, terms, d_totals, g_total) = _one_step(tmp_path, recorder)
    assert trainer.precision.amp  # train.amp=bf16 runs bf16 autocast on the CPU too
    n_stages = len(step.discriminators)
    hooks = [c["hook"] for c in recorder.calls]
    assert hooks == ["d"] * n_stages + ["g"]  # every D loss (stage order), then the G loss
    for call in recorder.calls:
        assert call["autocast"] and call["autocast_dtype"] == torch.bfloat16, call["hook"]
        for name, value in call["terms"].items():  # what the method itself returned
            assert value.dtype == torch.float32 and value.dim() == 0, (name, value.dtype, value.shape)
            assert torch.isfinite(value), name
            assert value.requires_grad, name  # part of the graph: the engine back-propagates the sum
    assert [c["d_grad"] for c in recorder.calls] == [{True}] * n_stages + [{False}]  # Ds frozen for the G loss
    assert {p.requires_grad for p in step.discriminators.parameters()} == {True}  # and unfrozen afterwards
    expected = {f"d_{i}" for i in range(n_stages)} | {f"g_adv_{i}" for i in range(n_stages)} | {"kl"}
    assert set(terms) == expected
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in terms.values())
    g_sum = sum(float(v.detach()) for v in recorder.calls[-1]["terms"].values())
    assert float(g_total) == pytest.approx(g_sum, rel=1e-6)


def test_a_bf16_loss_term_stops_the_step_naming_the_term(tmp_path):
    with pytest.raises(HarnessError, match=r"harness_discriminator_loss term 'd_0' is torch.bfloat16.*0-dim fp32"):
        _one_step(tmp_path, Recorder(to_bf16=True))
