"""DM-GAN as a t2i-harness method plugin: the hooks as the class ``DMGAN`` (networks in ``model.py``, released-weight
import in ``checkpoint.py``, presets in ``defaults.yaml``). ECAGAN and CAE-GAN subclass it and override only what
their papers change; the registered plugin is the instance ``plugin`` (entry point ``plugins.dmgan:plugin``)."""
from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from harness.config import Config
from harness.config.rules import reference_gan_problems
from harness.nn.init import reference_init
from harness.nn.reference_objective import discriminator_terms, generator_terms
from harness.contract.plugins import hookimpl
from harness.contract.types import MethodInfo, ReportedNumber, Step
from plugins.dmgan.checkpoint import import_reference_generator_state
from plugins.dmgan.model import DMGANGenerator, build_dmgan_discriminators

NAME = "dmgan"
_SOURCE = "DM-GAN README, Performance table, bird_DMGAN (paper) (github.com/MinfengZhu/DM-GAN)"


class DMGAN:
    """DM-GAN's hooks. A method built on DM-GAN subclasses it and overrides what its paper changes (decorating
    each override with ``@hookimpl``: pluggy reads the marker from the attribute it finds).

    Registration hooks are per class: a subclass defines its own ``harness_methods`` (else it would announce
    ``dmgan`` again; ``__init_subclass__`` refuses such a class), and DM-GAN's released-weight import
    (``harness_import_generator_state``) is set to None in a subclass whose generator it does not fit."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "harness_methods" not in cls.__dict__:
            raise TypeError(f"{cls.__name__} inherits DMGAN.harness_methods and would announce dmgan again; "
                            f"define its own harness_methods")

    @hookimpl
    def harness_methods(self) -> list[MethodInfo]:
        return [MethodInfo(
            name=NAME,
            display_name="DM-GAN",
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
    def harness_generator(self, cfg: Config, aux: dict[str, nn.Module]) -> nn.Module:
        return reference_init(DMGANGenerator.from_config(cfg))

    @hookimpl
    def harness_discriminators(self, cfg: Config) -> nn.ModuleList:
        return reference_init(build_dmgan_discriminators(cfg))

    @hookimpl
    def harness_discriminator_loss(self, step: Step, stage: int) -> dict[str, Tensor]:
        return discriminator_terms(step, stage)

    @hookimpl
    def harness_generator_loss(self, step: Step) -> dict[str, Tensor]:
        return generator_terms(step)  # Σ adversarial + λ·DAMSM (words + sentence) + KL, as AttnGAN

    @hookimpl
    def harness_import_generator_state(self, cfg: Config, state_dict: dict) -> dict:
        return import_reference_generator_state(state_dict)

    @hookimpl
    def harness_check_config(self, cfg: Config) -> list[str]:
        return reference_gan_problems(cfg)  # stage sides 4·2ⁿ; BatchNorm's two items per process


plugin = DMGAN()
