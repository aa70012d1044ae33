"""Builds the pluggy PluginManager: the core's built-in pieces, the packages of the entry-point group
``harness``, and, when running from a source checkout without installation, the packages under
``plugins/``. The core never names a method: methods are whatever plugins announce.

Component hooks reach only the selected method (``Plugins.method_hooks``): every *other* method plugin is
removed through pluggy's ``subset_hook_caller``; non-method plugins (cross-cutting wrappers) stay.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Optional

import pluggy

from harness.contract import hookspecs
from harness.util.errors import HarnessError, UnknownNameError
from harness.contract.hook_trace import install_tracing, trace_mode
from harness.contract.types import DatasetInfo, MethodInfo, MetricInfo, MetricOption, WeightFile

hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT)
ENTRY_POINT_GROUP = "harness"

# Core modules that register built-in data sets, metrics and weight files through the same hooks a
# third-party plugin uses.
CORE_PLUGIN_MODULES = (
    "harness.data.registry",
    "harness.evaluation.metrics.registry",
    "harness.train.pretrain",
)
SOURCE_PLUGIN_PACKAGE = "plugins"


# Optional component hooks and what they mean when the method does not implement them (or answers None), so that
# no plugin answers [] or {} to say "nothing": no pretraining stage of its own, no auxiliary module.
OPTIONAL_HOOK_DEFAULTS: dict[str, Callable[[], object]] = {
    "harness_pretrain_stages": list,
    "harness_auxiliary_modules": dict,
}


class _WithDefault:
    """A hook caller whose None answer (no implementation answered) becomes the hook's default."""

    def __init__(self, caller: pluggy.HookCaller, default: Callable[[], object]):
        self._caller, self._default = caller, default

    def __call__(self, **kwargs: Any) -> Any:
        result = self._caller(**kwargs)
        return self._default() if result is None else result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._caller, name)


class _MethodHooks:
    """Component hooks of one method: ``hooks.harness_generator(cfg=..., aux=...)``; an optional hook no
    implementation answers returns its default (``OPTIONAL_HOOK_DEFAULTS``)."""

    def __init__(self, pm: pluggy.PluginManager, remove: list[object]):
        self._pm, self._remove = pm, remove

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("harness_"):
            raise AttributeError(name)
        caller = self._pm.subset_hook_caller(name, remove_plugins=self._remove)
        return _WithDefault(caller, OPTIONAL_HOOK_DEFAULTS[name]) if name in OPTIONAL_HOOK_DEFAULTS else caller


@dataclass
class Plugins:
    """The plugin manager plus the registries it answers."""

    pm: pluggy.PluginManager
    method_plugins: dict[str, object]  # method name -> the plugin object that provides it
    weights_dir: Optional[Path] = None  # searched first for weight files (--weights-dir; harness.core.weights)

    # ---- registries -------------------------------------------------------------------------------
    def methods(self) -> dict[str, MethodInfo]:
        return {m.name: m for m in _flatten(self.pm.hook.harness_methods())}

    def datasets(self) -> dict[str, DatasetInfo]:
        return {d.name: d for d in _flatten(self.pm.hook.harness_datasets())}

    def metrics(self) -> dict[str, MetricInfo]:
        return {m.name: m for m in _flatten(self.pm.hook.harness_metrics())}

    def metric_options(self) -> dict[str, MetricOption]:
        """Every option the installed metrics declare, by name; two declarations of one name with different
        types raise HarnessError naming both metrics."""
        out: dict[str, tuple[str, MetricOption]] = {}
        for metric in self.metrics().values():
            for option in metric.options:
                seen = out.setdefault(option.name, (metric.name, option))
                if seen[1].type is not option.type:
                    raise HarnessError(f"metric option {option.name!r} is declared by {seen[0]!r} and "
                                       f"{metric.name!r} with different types")
        return {name: option for name, (_, option) in out.items()}

    def weight_files(self) -> dict[str, WeightFile]:
        return {w.name: w for w in _flatten(self.pm.hook.harness_weight_files())}

    # ---- selection ----------------------------------------------------------------------------------
    def method(self, name: str) -> MethodInfo:
        methods = self.methods()
        if name not in methods:
            raise UnknownNameError("plugin", name, list(methods))
        return methods[name]

    def select_methods(self, names: str | Iterable[str]) -> list[MethodInfo]:
        """``"ecagan,dmgan"`` → their MethodInfo, in that order; an unknown name lists the installed ones."""
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        names = list(names)
        if not names:
            raise HarnessError(f"no method selected; installed: {', '.join(sorted(self.methods()))}")
        return [self.method(n) for n in names]

    def dataset(self, name: str) -> DatasetInfo:
        datasets = self.datasets()
        if name not in datasets:
            raise UnknownNameError("dataset", name, list(datasets))
        return datasets[name]

    def metric(self, name: str) -> MetricInfo:
        metrics = self.metrics()
        if name not in metrics:
            raise UnknownNameError("metric", name, list(metrics))
        return metrics[name]

    def method_hooks(self, name: str) -> _MethodHooks:
        """Component hooks answered only by method ``name`` (and non-method plugins)."""
        self.method(name)
        others = [p for n, p in self.method_plugins.items() if n != name]
        return _MethodHooks(self.pm, others)


def _flatten(results: list[Optional[list]]) -> list:
    return [item for r in results if r for item in r]


def plugin_object(candidate: object) -> object:
    """What to register for a plugin candidate: a module's ``plugin`` attribute when it has one (a method
    written as a class, e.g. ``plugins.dmgan.plugin = DMGAN()``), else the candidate itself (a module-style
    plugin of hook functions, or an object)."""
    if isinstance(candidate, ModuleType):
        return getattr(candidate, "plugin", candidate)
    return candidate


def _import_source_plugins() -> list[ModuleType]:
    """The packages under ``plugins/`` (a source checkout run without installation)."""
    try:
        pkg = importlib.import_module(SOURCE_PLUGIN_PACKAGE)
    except ImportError:
        return []
    mods = []
    for info in pkgutil.iter_modules(pkg.__path__, SOURCE_PLUGIN_PACKAGE + "."):
        if info.ispkg:
            mods.append(importlib.import_module(info.name))
    return mods


def _entry_point_plugins() -> list[tuple[str, object]]:
    out = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        out.append((ep.name, ep.load()))
    return out


def build_plugins(extra: Iterable[object] = (), *, entry_points: bool = True) -> Plugins:
    """Build the plugin manager.

    extra: plugin objects or modules to register as well (tests use this for out-of-tree plugins). A module
    with a ``plugin`` attribute registers that object (``plugin_object``), as the source tree's packages and
    entry points to a module do.
    With ``HARNESS_TRACE_HOOKS=1`` or ``all`` every hook answer is traced to stderr (``harness.contract.hook_trace``);
    another value raises HarnessError.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    candidates: list[tuple[Optional[str], object]] = [(None, importlib.import_module(m)) for m in CORE_PLUGIN_MODULES]
    if entry_points:
        candidates += _entry_point_plugins()
    candidates += [(None, m) for m in _import_source_plugins()]
    candidates += [(None, e) for e in extra]

    method_plugins: dict[str, object] = {}
    seen: set[int] = set()
    for name, candidate in candidates:
        plugin = plugin_object(candidate)
        if id(plugin) in seen or pm.is_registered(plugin):
            continue
        seen.add(id(plugin))
        announced = getattr(plugin, "harness_methods", None)
        infos = list(announced() or []) if callable(announced) else []
        if len(infos) == 1:
            mname = infos[0].name
            if mname in method_plugins:
                continue  # the same method from an entry point and the source tree
            method_plugins[mname] = plugin
            pm.register(plugin, name=mname)
        else:
            if infos:
                raise HarnessError(f"plugin {plugin!r} announces {len(infos)} methods; a method plugin announces one")
            pm.register(plugin, name=name)
    pm.check_pending()
    mode = _trace_mode()
    if mode is not None:
        install_tracing(pm, mode)
    return Plugins(pm, method_plugins)


def _trace_mode() -> Optional[str]:
    try:
        return trace_mode()
    except ValueError as e:
        raise HarnessError(str(e)) from None
