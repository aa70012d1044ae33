"""ECAGAN as a t2i-harness method plugin: ``ECAGAN(DMGAN)`` overrides what the paper changes (generator blocks,
the VGG auxiliary module and weight file, the perceptual term); the plugin is ``plugin`` (networks in
``model.py``, CARAFE in ``content_aware_upsample.py``, ECA in ``channel_attention.py``, the perceptual loss in
``losses.py``, config sections in ``config.py``, presets in ``defaults.yaml``; assumptions in README.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from torch import Tensor, nn

from harness.config import Config
from harness.contract.plugins import hookimpl
from harness.contract.types import DamsmEncoders, MethodInfo, ReportedNumber, Step, WeightFile
from plugins.dmgan import DMGAN
from plugins.ecagan.config import ECAGANLossConfig, ECAGANModelConfig
from plugins.ecagan.losses import (PERCEPTUAL_MODULE, VGG16_IMAGENET, VGGPerceptualFeatures,
                                   generator_terms_with_perceptual)
from plugins.ecagan.model import build_ecagan_generator

NAME = "ecagan"
_SOURCE = ("Zhang Y., Yi Y., Tang Z., Wang X., Computer Engineering 2022, 48(4):206-212, abstract "
           "(DOI 10.19678/j.issn.1000-3428.0062998)")


class ECAGAN(DMGAN):
    """DM-GAN + CARAFE upsampling in the first stage + ECA before each image convolution + a VGG-16 perceptual
    term; DM-GAN's discriminators, their loss and its generator terms are inherited."""

    harness_import_generator_state = None  # no released weights; DM-GAN's do not fit this generator

    @hookimpl
    def harness_methods(self) -> list[MethodInfo]:
        return [MethodInfo(
            name=NAME,
            display_name="ECAGAN",
            paper="张云帆, 易尧华, 汤梓伟, 王新宇. 基于通道注意力机制的文本生成图像方法 (Text-to-Image Synthesis "
                  "Method Based on Channel Attention Mechanism). 计算机工程 (Computer Engineering), 2022, 48(4): "
                  "206-212.",
            defaults=Path(__file__).with_name("defaults.yaml"),
            reported=[
                ReportedNumber(metric="is_ft", value=4.83, source=_SOURCE),
                ReportedNumber(metric="rp", value=75.62, source=_SOURCE),
            ],
            config_sections={"model": ECAGANModelConfig, "loss": ECAGANLossConfig},
            ablation_keys=["model.upsample", "model.channel_attention", "loss.perceptual.weight",
                           "loss.perceptual.weights", "model.attention_mask"],
            description="DM-GAN + content-aware upsampling (CARAFE) in the first stage + ECA channel attention "
                        "before each image convolution + VGG-16 relu2_2 perceptual loss",
        )]

    @hookimpl
    def harness_weight_files(self) -> list[WeightFile]:
        return [VGG16_IMAGENET]

    @hookimpl
    def harness_auxiliary_modules(self, cfg: Config, damsm: DamsmEncoders, pretrained: dict, training: bool,
                                  find_weight: Callable[[str], Path]) -> Optional[dict[str, nn.Module]]:
        """φ for the perceptual loss (frozen). ImageNet weights are loaded when the method is built for training:
        a missing file stops the run there, before any GAN step. Evaluation, sampling and ``inspect`` never
        compute the loss, so they keep the fresh layers and need no file."""
        p = cfg.loss.perceptual
        if not p.weight:
            return None  # no perceptual term: the harness's default (no module) applies
        path = find_weight(VGG16_IMAGENET.name) if p.weights == "imagenet" and training else None
        return {PERCEPTUAL_MODULE: VGGPerceptualFeatures(path)}

    @hookimpl
    def harness_generator(self, cfg: Config, aux: dict[str, nn.Module]) -> nn.Module:
        return build_ecagan_generator(cfg)

    @hookimpl
    def harness_generator_loss(self, step: Step) -> dict[str, Tensor]:
        return generator_terms_with_perceptual(step)  # DM-GAN's terms + λ1·L_per per stage

    @hookimpl
    def harness_check_config(self, cfg: Config) -> list[str]:
        problems = super().harness_check_config(cfg)
        stages = cfg.loss.perceptual.stages
        outside = [i for i in stages or [] if i >= cfg.data.branch_num]
        if outside:
            problems.append(f"loss.perceptual.stages={stages} is not allowed; stage indices run from 0 to "
                            f"{cfg.data.branch_num - 1} (data.branch_num={cfg.data.branch_num})")
        return problems


plugin = ECAGAN()
