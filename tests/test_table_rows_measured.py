"""Rows say what they measured: a row evaluated before its run's final checkpoint, an image run whose images were
resized, and methods named by their display names, in every table format and the report."""
from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

import pytest

from harness.contract.plugins import build_plugins
from harness.contract.types import MethodInfo
from harness.core.checkpoint import checkpoint_path
from harness.core.rundir import RunDir
from harness.reporting.table_cells import rows_to_cells
from harness.reporting.table_render import cells_to_latex, cells_to_markdown
from harness.reporting.tables import TableOptions, build_table, write_table

FIXTURE = Path(__file__).parent / "fixtures" / "table_session"
NAMES = {"attngan": "AttnGAN", "dmgan": "DM-GAN", "ecagan": "ECAGAN", "caegan": "CAE-GAN", "dfgan": "DF-GAN"}


@pytest.fixture(scope="module")
def plugins():
    return build_plugins()


def runs_of(tmp_path: Path, *names: str) -> list[RunDir]:
    """Copies of the fixture session's runs ``names`` (the fixture stays as committed)."""
    return [RunDir(shutil.copytree(FIXTURE / n, tmp_path / n)) for n in names]


def label_notes(table, label: str) -> list[str]:
    """The footnote texts on row ``label``'s label cell, as Markdown, LaTeX and the HTML report print them."""
    cells = rows_to_cells(table)
    notes = dict(cells.footnotes)
    (row,) = [r for r in cells.rows if r.cells[0].text == label]
    return [notes[m] for m in row.cells[0].markers]


def csv_rows(plugins, runs) -> dict[str, dict[str, str]]:
    return {r["row"]: r for r in csv.DictReader(io.StringIO(write_table(plugins, runs, fmt="csv")))}


def test_built_in_methods_declare_display_names(plugins, tmp_path):
    assert {n: plugins.method(n).display_name for n in NAMES} == NAMES
    assert MethodInfo(name="mygan", paper="", defaults=tmp_path).display_name == "mygan"  # none given: the id


def test_rows_reported_rows_and_claims_use_display_names(plugins, tmp_path):
    runs = runs_of(tmp_path, "0-dmgan-s0", "4-ecagan-s0", "6-caegan-s0")
    md = write_table(plugins, runs, TableOptions(with_paper_numbers=True), fmt="markdown")
    labels = [line.split(" | ")[0].lstrip("| ").split(" [")[0] for line in md.splitlines()[2:9]]
    assert labels == ["DM-GAN", "DM-GAN (reported)", "ECAGAN (model.upsample=nearest)", "ECAGAN (reported)",
                      "CAE-GAN (model.attention_mask=reference)", "CAE-GAN (reported)", "real images"]
    assert "+2.53 % vs DM-GAN" in md and "vs dmgan" not in md
    tex = write_table(plugins, runs, TableOptions(with_paper_numbers=True), fmt="latex")
    assert r"DM-GAN (reported)\textsuperscript" in tex


def test_report_and_sheets_name_runs_as_the_table(plugins, tmp_path):
    from harness.reporting.report import _report_run
    from harness.runs.info import run_label

    (run,) = runs_of(tmp_path, "4-ecagan-s0")
    shown = _report_run(plugins, run)
    assert (shown.label, shown.name) == ("ECAGAN (model.upsample=nearest)", "ECAGAN")
    assert run_label(plugins, run) == build_table(plugins, [run]).rows[0].label == shown.label


def test_a_row_evaluated_before_the_final_checkpoint_says_so(plugins, tmp_path):
    seed0, seed1 = runs_of(tmp_path, "0-dmgan-s0", "1-dmgan-s1")  # evaluated at steps 4 and 2; train.max_steps 4
    assert label_notes(build_table(plugins, [seed1]), "DM-GAN") == ["evaluated before the final checkpoint: at "
                                                                    "step 2 of 4"]
    table = build_table(plugins, [seed0, seed1])
    assert label_notes(table, "DM-GAN") == ["evaluated before the final checkpoint: seed 1 at step 2 of 4"]
    cells = rows_to_cells(table)
    assert re.search(r"^\| DM-GAN \[[a-z]\] \| \*\*4\.47", cells_to_markdown(cells), re.M)
    assert r"DM-GAN\textsuperscript{" in cells_to_latex(cells)
    row = csv_rows(plugins, [seed0, seed1])["DM-GAN"]
    assert (row["step"], row["final_step"]) == ("4;2", "4;4")
    checkpoint_path(seed0, 6).parent.mkdir(parents=True, exist_ok=True)
    checkpoint_path(seed0, 6).write_bytes(b"")  # the final checkpoint is the newest one saved, when there is one
    assert csv_rows(plugins, [seed0])["DM-GAN"]["final_step"] == "6"
    assert label_notes(build_table(plugins, [seed0]), "DM-GAN") == ["evaluated before the final checkpoint: at "
                                                                    "step 4 of 6"]
    (done,) = runs_of(tmp_path, "2-attngan-s0")
    assert label_notes(build_table(plugins, [done]), "AttnGAN") == []
    assert csv_rows(plugins, [done])["AttnGAN"]["step"] == "4"


def test_an_image_run_with_resized_images_says_so(plugins, tmp_path):
    (images,) = runs_of(tmp_path, "images-stackgan")  # its records: 2 images resized to 256 (PIL bicubic)
    assert label_notes(build_table(plugins, [images]), "StackGAN++ (images)") == [
        "2 of 30,000 images resized to 256x256 (PIL bicubic) before scoring"]
    row = csv_rows(plugins, [images])["StackGAN++ (images)"]
    assert (row["resized"], row["resized_from"], row["resized_to"], row["resize_filter"], row["step"]) == (
        "2", "", "256x256", "PIL bicubic", "")
