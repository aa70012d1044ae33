"""An out-of-tree method plugin, defined in the tests (tests/core_tiny_method.py), runs through the CLI path
with no change to `harness/`: `plugins`, `inspect`, `train`, `table`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core_tiny_method import TinyMethod, build_generator
from harness.cli import main
from harness.config import build_config
from harness.contract.plugins import build_plugins


@pytest.fixture
def tiny_plugins(tmp_path):
    return build_plugins(extra=[TinyMethod(tmp_path / "tiny_plugin")])


def test_plugins_lists_the_out_of_tree_method(tiny_plugins, capsys):
    assert main(["plugins"], plugins=tiny_plugins) == 0
    out = capsys.readouterr().out
    assert any(line.split()[:1] == ["tinygan"] and "Tiny et al." in line for line in out.splitlines())


def test_inspect_counts_the_out_of_tree_method(tiny_plugins, capsys):
    argv = ["inspect", "--plugins", "tinygan", "--preset", "test", "--dataset", "shapes", "--vocab-size", "50"]
    assert main(argv + ["--json"], plugins=tiny_plugins) == 0
    report = json.loads(capsys.readouterr().out)
    info = tiny_plugins.method("tinygan")
    cfg = build_config("tinygan", info.defaults, preset="test", dataset="shapes")
    assert report["method"] == "tinygan"
    assert report["generator"] == sum(p.numel() for p in build_generator(cfg).parameters())
    # TinyDiscriminator: conv 3→4 (3×3) + linear 4→1, one per stage
    assert report["discriminators"] == [(3 * 4 * 9 + 4) + (4 + 1)] * 2
    assert report["other"] == {}
    assert main(argv, plugins=tiny_plugins) == 0
    assert "generator" in capsys.readouterr().out


@pytest.mark.slow
def test_train_and_table_with_the_out_of_tree_method(tiny_plugins, results_root, capsys):
    if "shapes" not in tiny_plugins.datasets():
        pytest.skip("the built-in shapes data set is not registered yet")
    rc = main(["train", "--plugins", "tinygan", "--dataset", "shapes", "--preset", "test", "--seed", "1"],
              plugins=tiny_plugins)
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    run = Path(out[-1])  # the run directory is printed last
    assert run.parent == results_root and run.name.startswith("tinygan-shapes-s1-")
    assert (run / "config.yaml").exists() and any((run / "checkpoints").iterdir())
    log = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines() if l.strip()]
    assert log and all(k in log[-1]["terms"] for k in ("d_0", "d_1", "g_adv_0", "g_adv_1", "kl"))
    assert main(["table", run.name, "--format", "csv"], plugins=tiny_plugins) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("tinygan,reproduced")
