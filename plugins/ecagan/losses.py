"""ECAGAN's own loss term: the perceptual loss on VGG-16 relu2_2 features.

    L_per(I', I) = 1/(C·H·W) · ‖φ(I') − φ(I)‖²

φ = VGG-16 ``features`` up to relu2_2 (torchvision indices 0…8: conv1_1, relu, conv1_2, relu, maxpool, conv2_1,
relu, conv2_2, relu), applied to images mapped from [-1, 1] to [0, 1] and normalised with the ImageNet mean and
std; I' is the generated and I the real image of the same sample, at one stage. The per-sample value is
averaged over the batch. The VGG weights are frozen (ImageNet ``vgg16-397923af.pth`` from a local file, or
untrained for CPU presets, as ``loss.perceptual.weights`` says).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.nn.reference_objective import generator_terms, stage_name
from harness.core.state_dicts import load_weights_file
from harness.contract.types import Download, Step, WeightFile

PERCEPTUAL_MODULE = "perceptual_vgg16"  # the auxiliary module's name (``Step.aux``, ``harness inspect``)
VGG16_IMAGENET = WeightFile(
    name="vgg16_imagenet",
    purpose="ECAGAN perceptual loss: VGG-16 relu2_2 features (loss.perceptual.weights: imagenet)",
    filenames=["vgg16-397923af.pth"],
    # full sha256 and size as stated by several public projects that pin torchvision's file (torchvision
    # itself publishes the 8-hex prefix in the name)
    check="sha256",
    digest="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
    source="torchvision VGG16_Weights.IMAGENET1K_V1, https://download.pytorch.org/models/vgg16-397923af.pth",
    downloads=[Download("vgg16-397923af.pth", ("https://download.pytorch.org/models/vgg16-397923af.pth",),
                        digest="sha256:397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
                        size=553_433_881)],
)

# torchvision's VGG-16 "features" indices of the layers φ uses; index 8 is relu2_2.
VGG16_RELU2_2 = 8
_VGG16_CONVS = {0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128)}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg16_features_to_relu2_2() -> nn.Sequential:
    """torchvision's ``vgg16().features[:9]`` with the same indices (so its state-dict keys are
    ``<i>.weight`` for the ``features.<i>.weight`` of the ImageNet file)."""
    layers: list[nn.Module] = []
    for i in range(VGG16_RELU2_2 + 1):
        if i in _VGG16_CONVS:
            cin, cout = _VGG16_CONVS[i]
            layers.append(nn.Conv2d(cin, cout, kernel_size=3, padding=1))
        elif i == 4:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class VGGPerceptualFeatures(nn.Module):
    """φ: images in [-1, 1] (B×3×H×W) → VGG-16 relu2_2 features (B×128×H/2×W/2). Frozen."""

    def __init__(self, weights_file: Path | None = None):
        super().__init__()
        self.features = _vgg16_features_to_relu2_2()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if weights_file is not None:
            self.load_imagenet(weights_file)
        self.requires_grad_(False)
        self.eval()

    def load_imagenet(self, path: Path) -> None:
        """Load the ``features.0…8`` tensors of torchvision's ``vgg16-397923af.pth`` (strictly)."""
        state = load_weights_file(path, what="VGG-16 weight file")
        prefix = "features."
        own = {k[len(prefix):]: v for k, v in state.items()
               if k.startswith(prefix) and int(k[len(prefix):].split(".")[0]) <= VGG16_RELU2_2}
        self.features.load_state_dict(own, strict=True)

    def train(self, mode: bool = True) -> "VGGPerceptualFeatures":
        return super().train(False)  # no BatchNorm/dropout; always an evaluation-mode feature extractor

    def forward(self, images: Tensor) -> Tensor:
        x = (images + 1) / 2  # [-1, 1] → [0, 1]
        return self.features((x - self.mean) / self.std)


def perceptual_loss(phi: nn.Module, fake: Tensor, real: Tensor) -> Tensor:
    """L_per(I', I) = 1/(C·H·W)·‖φ(I') − φ(I)‖², per sample, averaged over the batch (gradient into I' only)."""
    with torch.no_grad():
        target = phi(real)
    return F.mse_loss(phi(fake), target)  # mean over B·C·H·W = batch mean of the per-sample 1/(CHW)·‖·‖²


def generator_terms_with_perceptual(step: Step) -> dict[str, Tensor]:
    """ECAGAN's generator loss, L_G = Σ_i (L_Gi + λ1·L_per(I'_i, I_i)) + λ2·L_CA + λ3·L_DAMSM, as named terms:
    DM-GAN's (``g_adv_<size>``, ``damsm_words``, ``damsm_sent`` weighted by λ3 = ``loss.damsm_lambda``, ``kl``
    weighted by λ2 = ``loss.kl_weight``) plus ``perceptual_<size>`` = λ1·L_per at every stage
    (λ1 = ``loss.perceptual.weight``; no term when it is 0; only at ``loss.perceptual.stages`` when that is set,
    a CPU-preset shortcut)."""
    terms = generator_terms(step)
    cfg = step.cfg.loss.perceptual
    if cfg.weight:
        phi = step.aux[PERCEPTUAL_MODULE]
        for i, (fake, real) in enumerate(zip(step.output.images, step.batch.images)):
            if cfg.stages is None or i in cfg.stages:
                terms[f"perceptual_{stage_name(fake)}"] = cfg.weight * perceptual_loss(phi, fake, real)
    return terms
