"""Faults seen in the field (issue 13 items 5-9): a damaged config.yaml, a full disk while checkpointing or
appending records, torn JSON lines, run ids that leave the results root or reach a glob, ``--rp-encoder RUN``."""
from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.util.errors import HarnessError
from harness.core.runfiles import Record
from harness.core.rundir import RunDir, read_jsonl, resolve_run
from harness.core import checkpoint as ck
from harness.util import atomic
from test_tables import ALPHA, make_plugins, write_run


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ---- item 5: a damaged config.yaml ----------------------------------------------------------------------------
BROKEN = {
    "syntax": "method: alpha\ntrain: {batch_size: [1, 2\n",
    "python tag": "method: !!python/object/apply:os.system ['touch {marker}']\n",
    "not a mapping": "- just\n- a list\n",
    "bad value": "method: alpha\ntrain: {batch_size: lots}\n",
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_damaged_config_is_one_line_and_table_all_skips_it(kind, tmp_path, capsys):
    plugins = make_plugins(tmp_path)
    root = tmp_path / "results"
    good = write_run(root, plugins, "alpha", 0, ALPHA[0])
    bad = write_run(root, plugins, "alpha", 1, ALPHA[1])
    marker = tmp_path / "ran"
    bad.config_path.write_text(BROKEN[kind].replace("{marker}", str(marker)))

    with pytest.raises(HarnessError) as e:
        bad.load_config(plugins)
    assert str(bad.config_path) in str(e.value) and "\n" not in str(e.value)

    assert main(["evaluate", str(bad.path), "--results-dir", str(root)], plugins=plugins) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad.config_path) in err, err

    assert main(["table", "--all", "--format", "csv", "--results-dir", str(root)], plugins=plugins) == 0
    out, err = capsys.readouterr()
    assert "warning" in err and str(bad.path) in err and len(err.strip().splitlines()) == 1, err
    assert "alpha" in out and not marker.exists()
    assert good.path.exists()


# ---- item 6: a full disk while writing a checkpoint ------------------------------------------------------------
def _state(v: float) -> dict:
    return {"generator": {"w": torch.full((3,), v)}, "epoch": 0, "position": 0}


def test_full_disk_checkpoint_is_one_line_naming_the_last_good_one(tmp_path, monkeypatch):
    run = RunDir.create(tmp_path, name="r")
    good = ck.save_checkpoint(run, _state(1.0), 2)

    def full(obj, f, *a, **k):
        f.write(b"PK\x03\x04 partial")
        raise _enospc()

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(HarnessError) as e:
        ck.save_checkpoint(run, _state(2.0), 4)
    msg = str(e.value)
    assert "\n" not in msg and str(good) in msg and f"harness train --resume {run.path}" in msg, msg
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["step-2.pt"]


def test_stale_temporaries_are_swept_at_the_next_save(tmp_path):
    run = RunDir.create(tmp_path, name="r")
    stale = run.checkpoints / ".step-6.pt.tmp-a1b2c3"  # left by a killed process
    stale.write_bytes(b"partial")
    other = run.checkpoints / "notes.txt"
    other.write_text("kept")
    ck.save_checkpoint(run, _state(1.0), 8)
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["notes.txt", "step-8.pt"]


def test_full_disk_during_training_from_the_cli(tmp_path, monkeypatch, capsys):
    from core_tiny_method import TinyMethod
    from harness.contract.plugins import build_plugins

    plugins = build_plugins(extra=[TinyMethod(tmp_path / "tiny")])
    root = tmp_path / "results"
    real_save = torch.save

    def save(obj, f, *a, **k):  # the second checkpoint of the run meets a full disk
        if isinstance(f, (str, Path)) or not Path(f.name).name.startswith(".step-4."):
            return real_save(obj, f, *a, **k)
        f.write(b"partial")
        raise _enospc()

    monkeypatch.setattr(torch, "save", save)
    rc = main(["train", "--plugins", "tinygan", "--dataset", "shapes", "--preset", "test", "--set",
               "train.max_steps=4", "--set", "train.checkpoint_every=2", "--results-dir", str(root)],
              plugins=plugins)
    stderr = capsys.readouterr().err
    err = [line for line in stderr.splitlines() if line.startswith("harness:")]  # progress bars aside
    assert rc == 2 and len(err) == 1 and "Traceback" not in stderr, err
    (run,) = [p for p in root.iterdir() if p.name.startswith("tinygan-")]
    assert "step-2.pt" in err[0] and f"--resume {run}" in err[0], err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-2.pt"]


# ---- item 7: torn JSON lines -----------------------------------------------------------------------------------
def _record(metric: str, value: float) -> Record:
    return Record(method="m", dataset="d", seed=0, metric=metric, value=value, eval_id="e")


@pytest.mark.parametrize("which", ["records", "log"])
def test_torn_tail_is_cut_kept_beside_and_the_next_append_survives(which, tmp_path, capsys):
    run = RunDir.create(tmp_path, name="r")
    append = run.append_records if which == "records" else lambda es: [run.append_log(e.to_json()) for e in es]
    read = (lambda: [r.to_json() for r in run.read_records()]) if which == "records" else run.read_log
    path = run.records_path if which == "records" else run.log_path
    append([_record("is", 1.0)])
    torn = b'{"method": "m", "dataset": "d", "met'
    with open(path, "ab") as f:
        f.write(torn)

    assert [r["value"] for r in read()] == [1.0]  # a reader skips the torn last line, with a warning
    assert "torn" in capsys.readouterr().err

    append([_record("fid", 2.0)])
    assert [r["value"] for r in read()] == [1.0, 2.0]
    (kept,) = list(tmp_path.glob(f"r/{path.name}.torn-*"))
    assert kept.read_bytes() == torn
    assert path.read_bytes().endswith(b"\n") and len(path.read_bytes().splitlines()) == 2


def test_complete_last_line_without_newline_is_kept(tmp_path):
    run = RunDir.create(tmp_path, name="r")
    run.records_path.write_text(json.dumps(_record("is", 1.0).to_json()))
    run.append_records([_record("fid", 2.0)])
    assert [r.value for r in run.read_records()] == [1.0, 2.0]
    assert not list((tmp_path / "r").glob("*.torn-*"))


def test_full_disk_while_appending_records_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    run = RunDir.create(tmp_path, name="r")
    run.append_records([_record("is", 1.0)])
    before = run.records_path.read_bytes()
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise _enospc()

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(HarnessError) as e:
        run.append_records([_record("fid", 2.0), _record("kid", 3.0)])
    monkeypatch.setattr(os, "write", real_write)
    assert str(run.records_path) in str(e.value) and "\n" not in str(e.value)
    assert run.records_path.read_bytes() == before
    run.append_records([_record("fid", 2.0)])
    assert [r["value"] for r in read_jsonl(run.records_path)] == [1.0, 2.0]


# ---- item 8: run ids -------------------------------------------------------------------------------------------
def _run(parent: Path, name: str) -> RunDir:
    run = RunDir.create(parent, name=name)
    run.config_path.write_text("method: m\n")
    return run


def test_run_id_never_leaves_the_results_root(tmp_path, monkeypatch):
    root = tmp_path / "results"
    root.mkdir()
    victim = _run(tmp_path / "outside", "victim")
    elsewhere = tmp_path / "deep" / "cwd"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)  # from here `../outside/victim` is no path; from the root it would be one
    for arg in ("../outside/victim", "a/../../outside/victim", "..", "/etc", "x/y/z"):
        with pytest.raises(HarnessError, match="not a run id|outside"):
            resolve_run(arg, root)
    assert resolve_run(str(victim.path), root).path == victim.path  # an existing run directory path is fine
    (root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(HarnessError, match="outside the results root"):
        resolve_run("link/victim", root)


def test_run_id_never_goes_into_a_glob(tmp_path):
    root = tmp_path / "results"
    nested = _run(root / "20260101-000000-abcd", "ecagan-s0")
    for arg in ("*", "ecagan-s[0]", "ecagan-s?", "**"):
        with pytest.raises(HarnessError):
            resolve_run(arg, root)
    assert resolve_run("ecagan-s0", root).path == nested.path
    assert resolve_run("20260101-000000-abcd/ecagan-s0", root).path == nested.path


def test_cli_refuses_an_id_outside_the_root(tmp_path, monkeypatch, capsys):
    root = tmp_path / "results"
    root.mkdir()
    _run(tmp_path / "outside", "victim")
    work = tmp_path / "deep" / "work"  # `../outside/victim` is no path from here, only from the root
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert main(["evaluate", "../outside/victim", "--results-dir", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a run id" in err[0]
    assert not (tmp_path / "outside" / "victim" / "records.jsonl").exists()


# ---- item 9: --rp-encoder RUN ----------------------------------------------------------------------------------
def test_rp_encoder_accepts_a_run_id(tmp_path):
    from harness.evaluation.metrics.r_precision import resolve_rp_encoder

    root = tmp_path / "results"
    other = _run(root / "20260101-000000-abcd", "attngan-s1")
    assert resolve_rp_encoder("attngan-s1", root) == str(other.path)
    assert resolve_rp_encoder(str(other.path), root) == str(other.path)
    cache = tmp_path / "cache-entry"
    cache.mkdir()
    assert resolve_rp_encoder(str(cache), root) == str(cache)  # a DAMSM cache directory stays a path
    with pytest.raises(HarnessError, match="no run 'nosuch'"):
        resolve_rp_encoder("nosuch", root)


def test_full_disk_in_an_atomic_text_write_leaves_no_temporary(tmp_path, monkeypatch):
    from harness.core.rundir import atomic_write_text

    target = tmp_path / "config.yaml"
    target.write_text("old")

    class Full(io.FileIO):  # the disk fills after the first bytes
        def write(self, data):
            super().write(data[:4])
            raise _enospc()

    monkeypatch.setattr(atomic, "open", Full, raising=False)
    with pytest.raises(OSError, match="no space left"):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"] and target.read_text() == "old"
