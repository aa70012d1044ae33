"""``train --resume`` trains the run its config says: the keys that may change mid-run are applied (learning rates
on the loaded optimisers) and recorded in run.json; any other edit of config.yaml is refused in one line before
anything is written; the run's pretrained encoders are never swapped under its checkpoint."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.contract.plugins import build_plugins
from harness.core.cache import list_entries
from harness.core.checkpoint import latest_checkpoint, load_checkpoint
from harness.core.rundir import RunDir, read_run_info

from core_tiny_method import TinyMethod

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models on one intra-op thread


@pytest.fixture
def plugins(tmp_path):
    return build_plugins(extra=[TinyMethod(tmp_path / "tiny")])


def _train(plugins, root: Path, *args: str) -> RunDir:
    """A 2-step tinygan run (the test preset), its directory."""
    assert main(["train", "--plugins", "tinygan", "--preset", "test", "--results-dir", str(root), *args],
                plugins=plugins) == 0
    (path,) = [p for p in root.iterdir() if p.name.startswith("tinygan-")]
    return RunDir(path)


def _edit(run: RunDir, **values) -> None:
    """Set dotted keys (``train__lr_g`` for train.lr_g) in the run's config.yaml."""
    d = yaml.safe_load(run.config_path.read_text())
    for dotted, v in values.items():
        *parents, leaf = dotted.split("__")
        section = d
        for part in parents:
            section = section[part]
        section[leaf] = v
    run.config_path.write_text(yaml.safe_dump(d, sort_keys=False))


def _snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes())
                                       .hexdigest()) for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_learning_rate_edit_is_set_on_the_optimisers_and_recorded(plugins, tmp_path, capsys):
    root = tmp_path / "results"
    run = _train(plugins, root, "--dataset", "shapes")
    created = run.load_config(plugins)
    assert read_run_info(run).config["train"]["lr_g"] == created.train.lr_g
    new_lr = created.train.lr_g / 20
    _edit(run, train__lr_g=new_lr, train__max_steps=4)
    capsys.readouterr()

    assert main(["train", "--resume", str(run.path)], plugins=plugins) == 0
    out = capsys.readouterr().out
    assert "resume: train.max_steps 2 -> 4 (config.yaml; applied)" in out
    assert ": 4 steps from step 2, batch" in out  # where training picks up
    assert f"resume: train.lr_g {created.train.lr_g:g} -> {new_lr:g} (config.yaml; applied)" in out
    state = load_checkpoint(latest_checkpoint(run))
    assert state["step"] == 4
    assert [g["lr"] for g in state["opt_g"]["param_groups"]] == [new_lr] * len(state["opt_g"]["param_groups"])
    assert {g["lr"] for sd in state["opt_d"] for g in sd["param_groups"]} == {created.train.lr_d}
    info = read_run_info(run)
    assert info.history[-1]["event"] == "resume"
    assert info.history[-1]["changed"] == {"train.max_steps": {"old": 2, "new": 4},
                                              "train.lr_g": {"old": created.train.lr_g, "new": new_lr}}
    assert info.config["train"]["lr_g"] == new_lr and info.config["train"]["max_steps"] == 4

    assert main(["train", "--resume", str(run.path)], plugins=plugins) == 0  # nothing left to train
    assert (f"run {run.path.name} is complete: it is at step 4, and train.max_steps=4 makes 4 (raise it to train "
            f"on)") in capsys.readouterr().out
    _edit(run, train__max_steps=5)  # a second resume names only what changed since the first
    assert main(["train", "--resume", str(run.path)], plugins=plugins) == 0
    assert "resume: train.lr_g" not in capsys.readouterr().out
    assert read_run_info(run).history[-1]["changed"] == {"train.max_steps": {"old": 4, "new": 5}}


@pytest.mark.parametrize("edit", [("pretrain__damsm__max_steps", "pretrain.damsm.max_steps"),
                                  ("model__z_dim", "model.z_dim"), ("data__words_num", "data.words_num")])
def test_an_edit_of_what_the_run_is_is_refused_before_anything_is_written(edit, plugins, tmp_path, capsys):
    root = tmp_path / "results"
    run = _train(plugins, root, "--dataset", "shapes")
    attr, key = edit
    old = run.load_config(plugins).get(key)
    _edit(run, **{attr: old + 1, "train__lr_g": 1e-5})
    before = _snapshot(root)
    capsys.readouterr()

    assert main(["train", "--resume", str(run.path)], plugins=plugins) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{key}: {old} -> {old + 1}" in err, err
    assert "train.lr_g: " not in err  # a key that may change is not among the refused ones
    assert _snapshot(root) == before


def test_the_runs_pretrained_encoders_are_kept_when_the_cache_would_give_others(plugins, tmp_path, shapes_cub_dir,
                                                                                 capsys):
    ddir = tmp_path / "cub"
    shutil.copytree(shapes_cub_dir, ddir)
    root = tmp_path / "results"
    run = _train(plugins, root, "--dataset", "cub", "--data-dir", str(ddir))
    kept = _snapshot(run.path / "pretrained")
    pretrained_json = (run.path / "pretrained.json").read_text()
    damsm_entries = [e.key for e in list_entries(root, "damsm")]
    for image in (ddir / "CUB_200_2011" / "images").rglob("*.jpg"):
        image.write_bytes(image.read_bytes())  # rewritten in place: the DAMSM cache key of this data changes
    _edit(run, train__max_steps=4)
    capsys.readouterr()

    assert main(["train", "--resume", str(run.path)], plugins=plugins) == 0
    out = capsys.readouterr().out
    assert "resume: pretrained stages kept from the run (damsm)" in out and "pretrain damsm" not in out
    assert _snapshot(run.path / "pretrained") == kept
    assert (run.path / "pretrained.json").read_text() == pretrained_json
    assert [e.key for e in list_entries(root, "damsm")] == damsm_entries  # nothing trained
    state = load_checkpoint(latest_checkpoint(run))
    assert state["step"] == 4 and state["pretrained"]["damsm"] == str(run.path / "pretrained" / "damsm")


def test_a_run_whose_run_json_has_no_config_is_checked_on_its_protocol_values(plugins, tmp_path, capsys):
    root = tmp_path / "results"
    run = _train(plugins, root, "--dataset", "shapes")
    info = json.loads((run.path / "run.json").read_text())
    del info["config"], info["history"]  # as written before run.json held the config
    (run.path / "run.json").write_text(json.dumps(info))
    old = run.load_config(plugins).pretrain.damsm.max_steps
    _edit(run, pretrain__damsm__max_steps=old + 1)
    before = _snapshot(root)
    capsys.readouterr()
    assert main(["train", "--resume", str(run.path)], plugins=plugins) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"pretrain.damsm.max_steps: {old} -> {old + 1}" in err, err
    assert _snapshot(root) == before
