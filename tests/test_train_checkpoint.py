"""Checkpoint files: atomic writes, round trip, weights_only refusal, pruning, lookup errors."""
from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
import torch

from harness.util.errors import HarnessError
from harness.core.rundir import RunDir
from harness.core import checkpoint as ck
from harness.core.seed import rng_state


@pytest.fixture
def run(tmp_path) -> RunDir:
    return RunDir.create(tmp_path, name="run")


def _state(value: float) -> dict:
    return {"generator": {"w": torch.full((3,), value)}, "generator_ema": {"w": torch.full((3,), value / 2)},
            "opt_g": {"state": {}, "param_groups": [{"lr": 2e-4, "betas": (0.5, 0.999), "params": [0]}]},
            "rng": rng_state(), "epoch": 1, "position": 3, "vocab_size": 11}


def test_round_trip_keeps_every_field(run):
    path = ck.save_checkpoint(run, _state(1.0), 5)
    assert path.name == "step-5.pt"
    back = ck.load_checkpoint(path)
    assert back["step"] == 5 and back["epoch"] == 1 and back["position"] == 3 and back["vocab_size"] == 11
    assert torch.equal(back["generator"]["w"], torch.full((3,), 1.0))
    assert back["opt_g"]["param_groups"][0]["betas"] == (0.5, 0.999)
    assert torch.equal(back["rng"]["torch"], _state(1.0)["rng"]["torch"])
    assert ck.latest_checkpoint(run) == path


def test_a_failure_mid_write_leaves_the_previous_checkpoint_intact(run, monkeypatch):
    good = ck.save_checkpoint(run, _state(1.0), 2)
    before = good.read_bytes()
    real_save = torch.save

    def crash(obj, f, *a, **k):  # writes half a file, then dies
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(ck.CheckpointWriteError):
        ck.save_checkpoint(run, _state(2.0), 2)  # overwrite of the same step
    with pytest.raises(ck.CheckpointWriteError):
        ck.save_checkpoint(run, _state(2.0), 4)
    monkeypatch.setattr(torch, "save", real_save)
    assert good.read_bytes() == before
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["step-2.pt"]  # no partial, no temp file
    assert torch.equal(ck.load_checkpoint(ck.latest_checkpoint(run))["generator"]["w"], torch.full((3,), 1.0))


class NotATensor:
    pass


def test_a_file_that_needs_code_is_refused_with_one_line(run):
    path = run.checkpoints / "step-1.pt"
    torch.save({"generator": NotATensor()}, path)
    with pytest.raises(HarnessError) as err:
        ck.load_checkpoint(path)
    msg = str(err.value)
    assert "weights_only" in msg and "\n" not in msg and str(path) in msg


def test_pruning_keeps_the_newest(run):
    for s in (1, 2, 3, 4):
        ck.save_checkpoint(run, _state(s), s, keep=2)
    assert list(ck.list_checkpoints(run)) == [3, 4]
    assert ck.latest_checkpoint(run).name == "step-4.pt"
    assert ck.latest_checkpoint(run, 3).name == "step-3.pt"
    with pytest.raises(HarnessError, match="no checkpoint of step 1 .have: 3, 4"):
        ck.latest_checkpoint(run, 1)


def test_no_checkpoint_is_a_one_line_error(run):
    with pytest.raises(HarnessError, match="no checkpoint yet"):
        ck.latest_checkpoint(run)


def test_pretrained_json_round_trip(run, tmp_path):
    """The run keeps each stage's files (<run>/pretrained/<stage>/, hard links to the cache entry) and
    pretrained.json names that copy, relative to the run, beside the cache entry it came from."""
    d = tmp_path / "cache" / "damsm" / "abc"
    (d / "sub").mkdir(parents=True)
    (d / "text_encoder.pth").write_bytes(b"text weights")
    (d / "sub" / "info.json").write_text("{}")
    (d.parent / "abc.lock").write_text("")
    ck.write_pretrained(run, {"damsm": d}, 42)
    kept = run.path / "pretrained" / "damsm"
    blob = json.loads((run.path / "pretrained.json").read_text())
    assert blob["stages"] == {"damsm": "pretrained/damsm"} and blob["sources"] == {"damsm": str(d.resolve())}
    info = ck.read_pretrained(run)
    assert info["vocab_size"] == 42 and info["stages"] == {"damsm": str(kept)}
    assert (kept / "text_encoder.pth").read_bytes() == b"text weights" and (kept / "sub" / "info.json").is_file()
    assert (kept / "text_encoder.pth").stat().st_ino == (d / "text_encoder.pth").stat().st_ino  # a hard link
    from harness.train.pretrain import run_pretrained

    assert run_pretrained(run) == {"damsm": kept}
    ck.write_pretrained(run, {"damsm": d}, 42)  # train --resume: the same files are kept as they are
    assert sorted(p.name for p in (run.path / "pretrained").iterdir()) == ["damsm"]


def test_pretrained_survives_the_cache_and_a_copy(run, tmp_path):
    """A run copied elsewhere, with the cache deleted, still finds its stages; a file system without hard links
    gets copies."""
    import shutil

    d = tmp_path / "cache" / "damsm" / "abc"
    d.mkdir(parents=True)
    (d / "image_encoder.pth").write_bytes(b"image weights")
    with mock.patch("os.link", side_effect=OSError(18, "Invalid cross-device link")):
        ck.write_pretrained(run, {"damsm": d}, 7)
    kept = run.path / "pretrained" / "damsm" / "image_encoder.pth"
    assert kept.stat().st_ino != (d / "image_encoder.pth").stat().st_ino  # a copy
    shutil.rmtree(tmp_path / "cache")
    moved = shutil.copytree(run.path, tmp_path / "elsewhere" / run.path.name)
    stages = ck.read_pretrained(RunDir(moved))["stages"]
    assert stages == {"damsm": str(moved / "pretrained" / "damsm")}
    assert (Path(stages["damsm"]) / "image_encoder.pth").read_bytes() == b"image weights"


def test_pretrained_json_of_older_runs_names_the_cache(run, tmp_path):
    entry = tmp_path / ".cache" / "damsm" / "abc"  # the cache of the results root that holds the run
    (run.path / "pretrained.json").write_text(json.dumps({"stages": {"damsm": str(entry)}, "vocab_size": 5}))
    assert ck.read_pretrained(run)["stages"] == {"damsm": str(entry.resolve())}


def test_aux_state_keeps_buffers_and_trainable_parameters_only():
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    bank = torch.nn.Module()
    bank.register_buffer("memory", torch.arange(4.0))
    state = ck.aux_state({"vgg": frozen, "bank": bank})
    assert list(state) == ["bank"] and torch.equal(state["bank"]["memory"], torch.arange(4.0))
    other = torch.nn.Module()
    other.register_buffer("memory", torch.zeros(4))
    ck.load_aux_state({"bank": other}, state)
    assert torch.equal(other.memory, torch.arange(4.0))
    with pytest.raises(HarnessError, match="auxiliary module 'bank'"):
        ck.load_aux_state({}, state)
