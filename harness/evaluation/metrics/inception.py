"""IS, FID and KID with Inception networks (the variants of the published CUB/COCO numbers
and of torch-fidelity 0.4.0).

* ``is``, ``fid``, ``kid``: torch-fidelity 0.4.0's ``inception-v3-compat`` extractor (the TF inception-2015-12-05
  graph ported to PyTorch) fed uint8 batches directly (its generator-wrapper path crashes with class conditioning
  on current NumPy), weights from a local file. IS on the 1008-way ``logits_unbiased``; FID/KID on pool3 (2048).
  Not comparable to the CUB-fine-tuned IS of the papers (4.36 / 4.75 …).
* ``fid_tv``: torchvision's ImageNet Inception-v3 weights with the preprocessing of pytorch-fid@802da39 as DM-GAN
  ships it (PIL bilinear resize to 299×299 of the uint8 image, [0, 1] → [−1, 1], pool3): the variant behind the
  published DM-GAN / DF-GAN / TISE FIDs. ``--fid-stats FILE`` takes the real statistics from a pytorch-fid .npz.
* ``is_ft``: IS with a user-given fine-tuned classifier (TorchScript, or a state dict of torchvision's
  Inception-v3 with ``--is-classes`` outputs), bilinear to 299, [−1, 1]; a logit column beyond the class count is
  the background class and is dropped (StackGAN's 51 → 50); ``--is-temperature T`` divides the logits (TISE's IS*).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.util.errors import HarnessError
from harness.evaluation.metrics.features import FeatureStream
from harness.evaluation.metrics.frechet import (GaussianStats, frechet_distance, gaussian_stats, inception_score,
                                                kernel_distance)
from harness.evaluation.metrics.interface import EvalContext, GeneratedBatch, MetricNotApplicable, MetricResult
from harness.evaluation.metrics.power import frechet_power, is_power, kid_power
from harness.core.state_dicts import load_weights_file
from harness.core.weights import find_weight, weight_sha256

TFID_WEIGHTS = "inception_tf_fid"
TV_WEIGHTS = "damsm_inception_v3"  # harness.train.pretrain.INCEPTION_WEIGHT: DAMSM's Inception file, the same one
FEATURE_SEED = 2020  # torch-fidelity's default rng_seed (IS shuffle, KID subsets)


class StreamMetric:
    """A metric that feeds a shared ``FeatureStream`` and computes its value from it at the end."""

    distributed_state = ("stream",)  # (harness.core.distributed)

    def __init__(self, stream: FeatureStream, finish: Callable[[FeatureStream], list[MetricResult]]):
        self.stream, self._finish = stream, finish

    def update(self, batch: GeneratedBatch) -> None:
        self.stream.process(batch)

    def finish(self) -> list[MetricResult]:
        return self._finish(self.stream)


# ----------------------------------------------------------------------------------------------------------
# torch-fidelity Inception (TF weights): is, fid, kid
# ----------------------------------------------------------------------------------------------------------
def load_tfid_extractor(path: Path, device: torch.device) -> nn.Module:
    """torch-fidelity's InceptionV3 (pool3 + unbiased logits) with the weights in ``path``."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    return FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                       feature_extractor_weights_path=str(path)).to(device)


def tfid_stream(ctx: EvalContext) -> FeatureStream:
    def build() -> FeatureStream:
        path = find_weight(ctx.plugins, TFID_WEIGHTS)
        net = load_tfid_extractor(path, ctx.device)

        def extract(x: Tensor) -> dict[str, Tensor]:
            pool, logits = net(x)
            return {"2048": pool, "logits_unbiased": logits}

        return FeatureStream(ctx, "torch-fidelity inception-v3-compat (TF 2015-12-05 weights)", extract,
                             ["2048", "logits_unbiased"], {path.name: weight_sha256(path)})

    return ctx.share("tfid", build)


def make_is(ctx: EvalContext) -> StreamMetric:
    def finish(s: FeatureStream) -> list[MetricResult]:
        splits = ctx.cfg.eval.is_splits
        logits = s.generated("logits_unbiased")
        mean, std = inception_score(logits, splits=splits, seed=FEATURE_SEED)
        return [MetricResult("is", mean, std, "splits", variant=f"{s.name}, 1008-way logits_unbiased, "
                             f"{splits} splits (ImageNet classifier, not the CUB-fine-tuned one)", weights=s.weights,
                             underpowered=is_power(len(logits), splits))]

    return StreamMetric(tfid_stream(ctx), finish)


def make_fid(ctx: EvalContext) -> StreamMetric:
    def finish(s: FeatureStream) -> list[MetricResult]:
        fake, real = s.generated("2048"), s.real("2048")
        value = frechet_distance(gaussian_stats(fake), gaussian_stats(real))
        return [MetricResult("fid", value, variant=f"{s.name}, pool3 2048, vs the real {ctx.split} split "
                             f"({len(real)} images, cached)", weights=s.weights,
                             underpowered=frechet_power(len(fake), len(real), fake.shape[1]))]

    return StreamMetric(tfid_stream(ctx), finish)


def make_kid(ctx: EvalContext) -> StreamMetric:
    def finish(s: FeatureStream) -> list[MetricResult]:
        subsets = ctx.cfg.eval.kid_subsets
        real, fake = s.real("2048"), s.generated("2048")
        mean, std, size = kernel_distance(real, fake, subsets=subsets, subset_size=ctx.cfg.eval.kid_subset_size,
                                          seed=FEATURE_SEED)
        return [MetricResult("kid", mean, std, "subsets", variant=f"{s.name}, pool3 2048, cubic kernel, "
                             f"{subsets} subsets of {size}", weights=s.weights, extra={"kid_subset_size": size},
                             underpowered=kid_power(len(fake), len(real), ctx.cfg.eval.kid_subset_size))]

    return StreamMetric(tfid_stream(ctx), finish)


# ----------------------------------------------------------------------------------------------------------
# torchvision Inception (ImageNet weights), pytorch-fid@802da39 preprocessing: fid_tv
# ----------------------------------------------------------------------------------------------------------
class TorchvisionPool3(nn.Module):
    """torchvision's Inception-v3 up to the 2048-d average pool, input already 299² in [−1, 1] (pytorch-fid's
    InceptionV3 wrapper: the blocks only, so torchvision's ``transform_input`` is not applied)."""

    def __init__(self, state_dict: dict):
        super().__init__()
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        net.load_state_dict(state_dict)
        self.blocks = nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, nn.MaxPool2d(3, 2),
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, nn.MaxPool2d(3, 2),
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c, net.Mixed_6d,
            net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, nn.AdaptiveAvgPool2d(1))
        self.eval().requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x).flatten(1)


def pil_resize_299(images_uint8: Tensor) -> Tensor:
    """DM-GAN's ``transforms.Resize((299, 299))`` (PIL bilinear on the uint8 image), then ToTensor and
    ``2x − 1``: B×3×299×299 float in [−1, 1] on the input's device."""
    from PIL import Image

    out = []
    for im in images_uint8.cpu().permute(0, 2, 3, 1).numpy():
        r = Image.fromarray(im).resize((299, 299), Image.BILINEAR)
        out.append(torch.from_numpy(np.asarray(r).copy()))
    x = torch.stack(out).permute(0, 3, 1, 2).float().div_(255.0)
    return (2.0 * x - 1.0).to(images_uint8.device)


def load_torchvision_inception(path: Path, device: torch.device) -> TorchvisionPool3:
    from harness.core.state_dicts import tensor_state

    state = tensor_state(load_weights_file(path, what="Inception-v3 weight file"), path)
    return TorchvisionPool3(state).to(device)


def make_fid_tv(ctx: EvalContext) -> StreamMetric:
    path = find_weight(ctx.plugins, TV_WEIGHTS)

    def build() -> FeatureStream:
        net = load_torchvision_inception(path, ctx.device)
        return FeatureStream(ctx, "torchvision inception_v3 ImageNet, pytorch-fid@802da39 preprocessing",
                             lambda x: {"2048": net(pil_resize_299(x))}, ["2048"], {path.name: weight_sha256(path)})

    stats_file = ctx.options.value("fid_stats")

    def finish(s: FeatureStream) -> list[MetricResult]:
        feats_fake = s.generated("2048")
        fake = gaussian_stats(feats_fake)
        weights = dict(s.weights)
        if stats_file:
            real, against = GaussianStats.load(stats_file), f"statistics from {Path(stats_file).name}"
            weights[Path(stats_file).name] = weight_sha256(Path(stats_file))
        else:
            feats = s.real("2048")
            real, against = gaussian_stats(feats), f"the real {ctx.split} split ({len(feats)} images, cached)"
        return [MetricResult("fid_tv", frechet_distance(fake, real), variant=f"{s.name}, pool3 2048, vs {against}",
                             weights=weights, underpowered=frechet_power(len(feats_fake), real.count,
                                                                         feats_fake.shape[1]))]

    if stats_file and not Path(stats_file).is_file():
        raise HarnessError(f"--fid-stats {stats_file}: no such file (a pytorch-fid .npz with mu and sigma)")
    return StreamMetric(ctx.share("tv-inception", build), finish)


# ----------------------------------------------------------------------------------------------------------
# A user's fine-tuned classifier: is_ft
# ----------------------------------------------------------------------------------------------------------
def load_classifier(path: Path, num_classes: int, device: torch.device) -> nn.Module:
    """A TorchScript module, or a state dict of torchvision's Inception-v3 with ``num_classes`` outputs."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            return torch.jit.load(str(path), map_location=device).eval()
    except RuntimeError:
        pass
    from torchvision.models import inception_v3

    state = load_weights_file(path, what="classifier file")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    n_out = state["fc.weight"].shape[0] if "fc.weight" in state else num_classes
    net = inception_v3(weights=None, aux_logits="AuxLogits.fc.weight" in state, init_weights=False,
                       num_classes=n_out)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise HarnessError(f"--is-classifier {path}: not TorchScript and not a torchvision inception_v3 state dict "
                           f"({str(e).splitlines()[0]})") from None
    return net.eval().to(device)


def make_is_ft(ctx: EvalContext) -> StreamMetric:
    classifier, classes = ctx.options.value("is_classifier"), ctx.options.value("is_classes")
    if not classifier:
        raise MetricNotApplicable("is_ft needs --is-classifier FILE and --is-classes N")
    if not classes:
        raise HarnessError("is_ft needs --is-classes N (the classifier's class count, e.g. 50 for CUB's test classes)")
    path = Path(classifier)
    if not path.is_file():
        raise HarnessError(f"--is-classifier {path}: no such file")
    temperature = ctx.options.value("is_temperature") or 1.0

    def build() -> FeatureStream:
        net = load_classifier(path, classes, ctx.device)

        def extract(x: Tensor) -> dict[str, Tensor]:
            z = F.interpolate(x.float() / 127.5 - 1.0, size=(299, 299), mode="bilinear", align_corners=False)
            out = net(z)
            logits = out[0] if isinstance(out, (tuple, list)) else getattr(out, "logits", out)
            if logits.shape[1] == classes + 1:  # background class first (StackGAN's classifier)
                logits = logits[:, 1:]
            elif logits.shape[1] != classes:
                raise HarnessError(f"--is-classifier gives {logits.shape[1]} logits, --is-classes is {classes}")
            return {"logits": logits}

        return FeatureStream(ctx, f"classifier {path.name}", extract, ["logits"], {path.name: weight_sha256(path)})

    def finish(s: FeatureStream) -> list[MetricResult]:
        splits = ctx.cfg.eval.is_splits
        logits = s.generated("logits")
        mean, std = inception_score(logits, splits=splits, seed=FEATURE_SEED, temperature=temperature)
        t = f", temperature {temperature:g} (IS*)" if temperature != 1.0 else ""
        return [MetricResult("is_ft", mean, std, "splits", variant=f"{s.name} (user-given, {classes} classes, "
                             f"unverified){t}, bilinear 299, {splits} splits", weights=s.weights,
                             underpowered=is_power(len(logits), splits))]

    return StreamMetric(ctx.share(f"is-ft:{path}", build), finish)
