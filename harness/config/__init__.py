"""Typed configuration: dataclass sections ``data, model, pretrain, train, loss, eval``.

A run's config is resolved in this order, each step type-checked:

1. the dataclass defaults (a method may replace a section by a subclass, ``MethodInfo.config_sections``);
2. the data set's protocol preset (``harness.config.protocol``: the keys every row of a table shares);
3. the method's preset from its ``defaults.yaml`` (``paper`` resolves to ``paper-<dataset>``; a preset may
   say ``extends: other-preset``, ``extends: othermethod/preset`` or a list of them, applied in order); a
   protocol key it sets must be declared under ``deviations``;
4. the command line: ``--dataset``, ``--data-dir``, then every ``--set a.b=c`` override.

``data.base_size`` (the first stage) follows from the protocol's final resolution ``data.image_size`` and the
method's ``data.branch_num`` unless set; set, it must agree with them. ``resolve_config`` also returns where each
value came from (``harness config``).

An unknown key, a value of the wrong type or a value outside its field's rule (ranges and choices kept as field
metadata, ``harness.config.rules``) raises ``ConfigError`` naming the key and what is allowed, before any work is
done; ``harness.build.prepare_config`` then checks names against the installed plugins and the method's own
constraints (``harness_check_config``).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Optional, Union

import yaml

from harness.config.rules import (MAX_EVAL_IMAGES, above, at_least, between, caption_words, check_fields,
                                  even_at_least, existing_file, free, installed, leaf_fields, matches, one_of,
                                  seed_range, value)
from harness.util.atomic import write_file
from harness.util.errors import ConfigError
from harness.util.hashing import stable_hash
from harness.util.yamlio import YamlAliasError, safe_load

if TYPE_CHECKING:  # type hints only
    from _typeshed import DataclassInstance  # a Config or one of its section dataclasses (a method's own included)

    from harness.config.protocol import Protocols


# ------------------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------------------
@dataclass
class ShapesConfig:
    """The built-in synthetic data set (harness/data/shapes.py)."""

    train_images: int = value(2000, at_least(1))
    test_images: int = value(500, at_least(1))
    seed: int = value(0, seed_range())
    two_objects: bool = True  # about half of the scenes get a second, smaller object
    image_size: int = value(0, at_least(0))  # `datasets write` side (0 = int(final stage · 76/64), e.g. 304)


@dataclass
class DataConfig:
    name: str = value("shapes", installed("datasets"))
    data_dir: Optional[str] = value(None, free("checked by the data set loader, which names the expected layout"))
    image_size: int = value(256, at_least(8))  # the last stage's resolution (a protocol key)
    base_size: int = value(64, at_least(8))  # first stage resolution; stage i has base_size · 2^i (from image_size)
    branch_num: int = value(3, at_least(1))  # number of generator stages
    words_num: int = value(18, caption_words())  # training caption length (longer ones are subsampled keeping order)
    eval_words_num: int = value(25, caption_words())
    captions_per_image: Optional[int] = value(None, at_least(1))  # None = the set's own (cub 10, coco 5, shapes 10)
    num_workers: int = value(0, at_least(0))
    cache_images: bool = False  # cub/coco: keep decoded, cropped images in memory (per worker) after epoch 0
    strict_cache: bool = False  # cache keys hash the data files' bytes, not their size and time (times not trusted)
    shapes: ShapesConfig = field(default_factory=ShapesConfig)


@dataclass
class ModelConfig:
    z_dim: int = value(100, at_least(1))
    condition_dim: int = value(100, at_least(1))  # c_dim of conditioning augmentation
    embedding_dim: int = value(256, even_at_least(2))  # text feature dim D (DAMSM)
    gf_dim: int = value(32, at_least(1))
    df_dim: int = value(64, at_least(1))
    r_num: int = value(2, at_least(0))  # residual blocks per refinement stage
    # padding mask of word attention / memory addressing: each caption's own (per_sample), or the original
    # code's mask.repeat(queryL, 1) row pattern (reference: released weights; harness.nn.word_attention)
    attention_mask: Literal["per_sample", "reference"] = "per_sample"


@dataclass
class DamsmConfig:
    image_encoder: Literal["inception_v3", "small_cnn"] = "inception_v3"
    word_embedding_dim: int = value(300, at_least(1))
    epochs: int = value(600, at_least(1))
    max_steps: Optional[int] = value(None, at_least(1))  # stop after this many iterations (CPU presets)
    batch_size: int = value(48, at_least(2))
    lr: float = value(0.002, above(0))
    lr_decay: float = value(0.98, between(0, 1, lo_open=True))  # per epoch, down to lr/10
    grad_clip: float = value(0.25, above(0))  # on the RNN only
    gamma1: float = value(4.0, above(0))
    gamma2: float = value(5.0, above(0))
    gamma3: float = value(10.0, above(0))
    words_num: int = value(18, caption_words())
    image_size: int = value(299, at_least(32))  # inception_v3 input; small_cnn trains at the last stage's resolution
    text_encoder_file: Optional[str] = value(None, existing_file())  # import released weights instead of training
    image_encoder_file: Optional[str] = value(None, existing_file())
    seed: int = value(0, seed_range())  # DAMSM is shared across runs and seeds: its own seed, part of its cache key


@dataclass
class PretrainConfig:
    damsm: DamsmConfig = field(default_factory=DamsmConfig)


@dataclass
class TrainConfig:
    batch_size: int = value(20, at_least(1))
    epochs: int = value(600, at_least(1))
    max_steps: Optional[int] = value(None, at_least(1))  # overrides epochs when set
    lr_g: float = value(2e-4, above(0))
    lr_d: float = value(2e-4, above(0))
    beta1: float = value(0.5, between(0, 1, hi_open=True))
    beta2: float = value(0.999, between(0, 1, hi_open=True))
    ema_decay: float = value(0.999, between(0, 1))
    checkpoint_every: int = value(2000, at_least(0))
    sample_every: int = value(1000, at_least(0))
    log_every: int = value(50, at_least(1))
    keep_checkpoints: int = value(2, at_least(0))  # older periodic ones are deleted (0 = keep all); the final one stays
    compile: bool = False
    amp: Literal["auto", "bf16", "off"] = "auto"  # auto = bf16 on CUDA, off on CPU
    channels_last: bool = True  # on CUDA
    device: str = value("auto", matches(r"auto|cpu|cuda(:\d+)?", "auto, cpu, cuda or cuda:N", bad=("gpu", "cuda:x")))
    sync_bn: bool = False
    tensorboard: bool = True  # when tensorboard is installed
    sample_count: int = value(8, at_least(0))  # images (fixed test captions and noise) on each sample sheet


@dataclass
class LossConfig:
    damsm_lambda: float = value(5.0, at_least(0))  # λ of the DAMSM terms in the generator loss
    kl_weight: float = value(1.0, at_least(0))
    gamma1: float = value(4.0, above(0))
    gamma2: float = value(5.0, above(0))
    gamma3: float = value(10.0, above(0))


@dataclass
class EvalConfig:
    num_images: int = value(30000, between(1, MAX_EVAL_IMAGES))
    batch_size: int = value(50, at_least(1))
    metrics: list[str] = value(factory=lambda: ["auto"], rule=installed("metrics"))  # auto = every metric that applies
    every: int = value(0, at_least(0))  # evaluate every N training steps (0 = only at the end of `run`)
    split: str = value("test", one_of("train", "test"))
    words_num: int = value(25, caption_words())
    seed: int = value(100, seed_range())
    rp_candidates: int = value(100, at_least(2))
    rp_folds: int = value(10, at_least(1))
    is_splits: int = value(10, at_least(1))
    kid_subset_size: int = value(1000, at_least(2))  # capped at the number of images
    kid_subsets: int = value(100, at_least(1))
    probe_steps: int = value(600, at_least(1))  # training steps of the shapes probe classifier
    # 0: generated with z ~ N(0, I); t > 0: z = t·(N(0, 1) truncated to [−2, 2]) (the truncation trick)
    truncation: float = value(0.0, between(0.0, 1.0))


@dataclass
class Config:
    method: str = value("", installed("methods"))
    seed: int = value(0, seed_range())
    preset: str = value("", free("the method's preset the config was resolved from (e.g. paper-cub)"))
    protocol: str = value("", free("the data set's protocol preset (e.g. paper), checked when it is resolved"))
    # protocol key -> reason (harness.config.protocol): derived while resolving, never set by hand
    deviations: dict[str, str] = value(factory=dict, rule=free("derived from the declared deviations"))
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
    if origin is dict:
        return "a mapping of {} to {}".format(*map(_type_name, typing.get_args(tp)))
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
        return _coerce_union(value, tp, key)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: {value!r} is not {_type_name(tp)}")
        kt, vt = typing.get_args(tp)
        return {_coerce(k, kt, key): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: {value!r} is not {_type_name(tp)}")
        return [_coerce(v.strip() if isinstance(v, str) else v, item, key) for v in value]
    if tp in _SCALARS:
        converted = _SCALARS[tp](value)
        if converted is _REFUSED:
            raise ConfigError(f"{key}: {value!r} is not {_SCALAR_NAMES[tp]}")
        return converted
    raise ConfigError(f"{key}: unsupported config type {tp!r}")


def _coerce_union(value: Any, tp: Any, key: str) -> Any:
    """``Optional[X]`` / ``X | Y``: None (or null/none/~) where allowed, else the first member that takes it."""
    args = typing.get_args(tp)
    if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
        if type(None) in args:
            return None
    for a in args:
        if a is type(None):
            continue
        try:
            return _coerce(value, a, key)
        except ConfigError:
            continue
    raise ConfigError(f"{key}: {value!r} is not {_type_name(tp)}")


_REFUSED = object()
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def _to_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    return _REFUSED


def _to_number(value: Any, tp: type) -> Any:
    """An int (from an int, an integral float or a string; ``_`` separators allowed) or a float; never a bool."""
    if isinstance(value, bool):
        return _REFUSED
    if isinstance(value, int) or (tp is float and isinstance(value, float)):
        return tp(value)
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return tp(value.replace("_", "")) if tp is int else tp(value)
        except ValueError:
            return _REFUSED
    return _REFUSED


def _to_str(value: Any) -> Any:
    return str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else _REFUSED


_SCALARS: dict[type, Callable[[Any], Any]] = {bool: _to_bool, int: lambda v: _to_number(v, int),
                                              float: lambda v: _to_number(v, float), str: _to_str}
_SCALAR_NAMES = {bool: "a bool (true/false)", int: "an int", float: "a float", str: "a string"}


def _hints(obj: DataclassInstance) -> dict[str, Any]:
    return typing.get_type_hints(type(obj))


def set_key(cfg: DataclassInstance, dotted: str, value: Any, *, _prefix: str = "") -> None:
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
                merge(current, value, prefix=full + ".")  # type: ignore[arg-type]  # a section, not a class
                return
            raise ConfigError(f"{full} is a section; set one of its keys: "
                              f"{', '.join(full + '.' + f.name for f in dataclasses.fields(current))}")
        set_key(current, rest, value, _prefix=full + ".")  # type: ignore[arg-type]  # a section, not a class
        return
    if rest:
        raise ConfigError(f"unknown config key {full + '.' + rest!r}: {full} is a value, not a section")
    setattr(cfg, head, _coerce(value, _hints(cfg)[head], full))


def declare_deviation(cfg: Config, key: str, value: Any, reason: Optional[str] = None) -> None:
    """Set ``key`` of a resolved config to ``value`` and record it as a deviation with ``reason``: code that
    changes how a run is measured after resolution says so (e.g. ``import-checkpoint`` setting the original's
    evaluation batch or ``model.attention_mask``; ``reason`` defaults to
    ``harness.config.protocol.ORIGINAL_EVALUATION``). The run's row is then labelled ``(deviates: key=value)``.
    Raises ConfigError for an unknown key or a bad value."""
    from harness.config.protocol import ORIGINAL_EVALUATION

    set_key(cfg, key, value)
    reason = ORIGINAL_EVALUATION if reason is None else reason
    cfg.deviations = {**cfg.deviations, key: reason}


def merge(cfg: DataclassInstance, values: dict, prefix: str = "") -> None:
    """Merge a nested dict (from YAML) into a dataclass, type-checked."""
    for k, v in values.items():
        set_key(cfg, str(k), v, _prefix=prefix)


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=c`` → ("a.b", value parsed as YAML scalar, strings kept as strings)."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, _, raw = text.partition("=")
    try:
        value = safe_load(raw, f"--set {key.strip()}") if raw.strip() else ""
    except YamlAliasError:
        raise
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
    try:
        with open(defaults_file) as f:
            data = safe_load(f, str(defaults_file)) or {}
    except YamlAliasError:
        raise
    except yaml.YAMLError as e:
        raise ConfigError(f"{defaults_file}: not readable YAML ({' '.join(str(e).split())[:200]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{defaults_file}: expected a mapping of preset names")
    return data


def new_config(section_types: Optional[dict[str, type]] = None) -> Config:
    """A default config, with any section replaced by the given dataclass types."""
    cfg = Config()
    for name, tp in (section_types or {}).items():
        if name not in SECTIONS:
            raise ConfigError(f"config section {name!r} is not one of {', '.join(SECTIONS)}")
        setattr(cfg, name, tp())
    return cfg


MethodDefaults = Optional[Mapping[str, Path]]


@dataclass
class Resolution:
    """A resolved config and, per dotted key, where its value came from: ``default``,
    ``protocol:<dataset>/<preset>``, ``method:<method>/<preset>``, ``--dataset``, ``--data-dir``, ``--set`` or
    ``derived`` (``data.base_size``)."""

    cfg: Config
    sources: dict[str, str]

    def sources_of_every_key(self) -> dict[str, str]:
        """The source of every leaf key of the config (``default`` where no layer set it), in config order."""
        return {k: self.sources.get(k, "default") for k in leaf_keys(self.cfg)}


def _method_layers(method: str, defaults_file: Path, name: str, method_defaults: MethodDefaults,
                   seen: tuple = ()) -> tuple[list[tuple[str, dict]], dict[str, str]]:
    """The layers ``(source, values)`` of method preset ``name`` (parents first) and the deviations they declare."""
    from harness.config.protocol import check_deviation_names

    presets = load_presets(defaults_file)
    source = f"method:{method}/{name}"
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r} of method {method!r} ({defaults_file}); available: "
                          f"{', '.join(sorted(presets))}")
    if (method, name) in seen:
        raise ConfigError(f"preset {name!r} of method {method!r} extends itself")
    values = dict(presets[name] or {})
    parents = values.pop("extends", None)
    declared = check_deviation_names(source, values.pop("deviations", None) or {})
    layers: list[tuple[str, dict]] = []
    deviations: dict[str, str] = {}
    for parent in [parents] if isinstance(parents, str) else list(parents or []):
        other, _, preset = str(parent).rpartition("/")
        file = defaults_file
        if other and other != method:
            file = _other_defaults(other, defaults_file, method_defaults, source, parent)
        sub, subdev = _method_layers(other or method, file, preset, method_defaults, seen + ((method, name),))
        layers += sub
        deviations.update(subdev)
    deviations.update(declared)
    layers.append((source, values))
    return layers, deviations


def _other_defaults(other: str, defaults_file: Path, method_defaults: MethodDefaults, source: str,
                    parent: str) -> Path:
    """The defaults.yaml of another method (``extends: other/preset``): from the installed methods when given,
    else the sibling plugin package (``<plugins>/<other>/defaults.yaml``)."""
    if method_defaults is not None:
        if other not in method_defaults:
            raise ConfigError(f"{source} extends {parent}, but method {other!r} is not installed; installed: "
                              f"{', '.join(sorted(method_defaults))}")
        return Path(method_defaults[other])
    sibling = defaults_file.parent.parent / other / "defaults.yaml"
    if not sibling.exists():
        raise ConfigError(f"{source} extends {parent}, but method {other!r} is not installed (no {sibling})")
    return sibling


def _apply(cfg: Config, sources: dict[str, str], layers: list[tuple[str, dict]]) -> None:
    from harness.config.protocol import flatten

    for source, values in layers:
        merge(cfg, values)
        sources.update({k: source for k in flatten(values)})


def _stages(cfg: Config, sources: dict[str, str]) -> None:
    """``data.base_size`` from the protocol's final resolution and the method's stage count (or checked)."""
    d = cfg.data
    scale = 2 ** (d.branch_num - 1)
    if "data.base_size" not in sources:
        if d.branch_num < 1 or d.image_size % scale:
            raise ConfigError(f"data.image_size={d.image_size} is not the last of data.branch_num={d.branch_num} "
                              f"stages that double in size; pick another data.branch_num")
        d.base_size = d.image_size // scale
        sources["data.base_size"] = "derived"
    elif d.base_size * scale != d.image_size:
        raise ConfigError(f"data.base_size={d.base_size} with data.branch_num={d.branch_num} ends at "
                          f"{d.base_size * scale}, but the protocol's data.image_size is {d.image_size}; drop "
                          f"data.base_size (it follows from the two)")


@dataclass(frozen=True)
class PresetSources:
    """What the installed plugins supply to a config besides the command line.

    defaults_file:   the method's defaults.yaml (its presets)
    section_types:   the method's own section dataclasses (``MethodInfo.config_sections``)
    protocols:       the data set's protocol presets (``DatasetInfo.protocols``; None = the data set's built-in file)
    method_defaults: every installed method's defaults.yaml by name, for ``extends: other/preset``
    """

    defaults_file: Path
    section_types: Optional[dict[str, type]] = None
    protocols: Protocols = None
    method_defaults: MethodDefaults = None


def resolve_config(method: str, presets: PresetSources, *, preset: str, dataset: str, data_dir: Optional[str] = None,
                   overrides: Optional[list[str]] = None, seed: int = 0) -> Resolution:
    """Resolve a config: defaults → the data set's protocol → the method's preset → ``--dataset``/``--data-dir``
    → ``--set``, recording each key's source.

    ``preset``: ``paper`` (the protocol ``paper`` and the method's ``paper-<dataset>``), or a name both have
    (``smoke``, ``test``). Raises ConfigError (one line) for an unknown protocol or preset, an undeclared protocol
    key in a method preset, an unknown key or a bad value.
    """
    from harness.config.protocol import SET_REASON, check_declared, is_protocol_key, preset_names, protocol_layers

    protocol, method_preset = preset_names(preset, dataset)
    protocol_part = protocol_layers(dataset, protocol, presets.protocols)
    method_part, declared = _method_layers(method, Path(presets.defaults_file), method_preset, presets.method_defaults)
    for source, values in method_part:
        check_declared(source, values, declared)

    sources: dict[str, str] = {}
    cfg = new_config(presets.section_types)
    _apply(cfg, sources, protocol_part)
    reference = {k: cfg.get(k) for k in leaf_keys(cfg) if is_protocol_key(k)}  # the protocol's own values
    _apply(cfg, sources, method_part)
    cfg.method, cfg.preset, cfg.protocol, cfg.seed = method, method_preset, protocol, seed
    cfg.data.name = dataset
    sources.update({"method": "--plugins", "preset": "--preset", "protocol": "--preset", "seed": "--seed",
                    "deviations": "declared", "data.name": "--dataset"})
    if data_dir is not None:
        cfg.data.data_dir = str(data_dir)
        sources["data.data_dir"] = "--data-dir"
    reasons = dict(declared)
    for text in overrides or []:
        key, value = parse_override(text)
        set_key(cfg, key, value)
        sources[key] = "--set"
        if is_protocol_key(key):
            reasons[key] = SET_REASON
    _stages(cfg, sources)
    changed = [k for k, v in reference.items() if cfg.get(k) != v]
    cfg.deviations = {k: reasons[r] for k in changed for r in reasons if k == r or k.startswith(r + ".")}
    check_fields(cfg)  # every value within its field's rule (harness.config.rules), before any work
    return Resolution(cfg, sources)


def leaf_keys(obj: DataclassInstance, prefix: str = "") -> list[str]:
    """Every dotted leaf key of a (nested) config dataclass, in field order (``data.shapes.seed``, …)."""
    return [key for key, _, _ in leaf_fields(obj, prefix)]


def build_config(method: str, defaults_file: Path, *, section_types: Optional[dict[str, type]] = None,
                 **request: Any) -> Config:
    """The resolved config of ``method`` from its defaults.yaml, without the sources (``request``: resolve_config's
    keywords); the data set's built-in protocols, no other method's presets."""
    return resolve_config(method, PresetSources(Path(defaults_file), section_types), **request).cfg


def config_from_dict(d: dict, section_types: Optional[dict[str, type]] = None) -> Config:
    """Rebuild a Config from ``to_dict()`` output (e.g. a run's config.yaml)."""
    cfg = new_config(section_types)
    d = dict(d)
    data = d.get("data")
    if isinstance(data, dict) and "image_size" not in data and "base_size" in data:  # written before protocols
        d["data"] = {**data, "image_size": int(data["base_size"]) * 2 ** (int(data.get("branch_num", 1)) - 1)}
    merge(cfg, d)
    return cfg


def save_config(cfg: Config, path: Path) -> None:
    write_file(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def stage_sizes(cfg: Config | DataConfig) -> list[int]:
    """Image resolution of each generator stage, low → high: ``data.base_size · 2^i`` for i < ``data.branch_num``
    (of a whole config, or of its data section alone)."""
    data = cfg.data if isinstance(cfg, Config) else cfg
    return [int(data.base_size) * 2 ** i for i in range(int(data.branch_num))]
