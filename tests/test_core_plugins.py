"""The plugin contract: documented hooks, registration, selection, and the method subset of component hooks."""
from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from core_tiny_method import TinyMethod, TinyRegistry
from harness.contract import hookspecs
from harness.util.errors import HarnessError, UnknownNameError
from harness.contract.plugins import build_plugins, hookimpl
from harness.contract.types import MethodInfo


def _spec_functions():
    return [(name, fn) for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("harness_")]


def test_every_hookspec_is_documented():
    specs = _spec_functions()
    assert len(specs) >= 10
    undocumented = [name for name, fn in specs if not (fn.__doc__ or "").strip()]
    assert not undocumented, f"hooks without a docstring: {undocumented}"
    for name, fn in specs:
        doc = fn.__doc__
        assert "Receives" in doc and "Return" in doc, f"{name}: the docstring must say what it receives and returns"
        firstresult = getattr(fn, f"{hookspecs.PROJECT}_spec")["firstresult"]  # set by pluggy's HookspecMarker
        assert ("firstresult" in doc) == bool(firstresult), f"{name}: the docstring must say firstresult or collected"


def test_every_registered_hook_has_a_documented_spec():
    """Catches hookspecs added anywhere (not only in harness.contract.hookspecs) without a docstring."""
    plugins = build_plugins()
    for name in dir(plugins.pm.hook):
        if not name.startswith("harness_"):
            continue
        caller = getattr(plugins.pm.hook, name)
        assert caller.spec is not None, f"{name} is implemented by a plugin but has no hookspec"
        assert (caller.spec.function.__doc__ or "").strip(), f"hook {name} has no docstring"


def test_component_hooks_reach_only_the_selected_method(tmp_path):
    a, b = TinyMethod(tmp_path / "a", "tiny_a"), TinyMethod(tmp_path / "b", "tiny_b")
    calls: list[str] = []

    class Marked:  # a method whose generator hook records that it was asked
        def __init__(self, tiny, tag):
            self.tiny, self.tag = tiny, tag

        @hookimpl
        def harness_methods(self):
            return self.tiny.harness_methods()

        @hookimpl
        def harness_generator(self, cfg, aux):
            calls.append(self.tag)
            return nn.Linear(1, 1)

    wrapped: list[str] = []

    class EveryMethodWrapper:  # a cross-cutting plugin (no method): stays in every subset
        @hookimpl(hookwrapper=True)
        def harness_generator(self, cfg, aux):
            outcome = yield
            g = outcome.get_result()
            wrapped.append(type(g).__name__)
            outcome.force_result(nn.Sequential(g))

    plugins = build_plugins(extra=[Marked(a, "A"), Marked(b, "B"), EveryMethodWrapper()])
    assert set(plugins.method_plugins) >= {"tiny_a", "tiny_b"}
    g = plugins.method_hooks("tiny_b").harness_generator(cfg=None, aux={})
    assert calls == ["B"] and wrapped == ["Linear"] and isinstance(g, nn.Sequential)
    plugins.method_hooks("tiny_a").harness_generator(cfg=None, aux={})
    assert calls == ["B", "A"]
    # the unrestricted hook would reach both (what the subset prevents)
    calls.clear()
    plugins.pm.hook.harness_generator.call_extra([], {"cfg": None, "aux": {}})
    assert calls and set(calls) <= {"A", "B"}


def test_builtin_method_hooks_never_answer_for_another_method(tmp_path):
    """With every installed method present, the tiny method's generator is its own."""
    tiny = TinyMethod(tmp_path / "t")
    plugins = build_plugins(extra=[tiny])
    from harness.config import new_config

    cfg = new_config()
    cfg.data.base_size, cfg.data.branch_num = 8, 2
    g = plugins.method_hooks("tinygan").harness_generator(cfg=cfg, aux={})
    assert type(g).__name__ == "TinyGenerator"


def test_unknown_names_list_the_installed_ones(tmp_path):
    plugins = build_plugins(extra=[TinyMethod(tmp_path / "t"), TinyRegistry(datasets=("tinyset",),
                                                                            metrics={"tiny_metric": "higher"})])
    with pytest.raises(UnknownNameError) as e:
        plugins.select_methods("tinygan,nosuch")
    assert "nosuch" in str(e.value) and "tinygan" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UnknownNameError, match="tinyset"):
        plugins.dataset("nosuch")
    with pytest.raises(UnknownNameError, match="tiny_metric"):
        plugins.metric("nosuch")
    with pytest.raises(HarnessError, match="no method selected"):
        plugins.select_methods(" , ")
    with pytest.raises(UnknownNameError):
        plugins.method_hooks("nosuch")
    assert [m.name for m in plugins.select_methods("tinygan")] == ["tinygan"]


def test_a_plugin_announcing_two_methods_is_refused(tmp_path):
    class Two:
        @hookimpl
        def harness_methods(self):
            return [MethodInfo(name=n, paper="", defaults=tmp_path / "d.yaml") for n in ("x", "y")]

    with pytest.raises(HarnessError, match="announces 2 methods"):
        build_plugins(extra=[Two()])


def test_a_plugin_with_a_misspelled_hook_fails_at_registration():
    class Typo:
        @hookimpl
        def harness_generatr(self, cfg):
            return None

    with pytest.raises(HarnessError, match="implements harness_generatr, which is no hook") as e:
        build_plugins(extra=[Typo()])
    assert "\n" not in str(e.value)


def test_the_same_plugin_object_registers_once(tmp_path):
    tiny = TinyMethod(tmp_path / "t")
    plugins = build_plugins(extra=[tiny, tiny])
    assert list(plugins.methods()).count("tinygan") == 1


def test_generation_interface_types_live_in_the_core():
    import harness

    assert {"TextFeatures", "GenOutput", "hookimpl"} <= set(harness.__all__)
    from harness.contract.types import TextFeatures

    t = TextFeatures(torch.zeros(2, 4, 3), torch.zeros(2, 4), torch.zeros(2, 3, dtype=torch.bool),
                     torch.tensor([3, 2]))
    assert t[1:].words.shape == (1, 4, 3) and t.detach().sent.shape == (2, 4)
