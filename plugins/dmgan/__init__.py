"""DM-GAN as a t2i-harness method plugin: hook implementations only (networks in ``model.py``, released-weight
import in ``checkpoint.py``, presets in ``defaults.yaml``)."""
from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from harness.config import Config
from harness.config_rules import reference_gan_problems
from harness.nn.init import reference_init
from harness.nn.reference_objective import discriminator_terms, generator_terms
from harness.plugins import hookimpl
from harness.types import MethodInfo, ReportedNumber, Step
from plugins.dmgan.checkpoint import import_reference_generator_state
from plugins.dmgan.model import DMGANGenerator, build_dmgan_discriminators

NAME = "dmgan"
_SOURCE = "DM-GAN README, Performance table, bird_DMGAN (paper) (github.com/MinfengZhu/DM-GAN)"


@hookimpl
def harness_methods() -> list[MethodInfo]:
    return [MethodInfo(
        name=NAME,
        paper="M. Zhu, P. Pan, W. Chen, Y. Yang. DM-GAN: Dynamic Memory Generative Adversarial Networks for "
              "Text-to-Image Synthesis. CVPR 2019.",
        defaults=Path(__file__).with_name("defaults.yaml"),
        reported=[
            ReportedNumber(metric="is_ft", value=4.75, std=0.07, std_over="splits", source=_SOURCE),
            ReportedNumber(metric="rp", value=72.31, std=0.91, std_over="folds", source=_SOURCE),
            ReportedNumber(metric="fid_tv", value=16.09, source=_SOURCE),
        ],
        ablation_keys=["model.attention_mask"],
        reference_eval_batch_size=10,  # TRAIN.BATCH_SIZE of the original cfg/eval_*.yml
        description="AttnGAN's first stage; refinement by a dynamic memory (writing gate, key addressing, "
                    "response gate); spectral-norm discriminators",
    )]


@hookimpl
def harness_generator(cfg: Config, aux: dict[str, nn.Module]) -> nn.Module:
    return reference_init(DMGANGenerator.from_config(cfg))


@hookimpl
def harness_discriminators(cfg: Config) -> nn.ModuleList:
    return reference_init(build_dmgan_discriminators(cfg))


@hookimpl
def harness_discriminator_loss(step: Step, stage: int) -> dict[str, Tensor]:
    return discriminator_terms(step, stage)


@hookimpl
def harness_generator_loss(step: Step) -> dict[str, Tensor]:
    return generator_terms(step)  # Σ adversarial + λ·DAMSM (words + sentence) + KL, as AttnGAN


@hookimpl
def harness_import_generator_state(cfg: Config, state_dict: dict) -> dict:
    return import_reference_generator_state(state_dict)


@hookimpl
def harness_check_config(cfg: Config) -> list[str]:
    return reference_gan_problems(cfg)  # stage sides 4·2ⁿ; BatchNorm's two items per process
