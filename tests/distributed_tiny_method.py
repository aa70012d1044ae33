"""A tiny method whose loss terms are per-sample means, for the multi-process tests, and the worker those tests
start (one process per rank, as torchrun would, on the loopback interface only):

    RANK=r WORLD_SIZE=n MASTER_ADDR=127.0.0.1 MASTER_PORT=p python tests/distributed_tiny_method.py DIR ARGS...

runs ``harness ARGS...`` with the method registered from ``DIR/defaults.yaml``.

"distgan": G = conditioning augmentation (``CANet``: c = μ + σ·ε, ε drawn inside G, per item) ⊕ z → linear →
BatchNorm → tanh image per stage; one D per stage = conv → BatchNorm → per-sample logit. The D loss, the G loss
and the KL term are means over samples, so with ``train.sync_bn`` (global batch statistics) the gradient of N
ranks' local means averaged by DDP is the gradient of the global batch's mean.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.config import stage_sizes  # noqa: E402
from harness.nn.conditioning import CANet  # noqa: E402
from harness.contract.plugins import hookimpl  # noqa: E402
from harness.contract.types import GenOutput, MethodInfo  # noqa: E402

DEFAULTS_YAML = """\
test:
  data: {image_size: 16, branch_num: 2, shapes: {train_images: 16, test_images: 8}}
  model: {z_dim: 8, condition_dim: 4}
  pretrain: {damsm: {max_steps: 1, word_embedding_dim: 8}}
  train: {batch_size: 8, max_steps: 2, checkpoint_every: 1, sample_every: 0, log_every: 1, sync_bn: true,
          tensorboard: false, keep_checkpoints: 5, sample_count: 2}
  eval: {num_images: 20, batch_size: 4, rp_folds: 2, probe_steps: 20, is_splits: 2}
  deviations:              # smaller than the shapes/test protocol: several processes on a shared CPU
    data.image_size: "multi-process test budget"
    data.shapes: "multi-process test budget"
    pretrain.damsm: "multi-process test budget"
    eval: "multi-process test budget"
"""


class DistGenerator(nn.Module):
    def __init__(self, z_dim: int, text_dim: int, c_dim: int, sizes: list[int]):
        super().__init__()
        self.sizes = sizes
        self.ca = CANet(text_dim, c_dim)
        self.fc = nn.Linear(z_dim + c_dim, 3 * sizes[0] * sizes[0], bias=False)  # BN follows (Adam would
        # turn the zero gradient of a bias before BN into lr-sized steps of rounding noise)
        self.bn = nn.BatchNorm1d(3 * sizes[0] * sizes[0])

    def forward(self, noise, text) -> GenOutput:
        c, mu, logvar = self.ca(text.sent)
        s = self.sizes[0]
        x = torch.tanh(self.bn(self.fc(torch.cat([noise, c], dim=1)))).view(-1, 3, s, s)
        images = [x] + [F.interpolate(x, size=(k, k), mode="nearest") for k in self.sizes[1:]]
        return GenOutput(images=images, mu=mu, logvar=logvar, attn=[])


class DistDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        return self.head(F.leaky_relu(self.bn(self.conv(x)), 0.2).mean(dim=(2, 3))).squeeze(1)


class DistMethod:
    def __init__(self, defaults: Path):
        self.defaults = Path(defaults)
        if not self.defaults.exists():
            self.defaults.write_text(DEFAULTS_YAML)

    @hookimpl
    def harness_methods(self):
        return [MethodInfo(name="distgan", paper="a per-sample test method", defaults=self.defaults)]

    @hookimpl
    def harness_generator(self, cfg, aux):
        return DistGenerator(cfg.model.z_dim, cfg.model.embedding_dim, cfg.model.condition_dim, stage_sizes(cfg))

    @hookimpl
    def harness_discriminators(self, cfg):
        return nn.ModuleList(DistDiscriminator() for _ in stage_sizes(cfg))

    @hookimpl
    def harness_discriminator_loss(self, step, stage):
        d = step.discriminators[stage]
        real, fake = step.batch.images[stage], step.output.images[stage].detach()
        return {f"d_{stage}": F.softplus(-d(real).float()).mean() + F.softplus(d(fake).float()).mean()}

    @hookimpl
    def harness_generator_loss(self, step):
        terms = {f"g_adv_{i}": F.softplus(-d(x).float()).mean()
                 for i, (d, x) in enumerate(zip(step.discriminators, step.output.images))}
        mu, logvar = step.output.mu.float(), step.output.logvar.float()
        terms["kl"] = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).mean()
        return terms


def plugins_for(directory: Path):
    """distgan, and the built-in DF-GAN (whose mismatched pairs span the processes' shares)."""
    from harness.contract.plugins import build_plugins
    from plugins.dfgan import plugin as dfgan

    return build_plugins([DistMethod(Path(directory) / "defaults.yaml"), dfgan], entry_points=False)


if __name__ == "__main__":
    import torch as _t

    _t.set_num_threads(1)
    from harness.cli import main

    sys.exit(main(sys.argv[2:], plugins=plugins_for(Path(sys.argv[1]))))
