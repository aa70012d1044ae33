"""DF-GAN as a t2i-harness method plugin: one generator stage at the full resolution (NetG of deep text-image
fusion blocks), one discriminator (NetD + the conditional head NetC), hinge losses with the mismatched pair and the
matching-aware gradient penalty, conditioned on the shared frozen DAMSM sentence feature; no DAMSM loss, no
conditioning augmentation. Networks in ``model.py``, objective in ``losses.py``, presets in ``defaults.yaml``;
the registered plugin is the instance ``plugin`` (entry point ``plugins.dfgan:plugin``)."""
from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from harness.config import Config
from harness.config.rules import stage_size_problems, world_size
from harness.contract.plugins import hookimpl
from harness.contract.types import MethodInfo, ReferenceCheckpoint, ReportedNumber, Step
from plugins.dfgan.checkpoint import read_state_epoch
from plugins.dfgan.config import DFGANLossConfig
from plugins.dfgan.losses import discriminator_terms, generator_terms
from plugins.dfgan.model import DFGANDiscriminator, DFGANGenerator

NAME = "dfgan"
_README = "DF-GAN README, Performance table (github.com/tobran/DF-GAN)"
_TISE = "TISE (Dinh, Nguyen, Hua: TISE: Bag of Metrics for Text-to-Image Synthesis Evaluation, ECCV 2022), CUB, DF-GAN"
REPORTED = [
    ReportedNumber(metric="fid_tv", value=14.81, source=f"{_README}, DF-GAN(paper)"),
    ReportedNumber(metric="fid_tv", value=12.10, source=f"{_README}, DF-GAN(pretrained model)"),
    ReportedNumber(metric="fid_tv", value=19.32, source=f"{_README}, DF-GAN(paper)", dataset="coco"),
    ReportedNumber(metric="fid_tv", value=15.41, source=f"{_README}, DF-GAN(pretrained model)", dataset="coco"),
    ReportedNumber(metric="is_ft", value=14.70, std=0.16, source=f"{_TISE} (IS*: temperature-scaled classifier)"),
    ReportedNumber(metric="fid_tv", value=16.46, source=_TISE),
    ReportedNumber(metric="rp", value=42.96, std=0.79, source=_TISE),
]


class DFGAN:
    """DF-GAN's hooks."""

    @hookimpl
    def harness_methods(self) -> list[MethodInfo]:
        return [MethodInfo(
            name=NAME,
            display_name="DF-GAN",
            paper="M. Tao, H. Tang, F. Wu, X.-Y. Jing, B.-K. Bao, C. Xu. DF-GAN: A Simple and Effective Baseline "
                  "for Text-to-Image Synthesis. CVPR 2022.",
            defaults=Path(__file__).with_name("defaults.yaml"),
            reported=list(REPORTED),
            config_sections={"loss": DFGANLossConfig},
            # code/src/test_FID.py with bird.yml / coco.yml (truncation: True, trunc_rate: 0.88)
            reference_eval={"eval.truncation": 0.88, "model.attention_mask": None},  # no word attention
            description="one stage: noise → 4×4 → up-blocks of deep fusion (affine transforms on [noise, "
                        "sentence]); hinge loss with mismatched pairs and the matching-aware gradient penalty",
        )]

    @hookimpl
    def harness_generator(self, cfg: Config, aux: dict[str, nn.Module]) -> nn.Module:
        m = cfg.model
        return DFGANGenerator(m.gf_dim, m.z_dim, m.embedding_dim, cfg.data.image_size)

    @hookimpl
    def harness_discriminators(self, cfg: Config) -> nn.ModuleList:
        return nn.ModuleList([DFGANDiscriminator(cfg.model.df_dim, cfg.model.embedding_dim, cfg.data.image_size)])

    @hookimpl
    def harness_discriminator_loss(self, step: Step, stage: int) -> dict[str, Tensor]:
        return discriminator_terms(step, stage)

    @hookimpl
    def harness_generator_loss(self, step: Step) -> dict[str, Tensor]:
        return generator_terms(step)

    @hookimpl
    def harness_read_reference_checkpoint(self, cfg: Config, checkpoint: object) -> ReferenceCheckpoint:
        return read_state_epoch(checkpoint)

    @hookimpl
    def harness_check_config(self, cfg: Config) -> list[str]:
        problems = []
        if cfg.data.branch_num != 1:
            problems.append(f"data.branch_num={cfg.data.branch_num} is not allowed; dfgan generates one image at "
                            f"data.image_size: set data.branch_num=1")
        per_process = cfg.train.batch_size // world_size()
        if per_process < 2:  # the mismatched pair is the next image of the process's share of the batch
            problems.append(f"train.batch_size={cfg.train.batch_size} is not allowed ({per_process} per process); "
                            f"dfgan pairs each sentence with another image of the batch: at least 2 per process")
        # NetC reads 8·df_dim channels at 4×4: at least three doublings (32²) before the widths stop growing
        return problems + stage_size_problems(cfg, min_doublings=3)


plugin = DFGAN()
