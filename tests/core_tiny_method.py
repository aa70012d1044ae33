"""A tiny, complete, out-of-tree method plugin used by the core tests: it lives outside `harness/` and
`plugins/`, writes its own defaults.yaml, and is registered with `build_plugins(extra=[...])` – exactly what a
third-party package does through the entry-point group `harness`.

The method ("tinygan"): G = conditioning augmentation + one linear layer to the first stage, upsampled to the
later stages; one small conv D per stage; non-saturating GAN loss + KL.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import stage_sizes
from harness.contract.plugins import hookimpl
from harness.contract.types import DatasetInfo, GenOutput, MethodInfo, MetricInfo, ReportedNumber, TextFeatures

DEFAULTS_YAML = """\
paper-cub:
  model: {z_dim: 100, condition_dim: 100}
smoke:
  data: {branch_num: 2}
  model: {z_dim: 16, condition_dim: 8}
  train: {batch_size: 8, max_steps: 5, checkpoint_every: 5, sample_every: 5, log_every: 1}
test:
  extends: smoke
  train: {batch_size: 4, max_steps: 2, checkpoint_every: 2, sample_every: 2}
"""
# The protocols of the test data sets TinyRegistry registers (the data, DAMSM and evaluation settings).
TINY_PROTOCOLS = {"paper": {}, "smoke": {"data": {"image_size": 64}},
                  "test": {"extends": "smoke", "data": {"image_size": 32}}}


class TinyGenerator(nn.Module):
    def __init__(self, z_dim: int, text_dim: int, c_dim: int, sizes: list[int]):
        super().__init__()
        self.sizes = sizes
        self.ca = nn.Linear(text_dim, 2 * c_dim)  # conditioning augmentation: (μ, log σ²)
        self.fc = nn.Linear(z_dim + c_dim, 3 * sizes[0] * sizes[0])

    def forward(self, noise: torch.Tensor, text: TextFeatures) -> GenOutput:
        mu, logvar = self.ca(text.sent).chunk(2, dim=1)
        c = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        s = self.sizes[0]
        x = torch.tanh(self.fc(torch.cat([noise, c], dim=1))).view(-1, 3, s, s)
        images = [x] + [F.interpolate(x, size=(k, k), mode="nearest") for k in self.sizes[1:]]
        return GenOutput(images=images, mu=mu, logvar=logvar, attn=[])


class TinyDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.leaky_relu(self.conv(x), 0.2).mean(dim=(2, 3))).squeeze(1)


def build_generator(cfg) -> TinyGenerator:
    return TinyGenerator(cfg.model.z_dim, cfg.model.embedding_dim, cfg.model.condition_dim, stage_sizes(cfg))


class TinyMethod:
    """The plugin object (a module with the same functions works the same way)."""

    def __init__(self, directory: Path, name: str = "tinygan", reported: Optional[list[ReportedNumber]] = None,
                 ablation_keys: Optional[list[str]] = None):
        directory.mkdir(parents=True, exist_ok=True)
        self.defaults = directory / "defaults.yaml"
        self.defaults.write_text(DEFAULTS_YAML)
        self.name = name
        self.reported = reported or []
        self.ablation_keys = ablation_keys or []

    @hookimpl
    def harness_methods(self) -> list[MethodInfo]:
        return [MethodInfo(name=self.name, paper="Tiny et al., a test method", defaults=self.defaults,
                           reported=list(self.reported), ablation_keys=list(self.ablation_keys))]

    @hookimpl
    def harness_generator(self, cfg, aux):
        return build_generator(cfg)

    @hookimpl
    def harness_discriminators(self, cfg):
        return nn.ModuleList(TinyDiscriminator() for _ in stage_sizes(cfg))

    @hookimpl
    def harness_discriminator_loss(self, step, stage):
        d = step.discriminators[stage]
        real = step.batch.images[stage]
        fake = step.output.images[stage].detach()
        return {f"d_{stage}": F.softplus(-d(real).float()).mean() + F.softplus(d(fake).float()).mean()}

    @hookimpl
    def harness_generator_loss(self, step):
        terms = {f"g_adv_{i}": F.softplus(-d(x).float()).mean()
                 for i, (d, x) in enumerate(zip(step.discriminators, step.output.images))}
        mu, logvar = step.output.mu.float(), step.output.logvar.float()
        terms["kl"] = step.cfg.loss.kl_weight * (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).mean())
        return terms


class TinyRegistry:
    """A non-method plugin registering a data set and metrics (names given by the test)."""

    def __init__(self, datasets: tuple[str, ...] = ("tinyset",), metrics: dict[str, str] | None = None):
        self._datasets, self._metrics = datasets, dict(metrics or {})

    @hookimpl
    def harness_datasets(self) -> list[DatasetInfo]:
        def build(*args, **kwargs):
            raise RuntimeError("the tiny data set is for config tests only")

        return [DatasetInfo(name=n, description="a test data set", build=build, needs_data_dir=False,
                            protocols=TINY_PROTOCOLS) for n in self._datasets]

    @hookimpl
    def harness_metrics(self) -> list[MetricInfo]:
        return [MetricInfo(name=n, direction=d, description="a test metric") for n, d in self._metrics.items()]
