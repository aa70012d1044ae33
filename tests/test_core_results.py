"""Run directories and records (DESIGN.md §10): unique ids, never reusing a directory, RUN resolution."""
from __future__ import annotations

import json
import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from harness.core import rundir as results
from harness.util.errors import HarnessError
from harness.core.runfiles import RECORD_FIELDS, Record
from harness.core.rundir import (RunDir, atomic_write_text, find_runs, new_eval_id,
                             new_session_dir, read_jsonl, resolve_run, results_root)


def test_results_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_RESULTS", str(tmp_path / "env"))
    assert results_root(tmp_path / "arg") == tmp_path / "arg"
    assert results_root() == tmp_path / "env" and (tmp_path / "env").is_dir()
    monkeypatch.delenv("HARNESS_RESULTS")
    monkeypatch.chdir(tmp_path)
    assert results_root() == Path("results")


def test_concurrent_sessions_and_runs_get_different_directories(tmp_path):
    n = 8
    barrier = threading.Barrier(n)
    out: list[Path] = []

    def make(kind: str) -> None:
        barrier.wait()
        out.append(new_session_dir(tmp_path) if kind == "session" else RunDir.create(tmp_path, stem="m-shapes-s0").path)

    for kind in ("session", "run"):
        out.clear()
        threads = [threading.Thread(target=make, args=(kind,)) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(out)) == n and all(p.is_dir() for p in out)


def _session_in_child(root: str, queue) -> None:
    queue.put(str(new_session_dir(Path(root))))


def test_two_processes_started_at_once_get_different_ids(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_session_in_child, args=(str(tmp_path), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    paths = {queue.get(timeout=5) for _ in procs}
    assert len(paths) == 2


def test_a_taken_id_is_never_reused(tmp_path, monkeypatch):
    tokens = iter(["aaaa", "aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr(results.secrets, "token_hex", lambda n: next(tokens))
    monkeypatch.setattr(results.time, "strftime", lambda fmt: "20260101-000000")
    first = new_session_dir(tmp_path)
    (first / "marker").write_text("mine")
    second = new_session_dir(tmp_path)  # collides twice, then gets a fresh id
    assert first.name == "20260101-000000-aaaa" and second.name == "20260101-000000-bbbb"
    assert (first / "marker").read_text() == "mine" and not any(second.iterdir())


def test_a_named_run_directory_that_exists_is_refused(tmp_path):
    run = RunDir.create(tmp_path, name="ecagan-s0")
    assert run.checkpoints.is_dir() and run.samples.is_dir()
    (run.path / "records.jsonl").write_text("{}\n")
    with pytest.raises(HarnessError, match="exists already"):
        RunDir.create(tmp_path, name="ecagan-s0")
    assert (run.path / "records.jsonl").read_text() == "{}\n"


def test_records_round_trip_and_schema(tmp_path):
    run = RunDir.create(tmp_path, name="r")
    eid = new_eval_id()
    rec = Record(method="m", dataset="shapes", seed=0, metric="rp", value=0.5, std=0.01, std_over="folds", eval_id=eid,
                 protocol={"num_images": 10}, extra={"step": 7})
    line = rec.to_json()
    assert list(line)[: len(RECORD_FIELDS)] == list(RECORD_FIELDS) and line["step"] == 7 == rec.step
    run.append_records([rec])
    run.append_records([Record(method="m", dataset="shapes", seed=0, metric="fid", status="skipped",
                               reason="no weights", eval_id=eid)])
    got = run.read_records()
    assert got[0] == rec and got[1].status == "skipped" and got[1].value is None
    assert [json.loads(s) for s in run.records_path.read_text().splitlines()] == [rec.to_json(), got[1].to_json()]
    with pytest.raises(ValueError, match="record fields"):
        Record(method="m", dataset="shapes", seed=0, metric="rp", extra={"value": 1.0})
    assert len(run.read_records()) == 2
    run.append_log({"step": 1, "loss": 2.0})
    assert read_jsonl(run.log_path) == [{"step": 1, "loss": 2.0}]


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "table.md"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two" and os.listdir(tmp_path) == ["table.md"]


def _run(parent: Path, name: str) -> RunDir:
    run = RunDir.create(parent, name=name)
    run.config_path.write_text("method: m\n")
    return run


def test_resolve_run_by_path_id_or_nested_id(tmp_path):
    root = tmp_path / "results"
    direct = _run(root, "m-shapes-s0-1234")
    nested = _run(root / "20260101-000000-abcd", "ecagan-s0")
    assert resolve_run(str(direct.path), root).path == direct.path
    assert resolve_run("m-shapes-s0-1234", root).path == root / "m-shapes-s0-1234"
    assert resolve_run("ecagan-s0", root).path == nested.path
    _run(root / "20260101-000000-ffff", "ecagan-s0")
    with pytest.raises(HarnessError, match="ambiguous"):
        resolve_run("ecagan-s0", root)
    with pytest.raises(HarnessError, match="no run 'nosuch'"):
        resolve_run("nosuch", root)
    with pytest.raises(HarnessError, match="not a run directory"):
        RunDir(tmp_path).config_dict()


def test_find_runs_skips_caches(tmp_path):
    root = tmp_path / "results"
    a = _run(root / "s1", "a-s0")
    b = _run(root, "b-s0")
    cache_cfg = root / ".cache" / "damsm" / "k"
    cache_cfg.mkdir(parents=True)
    (cache_cfg / "config.yaml").write_text("x: 1\n")
    found = [r.path for r in find_runs([root])]
    assert sorted(found) == sorted([a.path, b.path])
    assert [r.path for r in find_runs([a.path])] == [a.path]
    assert json.dumps([str(p) for p in found])  # plain paths
