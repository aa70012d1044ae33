"""End to end: `harness run` on the built-in shapes data set with the `test` preset, every installed method,
then the tables it writes (DESIGN.md §9)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from harness.cli import main
from readme_method import readme_method_plugins


@pytest.mark.slow
def test_run_every_method_on_shapes_writes_the_tables(results_root, capsys, tmp_path):
    plugins = readme_method_plugins(tmp_path)  # the installed methods and the README's example
    methods = sorted(plugins.methods())
    if not methods:
        pytest.skip("no method plugin installed yet")
    assert "shapes" in plugins.datasets()

    rc = main(["run", "--plugins", ",".join(methods), "--dataset", "shapes", "--preset", "test"], plugins=plugins)
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    session = Path(out[-1])  # the session directory is printed last
    assert session.parent == results_root
    # one protocol: every method (the README's example included) used the one DAMSM pretrained for it
    assert len([p for p in (results_root / ".cache" / "damsm").iterdir() if p.is_dir() and p.name[0] != "."]) == 1
    for m in methods:
        run = session / f"{m}-s0"
        info = json.loads((run / "run.json").read_text())
        assert info["protocol"]["name"] == "shapes/test" and info["label"] == m and info["finished"]
        assert (run / "config.yaml").exists() and (run / "log.jsonl").exists()
        assert any((run / "checkpoints").iterdir()) and (run / "records.jsonl").exists()

    rows = list(csv.DictReader(io.StringIO((session / "table.csv").read_text())))
    reproduced = [r["row"] for r in rows if r["kind"] == "reproduced"]
    names = [plugins.method(m).display_name for m in methods]  # rows are named by display name (id if none)
    assert reproduced == names  # one row per method, in --plugins order
    md = (session / "table.md").read_text()
    for name in names:
        assert f"| {name} |" in md
    tex = (session / "table.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex
    for text in (md, tex):  # for a paper or a README: no machine details, no per-attribute probe columns
        assert str(results_root) not in text and str(Path.home()) not in text and "github.com" not in text
        assert "acc.}" not in text and "colour acc." not in text
    # every cell of a method row holds a number or says why not
    metric_columns = [k for k in rows[0] if f"{k}_std" in rows[0]]
    assert metric_columns, "the table has no metric column"
    for r in rows:
        if r["kind"] == "reproduced":
            for c in metric_columns:
                assert r[c] != "" or r[f"{c}_note"], (r["row"], c)
    if "probe_acc" in metric_columns:  # the shapes probe ran: its per-attribute accuracies are columns too
        for r in rows:
            if r["kind"] == "reproduced" and r["probe_acc"]:
                attributes = [float(r[f"probe_acc.{a}"]) for a in ("colour", "shape", "size", "position")]
                assert float(r["probe_acc"]) == pytest.approx(sum(attributes + [float(r["probe_acc.background"])]) / 5,
                                                              abs=0.05)
