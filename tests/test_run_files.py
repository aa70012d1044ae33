"""A run's records.jsonl and run.json are read once into ``Record`` and ``RunInfo``: damaged lines and files are
one line naming the file, unknown keys survive a round trip, and a run.json of an older layout (fewer keys) reads.

The runs are copies of the committed table fixture session (``tests/fixtures/table_session``, real built-in
methods, nothing trained)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.rundir import RunDir, read_run_info
from harness.core.runfiles import Record, RunInfo, RunInfoError
from harness.runs.info import mark_finished

SESSION = Path(__file__).parent / "fixtures" / "table_session"
RUN = "2-attngan-s0"  # a trained run with run.json and five records


@pytest.fixture
def session(tmp_path: Path) -> Path:
    copy = tmp_path / "session"
    shutil.copytree(SESSION, copy, ignore=shutil.ignore_patterns("table*", "explain.txt"))
    return copy


def _table(session: Path, capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["table", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_a_record_round_trip_keeps_unknown_keys_in_their_order():
    line = {"method": "m", "dataset": "d", "seed": 1, "metric": "rp", "value": 3, "std": 0.5, "std_over": "folds",
            "status": "ok", "reason": None, "eval_id": "e", "protocol": {"id": "x"}, "step": 7,
            "my_plugin_key": {"a": [1, 2]}, "variant": "v"}
    rec = Record.from_json(line)
    assert (rec.metric, rec.value, rec.step, rec.variant) == ("rp", 3, 7, "v")
    assert rec.extra == {"step": 7, "my_plugin_key": {"a": [1, 2]}, "variant": "v"}
    assert json.dumps(rec.to_json()) == json.dumps(line)  # same keys, same order
    assert Record.from_json(rec.to_json()) == rec


def test_a_record_line_of_an_older_layout_takes_defaults():
    rec = Record.from_json({"metric": "fid", "value": 12.5})
    assert (rec.method, rec.dataset, rec.seed, rec.status, rec.eval_id, rec.protocol, rec.extra) == \
        ("", "", None, "ok", None, {}, {})


@pytest.mark.parametrize("line, why", [
    ('{"value": 1.0, "eval_id": "e"}', "'metric' is not a string (got null)"),
    ('{"metric": "rp", "value": "high"}', "'value' is not an integer or a number (got str)"),
    ('{"metric": "rp", "protocol": [1]}', "'protocol' is not an object (got list)"),
    ('[1, 2]', "not a record (a JSON list, not an object)"),
])
def test_a_damaged_records_line_is_one_warning_naming_the_file_and_the_table_is_unchanged(session, capsys, line,
                                                                                         why):
    run = RunDir(session / RUN)
    rc, before, _ = _table(session, capsys, str(session))
    kept = run.read_records()
    with open(run.records_path, "a") as f:
        f.write(line + "\n")
    assert run.read_records() == kept
    warning = capsys.readouterr().err.strip()
    assert warning == f"harness: warning: {run.records_path}:6: skipped a line that is not a record ({why})"
    rc2, after, err = _table(session, capsys, str(session))
    assert rc == rc2 == 0 and after == before
    assert [ln for ln in err.splitlines() if str(run.records_path) in ln] == [warning]


@pytest.mark.parametrize("text, why", [
    ('{"method": "attngan", "label": ', "Expecting value"),
    ('["attngan"]', "not a run.json object (a JSON list, not an object)"),
    ('{"method": "attngan", "label": 3}', "'label' is not a string (got int)"),
    ('{"method": "attngan", "params": [1]}', "'params' is not an object (got list)"),
])
def test_a_damaged_run_json_is_one_line_naming_it(session, capsys, text, why):
    path = session / RUN / "run.json"
    path.write_text(text)
    with pytest.raises(RunInfoError) as e:
        read_run_info(RunDir(session / RUN))
    assert len(str(e.value).splitlines()) == 1 and str(e.value).startswith(f"{path}: not a readable run.json (")
    assert why in str(e.value)
    rc, _, err = _table(session, capsys, str(session / RUN))  # named: the error
    assert rc != 0 and err.strip().splitlines() == [f"harness: error: {e.value}"]
    rc, out, err = _table(session, capsys, str(session))  # found in a session: skipped with a warning
    assert rc == 0 and f"harness: warning: skipped run {session / RUN}: {e.value}" in err.splitlines()
    assert "AttnGAN" in out  # its other seed's row is still there


def test_an_old_run_json_with_fewer_keys_reads_and_keeps_its_layout(session, capsys):
    run = RunDir(session / RUN)
    rc, before, _ = _table(session, capsys, str(session))
    full = json.loads((run.path / "run.json").read_text())
    old = {"version": 1, "method": "attngan", "dataset": "cub", "seed": 0, "finished": None, "note": "kept"}
    (run.path / "run.json").write_text(json.dumps(old, indent=1))
    info = read_run_info(run)
    assert (info.method, info.label, info.protocol, info.config, info.history) == ("attngan", None, {}, None, [])
    assert info.extra == {"note": "kept"} and info.to_json() == old
    # label and protocol come from config.yaml, as for a run without run.json: the same table
    rc2, after, _ = _table(session, capsys, str(session))
    assert rc == rc2 == 0 and after == before and full["label"] == "attngan"
    mark_finished(run)
    written = json.loads((run.path / "run.json").read_text())
    assert list(written) == list(old) and written["note"] == "kept" and written["finished"]


def test_run_info_round_trip_of_a_written_run_json(session):
    d = json.loads((session / RUN / "run.json").read_text())
    info = RunInfo.from_json(dict(d, plugin_note=[1]))
    assert info.params == d["params"] and info.protocol_values == d["protocol"]["values"]
    assert json.dumps(info.to_json()) == json.dumps(dict(d, plugin_note=[1]))
    info.history.append({"event": "resume"})
    assert list(info.to_json())[-2:] == ["plugin_note", "history"]  # a key set since goes after the file's keys
