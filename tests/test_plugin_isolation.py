"""Plugins isolated and named: an installed plugin that fails to import or to announce, or announces a bad or
taken name, is left out with one warning line naming its entry point and distribution, while every other method
keeps working and `harness plugins` lists it as broken; a plugin passed in code is refused in one line; a component
hook that raises or answers the wrong type is one line naming the method, the hook and what was expected."""
from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from core_tiny_method import TinyMethod
from harness.build import prepare_config
from harness.cli import main
from harness.contract.plugins import build_plugins, hookimpl
from harness.util.errors import HarnessError, PluginError


def _install(site, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A distribution ``dist`` 1.0 as pip leaves it in site-packages: its dist-info (entry points of group
    ``harness``) and its modules."""
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[harness]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for name, code in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(code))


ANNOUNCING = """
from pathlib import Path
from harness.contract.plugins import hookimpl
from harness.contract.types import MethodInfo

class Plugin:
    @hookimpl
    def harness_methods(self):
        return [MethodInfo(name={name!r}, paper="third party", defaults=Path(__file__))]

plugin = Plugin()
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    # sys.path by hand: syspath_prepend calls pkg_resources, which another test may have replaced by a stand-in
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    importlib.invalidate_caches()
    return site


def test_broken_installed_plugins_are_left_out_with_one_line_each(site, capsys):
    _install(site, "harness-broken", {"noimport": "missing_module_xyz:plugin", "raising": "raising_plugin:plugin",
                                      "escape": "escape_plugin:plugin"},
             {"raising_plugin": """
                  from harness.contract.plugins import hookimpl
                  class Plugin:
                      @hookimpl
                      def harness_methods(self):
                          raise RuntimeError("cannot read my config")
                  plugin = Plugin()
              """,
              "escape_plugin": ANNOUNCING.format(name="../../escape")})
    plugins = build_plugins()
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("harness: warning:")]
    assert len(err) == 3 and all("of harness-broken 1.0 left out" in line for line in err)
    assert any("'noimport'" in line and "failed to import: ModuleNotFoundError" in line for line in err)
    assert any("'raising'" in line and "harness_methods raised RuntimeError: cannot read my config" in line
               for line in err)
    assert any("'escape'" in line and "method name '../../escape' is not allowed" in line for line in err)
    assert {"attngan", "dmgan", "ecagan", "caegan"} <= set(plugins.methods())  # every other method still there
    assert "../../escape" not in plugins.methods()
    assert main(["plugins"], plugins=plugins) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("broken")]
    assert len(listed) == 3 and all("harness-broken 1.0" in line for line in listed)


def test_a_third_party_plugin_never_replaces_a_built_in_nor_another_silently(site, capsys):
    from plugins.dmgan import plugin as builtin_dmgan

    _install(site, "harness-evil", {"evil": "evil_plugin:plugin"}, {"evil_plugin": ANNOUNCING.format(name="dmgan")})
    _install(site, "harness-one", {"shared": "one_plugin:plugin"}, {"one_plugin": ANNOUNCING.format(name="shared")})
    _install(site, "harness-two", {"shared": "two_plugin:plugin"}, {"two_plugin": ANNOUNCING.format(name="shared")})
    plugins = build_plugins()
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("harness: warning:")]
    assert plugins.method_plugins["dmgan"] is builtin_dmgan
    assert plugins.methods()["shared"].paper == "third party"
    (evil,) = [line for line in err if "harness-evil" in line]
    assert "method 'dmgan' is already announced by" in evil and "t2i-harness" in evil
    (two,) = [line for line in err if "harness-two" in line]
    assert "method 'shared' is already announced by entry point 'shared' (one_plugin:plugin) of harness-one" in two


def test_plugins_passed_in_code_are_refused_in_one_line(tmp_path):
    class Escaping(TinyMethod):
        @hookimpl
        def harness_methods(self):
            return [TinyMethod.harness_methods(self)[0].__class__(name="Bad-Name", paper="", defaults=self.defaults)]

    with pytest.raises(HarnessError, match="method name 'Bad-Name' is not allowed") as e:
        build_plugins(extra=[Escaping(tmp_path / "e")], entry_points=False)
    assert "\n" not in str(e.value)
    with pytest.raises(HarnessError, match="method 'tinygan' is already announced by"):
        build_plugins(extra=[TinyMethod(tmp_path / "a"), TinyMethod(tmp_path / "b")], entry_points=False)


def test_a_hook_that_raises_or_answers_the_wrong_type_names_method_hook_and_expectation(tmp_path):
    class Raising(TinyMethod):
        @hookimpl
        def harness_generator(self, cfg, aux):
            raise KeyError("z_dim")

    class WrongType(TinyMethod):
        @hookimpl
        def harness_discriminators(self, cfg):
            return {"d0": None}

    for plugin, hook, expected in ((Raising(tmp_path / "r"), "harness_generator", "raised KeyError: 'z_dim'"),
                                   (WrongType(tmp_path / "w"), "harness_discriminators",
                                    "answered dict, expected an nn.ModuleList")):
        plugins = build_plugins(extra=[plugin], entry_points=False)
        cfg = prepare_config(plugins, "tinygan", dataset="shapes", data_dir=None, preset="test", overrides=[],
                             seed=0)
        with pytest.raises(PluginError) as e:
            getattr(plugins.method_hooks("tinygan"), hook)(**({"cfg": cfg, "aux": {}} if "generator" in hook
                                                              else {"cfg": cfg}))
        assert str(e.value).startswith(f"method 'tinygan': {hook} ") and expected in str(e.value)
        assert "\n" not in str(e.value)
