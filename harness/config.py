"""Typed configuration (DESIGN.md §10): dataclass sections ``data, model, pretrain, train, loss, eval``.

A run's config is resolved in this order, each step type-checked:

1. the dataclass defaults (a method may replace a section by a subclass, ``MethodInfo.config_sections``);
2. the method's preset from its ``defaults.yaml`` (``paper`` resolves to ``paper-<dataset>``; a preset may
   say ``extends: other-preset``);
3. the command line: ``--dataset``, ``--data-dir``, then every ``--set a.b=c`` override.

An unknown key or a value of the wrong type raises ``ConfigError`` naming the key and the valid choices,
before any work is done.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from harness.errors import HarnessError


class ConfigError(HarnessError, ValueError):
    """A bad config key, value or preset; the message is one line meant for the user."""


# ------------------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------------------
@dataclass
class ShapesConfig:
    """The built-in synthetic data set (harness/data/shapes.py)."""

    train_images: int = 2000
    test_images: int = 500
    seed: int = 0
    two_objects: bool = True  # about half of the scenes get a second, smaller object
    image_size: int = 0  # written image side for `datasets write` (0 = int(final stage · 76/64), e.g. 304)


@dataclass
class DataConfig:
    name: str = "shapes"
    data_dir: Optional[str] = None
    base_size: int = 64  # first stage resolution; stage i has base_size · 2^i
    branch_num: int = 3  # number of generator stages
    words_num: int = 18  # training caption length (longer captions are subsampled keeping order)
    eval_words_num: int = 25
    captions_per_image: Optional[int] = None  # None = the data set's own (cub 10, coco 5, shapes 10)
    num_workers: int = 0
    cache_images: bool = False  # cub/coco: keep decoded, cropped images in memory (per worker) after epoch 0
    shapes: ShapesConfig = field(default_factory=ShapesConfig)


@dataclass
class ModelConfig:
    z_dim: int = 100
    condition_dim: int = 100  # c_dim of conditioning augmentation
    embedding_dim: int = 256  # text feature dim D (DAMSM)
    gf_dim: int = 32
    df_dim: int = 64
    r_num: int = 2  # residual blocks per refinement stage
    # padding mask of word attention / memory addressing: each caption's own (per_sample), or the original
    # code's mask.repeat(queryL, 1) row pattern (reference: released weights; harness.nn.word_attention)
    attention_mask: Literal["per_sample", "reference"] = "per_sample"


@dataclass
class DamsmConfig:
    image_encoder: Literal["inception_v3", "small_cnn"] = "inception_v3"
    word_embedding_dim: int = 300
    epochs: int = 600
    max_steps: Optional[int] = None  # stop after this many iterations (CPU presets)
    batch_size: int = 48
    lr: float = 0.002
    lr_decay: float = 0.98  # per epoch, down to lr/10
    grad_clip: float = 0.25  # on the RNN only
    gamma1: float = 4.0
    gamma2: float = 5.0
    gamma3: float = 10.0
    words_num: int = 18
    image_size: int = 299  # inception_v3 input; small_cnn trains at the last stage's resolution
    text_encoder_file: Optional[str] = None  # import released weights instead of training
    image_encoder_file: Optional[str] = None
    seed: int = 0  # DAMSM is shared across runs and seeds: its own seed, part of its cache key


@dataclass
class PretrainConfig:
    damsm: DamsmConfig = field(default_factory=DamsmConfig)


@dataclass
class TrainConfig:
    batch_size: int = 20
    epochs: int = 600
    max_steps: Optional[int] = None  # overrides epochs when set
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    ema_decay: float = 0.999
    checkpoint_every: int = 2000
    sample_every: int = 1000
    log_every: int = 50
    keep_checkpoints: int = 2  # older periodic checkpoints are deleted; the final one is always kept
    compile: bool = False
    amp: Literal["auto", "bf16", "off"] = "auto"  # auto = bf16 on CUDA, off on CPU
    channels_last: bool = True  # on CUDA
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    sync_bn: bool = False
    tensorboard: bool = True  # when tensorboard is installed
    sample_count: int = 8  # images (fixed test captions and noise) on each sample sheet


@dataclass
class LossConfig:
    damsm_lambda: float = 5.0  # λ of the DAMSM terms in the generator loss
    kl_weight: float = 1.0
    gamma1: float = 4.0
    gamma2: float = 5.0
    gamma3: float = 10.0


@dataclass
class EvalConfig:
    num_images: int = 30000
    batch_size: int = 50
    metrics: list[str] = field(default_factory=lambda: ["auto"])  # auto = every metric that applies
    every: int = 0  # evaluate every N training steps (0 = only at the end of `run`)
    split: str = "test"
    words_num: int = 25
    seed: int = 100
    rp_candidates: int = 100
    rp_folds: int = 10
    is_splits: int = 10
    kid_subset_size: int = 1000  # capped at the number of images
    kid_subsets: int = 100
    probe_steps: int = 600  # training steps of the shapes probe classifier


@dataclass
class Config:
    method: str = ""
    seed: int = 0
    preset: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def get(self, dotted: str) -> Any:
        obj: Any = self
        for part in dotted.split("."):
            obj = getattr(obj, part)
        return obj

    def hash(self, *sections: str) -> str:
        """A short stable hash of the given sections (all when none are given)."""
        d = self.to_dict()
        if sections:
            d = {s: self.get(s) if not dataclasses.is_dataclass(self.get(s)) else dataclasses.asdict(self.get(s))
                 for s in sections}
        return stable_hash(d)


SECTIONS = ("data", "model", "pretrain", "train", "loss", "eval")


def stable_hash(obj: Any, length: int = 16) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


# ------------------------------------------------------------------------------------------------------
# Type-checked assignment
# ------------------------------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(str(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (from YAML or a ``--set`` string) to ``tp`` or raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: {value!r} is not {_type_name(tp)}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: {value!r} is not {_type_name(tp)}")
        return [_coerce(v.strip() if isinstance(v, str) else v, item, key) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{key}: {value!r} is not a bool (true/false)")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: {value!r} is not an int")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise ConfigError(f"{key}: {value!r} is not an int")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: {value!r} is not a float")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: {value!r} is not a float")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: {value!r} is not a string")
    raise ConfigError(f"{key}: unsupported config type {tp!r}")


def _hints(obj: Any) -> dict[str, Any]:
    return typing.get_type_hints(type(obj))


def set_key(cfg: Any, dotted: str, value: Any, *, _prefix: str = "") -> None:
    """Set ``a.b.c`` on a (nested) dataclass, type-checked. Unknown keys name the valid ones."""
    head, _, rest = dotted.partition(".")
    full = _prefix + head
    names = [f.name for f in dataclasses.fields(cfg)]
    if head not in names:
        raise ConfigError(f"unknown config key {full!r}; valid keys{' in ' + _prefix.rstrip('.') if _prefix else ''}: "
                          f"{', '.join(names)}")
    current = getattr(cfg, head)
    if dataclasses.is_dataclass(current):
        if not rest:
            if isinstance(value, dict):
                merge(current, value, prefix=full + ".")
                return
            raise ConfigError(f"{full} is a section; set one of its keys: "
                              f"{', '.join(full + '.' + f.name for f in dataclasses.fields(current))}")
        set_key(current, rest, value, _prefix=full + ".")
        return
    if rest:
        raise ConfigError(f"unknown config key {full + '.' + rest!r}: {full} is a value, not a section")
    setattr(cfg, head, _coerce(value, _hints(cfg)[head], full))


def merge(cfg: Any, values: dict, prefix: str = "") -> None:
    """Merge a nested dict (from YAML) into a dataclass, type-checked."""
    for k, v in values.items():
        set_key(cfg, str(k), v, _prefix=prefix)


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=c`` → ("a.b", value parsed as YAML scalar, strings kept as strings)."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, _, raw = text.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, dict):
        value = raw
    if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
        value = raw.strip()  # YAML 1.1 reads off/on/yes/no as booleans; `train.amp=off` means the string
    
    return key.strip(), value


# ------------------------------------------------------------------------------------------------------
# Presets
# ------------------------------------------------------------------------------------------------------
def load_presets(defaults_file: Path) -> dict[str, dict]:
    with open(defaults_file) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{defaults_file}: expected a mapping of preset names")
    return data


def _preset_values(presets: dict[str, dict], name: str, source: Path, seen: tuple = ()) -> dict:
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r} in {source}; available: {', '.join(sorted(presets))}")
    if name in seen:
        raise ConfigError(f"preset {name!r} in {source} extends itself")
    values = dict(presets[name] or {})
    parent = values.pop("extends", None)
    if parent is None:
        return values
    base = _preset_values(presets, parent, source, seen + (name,))
    return _deep_update(base, values)


def _deep_update(base: dict, new: dict) -> dict:
    out = dict(base)
    for k, v in new.items():
        out[k] = _deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve_preset_name(preset: str, dataset: str, presets: dict[str, dict], source: Path) -> str:
    if preset == "paper":
        name = f"paper-{dataset}"
        if name not in presets:
            have = sorted(p for p in presets if p.startswith("paper-"))
            raise ConfigError(f"--preset paper: no preset {name!r} in {source}; this method has "
                              f"{', '.join(have) or 'no paper presets'}")
        return name
    return preset


def new_config(section_types: Optional[dict[str, type]] = None) -> Config:
    """A default config, with any section replaced by the given dataclass types."""
    cfg = Config()
    for name, tp in (section_types or {}).items():
        if name not in SECTIONS:
            raise ConfigError(f"config section {name!r} is not one of {', '.join(SECTIONS)}")
        setattr(cfg, name, tp())
    return cfg


def build_config(
    method: str,
    defaults_file: Path,
    *,
    preset: str,
    dataset: str,
    data_dir: Optional[str] = None,
    overrides: Optional[list[str]] = None,
    seed: int = 0,
    section_types: Optional[dict[str, type]] = None,
) -> Config:
    """Resolve a config: defaults → method preset → dataset/data dir → ``--set`` overrides."""
    cfg = new_config(section_types)
    presets = load_presets(defaults_file)
    name = resolve_preset_name(preset, dataset, presets, defaults_file)
    merge(cfg, _preset_values(presets, name, defaults_file))
    cfg.method, cfg.preset, cfg.seed = method, name, seed
    cfg.data.name = dataset
    if data_dir is not None:
        cfg.data.data_dir = str(data_dir)
    for text in overrides or []:
        key, value = parse_override(text)
        set_key(cfg, key, value)
    return cfg


def config_from_dict(d: dict, section_types: Optional[dict[str, type]] = None) -> Config:
    """Rebuild a Config from ``to_dict()`` output (e.g. a run's config.yaml)."""
    cfg = new_config(section_types)
    merge(cfg, d)
    return cfg


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def stage_sizes(cfg: Config) -> list[int]:
    """Image resolution of each generator stage, low → high."""
    return [cfg.data.base_size * 2 ** i for i in range(cfg.data.branch_num)]
