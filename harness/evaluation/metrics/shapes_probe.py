"""The shapes probe (``probe_acc``, ``probe_fid``, ``probe_is``): how a CPU run shows that a method learns.

A small CNN is trained (here, once, cached under ``<root>/.cache/shapes-probe/<key>/``) to read every attribute
of a real ``shapes`` training image (colour, shape, size, position, background of the main object). Then, for
the generated images:

* ``probe_acc``: for each attribute, the share of generated images whose predicted value equals the attribute of
  the test image the caption was written for; the value is the mean over attributes (%), the per-attribute
  accuracies are in the record's ``per_attribute`` (with ``chance``). Colour and shape are named by every shapes
  caption; size, position and background only by some, so their accuracy is bounded below 100 %.
* ``probe_fid``: FID between generated and real test images in the probe's 128-d feature space.
* ``probe_is``: IS over the probe's joint (colour, shape) prediction (48 classes).

Every record says "shapes probe (trained here)"; these numbers are never mixed with Inception numbers.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.core.cache import cached
from harness.util.atomic import write_file
from harness.evaluation.metrics.features import FeatureStream
from harness.evaluation.metrics.frechet import frechet_distance, gaussian_stats, inception_score
from harness.evaluation.metrics.inception import StreamMetric
from harness.evaluation.metrics.interface import EvalContext, MetricNotApplicable, MetricResult, real_to_uint8
from harness.evaluation.metrics.power import frechet_power, is_power

PROBE_SIZE = 32  # every image is resized to 32² before the probe
PROBE_VERSION = 1  # bump when the probe's architecture or training changes
LABEL = "shapes probe (trained here)"


class ShapesProbe(nn.Module):
    """uint8 images B×3×H×W → (features B×128, {attribute: logits B×K})."""

    def __init__(self, attributes: dict[str, int], width: int = 16, feature_dim: int = 128):
        super().__init__()
        self.attributes = dict(attributes)
        self.trunk = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),  # 16²
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),  # 8²
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.BatchNorm2d(4 * width), nn.ReLU(inplace=True),  # 4²
            nn.Flatten(), nn.Linear(4 * width * 16, feature_dim), nn.ReLU(inplace=True))  # keeps where things are
        self.heads = nn.ModuleDict({k: nn.Linear(feature_dim, n) for k, n in self.attributes.items()})

    @staticmethod
    def prepare(images_uint8: Tensor) -> Tensor:
        x = images_uint8.float() / 127.5 - 1.0
        if x.shape[-1] != PROBE_SIZE:
            x = F.interpolate(x, size=(PROBE_SIZE, PROBE_SIZE), mode="bilinear", align_corners=False, antialias=True)
        return x

    def forward(self, images_uint8: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        f = self.trunk(self.prepare(images_uint8))
        return f, {k: h(f) for k, h in self.heads.items()}


def _attribute_sizes(dataset) -> dict[str, int]:
    return {k: len(v) for k, v in dataset.attribute_names().items()}


def _real_set(dataset) -> tuple[Tensor, dict[str, Tensor]]:
    """All images of a shapes split as uint8 at the probe's size, and their attribute labels."""
    images, labels = [], {k: [] for k in dataset.attribute_names()}
    for i in range(len(dataset)):
        im = dataset[i]["images"][-1][None]
        images.append(ShapesProbe.prepare(real_to_uint8(im)).add_(1).mul_(127.5).round_().to(torch.uint8))
        for k, v in dataset.attributes(i).items():
            labels[k].append(v)
    return torch.cat(images), {k: torch.tensor(v) for k, v in labels.items()}


def train_probe(train_set, test_set, *, steps: int, seed: int, batch_size: int = 64,
                lr: float = 2e-3) -> tuple[ShapesProbe, dict]:
    """Train the probe on the real training images; returns it (eval mode) and its real test accuracies."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = _real_set(train_set)
    probe = ShapesProbe(_attribute_sizes(train_set))
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    probe.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch_size,), generator=gen)
        _, logits = probe(x[idx])
        loss = sum(F.cross_entropy(logits[k], y[k][idx]) for k in logits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    probe.eval().requires_grad_(False)
    xt, yt = _real_set(test_set)
    with torch.no_grad():
        _, logits = probe(xt)
    acc = {k: float((logits[k].argmax(1) == yt[k]).float().mean() * 100) for k in logits}
    return probe, acc


def load_probe(ctx: EvalContext) -> tuple[ShapesProbe, dict, Path]:
    """The probe for this evaluation's shapes data (trained once per data config and step count, cached)."""
    if ctx.cfg.data.name != "shapes" or not hasattr(ctx.dataset, "attributes"):
        raise MetricNotApplicable("the shapes probe applies to the shapes data set only")
    steps, seed = ctx.cfg.eval.probe_steps, 0
    train_set = ctx.plugins.dataset("shapes").build(ctx.cfg.data, "train", train=False, seed=0, cache_root=ctx.root)
    # keyed on what the entry is made of: the probe is trained on the training split, and its real accuracy
    # (info.json) measured on the evaluation split
    key = dict(ctx.dataset_key(train_set, "train"), accuracy_on=ctx.dataset_key(), probe_version=PROBE_VERSION,
               steps=steps, seed=seed, probe_size=PROBE_SIZE)

    def build(tmp: Path) -> None:
        probe, acc = train_probe(train_set, ctx.dataset, steps=steps, seed=seed)
        write_file(tmp / "probe.pt", lambda f: torch.save(probe.state_dict(), f))
        write_file(tmp / "info.json", json.dumps({"attributes": probe.attributes, "real_test_accuracy": acc,
                                                  "test_split": ctx.split, "steps": steps}, indent=1))

    path = cached(ctx.root, "shapes-probe", key, build)
    info = json.loads((path / "info.json").read_text())
    probe = ShapesProbe(info["attributes"])
    probe.load_state_dict(torch.load(path / "probe.pt", map_location="cpu", weights_only=True))
    return probe.eval().requires_grad_(False).to(ctx.device), info, path


def probe_stream(ctx: EvalContext) -> FeatureStream:
    def build() -> FeatureStream:
        probe, info, path = load_probe(ctx)
        names = list(probe.attributes)

        def extract(x: Tensor) -> dict[str, Tensor]:
            f, logits = probe(x)
            out = {"feature": f, **{f"logits:{k}": v for k, v in logits.items()}}
            # joint (colour, shape) log-probabilities: log p(c) + log p(s), flattened to |C|·|S| classes
            joint = logits["colour"].log_softmax(1)[:, :, None] + logits["shape"].log_softmax(1)[:, None, :]
            out["joint"] = joint.flatten(1)
            return out

        stream = FeatureStream(ctx, f"{LABEL} {path.name}", extract,
                               ["feature", "joint", *[f"logits:{k}" for k in names]], {})
        stream.probe_info = info  # type: ignore[attr-defined]
        return stream

    return ctx.share("shapes-probe", build)


class ProbeAccuracy(StreamMetric):
    """Per-attribute accuracy of the generated images against their caption's image attributes."""

    distributed_state = ("stream", "targets")  # (harness.core.distributed)

    def __init__(self, ctx: EvalContext):
        self.ctx = ctx
        self.targets: dict[str, list[np.ndarray]] = {}
        super().__init__(probe_stream(ctx), self._result)

    def update(self, batch) -> None:
        super().update(batch)
        for i in batch.image_indices:
            for k, v in self.ctx.dataset.attributes(int(i)).items():
                self.targets.setdefault(k, []).append(np.array([v]))

    def _result(self, s: FeatureStream) -> list[MetricResult]:
        per, chance = {}, {}
        for k, n in _attribute_sizes(self.ctx.dataset).items():
            pred = s.generated(f"logits:{k}").argmax(1)
            per[k] = float((pred == np.concatenate(self.targets[k])).mean() * 100)
            chance[k] = 100.0 / n
        real = s.probe_info.get("real_test_accuracy", {})  # type: ignore[attr-defined]
        return [MetricResult("probe_acc", float(np.mean(list(per.values()))),
                             variant=f"{LABEL}: mean per-attribute accuracy % ({', '.join(per)})",
                             extra={"per_attribute": per, "chance": chance, "probe_real_test_accuracy": real})]


def make_probe_acc(ctx: EvalContext) -> ProbeAccuracy:
    return ProbeAccuracy(ctx)


def make_probe_fid(ctx: EvalContext) -> StreamMetric:
    def finish(s: FeatureStream) -> list[MetricResult]:
        fake, real = s.generated("feature"), s.real("feature")
        value = frechet_distance(gaussian_stats(fake), gaussian_stats(real))
        return [MetricResult("probe_fid", value, variant=f"{LABEL}: FID in its 128-d feature space vs the real "
                             f"{ctx.split} split", underpowered=frechet_power(len(fake), len(real), fake.shape[1]))]

    return StreamMetric(probe_stream(ctx), finish)


def make_probe_is(ctx: EvalContext) -> StreamMetric:
    def finish(s: FeatureStream) -> list[MetricResult]:
        splits = ctx.cfg.eval.is_splits
        joint = s.generated("joint")
        mean, std = inception_score(joint, splits=splits, seed=ctx.seed)
        return [MetricResult("probe_is", mean, std, "splits", variant=f"{LABEL}: IS over its joint (colour, shape) "
                             f"prediction, {splits} splits", underpowered=is_power(len(joint), splits))]

    return StreamMetric(probe_stream(ctx), finish)
