"""The loss contract (harness/contract/hookspecs.py, types.Step): what a loss hook runs under and what it returns,
checked on the README's example method for one CPU training step with train.amp=bf16."""
from __future__ import annotations

import copy

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


class RealImagePenalty:
    """A cross-cutting plugin adding a gradient penalty on the real image (R1: γ/2·mean ‖∇ₓD(x)‖²) to every D loss,
    as the loss contract describes for inputs: a leaf made in the hook, ``autograd.grad(create_graph=True)``."""

    gamma = 10.0

    @hookimpl(wrapper=True)
    def harness_discriminator_loss(self, step, stage):
        terms = yield
        real = step.batch.images[stage].detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(step.discriminators[stage](real).sum(), real, create_graph=True)
        return {**terms, f"r1_{stage}": self.gamma / 2 * grad.float().pow(2).flatten(1).sum(1).mean()}


def _penalised_d_loss(d: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The README method's D loss plus the penalty, written again here (float64 for finite differences)."""
    real = real.detach().requires_grad_(True)
    out = d(real)
    (grad,) = torch.autograd.grad(out.sum(), real, create_graph=True)
    adv = torch.nn.functional.softplus(-out).mean() + torch.nn.functional.softplus(d(fake)).mean()
    return adv + RealImagePenalty.gamma / 2 * grad.pow(2).flatten(1).sum(1).mean()


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_a_d_loss_may_take_gradients_of_its_inputs_and_the_engine_runs_the_double_backward(tmp_path, amp):
    plugins = readme_method_plugins(tmp_path)
    plugins.pm.register(RealImagePenalty())
    cfg = prepare_config(plugins, "mymethod", dataset="shapes", data_dir=None, preset="test",
                         overrides=[f"train.amp={amp}"], seed=0)
    torch.manual_seed(0)
    modules = build_method(plugins, cfg, VOCAB)
    before = [d.double() for d in copy.deepcopy(modules.discriminators)]
    device = torch.device("cpu")
    trainer = GanTrainer(plugins, cfg, modules, device, precision=Precision.from_config(cfg, device))
    batch = seeded_batch(cfg, VOCAB)
    step, terms, _, _ = trainer.train_step(batch, sample_noise(0, 1, batch.indices, cfg.model.z_dim), 1)
    assert all(terms[f"r1_{i}"] > 0 and torch.isfinite(terms[f"r1_{i}"]) for i in range(len(before)))
    if amp == "bf16":
        return  # the penalty ran under autocast and came back finite fp32; the values are checked in fp32
    for i, d in enumerate(before):  # D's gradient as the engine left it (D steps, then only G's grads change)
        real, fake = batch.images[i].double(), step.output.images[i].detach().double()
        weight, got = d.conv.weight, trainer.discriminators[i].conv.weight.grad
        for j in range(0, weight.numel(), 17):
            flat, eps = weight.data.view(-1), 1e-6
            old = flat[j].item()
            flat[j] = old + eps
            up = _penalised_d_loss(d, real, fake).item()
            flat[j] = old - eps
            down = _penalised_d_loss(d, real, fake).item()
            flat[j] = old
            fd = (up - down) / (2 * eps)
            assert abs(got.view(-1)[j].item() - fd) <= 1e-4 * (1 + abs(fd)), (i, j, fd, got.view(-1)[j].item())


class MismatchedTerm:
    """A cross-cutting plugin adding a mismatched-pair term to every D loss through ``step.roll_batch``."""

    @hookimpl(wrapper=True)
    def harness_discriminator_loss(self, step, stage):
        terms = yield
        real = step.batch.images[stage]
        return {**terms, f"mis_{stage}": step.discriminators[stage](step.roll_batch(real)).float().mean()}


def test_a_d_loss_pairs_items_through_step_roll_batch(tmp_path):
    # one process: roll_batch is the next row of the batch, the last row taking the first's
    plugins = readme_method_plugins(tmp_path)
    plugins.pm.register(MismatchedTerm())
    cfg = prepare_config(plugins, "mymethod", dataset="shapes", data_dir=None, preset="test", overrides=[], seed=0)
    torch.manual_seed(0)
    modules = build_method(plugins, cfg, VOCAB)
    before = copy.deepcopy(modules.discriminators)
    device = torch.device("cpu")
    trainer = GanTrainer(plugins, cfg, modules, device, precision=Precision.from_config(cfg, device))
    batch = seeded_batch(cfg, VOCAB)
    _, terms, _, _ = trainer.train_step(batch, sample_noise(0, 1, batch.indices, cfg.model.z_dim), 1)
    for i, d in enumerate(before):
        real = batch.images[i]
        expected = d(torch.cat([real[1:], real[:1]])).mean()
        assert torch.allclose(terms[f"mis_{i}"], expected, atol=1e-6), (i, terms[f"mis_{i}"], expected)
