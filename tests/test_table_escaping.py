"""Text from users reaches each table format escaped for it: Markdown shows HTML and Markdown syntax as text, CSV
cells cannot start a spreadsheet formula, LaTeX gets escaped labels and captions, a safe \\label key and an
overlong row label shortened so the table compiles; an image run cannot be named like a row the harness writes."""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.cli import main
from harness.contract.plugins import build_plugins
from harness.runs.images import check_label
from harness.util.errors import HarnessError

SESSION = Path(__file__).parent / "fixtures" / "table_session"
IMAGE_RUN = "images-stackgan"


def _session_with_label(tmp_path: Path, label: str) -> Path:
    """The committed fixture session with its image run relabelled (run.json and every record)."""
    copy = tmp_path / "session"
    shutil.copytree(SESSION, copy, ignore=shutil.ignore_patterns("table*", "explain.txt"))
    info_path = copy / IMAGE_RUN / "run.json"
    info = json.loads(info_path.read_text())
    info["label"] = label
    info_path.write_text(json.dumps(info))
    records = copy / IMAGE_RUN / "records.jsonl"
    lines = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
    records.write_text("".join(json.dumps({**r, "label": label}) + "\n" for r in lines))
    return copy


def _table(session: Path, *options: str, capsys) -> str:
    capsys.readouterr()
    assert main(["table", str(session), "--with-paper-numbers", *options]) == 0
    return capsys.readouterr().out


@pytest.fixture(autouse=True)
def _results(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_RESULTS", str(tmp_path / "results"))


def test_markdown_shows_html_and_markdown_syntax_as_text(tmp_path, capsys):
    label = "<img src=x onerror=alert(1)> *bold* [link](http://x) a|b"
    out = _table(_session_with_label(tmp_path, label), "--format", "markdown", "--caption", "<b>Results</b>",
                 capsys=capsys)
    (row,) = [line for line in out.splitlines() if "img src" in line]
    assert r"\<img src=x onerror=alert(1)\> \*bold\* \[link\](http://x) a\|b" in row
    assert not re.search(r"(?<!\\)<", out) and r"\<b\>Results\</b\>" in out  # every < escaped
    assert len(row.split(" | ")) == len(out.splitlines()[2].split(" | "))  # the | in the label split no cell


def test_csv_cells_never_start_a_formula(tmp_path, capsys):
    label = '=HYPERLINK("http://x","click")'
    out = _table(_session_with_label(tmp_path, label), "--format", "csv", capsys=capsys)
    rows = [r for r in csv.reader(io.StringIO(out)) if r]
    (row,) = [r for r in rows if "HYPERLINK" in r[0]]
    assert row[0] == "'" + label
    for r in rows[1:]:  # no text cell starts a formula; numbers (a negative one included) stay numbers
        assert all(not c or c[0] not in "=+@\t\r" for c in r)
        assert all(not c.startswith("-") or _is_number(c) for c in r)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_latex_escapes_label_caption_and_key_and_shortens_long_labels(tmp_path, capsys):
    label = "x" * 5000 + r" \input{/etc/passwd} 100% #1 $"
    out = _table(_session_with_label(tmp_path, label), "--format", "latex", "--caption", r"\input{/etc/passwd}",
                 "--label", r"tab:x}\input{/etc/passwd}", capsys=capsys)
    assert r"\input" not in out
    assert r"\label{tab:x--input-/etc/passwd-}" in out
    (row,) = [line for line in out.splitlines() if line.startswith("xxxx")]
    assert row.split(" & ")[0].startswith("x" * 79) and r"\dots{}" in row and len(row.split(" & ")[0]) < 200


needs_pdflatex = pytest.mark.skipif(shutil.which("pdflatex") is None,
                                    reason="needs pdflatex (Debian texlive-latex-base; CI's fresh machine lacks it)")


@needs_pdflatex
def test_the_payload_table_compiles(tmp_path, capsys):
    label = "x" * 5000 + r" \input{/etc/passwd} 100% #1 $ _ ^ ~ { } & <script>"
    session = _session_with_label(tmp_path, label)
    out = _table(session, "--format", "latex", "--caption", "A & B: 100% {x}", "--label", r"t}\x", capsys=capsys)
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs,graphicx}\\begin{document}\n" + out +
                   "\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", doc.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "/etc/passwd" not in (tmp_path / "doc.log").read_text()


@pytest.mark.parametrize("name", ["real images", "Real Images [protocol 41124b]", "DM-GAN (reported)",
                                  "my gan (Reported)"])
def test_an_image_run_cannot_impersonate_the_tables_own_rows(name):
    with pytest.raises(HarnessError, match="reads like a row the table writes itself") as e:
        check_label(build_plugins(), name)
    assert "\n" not in str(e.value)


def test_a_latex_label_key_that_had_to_change_is_named_in_a_warning(tmp_path, capsys):
    session = _session_with_label(tmp_path, "dmgan")
    capsys.readouterr()
    assert main(["table", str(session), "--format", "latex", "--label", "tab:my results"]) == 0
    captured = capsys.readouterr()
    assert r"\label{tab:my-results}" in captured.out
    assert captured.err.strip() == ("harness: warning: --label 'tab:my results' is written as 'tab:my-results' "
                                    "(a LaTeX label keeps letters, digits and :._-/ only, and is not empty)")
    assert main(["table", str(session), "--format", "latex", "--label", ""]) == 0
    captured = capsys.readouterr()  # an empty label: the default is written, and the warning says so
    assert r"\label{tab:results}" in captured.out and "is written as 'tab:results'" in captured.err
    assert main(["table", str(session), "--format", "latex", "--label", "tab:cub-results"]) == 0
    assert capsys.readouterr().err == ""  # a key LaTeX takes as it is: nothing to say
