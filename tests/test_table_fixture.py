"""The table files of a committed session are byte-identical to those `harness table` writes today.

``tests/fixtures/table_session`` holds the runs of a small session (written by
``tests/fixtures/make_table_session.py``) and the table files made from them. The test makes them again with
the command line and compares every byte; ``T2I_WRITE_FIXTURES=1`` rewrites the committed files instead (for a
change of the table that is meant).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harness.cli import main

SESSION = Path(__file__).parent / "fixtures" / "table_session"
BASE = ["--with-paper-numbers"]
# committed file -> the `harness table` options that make it
TABLES = {
    "table.md": BASE + ["--format", "markdown", "--columns", "params,speed"],
    "table.tex": BASE + ["--format", "latex", "--columns", "params,speed", "--caption", "CUB results."],
    "table-siunitx.tex": BASE + ["--format", "latex", "--latex-siunitx", "--label", "tab:cub"],
    "table.csv": BASE + ["--format", "csv", "--columns", "params,speed,probe_attributes"],
}


@pytest.fixture
def session(tmp_path: Path, monkeypatch) -> Path:
    """A copy of the fixture session (the table reads nothing else; its files are written beside it)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_RESULTS", str(tmp_path / "results"))
    copy = tmp_path / "session"
    shutil.copytree(SESSION, copy, ignore=shutil.ignore_patterns("table*", "explain.txt"))
    return copy


def regenerate(session: Path, capsys) -> dict[str, bytes]:
    out = {}
    for name, options in TABLES.items():
        assert main(["table", str(session), "--out", str(session / name), *options]) == 0
        out[name] = (session / name).read_bytes()
    capsys.readouterr()
    assert main(["table", str(session), "--explain", *BASE]) == 0
    out["explain.txt"] = capsys.readouterr().out.encode()
    return out


def test_table_files_are_byte_identical(session: Path, capsys):
    made = regenerate(session, capsys)
    if os.environ.get("T2I_WRITE_FIXTURES") == "1":
        for name, data in made.items():
            (SESSION / name).write_bytes(data)
    for name, data in made.items():
        committed = (SESSION / name).read_bytes()
        assert data == committed, f"{name} differs from the committed file"


def test_fixture_covers_the_table(session: Path, capsys):
    """The session exercises what the byte comparison is meant to hold: methods, seeds, a variant, a deviating
    run, a run without run.json, an image run, skips, real-image rows, paper numbers and their footnotes."""
    md = regenerate(session, capsys)["table.md"].decode()
    for text in ("| DM-GAN", "| AttnGAN", "ECAGAN (model.upsample=nearest)", "ECAGAN (deviates: eval.num_images=32)",
                 "CAE-GAN (model.attention_mask=reference)", "StackGAN++ (images)", "real images", "(reported)",
                 "2 seeds", "Not computed: KID", "[a]"):
        assert text in md, text
    assert not (session / "6-caegan-s0" / "run.json").exists()
