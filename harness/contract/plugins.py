"""Builds the pluggy PluginManager: the core's built-in pieces, the packages of the entry-point group
``harness``, and, when running from a source checkout without installation, the packages under
``plugins/``. The core never names a method: methods are whatever plugins announce.

Component hooks reach only the selected method (``Plugins.method_hooks``): every *other* method plugin is
removed through pluggy's ``subset_hook_caller``; non-method plugins (cross-cutting wrappers) stay.

An installed plugin that fails to import, fails to announce, announces a name outside ``[a-z][a-z0-9_]*`` or a
name another plugin holds is left out with one warning line, and ``harness plugins`` lists it as broken: every
other method keeps working. A plugin passed in code (``build_plugins(extra=...)``) is refused the same way with
a HarnessError. A component hook that raises or answers the wrong type is one line naming the method, the hook
and what was expected (``PluginError``).
"""
from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Optional

import pluggy

from harness.contract import hookspecs
from harness.util.errors import HarnessError, PluginError, UnknownNameError, one_line
from harness.contract.hook_trace import install_tracing, trace_mode
from harness.contract.types import (DatasetInfo, MethodInfo, MetricInfo, MetricOption, PretrainStage,
                                    ReferenceCheckpoint, WeightFile)

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


# What each component hook must answer, as (test, description) for the one-line error on a wrong answer.
def _is_module(x: object) -> bool:
    import torch.nn as nn

    return isinstance(x, nn.Module)


def _is_module_list(x: object) -> bool:
    return (isinstance(x, (list, tuple)) or _is_module(x)) and all(_is_module(m) for m in x)  # type: ignore[union-attr]


def _is_reference_checkpoint(x: object) -> bool:
    return isinstance(x, ReferenceCheckpoint) and isinstance(x.generator, dict) and (
        x.discriminators is None or isinstance(x.discriminators, dict)) and (
        x.epoch is None or (isinstance(x.epoch, int) and not isinstance(x.epoch, bool)))


EXPECTED_ANSWERS: dict[str, tuple[Callable[[object], bool], str]] = {
    "harness_generator": (_is_module, "a torch.nn.Module"),
    "harness_discriminators": (_is_module_list, "an nn.ModuleList (or list) of discriminator modules"),
    "harness_text_encoder": (lambda x: x is None or _is_module(x), "a torch.nn.Module or None"),
    "harness_image_encoder": (lambda x: x is None or _is_module(x), "a torch.nn.Module or None"),
    "harness_auxiliary_modules": (lambda x: isinstance(x, dict) and all(isinstance(k, str) and _is_module(v)
                                                                        for k, v in x.items()),
                                  "a dict of name -> torch.nn.Module"),
    "harness_pretrain_stages": (lambda x: isinstance(x, list) and all(isinstance(s, PretrainStage) for s in x),
                                "a list of PretrainStage"),
    "harness_read_reference_checkpoint": (lambda x: x is None or _is_reference_checkpoint(x),
                                          "a ReferenceCheckpoint (generator: a state dict; discriminators: a state "
                                          "dict or None; epoch: an int or None) or None"),
    # not firstresult: one answer per implementation
    "harness_check_config": (lambda x: isinstance(x, list) and all(
        isinstance(a, list) and all(isinstance(line, str) for line in a) for a in x), "a list of problem lines (str)"),
}


class _CheckedHook:
    """One component hook of one method: the optional hooks' None becomes their default
    (``OPTIONAL_HOOK_DEFAULTS``), and a hook that raises or answers the wrong type is a PluginError naming the
    method, the hook and what was expected."""

    def __init__(self, caller: pluggy.HookCaller, method: str, name: str):
        self._caller, self._method, self._name = caller, method, name

    def __call__(self, **kwargs: Any) -> Any:
        try:
            result = self._caller(**kwargs)
        except HarnessError:
            raise  # already one line for the user
        except Exception as e:
            raise PluginError(f"method {self._method!r}: {self._name} raised {type(e).__name__}: "
                              f"{one_line(e)}") from e
        if result is None and self._name in OPTIONAL_HOOK_DEFAULTS:
            return OPTIONAL_HOOK_DEFAULTS[self._name]()
        check = EXPECTED_ANSWERS.get(self._name)
        if check is not None and not check[0](result):
            raise PluginError(f"method {self._method!r}: {self._name} answered {type(result).__name__}, "
                              f"expected {check[1]}")
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._caller, name)


class _MethodHooks:
    """Component hooks of one method: ``hooks.harness_generator(cfg=..., aux=...)`` (``_CheckedHook``)."""

    def __init__(self, pm: pluggy.PluginManager, method: str, remove: list[object]):
        self._pm, self._method, self._remove = pm, method, remove

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("harness_"):
            raise AttributeError(name)
        return _CheckedHook(self._pm.subset_hook_caller(name, remove_plugins=self._remove), self._method, name)


@dataclass(frozen=True)
class BrokenPlugin:
    """An installed plugin left out: where it came from (``entry point 'x'`` or a module), its distribution, and
    why (one line)."""

    source: str
    distribution: str
    reason: str


@dataclass
class Plugins:
    """The plugin manager plus the registries it answers."""

    pm: pluggy.PluginManager
    method_plugins: dict[str, object]  # method name -> the plugin object that provides it
    broken: list[BrokenPlugin] = field(default_factory=list)  # installed plugins left out, with the reason
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
        return _MethodHooks(self.pm, name, others)


def _flatten(results: list[Optional[list]]) -> list:
    return [item for r in results if r for item in r]


def plugin_object(candidate: object) -> object:
    """What to register for a plugin candidate: a module's ``plugin`` attribute when it has one (a method
    written as a class, e.g. ``plugins.dmgan.plugin = DMGAN()``), else the candidate itself (a module-style
    plugin of hook functions, or an object)."""
    if isinstance(candidate, ModuleType):
        return getattr(candidate, "plugin", candidate)
    return candidate


NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")  # method, data-set and metric names: safe in paths and tables
OWN_DISTRIBUTION = "t2i-harness"


@dataclass
class _Candidate:
    """A plugin to register: where it comes from (for messages) and how to get it."""

    source: str
    distribution: str
    load: Callable[[], object]
    installed: bool  # an installed plugin is left out with a warning; one passed in code is refused (raises)
    name: Optional[str] = None  # the name a non-method plugin registers under (its entry point's)


def _source_tree_candidates() -> list[_Candidate]:
    """The packages under ``plugins/`` (a source checkout run without installation)."""
    try:
        pkg = importlib.import_module(SOURCE_PLUGIN_PACKAGE)
    except ImportError:
        return []
    return [_Candidate(info.name, "source tree", lambda n=info.name: importlib.import_module(n), True)
            for info in pkgutil.iter_modules(pkg.__path__, SOURCE_PLUGIN_PACKAGE + ".") if info.ispkg]


def _entry_point_candidates() -> tuple[list[_Candidate], list[_Candidate]]:
    """The entry points of group ``harness``: this distribution's (the built-in methods), then every other's.
    Read per distribution: ``importlib.metadata.entry_points()`` keeps one of two entry points with the same name,
    which would drop a plugin without a word."""
    own, others, seen = [], [], set()
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or "unknown distribution"
        if name.lower() in seen:  # the same distribution twice on sys.path: the first one is imported
            continue
        seen.add(name.lower())
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP:
                cand = _Candidate(f"entry point {ep.name!r} ({ep.value})", f"{name} {dist.version}", ep.load, True,
                                  ep.name)
                (own if name == OWN_DISTRIBUTION else others).append(cand)
    return own, sorted(others, key=lambda c: (c.distribution, c.source))


def _announced(plugin: object) -> dict[str, list]:
    """What a plugin announces through its own registry hooks: ``{"method": [...], "dataset": [...], ...}``.
    Raises PluginError for a hook that raises, a wrong type, or a name outside ``NAME_PATTERN``."""
    out: dict[str, list] = {}
    for kind, hook, tp in (("method", "harness_methods", MethodInfo), ("dataset", "harness_datasets", DatasetInfo),
                           ("metric", "harness_metrics", MetricInfo)):
        fn = getattr(plugin, hook, None)
        if not callable(fn):
            continue
        try:
            infos = list(fn() or [])
        except Exception as e:
            raise PluginError(f"{hook} raised {type(e).__name__}: {one_line(e)}") from e
        for info in infos:
            if not isinstance(info, tp):
                raise PluginError(f"{hook} answered a {type(info).__name__}, expected a list of {tp.__name__}")
            if not isinstance(info.name, str) or not NAME_PATTERN.fullmatch(info.name):
                raise PluginError(f"{kind} name {info.name!r} is not allowed: names match [a-z][a-z0-9_]*")
        out[kind] = infos
    if len(out.get("method", [])) > 1:
        raise PluginError(f"announces {len(out['method'])} methods; a method plugin announces one")
    return out


def build_plugins(extra: Iterable[object] = (), *, entry_points: bool = True) -> Plugins:
    """Build the plugin manager: the core modules, the built-in methods (this distribution's entry points, or the
    source tree's ``plugins/``), every other distribution's entry points, then ``extra``.

    extra: plugin objects or modules to register as well (tests use this for out-of-tree plugins). A module
    with a ``plugin`` attribute registers that object (``plugin_object``), as the source tree's packages and
    entry points to a module do. An installed plugin that fails to import or announce, or announces a bad or
    taken name, is left out with one warning line on stderr (``Plugins.broken``); an ``extra`` one raises
    HarnessError. With ``HARNESS_TRACE_HOOKS=1`` or ``all`` every hook answer is traced to stderr
    (``harness.contract.hook_trace``); another value raises HarnessError.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    own, others = _entry_point_candidates() if entry_points else ([], [])
    candidates = [_Candidate(m, OWN_DISTRIBUTION, lambda m=m: importlib.import_module(m), False)
                  for m in CORE_PLUGIN_MODULES]
    candidates += own + _source_tree_candidates() + others
    candidates += [_Candidate(getattr(e, "__name__", type(e).__name__), "registered in code", lambda e=e: e, False)
                   for e in extra]
    registry = _Registry(pm)
    for cand in candidates:
        try:
            registry.add(cand)
        except HarnessError as e:
            if not cand.installed:
                raise HarnessError(f"plugin {cand.source}: {e}") from e
            registry.broken.append(BrokenPlugin(cand.source, cand.distribution, str(e)))
            print(f"harness: warning: plugin {cand.source} of {cand.distribution} left out: {e}", file=sys.stderr)
    pm.check_pending()
    mode = _trace_mode()
    if mode is not None:
        install_tracing(pm, mode)
    return Plugins(pm, registry.method_plugins, registry.broken)


def _check_hook_names(plugin: object) -> None:
    """Every hook implementation names a hook of the contract (a misspelled one would never be called)."""
    marker = hookspecs.PROJECT + "_impl"
    unknown = sorted(n for n in dir(plugin) if getattr(getattr(plugin, n, None), marker, None) is not None
                     and not hasattr(hookspecs, n))
    if unknown:
        raise PluginError(f"implements {', '.join(unknown)}, which is no hook (the hooks: harness/contract/"
                          f"hookspecs.py, or `harness plugins --hooks`)")


class _Registry:
    """Registers plugins one by one, keeping who holds each announced name."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self.method_plugins: dict[str, object] = {}
        self.broken: list[BrokenPlugin] = []
        self._holders: dict[tuple[str, str], str] = {}  # (kind, name) -> "source of distribution"
        self._seen: set[int] = set()

    def add(self, cand: _Candidate) -> None:
        """Register ``cand`` or raise HarnessError (one line) saying why it cannot be."""
        try:
            plugin = plugin_object(cand.load())
        except HarnessError:
            raise
        except Exception as e:
            raise PluginError(f"failed to import: {type(e).__name__}: {one_line(e)}") from e
        if id(plugin) in self._seen or self.pm.is_registered(plugin):
            return  # the same plugin from an entry point and the source tree, or passed twice
        _check_hook_names(plugin)
        announced = _announced(plugin)
        holder = f"{cand.source} of {cand.distribution}"
        for kind, infos in announced.items():
            for info in infos:
                other = self._holders.get((kind, info.name))
                if other is not None:
                    raise PluginError(f"{kind} {info.name!r} is already announced by {other}; rename or uninstall "
                                      f"one of them")
        self.pm.register(plugin, name=announced["method"][0].name if announced.get("method") else cand.name)
        self._seen.add(id(plugin))
        for kind, infos in announced.items():
            for info in infos:
                self._holders[(kind, info.name)] = holder
        if announced.get("method"):
            self.method_plugins[announced["method"][0].name] = plugin


def _trace_mode() -> Optional[str]:
    try:
        return trace_mode()
    except ValueError as e:
        raise HarnessError(str(e)) from None
