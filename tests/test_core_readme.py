"""The README's plugin example is complete and works as written (no change to `harness/` needed), and the
README's commands match the CLI."""
from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import pytest

from harness.cli import build_parser, main
from harness.contract.plugins import build_plugins

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def _write_package(tmp_path: Path, monkeypatch) -> None:
    """The README's ``mymethod/__init__.py`` and ``defaults.yaml`` as an importable package."""
    (python_block,) = _blocks("python")
    (yaml_block,) = _blocks("yaml")
    pkg = tmp_path / "src" / "mymethod"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(python_block)
    (pkg / "defaults.yaml").write_text(yaml_block)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))


@pytest.fixture
def readme_plugin(tmp_path, monkeypatch):
    _write_package(tmp_path, monkeypatch)
    module = importlib.import_module("mymethod")
    yield build_plugins(extra=[module])
    sys.modules.pop("mymethod", None)


def test_readme_plugin_registers_and_inspects(readme_plugin, capsys):
    assert main(["plugins"], plugins=readme_plugin) == 0
    assert "mymethod" in capsys.readouterr().out
    assert main(["inspect", "--plugins", "mymethod", "--preset", "test", "--dataset", "shapes", "--json"],
                plugins=readme_plugin) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "mymethod" and report["generator"] > 0 and len(report["discriminators"]) == 2
    assert [r.metric for r in readme_plugin.method("mymethod").reported] == ["fid_tv"]


@pytest.mark.slow
def test_readme_plugin_trains(readme_plugin, capsys):
    assert main(["train", "--plugins", "mymethod", "--dataset", "shapes", "--preset", "test"],
                plugins=readme_plugin) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert any((run / "checkpoints").iterdir())


def test_readme_commands_parse():
    """Every `harness ...` example in the README's command table parses with the real argument parser."""
    text = README.read_text()
    examples = re.findall(r"`harness ([a-z-]+ [^`]*)`", text)
    checked = 0
    for example in examples:
        if "[" in example or "|" in example or "..." in example:
            continue  # a synopsis with optional parts, not a literal command
        build_parser().parse_args(example.split())
        checked += 1
    assert checked >= 8
    for cmd in ("pip install -e . && python -m harness run --plugins ecagan,dmgan --dataset shapes --preset smoke",
                "pip install tox && tox"):
        assert cmd in text


def test_readme_entry_point_names_the_plugin_instance(tmp_path, monkeypatch):
    """The README's pyproject entry point resolves (as importlib.metadata loads it) to the class instance whose
    hooks register the method; the optional hooks it leaves out get the harness's defaults."""
    import tomllib
    from importlib.metadata import EntryPoint

    (toml_block,) = _blocks("toml")
    _write_package(tmp_path, monkeypatch)
    try:
        ((name, value),) = tomllib.loads(toml_block)["project"]["entry-points"]["harness"].items()
        obj = EntryPoint(name=name, value=value, group="harness").load()
        assert not isinstance(obj, type(sys)) and type(obj).__name__ == "MyMethod"  # an instance, not a module
        plugins = build_plugins(extra=[obj])
        assert "mymethod" in plugins.methods()
        from harness.build import prepare_config

        cfg = prepare_config(plugins, "mymethod", dataset="shapes", data_dir=None, preset="test", overrides=[],
                             seed=0)
        assert plugins.method_hooks("mymethod").harness_pretrain_stages(cfg=cfg) == []  # the default
    finally:
        sys.modules.pop("mymethod", None)
