"""A plugin written against the first layout of `harness/` (flat modules) runs unchanged: its import paths name the
same module objects as the regrouped homes, and it registers, builds and is inspected like any method."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "first_layout_plugin" / "__init__.py"


def _load_fixture():
    spec = importlib.util.spec_from_file_location("first_layout_plugin", FIXTURE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_first_layout_paths_are_the_regrouped_modules():
    import harness.config.rules
    import harness.config_rules
    import harness.contract.hookspecs
    import harness.contract.plugins
    import harness.contract.types
    import harness.errors
    import harness.hookspecs
    import harness.plugins
    import harness.types
    import harness.util.errors

    assert harness.types is harness.contract.types and harness.hookspecs is harness.contract.hookspecs
    assert harness.plugins is harness.contract.plugins and harness.config_rules is harness.config.rules
    assert harness.errors is harness.util.errors
    from harness.config_rules import at_least, value  # the names the README's config section shows
    from harness.errors import HarnessError
    from harness.types import MethodInfo

    assert MethodInfo is harness.contract.types.MethodInfo and HarnessError is harness.util.errors.HarnessError
    assert value(4, at_least(1)).default == 4


def test_first_layout_plugin_registers_and_inspects(capsys):
    from harness.cli import main
    from harness.plugins import build_plugins  # the path the README gave for registering a plugin by hand

    plugins = build_plugins(extra=[_load_fixture()])
    assert "mymethod" in plugins.methods()
    assert main(["inspect", "--plugins", "mymethod", "--preset", "test", "--dataset", "shapes", "--json"],
                plugins=plugins) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "mymethod" and report["generator"] > 0 and len(report["discriminators"]) == 2
