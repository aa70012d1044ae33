"""Builds one method's modules through its component hooks (used by training, evaluation, sampling,
`inspect` and `import-checkpoint` alike, so every path builds a method the same way), from a config
(``prepare_config``, ``build_method``, ``build_for_counting``) or from a run directory (``load_inference_models``),
and a run's data splits (``build_split``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TYPE_CHECKING

import torch
from torch import nn

from harness.config import Config, PresetSources, Resolution, resolve_config
from harness.config.rules import check_config
from harness.util.errors import HarnessError
from harness.contract.types import DamsmEncoders

if TYPE_CHECKING:  # type hints only
    from harness.contract.plugins import Plugins
    from harness.data.dataset import TextImageDataset
    from harness.core.rundir import RunDir


def build_split(plugins: Plugins, cfg: Config, split: str, *, train: bool,
                cache_root: Optional[Path]) -> TextImageDataset:
    """Split ``split`` of the data set ``cfg.data`` names, as every part of the harness builds it: item randomness
    seeded with the run's ``cfg.seed``; ``train``: with the training transform; ``cache_root``: the results root
    whose cache holds what the data set derives from its files (e.g. the vocabulary built from ``text/``), None to
    derive it in memory."""
    return plugins.dataset(cfg.data.name).build(cfg.data, split, train=train, seed=cfg.seed, cache_root=cache_root)


@dataclass
class MethodModules:
    damsm: DamsmEncoders  # shared DAMSM encoders (DAMSM loss, R-precision)
    text_encoder: nn.Module  # conditions G: (captions, lengths) -> TextFeatures
    image_encoder: nn.Module  # DAMSM image side used by the G loss
    aux: dict[str, nn.Module]
    generator: nn.Module
    discriminators: nn.ModuleList


def build_method(plugins: Plugins, cfg: Config, vocab_size: int, pretrained: Optional[dict[str, Path]] = None, *,
                 training: bool = False) -> MethodModules:
    """Build the method ``cfg.method``; ``pretrained`` maps pretraining stage names (``damsm`` first) to their
    cache directories. Without it (``inspect``, tests) every module keeps its fresh initialisation. ``training``:
    built for GAN training (passed on to ``harness_auxiliary_modules``)."""
    from harness.nn.damsm import build_damsm, load_damsm
    from harness.nn.word_attention import set_attention_mask

    pretrained = dict(pretrained or {})
    damsm = build_damsm(cfg, vocab_size)
    if "damsm" in pretrained:
        load_damsm(damsm, pretrained["damsm"])
    hooks = plugins.method_hooks(cfg.method)
    from harness.core.weights import find_weight

    aux = hooks.harness_auxiliary_modules(cfg=cfg, damsm=damsm, pretrained=pretrained, training=training,
                                          find_weight=lambda name: find_weight(plugins, name))
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


def prepare_config(plugins: Plugins, method: str, *, dataset: str, data_dir: Optional[str], preset: str,
                   overrides: list[str], seed: int) -> Config:
    """Resolve one method's config; fails on an unknown method, data set, preset or key, or a value its field or
    the method does not allow (``harness.config.rules.check_config``), before any work."""
    cfg = resolve_method_config(plugins, method, dataset=dataset, data_dir=data_dir, preset=preset,
                                overrides=overrides, seed=seed).cfg
    check_config(plugins, cfg)  # names the plugins know, the method's own constraints
    return cfg


def resolve_method_config(plugins: Plugins, method: str, *, dataset: str, data_dir: Optional[str], preset: str,
                          overrides: list[str], seed: int = 0) -> Resolution:
    """``prepare_config`` with the source of every value (``harness config``): the data set's protocol presets and
    the installed methods' presets (for ``extends: other/preset``) come from the plugins."""
    info = plugins.method(method)
    ds = plugins.dataset(dataset)
    presets = PresetSources(info.defaults, info.config_sections, ds.protocols,
                            {n: m.defaults for n, m in plugins.methods().items()})
    return resolve_config(method, presets, preset=preset, dataset=dataset, data_dir=data_dir, overrides=overrides,
                          seed=seed)


DEFAULT_VOCAB_SIZE = 5450  # len(ixtoword) of the CUB captions.pickle in AttnGAN's birds.zip


def build_for_counting(plugins: Plugins, cfg, vocab_size: int) -> MethodModules:
    """The method's modules for counting parameters: on the meta device (shapes only, no memory, no
    initialisation cost) when the method allows it, else on the CPU."""
    try:
        with torch.device("meta"):
            return build_method(plugins, cfg, vocab_size)
    except Exception:  # a method whose construction needs real data (e.g. computes from weights): build on CPU
        return build_method(plugins, cfg, vocab_size)


@dataclass
class InferenceModels:
    """A run's models ready for sampling and evaluation: the generator holds the EMA weights and is in eval()."""

    cfg: Config
    modules: MethodModules
    vocab_size: int
    step: int
    pretrained: dict[str, Path]

    @property
    def text_encoder(self) -> nn.Module:
        return self.modules.text_encoder

    @property
    def generator(self) -> nn.Module:
        return self.modules.generator


def load_inference_models(plugins: Plugins, run: RunDir, *, step: Optional[int] = None,
                          device: str | torch.device = "cpu") -> InferenceModels:
    """Rebuild the run's method from its config, pretrained stages and checkpoint (default: the newest), with the
    EMA generator, everything in eval() and frozen, on ``device``."""
    from harness.core.state_dicts import load_state_strict
    from harness.core.checkpoint import (PRETRAINED_FILE, latest_checkpoint, load_aux_state, load_checkpoint,
                                          read_pretrained)

    cfg = run.load_config(plugins)
    path = latest_checkpoint(run, step)
    ckpt = load_checkpoint(path)
    info = read_pretrained(run)
    pretrained = {k: Path(v) for k, v in info["stages"].items()}
    for name, d in pretrained.items():
        if not Path(d).is_dir():
            raise HarnessError(f"run {Path(run.path).name}: pretrained stage {name!r} directory {d} is missing (a "
                               f"run keeps its stages in <run>/pretrained/<stage>/; one made before that names its "
                               f"cache entry: was the cache deleted?)")
    vocab_size = ckpt.get("vocab_size") or info.get("vocab_size")
    if not vocab_size:
        raise HarnessError(f"run {Path(run.path).name}: neither its checkpoint nor {PRETRAINED_FILE} records the "
                           f"vocabulary size")
    modules = build_method(plugins, cfg, int(vocab_size), pretrained)
    if "generator_ema" not in ckpt:
        raise HarnessError(f"{path}: no generator_ema in the checkpoint")
    load_state_strict(modules.generator, ckpt["generator_ema"], source=f"{path} generator_ema")
    if "discriminators" in ckpt:
        load_state_strict(modules.discriminators, ckpt["discriminators"], source=f"{path} discriminators")
    load_aux_state(modules.aux, ckpt.get("aux", {}))
    device = torch.device(device)
    for m in _all_modules(modules):
        m.to(device)
        m.eval()
        m.requires_grad_(False)
    return InferenceModels(cfg, modules, int(vocab_size), int(ckpt.get("step", 0)), pretrained)


def _all_modules(modules: MethodModules) -> list[nn.Module]:
    out = [modules.damsm.text, modules.damsm.image, modules.text_encoder, modules.image_encoder,
           modules.generator, modules.discriminators, *modules.aux.values()]
    seen, unique = set(), []
    for m in out:
        if id(m) not in seen:
            seen.add(id(m))
            unique.append(m)
    return unique


def load_external_damsm(plugins: Plugins, path: str, *, cfg: Config, vocab_size: int,
                        device: torch.device) -> DamsmEncoders:
    """A separately trained DAMSM for ``--rp-encoder`` (R-precision ``rp_ext``), frozen in eval() on ``device``:
    the DAMSM of a run directory (trained on the same data set and vocabulary as ``cfg``'s run, else
    HarnessError), or a DAMSM cache directory (``text_encoder.pth``, ``image_encoder.pth``) built for
    ``vocab_size`` words. ``harness.evaluation.evaluate`` hands it to the metrics as ``EvalContext.load_damsm``."""
    from harness.core.rundir import RunDir

    p = Path(path)
    if (p / "config.yaml").exists():
        other = load_inference_models(plugins, RunDir(p), device=str(device))
        if other.cfg.data.name != cfg.data.name or other.vocab_size != vocab_size:
            raise HarnessError(f"--rp-encoder {path}: trained on {other.cfg.data.name} with {other.vocab_size} words; "
                               f"this run is {cfg.data.name} with {vocab_size} words")
        if "damsm" not in other.pretrained:
            raise HarnessError(f"--rp-encoder {path}: that run has no trained DAMSM")
        return other.modules.damsm
    if not p.is_dir():
        raise HarnessError(f"--rp-encoder {path}: not a run directory nor a DAMSM cache directory")
    from harness.nn.damsm import build_damsm, load_damsm

    damsm = build_damsm(cfg, vocab_size)
    load_damsm(damsm, p)
    damsm.text.to(device).eval()
    damsm.image.to(device).eval()
    return damsm
