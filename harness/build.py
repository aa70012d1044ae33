"""Builds one method's modules through its component hooks (used by training, evaluation, sampling,
`inspect` and `import-checkpoint` alike, so every path builds a method the same way)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from torch import nn

from harness.config import Config
from harness.errors import HarnessError
from harness.types import DamsmEncoders


@dataclass
class MethodModules:
    damsm: DamsmEncoders  # shared DAMSM encoders (DAMSM loss, R-precision)
    text_encoder: nn.Module  # conditions G: (captions, lengths) -> TextFeatures
    image_encoder: nn.Module  # DAMSM image side used by the G loss
    aux: dict[str, nn.Module]
    generator: nn.Module
    discriminators: nn.ModuleList


def build_method(plugins, cfg: Config, vocab_size: int, pretrained: Optional[dict[str, Path]] = None, *,
                 training: bool = False) -> MethodModules:
    """Build the method ``cfg.method``; ``pretrained`` maps pretraining stage names (``damsm`` first) to their
    cache directories. Without it (``inspect``, tests) every module keeps its fresh initialisation. ``training``:
    built for GAN training (passed on to ``harness_auxiliary_modules``)."""
    from harness.nn.damsm import build_damsm
    from harness.nn.word_attention import set_attention_mask

    pretrained = dict(pretrained or {})
    damsm = build_damsm(cfg, vocab_size)
    if "damsm" in pretrained:
        from harness.train.pretrain import load_damsm

        load_damsm(damsm, pretrained["damsm"])
    hooks = plugins.method_hooks(cfg.method)
    aux = hooks.harness_auxiliary_modules(cfg=cfg, damsm=damsm, pretrained=pretrained, training=training) or {}
    text_encoder = hooks.harness_text_encoder(cfg=cfg, damsm=damsm) or damsm.text
    image_encoder = hooks.harness_image_encoder(cfg=cfg, damsm=damsm) or damsm.image
    generator = hooks.harness_generator(cfg=cfg, aux=aux)
    if generator is None:
        raise HarnessError(f"method {cfg.method!r} does not implement harness_generator")
    set_attention_mask(generator, cfg.model.attention_mask)  # word attention / memory addressing padding mask
    discriminators = hooks.harness_discriminators(cfg=cfg)
    if discriminators is None:
        raise HarnessError(f"method {cfg.method!r} does not implement harness_discriminators")
    return MethodModules(damsm, text_encoder, image_encoder, aux, generator, nn.ModuleList(discriminators))


def count_parameters(module: nn.Module, exclude: Optional[list[nn.Module]] = None) -> int:
    """``sum(p.numel() for p in module.parameters())``, frozen parameters included; parameters that belong to
    any module in ``exclude`` (e.g. an auxiliary module the generator holds) are not counted."""
    skip = {id(p) for m in (exclude or []) for p in m.parameters()}
    return sum(p.numel() for p in module.parameters() if id(p) not in skip)
