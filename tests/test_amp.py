"""The GPU precision path on the CPU: one training step under bf16 autocast + channels_last against the same
step in fp32 NCHW, from the same weights, batch and noise (harness.train.engine.Precision).

Stated tolerance: every loss term within 0.02·(1 + |fp32 value|) of the fp32 one (measured: at most 0.5 %
relative; bf16 keeps 8 mantissa bits, a relative step of 2^-8 ≈ 0.4 % per rounding).
The loss terms themselves must come back in fp32 under autocast."""
from __future__ import annotations

import copy

import pytest
import torch

from harness.build import build_method
from harness.config import build_config
from harness.contract.plugins import build_plugins
from harness.core.runtime import Precision
from harness.train.engine import GanTrainer
from harness.core.seed import sample_noise
from tiny_batch import seeded_batch

TOLERANCE = 0.02


@pytest.mark.parametrize("method", ["attngan", "dmgan"])
def test_bf16_step_matches_fp32_step(method):
    plugins = build_plugins()
    info = plugins.method(method)
    cfg = build_config(method, info.defaults, preset="test", dataset="shapes", section_types=info.config_sections)
    vocab = 40
    torch.manual_seed(0)
    modules = build_method(plugins, cfg, vocab)
    device = torch.device("cpu")
    batch = seeded_batch(cfg, vocab)
    noise = sample_noise(0, 1, batch.indices, cfg.model.z_dim)
    losses, dtypes = {}, {}
    for mode, prec in (("fp32", Precision(device)),
                       ("bf16", Precision(device, amp=True, channels_last=True))):
        trainer = GanTrainer(plugins, cfg, copy.deepcopy(modules), device, precision=prec)
        b = copy.deepcopy(batch)
        b.images = [prec.images(x) for x in b.images]
        torch.manual_seed(1)  # the same conditioning-augmentation draw in both modes
        step, terms, d_totals, g_total = trainer.train_step(b, noise, 1)
        losses[mode] = {**{k: float(v) for k, v in terms.items()}, "g_total": float(g_total)}
        with prec.autocast():
            d_terms = trainer.hooks.harness_discriminator_loss(step=step, stage=0)
            g_terms = trainer.hooks.harness_generator_loss(step=step)
        dtypes[mode] = {k: v.dtype for k, v in {**d_terms, **g_terms}.items()}
    assert all(d == torch.float32 for d in dtypes["bf16"].values()), dtypes["bf16"]  # losses in fp32
    assert losses["fp32"].keys() == losses["bf16"].keys()
    for k, ref in losses["fp32"].items():
        got = losses["bf16"][k]
        assert torch.isfinite(torch.tensor(got)), k
        assert abs(got - ref) <= TOLERANCE * (1 + abs(ref)), (k, ref, got)
