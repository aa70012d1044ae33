"""``run.json``: what a run is, written when the run directory is created (issue 15), so that ``harness table`` is a
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
                     "device_name": ..}}                               # issue 18: the report's environment

Runs made before run.json existed are labelled from their config.yaml by ``RowLabeller`` (below) and their
generator counted by building it (the fallback ``harness.reporting.tables`` keeps).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional

from harness.config.protocol import deviation_values, protocol_id, protocol_name, protocol_values
from harness.core.rundir import RUN_INFO, RunDir, atomic_write_text, read_run_info, run_stem
from harness.util.errors import HarnessError

if TYPE_CHECKING:  # type hints only
    from harness.config import Config
    from harness.contract.plugins import Plugins
    from harness.contract.types import MethodInfo

VERSION = 1


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
        "label": labeller.label(d, exclude=deviations) + deviation_label(deviations),
        "ablation": labeller.changed(d),
        "deviations": {k: {"value": v, "reason": _reason(cfg.deviations, k)} for k, v in deviations.items()},
        "params": parameter_counts(plugins, cfg),
        "protocol": {"name": protocol_name(d), "id": protocol_id(values), "values": values},
        "device": device, "precision": precision, "started": _now(), "finished": None,
        "environment": run_environment(device),
    }
    atomic_write_text(run.path / RUN_INFO, json.dumps(info, indent=1, default=str))
    return info


def create_run(plugins: Plugins, cfg: Config, parent: Path, *, name: Optional[str] = None, tag: str = "") -> RunDir:
    """A new run directory for ``cfg`` under ``parent`` holding ``config.yaml`` and ``run.json``: ``parent/name``
    (a `harness run` session's ``<method>-s<seed>``) or ``parent/<method>-<dataset>-s<seed>[-<tag>]-<time>-<hex>``."""
    stem = None if name is not None else run_stem(cfg.method, cfg.data.name, cfg.seed, tag)
    run = RunDir.create(parent, name=name, stem=stem)
    run.save_config(cfg)
    write_run_info(plugins, run, cfg)
    return run


def run_environment(device: str) -> dict[str, str]:
    """Versions and machine of a run (``run.json`` ``environment``): Python, the harness, torch, torchvision,
    numpy, the platform and the name of ``device`` (the GPU's name for a CUDA device, else the CPU's)."""
    import platform

    from harness.runs.environment import _cpu_name, package_version

    name = _cpu_name()
    if device.startswith("cuda"):
        try:
            import torch

            name = torch.cuda.get_device_name(torch.device(device))
        except Exception as e:  # noqa: BLE001 - recorded, never fatal
            name = f"unknown ({type(e).__name__})"
    return {"python": platform.python_version(), "harness": package_version("t2i-harness"),
            "torch": package_version("torch"), "torchvision": package_version("torchvision"),
            "numpy": package_version("numpy"), "platform": platform.platform(), "device_name": name}


def _reason(reasons: dict, key: str) -> str:
    for k, r in reasons.items():
        if key == k or key.startswith(k + "."):
            return r
    return ""


def mark_finished(run: RunDir) -> None:
    """Set ``finished`` in the run's ``run.json`` (nothing for a run without one)."""
    info = read_run_info(run)
    if info is not None:
        info["finished"] = _now()
        atomic_write_text(run.path / RUN_INFO, json.dumps(info, indent=1, default=str))


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
