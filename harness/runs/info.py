"""``run.json``: what a run is, written when the run directory is created, so that ``harness table`` is a
pure function of records and run directories: it builds no model and reads no preset, and a later preset edit
never relabels an old run.

    {"version": 1, "method": "ecagan", "dataset": "shapes", "seed": 0,
     "label": "ecagan (model.upsample=nearest) (deviates: eval.num_images=32)",
     "ablation": {"model.upsample": "nearest"},                      # MethodInfo.ablation_keys that differ
     "deviations": {"eval.num_images": {"value": 32, "reason": "--set on the command line"}},
     "params": {"generator": 123, "discriminators": [..], "other": {"vgg": ..}},   # parameter counts per module
     "protocol": {"name": "shapes/test", "id": "<12 hex>", "values": {key: value}},
     "device": "cpu", "precision": "fp32" | "bf16", "started": ISO time, "finished": ISO time or null,
     "environment": {"python": .., "harness": .., "torch": .., "torchvision": .., "numpy": .., "platform": ..,
                     "device_name": ..},                               # the report's environment
     "config": {...},                 # the resolved config the run trains under (created with; resume edits applied)
     "history": [{"event": "resume", "time": ISO time, "changed": {key: {"old": v, "new": v}}}]}

``train --resume`` compares ``config.yaml`` with ``config`` (``resume_changes``): the keys of ``RESUMABLE_KEYS``
may change (applied, one line each, recorded in ``history``); any other change is refused before anything is
written.

The row label is made here and nowhere else: ``row_label`` when the run is created (with method ids), and
``run_label`` / ``display_label`` read it back, with the method's display name, for the table, the report and the
sample sheets. For a run made before run.json existed, ``run_info_or_derived`` derives the label and protocol
from its config.yaml with the same ``row_label``, and ``generator_parameters`` counts its generator by building
it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from harness.config.protocol import deviation_values, flatten, protocol_id, protocol_name, protocol_values
from harness.core.rundir import RUN_INFO, RunDir, atomic_write_text, read_run_info, run_stem, warn
from harness.core.runfiles import RunInfo, RunInfoError
from harness.util.atomic import removed_on_failure
from harness.util.errors import ConfigError, HarnessError

if TYPE_CHECKING:  # type hints only
    from harness.config import Config
    from harness.contract.plugins import Plugins
    from harness.contract.types import MethodInfo

VERSION = 1
# what may change when a run is resumed: how long it trains, its learning rates (set on the loaded optimisers),
# and how often it checkpoints, logs, draws samples and evaluates; everything else defines what the run is
RESUMABLE_KEYS: tuple[str, ...] = (
    "train.max_steps", "train.epochs", "train.lr_g", "train.lr_d", "train.checkpoint_every", "train.sample_every",
    "train.log_every", "train.keep_checkpoints", "eval.every", "data.num_workers",
)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def parameter_counts(plugins: Plugins, cfg: Config) -> dict:
    """``{"generator": n, "discriminators": [n, ...], "other": {aux name: n}}`` of ``cfg``'s method, built on the
    meta device where it allows (no weights, no memory); {} when the method cannot be built without data."""
    from harness.build import DEFAULT_VOCAB_SIZE, build_for_counting, count_parameters

    try:
        mods = build_for_counting(plugins, cfg, DEFAULT_VOCAB_SIZE)
    except Exception:  # e.g. a weight file only training needs: the table then shows "–" for params
        return {}
    aux = list(mods.aux.values())
    return {"generator": count_parameters(mods.generator, exclude=aux),
            "discriminators": [count_parameters(d) for d in mods.discriminators],
            "other": {name: count_parameters(m) for name, m in mods.aux.items()}}


def _device_and_precision(cfg: Config) -> tuple[str, str]:
    from harness.core.runtime import Precision, resolve_device

    try:
        device = resolve_device(cfg.train.device)
    except Exception:  # a device this machine lacks: training will say so; record what was asked
        return str(cfg.train.device), str(cfg.train.amp)
    return str(device), "bf16" if Precision.from_config(cfg, device).amp else "fp32"


def write_run_info(plugins: Plugins, run: RunDir, cfg: Config) -> dict:
    """Write ``run.json`` for a new run with the resolved ``cfg``; returns what was written."""
    d = cfg.to_dict()
    labeller = RowLabeller(plugins)
    deviations = deviation_values(d)
    values = protocol_values(d)
    device, precision = _device_and_precision(cfg)
    info = {
        "version": VERSION, "method": cfg.method, "dataset": cfg.data.name, "seed": cfg.seed,
        "label": row_label(labeller, d),
        "ablation": labeller.changed(d),
        "deviations": {k: {"value": v, "reason": _reason(cfg.deviations, k)} for k, v in deviations.items()},
        "params": parameter_counts(plugins, cfg),
        "protocol": {"name": protocol_name(d), "id": protocol_id(values), "values": values},
        "device": device, "precision": precision, "started": _now(), "finished": None,
        "environment": run_environment(device),
        "config": _plain(d),
        "history": [],
    }
    atomic_write_text(run.path / RUN_INFO, json.dumps(info, indent=1, default=str))
    return info


def _plain(d: dict) -> dict:
    """``d`` as run.json holds it (JSON types), so that a config read back compares equal."""
    return json.loads(json.dumps(d, default=str))


def resume_changes(run: RunDir, cfg: Config) -> dict[str, tuple[Any, Any]]:
    """``{key: (old, new)}`` of the ``RESUMABLE_KEYS`` whose value in ``cfg`` (the run's config.yaml) differs from
    run.json's ``config``. Raises ConfigError in one line naming every other changed key with its old and new
    value. A run whose run.json holds no config (made before it did) is compared on its protocol values only."""
    info = read_run_info(run)
    if info is None:
        return {}
    new = flatten(_plain(cfg.to_dict()))
    if info.config is not None:
        old = flatten(info.config)
    else:
        old = info.protocol_values or {}
        new = {k: v for k, v in _plain(protocol_values(cfg)).items() if k in old}
    keys = list(new) + [k for k in old if k not in new]  # config order
    changed = {k: (old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)}
    refused = {k: v for k, v in changed.items() if k not in RESUMABLE_KEYS}
    if refused:
        listed = "; ".join(f"{k}: {show_value(a)} -> {show_value(b)}" for k, (a, b) in refused.items())
        raise ConfigError(f"run {run.path.name}: config.yaml changed what the run is since it was created ({listed});"
                          f" a resume may change only {', '.join(RESUMABLE_KEYS)}; put the value back, or start a "
                          f"new run")
    return changed


def record_resume(run: RunDir, changes: dict[str, tuple[Any, Any]]) -> None:
    """Append the resume's changes to run.json's ``history`` and make its ``config`` the one now trained under."""
    info = read_run_info(run)
    if info is None or not changes:
        return
    if info.config is None:
        info.config = {}
    for key, (_, new) in changes.items():
        section = info.config
        *parents, leaf = key.split(".")
        for part in parents:
            section = section.setdefault(part, {})
        section[leaf] = new
    info.history.append(
        {"event": "resume", "time": _now(), "changed": {k: {"old": a, "new": b} for k, (a, b) in changes.items()}})
    atomic_write_text(run.path / RUN_INFO, json.dumps(info.to_json(), indent=1, default=str))


def create_run(plugins: Plugins, cfg: Config, parent: Path, *, name: Optional[str] = None, tag: str = "") -> RunDir:
    """A new run directory for ``cfg`` under ``parent`` holding ``config.yaml`` and ``run.json``: ``parent/name``
    (a `harness run` session's ``<method>-s<seed>``) or ``parent/<method>-<dataset>-s<seed>[-<tag>]-<time>-<hex>``."""
    stem = None if name is not None else run_stem(cfg.method, cfg.data.name, cfg.seed, tag)
    run = RunDir.create(parent, name=name, stem=stem)
    with removed_on_failure(run.path):  # a run directory without its config could never be resumed
        run.save_config(cfg)
        write_run_info(plugins, run, cfg)
    return run


def run_environment(device: str) -> dict[str, str]:
    """Versions and machine of a run (``run.json`` ``environment``): Python, the platform, the name of ``device``
    (the GPU's name for a CUDA device, else the CPU's) and ``harness.util.version.library_versions()``, the versions
    every record's protocol carries."""
    import platform

    from harness.runs.environment import cpu_name
    from harness.util.version import library_versions

    name = cpu_name()
    if device.startswith("cuda"):
        try:
            import torch

            name = torch.cuda.get_device_name(torch.device(device))
        except Exception as e:  # noqa: BLE001 - recorded, never fatal
            name = f"unknown ({type(e).__name__})"
    return {"python": platform.python_version(), **library_versions(), "platform": platform.platform(),
            "device_name": name}


def _reason(reasons: dict, key: str) -> str:
    for k, r in reasons.items():
        if key == k or key.startswith(k + "."):
            return r
    return ""


def _update_run_info(run: RunDir, change: Callable[[RunInfo], None], what: str) -> None:
    """Read the run's ``run.json``, apply ``change``, write it back (nothing for a run without one; a warning
    saying ``what`` is not recorded for a damaged one: the work it marks is kept)."""
    try:
        info = read_run_info(run)
    except RunInfoError as e:
        warn(f"{e}; {what} is not recorded in it")
        return
    if info is not None:
        change(info)
        atomic_write_text(run.path / RUN_INFO, json.dumps(info.to_json(), indent=1, default=str))


def mark_finished(run: RunDir) -> None:
    """Set ``finished`` in the run's ``run.json``; a failure recorded by an earlier try (``mark_failed``) is
    dropped."""

    def finish(info: RunInfo) -> None:
        info.extra.pop(FAILED_KEY, None)
        info.finished = _now()

    _update_run_info(run, finish, "the finish")


FAILED_KEY = "failed"  # run.json: the one line of the error that stopped the run inside `harness run`


def mark_failed(run: RunDir, line: str) -> None:
    """Record in the run's ``run.json`` that it failed, with the error's one line (the tables and the report
    mark its row with it); nothing for a run without run.json."""
    _update_run_info(run, lambda info: info.extra.__setitem__(FAILED_KEY, line), "the failure")


def row_label(labeller: RowLabeller, cfg: dict) -> str:
    """A run's row label from its config: ``method``, the ablation keys that differ from the method's preset,
    then the protocol keys it deviates in, e.g. ``ecagan (model.upsample=nearest) (deviates: eval.num_images=32)``."""
    deviations = deviation_values(cfg)
    return labeller.label(cfg, exclude=deviations) + deviation_label(deviations)


def run_info_or_derived(plugins: Plugins, run: RunDir, labeller: Optional[RowLabeller] = None) -> RunInfo:
    """The run's ``run.json``; for a run made before run.json existed (or one whose run.json lacks them), its
    ``method``, ``dataset``, ``seed``, ``label`` and ``protocol`` (``values``, ``id``) derived from its
    config.yaml as ``write_run_info`` makes them. ``labeller`` is reused across runs (it caches the presets it
    resolved)."""
    info = read_run_info(run)
    if info is not None and info.label is not None and info.protocol_values is not None:
        return info
    cfg = run.config_dict()
    if info is None:
        info = RunInfo(method=cfg.get("method"), dataset=(cfg.get("data") or {}).get("name"), seed=cfg.get("seed"))
    if info.label is None:
        info.label = row_label(labeller or RowLabeller(plugins), cfg)
    if info.protocol_values is None:
        values = protocol_values(cfg)
        info.protocol = {**info.protocol, "id": protocol_id(values), "values": values}
    return info


def display_label(plugins: Plugins, info: RunInfo) -> str:
    """The row label as tables, the report and sample sheets show it: ``info``'s (run.json's) label with the
    method id in front replaced by the method's ``MethodInfo.display_name`` (``dmgan (deviates: …)`` →
    ``DM-GAN (deviates: …)``); labels of image runs and of methods not installed are shown as they are."""
    label, method = str(info.label), str(info.method or "")
    if label == method or label.startswith(method + " "):
        return method_display_name(plugins, method) + label[len(method):]
    return label


def method_display_name(plugins: Plugins, method: str) -> str:
    """``MethodInfo.display_name`` of an installed method; the id of one that is not installed."""
    try:
        return plugins.method(method).display_name
    except HarnessError:
        return method


def run_label(plugins: Plugins, run: RunDir, labeller: Optional[RowLabeller] = None) -> str:
    """The run's row label as shown (``display_label`` of ``run_info_or_derived``)."""
    return display_label(plugins, run_info_or_derived(plugins, run, labeller))


def generator_parameters(plugins: Plugins, run: RunDir) -> Optional[int]:
    """The run's generator parameters: ``run.json``'s count, else counted by building the generator from the
    run's config (fresh weights); None when the method is not installed or cannot be built here."""
    info = read_run_info(run)
    n = info.params.get("generator") if info is not None else None
    if n is not None:
        return int(n)
    try:
        cfg = run.load_config(plugins)
    except HarnessError:  # e.g. an image run (no method) or a method not installed
        return None
    return parameter_counts(plugins, cfg).get("generator")


class RowLabeller:
    """``method`` or ``method (key=value, ...)`` for runs that change the method's ablation switches."""

    def __init__(self, plugins: Plugins):
        self.plugins = plugins
        self._baselines: dict[tuple, Config] = {}

    def label(self, cfg: dict, exclude: Iterable[str] = ()) -> str:
        """The row label; ablation keys in ``exclude`` (e.g. ones a deviation label names already) are left out."""
        method = str(cfg.get("method", "?"))
        changed = [f"{key}={show_value(value)}" for key, value in self.changed(cfg).items() if key not in exclude]
        return f"{method} ({', '.join(changed)})" if changed else method

    def changed(self, cfg: dict) -> dict[str, Any]:
        """The method's ablation keys whose value in ``cfg`` differs from its preset's (``{key: value}``)."""
        try:
            info = self.plugins.method(str(cfg.get("method", "?")))
        except HarnessError:
            return {}
        if not info.ablation_keys:
            return {}
        baseline = self._baseline(info, cfg)
        changed = {}
        for key in info.ablation_keys:
            actual = _dict_get(cfg, key)
            try:
                expected = _to_plain(baseline.get(key))
            except AttributeError:
                expected = _MISSING
            if actual is not _MISSING and actual != expected:
                changed[key] = actual
        return changed

    def _baseline(self, info: MethodInfo, cfg: dict) -> Config:
        from harness.config import new_config
        from harness.build import resolve_method_config

        dataset = str((cfg.get("data") or {}).get("name", ""))
        preset = str(cfg.get("preset") or "")  # the method's preset: paper-<x> → protocol paper, else the same name
        key = (info.name, preset, dataset)
        if key not in self._baselines:
            try:
                self._baselines[key] = resolve_method_config(self.plugins, info.name, dataset=dataset, data_dir=None,
                                                             preset=preset, overrides=[]).cfg
            except (HarnessError, OSError):
                self._baselines[key] = new_config(info.config_sections)
        return self._baselines[key]


def deviation_label(values: dict[str, Any]) -> str:
    """`` (deviates: eval.num_images=5000)`` for a row label; "" without deviations."""
    if not values:
        return ""
    return " (deviates: " + ", ".join(f"{k}={show_value(v)}" for k, v in values.items()) + ")"


_MISSING = object()


def _dict_get(d: dict, dotted: str) -> Any:
    obj: Any = d
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def _to_plain(v: Any) -> Any:
    import dataclasses

    return dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v


def show_value(v: Any) -> str:
    """A config value as a label shows it: true/false, null, %g floats, JSON lists and dicts."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)
