"""CAE-GAN as a t2i-harness method plugin: hook implementations only (encoder in
``cross_attention_encoder.py``, region bank in ``region_bank.py``, its pretraining stage in
``encoder_pretraining.py``, generator in ``model.py``, presets in ``defaults.yaml``; choices in README.md)."""
from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from harness.config import Config
from harness.config_rules import reference_gan_problems
from harness.nn.init import reference_init
from harness.nn.reference_objective import discriminator_terms, generator_terms
from harness.plugins import hookimpl
from harness.types import DamsmEncoders, MethodInfo, PretrainStage, ReportedNumber, Step
from plugins.caegan.config import CAEGANModelConfig, CAEGANPretrainConfig
from plugins.caegan.encoder_pretraining import STAGE_NAME, build_encoder, encoder_stage, load_encoder
from plugins.caegan.model import CAEGANGenerator
from plugins.dmgan.model import build_dmgan_discriminators

NAME = "caegan"
AUX_NAME = "cross_attention_encoder"
_SOURCE = ("Tan X., He X., Wang Z., Luo X., Qing L. Computer Science 2022, 49(2):107-115, abstract "
           "(doi 10.11896/jsjkx.210600085); change relative to DM-GAN, in per cent")


def _uses_encoder(cfg: Config) -> bool:
    return cfg.model.text_encoder == "cross_attention"


@hookimpl
def harness_methods() -> list[MethodInfo]:
    return [MethodInfo(
        name=NAME,
        paper="谭馨悦, 何小海, 王正勇, 罗晓东, 卿粼波. 基于Transformer交叉注意力的文本生成图像技术 (Text-to-image "
              "generation based on Transformer cross attention). 计算机科学 Computer Science, 2022, 49(2):107-115.",
        defaults=Path(__file__).with_name("defaults.yaml"),
        reported=[
            ReportedNumber(metric="is_ft", value=2.53, relative_to="dmgan", source=_SOURCE),
            ReportedNumber(metric="fid_tv", value=-15.10, relative_to="dmgan", source=_SOURCE),
            # COCO: DM-GAN's COCO IS is the plain ImageNet-Inception IS
            ReportedNumber(metric="is", value=1.54, relative_to="dmgan", source=_SOURCE, dataset="coco"),
            ReportedNumber(metric="fid_tv", value=-5.54, relative_to="dmgan", source=_SOURCE, dataset="coco"),
        ],
        config_sections={"model": CAEGANModelConfig, "pretrain": CAEGANPretrainConfig},
        ablation_keys=["model.text_encoder", "model.attention_mask"],
        description="DM-GAN whose first stage is conditioned on a Transformer cross-attention encoder between "
                    "DAMSM words and image regions (retrieved from a training-set prototype bank at generation)",
    )]


@hookimpl
def harness_pretrain_stages(cfg: Config) -> list[PretrainStage]:
    return [encoder_stage(cfg)] if _uses_encoder(cfg) else []


@hookimpl
def harness_auxiliary_modules(cfg: Config, damsm: DamsmEncoders, pretrained: dict) -> dict[str, nn.Module]:
    if not _uses_encoder(cfg):
        return {}
    encoder = load_encoder(cfg, pretrained[STAGE_NAME]) if STAGE_NAME in pretrained else build_encoder(cfg)
    return {AUX_NAME: encoder.requires_grad_(False).eval()}


@hookimpl
def harness_generator(cfg: Config, aux: dict[str, nn.Module]) -> nn.Module:
    generator = reference_init(CAEGANGenerator.from_config(cfg))  # DM-GAN's init, before the encoder joins
    if _uses_encoder(cfg):
        generator.attach_encoder(aux[AUX_NAME])
    return generator


@hookimpl
def harness_discriminators(cfg: Config) -> nn.ModuleList:
    return reference_init(build_dmgan_discriminators(cfg))


@hookimpl
def harness_discriminator_loss(step: Step, stage: int) -> dict[str, Tensor]:
    return discriminator_terms(step, stage)


@hookimpl
def harness_generator_loss(step: Step) -> dict[str, Tensor]:
    # L = Σ_i L_Gi + τ1·L_CA + τ2·L_DAMSM, τ1 = loss.kl_weight, τ2 = loss.damsm_lambda
    return generator_terms(step)


@hookimpl
def harness_check_config(cfg: Config) -> list[str]:
    problems = reference_gan_problems(cfg)  # stage sides 4·2ⁿ; BatchNorm's two items per process
    m = cfg.model
    if _uses_encoder(cfg) and m.embedding_dim % m.encoder_heads:
        problems.append(f"model.encoder_heads={m.encoder_heads} is not allowed; the encoder's width "
                        f"model.embedding_dim={m.embedding_dim} must split evenly into the heads")
    return problems
