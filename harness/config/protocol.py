"""The evaluation protocol of a benchmark : what every row of a table must share.

A *protocol* belongs to a data set, not to a method. Each data set announces protocol presets
(``DatasetInfo.protocols``: a YAML file or a mapping ``name -> values`` in the format of a method's
``defaults.yaml``; a preset may say ``extends: other``). The built-in ones are
``harness/config/protocols/<data set>.yaml``: ``cub`` and ``coco`` have ``paper`` and ``test``, ``shapes`` has
``smoke``, ``test`` and ``paper``.

A protocol owns exactly the keys of ``PROTOCOL_KEYS``: everything the shared DAMSM and the metrics depend on
(the final image resolution, caption handling, the DAMSM section and the embedding width the methods read, the
evaluation settings). Not in it: ``data.data_dir``, ``data.num_workers``, ``data.cache_images``,
``data.strict_cache``, ``eval.metrics``, ``eval.every`` and the DAMSM weight-file paths (machine-specific or not
affecting a number).

A method preset that sets a protocol key must declare it, ``deviations: {eval.num_images: "reason"}``; so must
code that changes one after resolution (``declare_deviation``, e.g. ``import-checkpoint``). A ``--set`` of a
protocol key is a deviation by itself. Deviations whose value differs from the protocol's are kept in the config
(``Config.deviations``: key → reason) and label the run's table row ``(deviates: key=value)``.

The protocol *id* (``protocol_id``) is a short hash of the resolved protocol values and the data set's name; a
record's id (``record_protocol``) adds the metric's own settings (its ``variant`` text) and its extractor weight
hashes. Library versions, ``data_dir`` and the hash of a DAMSM trained on this machine are not in it, so runs on
two machines with the same protocol match.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

import yaml

from harness.util.hashing import stable_hash
from harness.util.errors import ConfigError
from harness.util.yamlio import safe_load

if TYPE_CHECKING:  # type hints only
    from harness.config import Config, Resolution

# The exact list of protocol keys (README "Protocols" repeats it; tests/test_protocol.py checks both).
PROTOCOL_KEYS: tuple[str, ...] = (
    "data.image_size",
    "data.words_num",
    "data.eval_words_num",
    "data.captions_per_image",
    "data.shapes.train_images",
    "data.shapes.test_images",
    "data.shapes.seed",
    "data.shapes.two_objects",
    "data.shapes.image_size",
    "model.embedding_dim",
    "pretrain.damsm.image_encoder",
    "pretrain.damsm.word_embedding_dim",
    "pretrain.damsm.epochs",
    "pretrain.damsm.max_steps",
    "pretrain.damsm.batch_size",
    "pretrain.damsm.lr",
    "pretrain.damsm.lr_decay",
    "pretrain.damsm.grad_clip",
    "pretrain.damsm.gamma1",
    "pretrain.damsm.gamma2",
    "pretrain.damsm.gamma3",
    "pretrain.damsm.words_num",
    "pretrain.damsm.image_size",
    "pretrain.damsm.seed",
    "eval.num_images",
    "eval.batch_size",
    "eval.split",
    "eval.words_num",
    "eval.seed",
    "eval.rp_candidates",
    "eval.rp_folds",
    "eval.is_splits",
    "eval.kid_subset_size",
    "eval.kid_subsets",
    "eval.probe_steps",
    "eval.truncation",
)
# Protocol keys added after runs were recorded without them, with the value every such run had: at that value the
# key is left out of a run's protocol values, so its protocol id (and every earlier run's) stays what it was.
LATER_PROTOCOL_KEYS: dict[str, Any] = {"eval.truncation": 0.0}
# Keys of the protocol's sections that are not protocol keys: machine-specific, or not affecting any number.
NOT_PROTOCOL_KEYS: tuple[str, ...] = (
    "data.name", "data.data_dir", "data.base_size", "data.branch_num", "data.num_workers", "data.cache_images",
    "data.strict_cache",
    "pretrain.damsm.text_encoder_file", "pretrain.damsm.image_encoder_file", "eval.metrics", "eval.every",
)
BUILTIN_DIR = Path(__file__).resolve().parent / "protocols"
SET_REASON = "--set on the command line"
ORIGINAL_EVALUATION = "the original's evaluation"  # import-checkpoint: settings of the released code's evaluation

Protocols = Union[Path, str, Mapping[str, Any], None]


def is_protocol_key(key: str) -> bool:
    """True for a key of ``PROTOCOL_KEYS`` or a section holding some (``data.shapes``)."""
    return key in PROTOCOL_KEYS or any(k.startswith(key + ".") for k in PROTOCOL_KEYS)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (lists and scalars are leaves)."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def preset_names(preset: str, dataset: str) -> tuple[str, str]:
    """``--preset P`` → (the data set's protocol P, the method's preset P); ``paper`` → (paper, paper-<dataset>);
    a method's ``paper-<x>`` → (paper, paper-<x>) (e.g. ``paper-cub`` networks under ``shapes``' paper protocol)."""
    if preset == "paper":
        return "paper", f"paper-{dataset}"
    if preset.startswith("paper-"):
        return "paper", preset
    return preset, preset


# ------------------------------------------------------------------------------------------------------
# Protocol presets
# ------------------------------------------------------------------------------------------------------
def load_protocols(dataset: str, protocols: Protocols = None) -> tuple[dict[str, Any], str]:
    """The protocol presets of ``dataset`` (a YAML file, a mapping, or None = the built-in file of that name) and
    where they come from. Raises ConfigError when the data set has none."""
    if protocols is None:
        path = BUILTIN_DIR / f"{dataset}.yaml"
        if not path.exists():
            raise ConfigError(f"data set {dataset!r} has no protocol presets (DatasetInfo.protocols); every run "
                              f"needs one (see README \"Protocols\")")
        protocols = path
    if isinstance(protocols, (str, Path)):
        data = safe_load(Path(protocols).read_text(), str(protocols)) or {}
        where = str(protocols)
    else:
        data, where = dict(protocols), f"the protocols of data set {dataset!r}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of protocol names")
    return data, where


def protocol_layers(dataset: str, name: str, protocols: Protocols = None) -> list[tuple[str, dict]]:
    """The values of protocol ``name`` of ``dataset`` as layers ``(source, values)``, root first (``extends``);
    source is ``protocol:<dataset>/<preset>``. Raises ConfigError for an unknown name (listing the data set's
    protocols), a cycle, or a key that is not a protocol key."""
    presets, where = load_protocols(dataset, protocols)
    layers: list[tuple[str, dict]] = []
    seen: list[str] = []
    while name is not None:
        if name not in presets:
            have = ", ".join(sorted(presets)) or "none"
            raise ConfigError(f"data set {dataset!r} has no protocol {name!r} ({where}); its protocols: {have}")
        if name in seen:
            raise ConfigError(f"protocol {name!r} of data set {dataset!r} extends itself")
        seen.append(name)
        values = dict(presets[name] or {})
        parent = values.pop("extends", None)
        for key in flatten(values):
            if not is_protocol_key(key):
                raise ConfigError(f"protocol {dataset}/{name} sets {key}, which is not a protocol key; a protocol "
                                  f"sets only: {', '.join(PROTOCOL_KEYS)}")
        layers.insert(0, (f"protocol:{dataset}/{name}", values))
        name = parent
    return layers


# ------------------------------------------------------------------------------------------------------
# Deviations
# ------------------------------------------------------------------------------------------------------
def check_declared(layer_source: str, values: Mapping[str, Any], deviations: Mapping[str, str]) -> None:
    """A method preset layer may set a protocol key only when ``deviations`` declares it (the key or a section
    above it). Raises ConfigError naming the first undeclared key."""
    for key in flatten(values):
        if is_protocol_key(key) and not _declared(key, deviations):
            raise ConfigError(f"{layer_source} sets {key}, a protocol key (the data set's protocol owns it); "
                              f"declare it as a deviation, deviations: {{{key}: \"reason\"}}, or remove it")


def check_deviation_names(source: str, deviations: object) -> dict[str, str]:
    """``deviations`` of a preset: a mapping of protocol keys to a reason (text). Raises ConfigError otherwise."""
    if not isinstance(deviations, Mapping):
        raise ConfigError(f"{source}: deviations must map protocol keys to a reason, got {deviations!r}")
    out = {}
    for key, reason in deviations.items():
        if not is_protocol_key(str(key)):
            raise ConfigError(f"{source}: deviations names {key}, which is not a protocol key; protocol keys: "
                              f"{', '.join(PROTOCOL_KEYS)}")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{source}: the deviation {key} needs a reason (text)")
        out[str(key)] = reason
    return out


def _declared(key: str, deviations: Mapping[str, str]) -> Optional[str]:
    for k, reason in deviations.items():
        if key == k or key.startswith(k + "."):
            return reason
    return None


def deviation_values(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``{key: value}`` of a config dict's declared deviations, in key order (values as resolved)."""
    out = {}
    for key in sorted((cfg.get("deviations") or {})):
        leaves = {k: v for k, v in flatten(cfg).items() if k == key or k.startswith(key + ".")}
        out.update(leaves)
    return out


# ------------------------------------------------------------------------------------------------------
# Values and ids
# ------------------------------------------------------------------------------------------------------
def protocol_values(cfg: Config | Mapping[str, Any]) -> dict[str, Any]:
    """``{"data.name": ..., key: value for key in PROTOCOL_KEYS}`` of a Config or a config dict (a run's
    config.yaml), a key of ``LATER_PROTOCOL_KEYS`` only when it differs from its value there. Configs written
    before protocols existed lack ``data.image_size``: it is the last stage's resolution,
    ``base_size · 2^(branch_num − 1)``."""
    d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    flat = flatten(d)
    out = {"data.name": flat.get("data.name")}
    for key in PROTOCOL_KEYS:
        if key in LATER_PROTOCOL_KEYS and flat.get(key) in (None, LATER_PROTOCOL_KEYS[key]):
            continue  # the value runs recorded before the key existed had: the protocol id stays theirs
        out[key] = flat.get(key)
    if out["data.image_size"] is None and flat.get("data.base_size") is not None:
        out["data.image_size"] = int(flat["data.base_size"]) * 2 ** (int(flat.get("data.branch_num", 1)) - 1)
    return out


def protocol_id(values: Mapping[str, Any]) -> str:
    """A 12-hex hash of resolved protocol values (``protocol_values``)."""
    return stable_hash(dict(values), length=12)


def protocol_name(cfg: Mapping[str, Any]) -> str:
    """``<data set>/<protocol preset>`` of a config dict (``?`` for configs written before protocols)."""
    return f"{(cfg.get('data') or {}).get('name', '?')}/{cfg.get('protocol') or '?'}"


def evaluated_values(cfg: Config | Mapping[str, Any], *, num_images: int, split: str) -> dict[str, Any]:
    """The protocol values an evaluation actually used (``harness evaluate --num-images/--split`` override the
    config's)."""
    values = protocol_values(cfg)
    values["eval.num_images"], values["eval.split"] = int(num_images), str(split)
    return values


def record_protocol(values: Mapping[str, Any], *, name: str, variant: str, weights: Mapping[str, Any]) -> dict:
    """The protocol fields of one record: ``name``, ``base`` (the protocol's id), ``id`` (that plus the metric's
    own settings and weight hashes) and ``values`` (the protocol keys, for the table's footnotes)."""
    base = protocol_id(values)
    return {"name": name, "base": base, "id": stable_hash({"base": base, "variant": variant or "",
                                                           "weights": dict(weights or {})}, length=12),
            "values": dict(values)}


def differing_keys(values: list[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Keys whose values differ between protocol value mappings: ``{key: [value of each]}``."""
    keys = list(dict.fromkeys(k for v in values for k in v))
    return {k: [v.get(k) for v in values] for k in keys if len({repr(v.get(k)) for v in values}) > 1}



def format_resolution(resolution: Resolution) -> str:
    """``harness config``: one line per key, ``key = value    source``, with the protocol and deviations on top."""
    cfg = resolution.cfg
    sources = resolution.sources_of_every_key()
    head = [f"# {cfg.method} on {cfg.data.name}: protocol {cfg.data.name}/{cfg.protocol} "
            f"(id {protocol_id(protocol_values(cfg))}), method preset {cfg.method}/{cfg.preset}"]
    head += [f"# deviates: {k} ({reason})" for k, reason in cfg.deviations.items()]
    width = max(len(k) for k in sources)
    def show(value: Any) -> str:
        return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()

    lines = [f"{k:<{width}} = {show(cfg.get(k)):<24} {src}{'  [protocol]' if k in PROTOCOL_KEYS else ''}"
             for k, src in sources.items()]
    return "\n".join(head + lines)
