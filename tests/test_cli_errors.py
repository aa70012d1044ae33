"""Configuration mistakes on the command line fail before any work: non-zero exit, one clear line that lists
the valid names, and nothing created under the results root."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core_tiny_method import TinyMethod, TinyRegistry
from harness.cli import main
from harness.contract.plugins import build_plugins

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def plugins(tmp_path):
    return build_plugins(extra=[TinyMethod(tmp_path / "tiny"), TinyRegistry(datasets=("tinyset",))])


CASES = [
    (["--plugins", "nosuch"], ["unknown plugin 'nosuch'", "tinygan"]),
    (["--plugins", "tinygan,nosuch"], ["unknown plugin 'nosuch'", "tinygan"]),
    (["--dataset", "nosuch"], ["unknown dataset 'nosuch'", "tinyset"]),
    (["--set", "train.nosuch=1"], ["unknown config key 'train.nosuch'", "batch_size", "max_steps"]),
    (["--set", "train.batch_size=abc"], ["train.batch_size", "'abc' is not an int"]),
    (["--preset", "nosuch"], ["no protocol 'nosuch'", "smoke", "test"]),
    (["--preset", "paper"], ["paper-tinyset", "paper-cub"]),
]


def _args(verb: str, extra: list[str]) -> list[str]:
    base = {"--plugins": "tinygan", "--dataset": "tinyset", "--preset": "test"}
    for flag in list(base):
        if flag in extra:
            base.pop(flag)
    argv = [verb]
    for k, v in base.items():
        argv += [k, v]
    return argv + extra


@pytest.mark.parametrize("verb", ["run", "train"])
@pytest.mark.parametrize("extra, expected", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_config_errors_fail_before_any_work(plugins, results_root, capsys, verb, extra, expected):
    rc = main(_args(verb, extra), plugins=plugins)
    captured = capsys.readouterr()
    assert rc != 0
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness: error: "), captured.err
    for text in expected:
        assert text in lines[0]
    assert captured.out == ""
    assert not results_root.exists() or list(results_root.iterdir()) == []  # no session, no run directory


def test_train_takes_one_method(plugins, results_root, capsys):
    rc = main(["train", "--plugins", "tinygan,tinygan", "--dataset", "tinyset", "--preset", "test"], plugins=plugins)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "train takes one method" in err[0]
    assert not results_root.exists() or list(results_root.iterdir()) == []


def test_unknown_metric_fails_before_any_work(plugins, results_root, capsys):
    rc = main(_args("run", ["--metrics", "nosuch"]), plugins=plugins)
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "nosuch" in err and len(err.splitlines()) == 1
    assert not results_root.exists() or list(results_root.iterdir()) == []


def test_inspect_unknown_plugin(plugins, capsys):
    assert main(["inspect", "--plugins", "nosuch"], plugins=plugins) == 2
    assert "installed:" in capsys.readouterr().err


def test_train_needs_a_method_or_a_run(plugins, capsys):
    assert main(["train", "--dataset", "tinyset"], plugins=plugins) == 2
    assert "--plugins" in capsys.readouterr().err
    assert main(["train", "--resume", "nosuch"], plugins=plugins) == 2
    assert "no run 'nosuch'" in capsys.readouterr().err


def test_the_installed_program_reports_errors_the_same_way(results_root):
    """`python -m harness` (same program as the `harness` console script) with the built-in plugins."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--plugins", "nosuch", "--dataset", "shapes"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown plugin 'nosuch'; installed:" in proc.stderr
    assert list(results_root.iterdir()) == []


def test_preset_paper_on_shapes_names_the_paper_presets_of_every_installed_method(results_root, capsys):
    builtin = build_plugins()
    for name, info in sorted(builtin.methods().items()):
        rc = main(["run", "--plugins", name, "--dataset", "shapes", "--preset", "paper"], plugins=builtin)
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert "paper-shapes" in err and "paper-cub" in err, err
    assert not results_root.exists() or list(results_root.iterdir()) == []
