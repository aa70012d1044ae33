"""AttnGAN as a t2i-harness method plugin: the hooks as the class ``AttnGAN`` (networks in ``model.py``, shared
blocks in ``harness.nn``); the registered plugin is the instance ``plugin`` (entry point ``plugins.attngan:plugin``).
The text and image encoders and the pretraining stages are the harness's defaults (the shared DAMSM ones; no stage
of its own)."""
from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from harness.config import Config, stage_sizes
from harness.config.rules import reference_gan_problems
from harness.nn.discriminators import build_discriminators
from harness.nn.init import reference_init
from harness.nn.reference_objective import discriminator_terms, generator_terms
from harness.contract.plugins import hookimpl
from harness.contract.types import MethodInfo, ReportedNumber, Step

from .model import AttnGANGenerator

NAME = "attngan"
_SOURCE = "DM-GAN README (MinfengZhu/DM-GAN), AttnGAN on CUB"


class AttnGAN:
    """AttnGAN's hooks: its staged generator with word attention, three discriminators, the reference objective."""

    @hookimpl
    def harness_methods(self) -> list[MethodInfo]:
        return [MethodInfo(
            name=NAME,
            display_name="AttnGAN",
            paper="Xu et al., AttnGAN: Fine-Grained Text to Image Generation with Attentional GANs, CVPR 2018",
            defaults=Path(__file__).with_name("defaults.yaml"),
            reported=[
                ReportedNumber(metric="is_ft", value=4.36, std=0.03, std_over="splits", source=_SOURCE),
                ReportedNumber(metric="rp", value=67.82, std=4.43, std_over="folds", source=_SOURCE),
                ReportedNumber(metric="fid_tv", value=23.98, source=_SOURCE),
            ],
            ablation_keys=["model.attention_mask"],
            reference_eval_batch_size=100,  # TRAIN.BATCH_SIZE of the original cfg/eval_*.yml
            description="DAMSM + conditioning augmentation + 3-stage generator with word attention + 3 discriminators",
        )]

    @hookimpl
    def harness_generator(self, cfg: Config, aux: dict[str, nn.Module]) -> nn.Module:
        m, d = cfg.model, cfg.data
        return reference_init(AttnGANGenerator(gf_dim=m.gf_dim, embedding_dim=m.embedding_dim,
                                               condition_dim=m.condition_dim, z_dim=m.z_dim, r_num=m.r_num,
                                               branch_num=d.branch_num, base_size=d.base_size))

    @hookimpl
    def harness_discriminators(self, cfg: Config) -> nn.ModuleList:
        return reference_init(build_discriminators(cfg.model.df_dim, cfg.model.embedding_dim, stage_sizes(cfg)))

    @hookimpl
    def harness_discriminator_loss(self, step: Step, stage: int) -> dict[str, Tensor]:
        return discriminator_terms(step, stage)

    @hookimpl
    def harness_generator_loss(self, step: Step) -> dict[str, Tensor]:
        return generator_terms(step)

    @hookimpl
    def harness_import_generator_state(self, cfg: Config, state_dict: dict) -> dict:
        # The generator's module names are the reference G_NET's: the keys map to themselves.
        return {k.removeprefix("module."): v for k, v in state_dict.items()}

    @hookimpl
    def harness_check_config(self, cfg: Config) -> list[str]:
        return reference_gan_problems(cfg)  # stage sides 4·2ⁿ; BatchNorm's two items per process


plugin = AttnGAN()
