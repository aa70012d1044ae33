"""Hook tracing (``HARNESS_TRACE_HOOKS``, as datasette's ``DATASETTE_TRACE_PLUGINS``) and the table of which
plugin implements which hook (``harness plugins --hooks``).

``HARNESS_TRACE_HOOKS=1`` writes one line to stderr per distinct (hook, plugin that answered) the first time
it happens; ``HARNESS_TRACE_HOOKS=all`` writes one line per answer of every call. A plugin *answered* when its
implementation returned something other than None (for a ``firstresult`` hook, the one whose answer was used).
Hook wrappers are not listed (they wrap an answer, they do not give one)."""
from __future__ import annotations

import functools
import os
import sys
from typing import Any, Optional, TextIO

import pluggy

ENV = "HARNESS_TRACE_HOOKS"
_TRACED = "_harness_traced"


def trace_mode(value: Optional[str] = None) -> Optional[str]:
    """``"first"`` (``1``), ``"all"`` (``all``) or None (unset, empty or ``0``) for ``HARNESS_TRACE_HOOKS``
    (or ``value``); another value raises ValueError naming the allowed ones."""
    value = os.environ.get(ENV, "") if value is None else value
    value = value.strip().lower()
    if value in ("", "0"):
        return None
    if value == "1":
        return "first"
    if value == "all":
        return "all"
    raise ValueError(f"{ENV}={value!r}: use 1 (each hook and answering plugin once), all (every call) or 0")


def plugin_label(pm: pluggy.PluginManager, plugin: object) -> str:
    """A readable name of a registered plugin: its registration name (a method's name, a module's dotted
    name), or its class name for an object registered without one."""
    name = pm.get_name(plugin) or ""
    return type(plugin).__name__ if not name or name.isdigit() else name


def install_tracing(pm: pluggy.PluginManager, mode: str, stream: Optional[TextIO] = None) -> None:
    """Trace the answers of every hook called through ``pm`` (subset callers included) to ``stream``
    (default: sys.stderr at the time of writing), in ``mode`` ``"first"`` or ``"all"``."""
    seen: set[tuple[str, str]] = set()

    def write(hook: str, who: str) -> None:
        if mode == "first":
            if (hook, who) in seen:
                return
            seen.add((hook, who))
        print(f"harness hook: {hook} answered by {who}", file=stream or sys.stderr, flush=True)

    def wrap(hook: str, impl: pluggy.HookImpl) -> None:
        if impl.hookwrapper or impl.wrapper or getattr(impl.function, _TRACED, False):
            return
        inner, who = impl.function, plugin_label(pm, impl.plugin)

        @functools.wraps(inner)
        def traced(*args: Any, **kwargs: Any) -> Any:
            result = inner(*args, **kwargs)
            if result is not None:
                write(hook, who)
            return result

        setattr(traced, _TRACED, True)
        impl.function = traced

    def before(hook_name: str, hook_impls: list[pluggy.HookImpl], kwargs: dict[str, Any]) -> None:
        for impl in hook_impls:  # wrapped when first called: plugins registered later are traced too
            wrap(hook_name, impl)

    def after(outcome: pluggy.Result[object], hook_name: str, hook_impls: list[pluggy.HookImpl],
              kwargs: dict[str, Any]) -> None:
        return None

    pm.add_hookcall_monitoring(before, after)


def hooks_by_plugin(pm: pluggy.PluginManager) -> dict[str, list[str]]:
    """``{plugin label: sorted hook names it implements}`` (wrappers included, marked ``(wrapper)``), plugins
    in registration-name order."""
    out: dict[str, list[str]] = {}
    for name, caller in vars(pm.hook).items():
        if not name.startswith("harness_"):
            continue
        for impl in caller.get_hookimpls():
            mark = " (wrapper)" if impl.hookwrapper or impl.wrapper else ""
            out.setdefault(plugin_label(pm, impl.plugin), []).append(name + mark)
    return {k: sorted(v) for k, v in sorted(out.items())}


def format_hooks(pm: pluggy.PluginManager) -> str:
    """The text of ``harness plugins --hooks``: each plugin, then the hooks it implements, one per line."""
    lines = []
    for plugin, hooks in hooks_by_plugin(pm).items():
        lines.append(plugin)
        lines += [f"    {h}" for h in hooks]
    return "\n".join(lines)
