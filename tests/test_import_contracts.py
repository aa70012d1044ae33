"""The import contracts (pyproject.toml [tool.importlinter], issue 16): one direction through harness's layers,
no import cycle, harness never imports the built-in methods' packages; tox runs them before the tests."""
import configparser
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_lint_imports_keeps_every_contract():
    cli = pytest.importorskip("importlinter.cli", reason="import-linter is in the `test` extra; not installed here")
    assert {c["type"] for c in _contracts()} == {"layers", "forbidden", "acyclic_siblings"}
    assert cli.lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0


def test_every_harness_module_has_a_layer():
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    placed = {name.strip() for layer in layers["layers"] for name in layer.replace(":", "|").split("|")}
    children = {p.stem for p in (ROOT / "harness").glob("*.py")} | {
        p.parent.name for p in (ROOT / "harness").glob("*/__init__.py")}
    assert children - {"__init__", "__main__"} - placed == set()
    assert placed - children == set()  # no stale name


def test_tox_runs_lint_imports_and_ruff_before_the_tests():
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    commands = [c.strip() for c in tox["testenv"]["commands"].strip().splitlines()]
    assert "lint_imports_command" in commands[0] and commands[0].startswith("python -c")
    assert commands[1] == "python -m ruff check harness plugins tests benchmarks"
    assert commands[2].startswith("python -m pytest")
