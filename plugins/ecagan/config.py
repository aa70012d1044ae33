"""ECAGAN's config sections: DM-GAN's model and loss sections plus ECAGAN's switches and module sizes.

Ablation switches (``MethodInfo.ablation_keys``; a non-default value names the variant in the table's row):
``model.upsample`` (carafe | nearest), ``model.channel_attention`` (eca | none), ``loss.perceptual.weight``
(λ1; 0 turns the perceptual loss off) and ``loss.perceptual.weights`` (imagenet | random).
Every default below is CARAFE's, ECA-Net's or ControlGAN's (README "Assumptions"), not a value of the paper.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from harness.config.rules import at_least, free, odd_at_least, value
from harness.config import LossConfig, ModelConfig


@dataclass
class CarafeConfig:
    """Content-aware upsampling (CARAFE's standard settings, mmdetection configs/carafe)."""

    k_up: int = value(5, odd_at_least(1))  # reassembly kernel k_up
    k_enc: int = value(3, odd_at_least(1))  # content-encoder kernel k_enc
    compressed_channels: int = value(64, at_least(1))  # C_m


@dataclass
class EcaConfig:
    """ECA-Net's adaptive kernel rule k = odd(int(|(log2 C + b)/γ|))."""

    gamma: int = value(2, at_least(1))
    b: int = value(1, free("the offset b of ECA-Net's kernel rule"))


@dataclass
class ECAGANModelConfig(ModelConfig):
    upsample: Literal["carafe", "nearest"] = "carafe"  # stage-1 upsampling: CAUPBlock or DM-GAN's upBlock
    channel_attention: Literal["eca", "none"] = "eca"  # ECA before each stage's image convolution
    carafe: CarafeConfig = field(default_factory=CarafeConfig)
    eca: EcaConfig = field(default_factory=EcaConfig)


@dataclass
class PerceptualConfig:
    """L_per on VGG-16 relu2_2 (ControlGAN's layer)."""

    weight: float = value(1.0, at_least(0))  # λ1 (0 = off)
    weights: Literal["imagenet", "random"] = "imagenet"  # VGG-16 ImageNet file, or untrained (CPU presets only)
    stages: Optional[list[int]] = value(None, at_least(0))  # stages with L_per; None = every stage (the paper's Σ_i)


@dataclass
class ECAGANLossConfig(LossConfig):
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
