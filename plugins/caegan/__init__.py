"""CAE-GAN as a t2i-harness method plugin: ``CAEGAN(DMGAN)`` overrides what the paper changes (the encoder's
pretraining stage and auxiliary module, the generator's first stage); the plugin is ``plugin`` (encoder in
``cross_attention_encoder.py``, region bank in ``region_bank.py``, its pretraining stage in
``encoder_pretraining.py``, generator in ``model.py``, presets in ``defaults.yaml``; choices in README.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from torch import nn

from harness.config import Config
from harness.contract.plugins import hookimpl
from harness.contract.types import DamsmEncoders, MethodInfo, PretrainStage, ReportedNumber
from plugins.dmgan import DMGAN
from plugins.caegan.config import CAEGANModelConfig, CAEGANPretrainConfig
from plugins.caegan.encoder_pretraining import STAGE_NAME, build_encoder, encoder_stage, load_encoder
from plugins.caegan.model import CAEGANGenerator

NAME = "caegan"
AUX_NAME = "cross_attention_encoder"
_SOURCE = ("Tan X., He X., Wang Z., Luo X., Qing L. Computer Science 2022, 49(2):107-115, abstract "
           "(doi 10.11896/jsjkx.210600085); change relative to DM-GAN, in per cent")


def _uses_encoder(cfg: Config) -> bool:
    return cfg.model.text_encoder == "cross_attention"


class CAEGAN(DMGAN):
    """DM-GAN whose first stage is conditioned on a Transformer cross-attention encoder (pretrained in its own
    cached stage); DM-GAN's discriminators, their loss and the generator terms
    (L = Σ_i L_Gi + τ1·L_CA + τ2·L_DAMSM, τ1 = loss.kl_weight, τ2 = loss.damsm_lambda) are inherited."""

    harness_import_generator_state = None  # no released weights; DM-GAN's do not fit this generator

    @hookimpl
    def harness_methods(self) -> list[MethodInfo]:
        return [MethodInfo(
            name=NAME,
            display_name="CAE-GAN",
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
    def harness_pretrain_stages(self, cfg: Config) -> Optional[list[PretrainStage]]:
        # the damsm ablation does not answer: the harness's default (no stage of its own) applies, as for DM-GAN
        return [encoder_stage(cfg)] if _uses_encoder(cfg) else None

    @hookimpl
    def harness_auxiliary_modules(self, cfg: Config, damsm: DamsmEncoders,
                                  pretrained: dict) -> Optional[dict[str, nn.Module]]:
        if not _uses_encoder(cfg):
            return None  # the damsm ablation: the harness's default (no module) applies
        encoder = load_encoder(cfg, pretrained[STAGE_NAME]) if STAGE_NAME in pretrained else build_encoder(cfg)
        return {AUX_NAME: encoder.requires_grad_(False).eval()}

    @hookimpl
    def harness_generator(self, cfg: Config, aux: dict[str, nn.Module]) -> nn.Module:
        return CAEGANGenerator.from_config(cfg, encoder=aux.get(AUX_NAME)).initialise()  # DM-GAN's init, not C_E's

    @hookimpl
    def harness_check_config(self, cfg: Config) -> list[str]:
        problems = super().harness_check_config(cfg)
        m = cfg.model
        if _uses_encoder(cfg) and m.embedding_dim % m.encoder_heads:
            problems.append(f"model.encoder_heads={m.encoder_heads} is not allowed; the encoder's width "
                            f"model.embedding_dim={m.embedding_dim} must split evenly into the heads")
        return problems


plugin = CAEGAN()
