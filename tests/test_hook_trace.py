"""Hook tracing (HARNESS_TRACE_HOOKS=1|all) and `harness plugins --hooks` (issue 16)."""
from __future__ import annotations

import pytest

from core_tiny_method import TinyMethod
from harness import hookimpl
from harness.build import prepare_config
from harness.cli import main
from harness.util.errors import HarnessError
from harness.contract.plugins import build_plugins


class Quiet:
    """Implements a registry hook but answers None: never listed as having answered."""

    @hookimpl
    def harness_weight_files(self):
        return None

    @hookimpl(wrapper=True)
    def harness_generator(self, cfg, aux):
        return (yield)


def _lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("harness hook: ")]


def test_trace_once_per_hook_and_answering_plugin(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_TRACE_HOOKS", "1")
    plugins = build_plugins(extra=[TinyMethod(tmp_path / "tiny"), Quiet()])
    capsys.readouterr()
    plugins.methods()
    plugins.methods()
    plugins.weight_files()
    lines = _lines(capsys.readouterr().err)
    assert "harness hook: harness_methods answered by tinygan" in lines
    assert "harness hook: harness_methods answered by attngan" in lines  # the built-in methods too
    assert len(lines) == len(set(lines))  # each (hook, plugin) once although methods() ran twice
    assert "harness hook: harness_weight_files answered by harness.train.pretrain" in lines
    assert not [line for line in lines if line.endswith("by Quiet")]  # answered None: not listed
    # component hooks go through a subset caller (only the selected method answers): traced as well
    cfg = prepare_config(plugins, "tinygan", dataset="shapes", data_dir=None, preset="test", overrides=[], seed=0)
    capsys.readouterr()
    hooks = plugins.method_hooks("tinygan")
    hooks.harness_discriminators(cfg=cfg)
    hooks.harness_discriminators(cfg=cfg)
    lines = _lines(capsys.readouterr().err)
    assert lines == ["harness hook: harness_discriminators answered by tinygan"]


def test_trace_all_writes_every_call(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_TRACE_HOOKS", "all")
    plugins = build_plugins(extra=[TinyMethod(tmp_path / "tiny")])
    capsys.readouterr()
    plugins.methods()
    plugins.methods()
    lines = _lines(capsys.readouterr().err)
    assert lines.count("harness hook: harness_methods answered by tinygan") == 2


def test_no_trace_without_the_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HARNESS_TRACE_HOOKS", raising=False)
    build_plugins(extra=[TinyMethod(tmp_path / "tiny")]).methods()
    assert _lines(capsys.readouterr().err) == []


def test_a_bad_trace_value_names_the_variable_and_the_allowed_values(monkeypatch):
    monkeypatch.setenv("HARNESS_TRACE_HOOKS", "yes")
    with pytest.raises(HarnessError, match=r"HARNESS_TRACE_HOOKS='yes': use 1 .*all .*0"):
        build_plugins()


def test_plugins_hooks_lists_each_plugins_hooks(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HARNESS_TRACE_HOOKS", raising=False)
    plugins = build_plugins(extra=[TinyMethod(tmp_path / "tiny"), Quiet()])
    assert main(["plugins", "--hooks"], plugins=plugins) == 0
    out = capsys.readouterr().out.splitlines()
    blocks, current = {}, None
    for line in out:
        if line.startswith("    "):
            blocks[current].append(line.strip())
        else:
            current = line
            blocks[current] = []
    tiny = TinyMethod(tmp_path / "other")
    expected = sorted(n for n in dir(tiny) if n.startswith("harness_")
                      and hasattr(getattr(tiny, n), "harness_impl"))
    assert blocks["tinygan"] == expected
    assert blocks["Quiet"] == ["harness_generator (wrapper)", "harness_weight_files"]
    assert "harness_datasets" in blocks["harness.data.registry"]
