"""Paths read from files the user did not type stay inside the directory they belong to (one helper,
``harness.util.paths.resolve_inside``), and `report` renders a damaged run with placeholders and warnings."""
from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from harness.build import prepare_config
from harness.cli import main
from harness.contract.plugins import build_plugins
from harness.core import checkpoint as ck
from harness.core.rundir import RunDir
from harness.evaluation.manifest import FIELDS
from harness.reporting.plots import log_series
from harness.util.paths import PathOutsideError, resolve_inside

PLUGINS = build_plugins()


@pytest.fixture
def tree(tmp_path) -> Path:
    """``base/`` with a file, a sub-directory, a link inside and links out; ``outside.png`` beside it."""
    base = tmp_path / "base"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "a.png").write_bytes(b"in")
    (tmp_path / "outside.png").write_bytes(b"out")
    (base / "inner-link.png").symlink_to(base / "sub" / "a.png")
    (base / "out-link.png").symlink_to(tmp_path / "outside.png")
    (base / "out-dir").symlink_to(tmp_path)
    return base


@pytest.mark.parametrize("name", ["sub/a.png", "inner-link.png", "sub/../sub/a.png", "missing.png"])
def test_paths_inside_are_kept_as_named(tree: Path, name: str):
    assert resolve_inside(tree, name, "row") == tree / name


@pytest.mark.parametrize("name,words", [("../outside.png", "leads outside"), ("sub/../../outside.png", "leads outside"),
                                        ("out-link.png", "leads outside"), ("out-dir/outside.png", "leads outside"),
                                        ("ABS", "an absolute path"), ("", "empty")])
def test_paths_that_leave_are_refused_in_one_line(tree: Path, name: str, words: str):
    name = str(tree.parent / "outside.png") if name == "ABS" else name
    with pytest.raises(PathOutsideError) as e:
        resolve_inside(tree, name, "manifest row")
    msg = str(e.value)
    assert msg.startswith(f"manifest row {name!r}") and words in msg and "\n" not in msg, msg


@pytest.mark.parametrize("row", ["../outside.png", "ABS", "link.png"])
def test_evaluate_images_refuses_a_manifest_row_outside_its_folder(row: str, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "outside.png")
    (folder / "link.png").symlink_to(tmp_path / "outside.png")
    row = str(tmp_path / "outside.png") if row == "ABS" else row
    (folder / "manifest.csv").write_text(",".join(FIELDS) + f"\n{row},k0,0,a red circle,a red circle\n")
    root = tmp_path / "results"
    rc = main(["evaluate-images", str(folder), "--dataset", "shapes", "--preset", "test", "--name", "ext",
               "--ignore-extra", "--results-dir", str(root)], plugins=PLUGINS)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and f"the manifest's file {row!r}" in err, err
    assert not any(p for p in root.rglob("*") if p.is_file() and ".cache" not in p.parts)


def test_pretrained_json_stages_stay_in_the_run_or_the_cache(tmp_path):
    root = tmp_path / "results"
    run = RunDir.create(root, name="run")
    cache_entry = root / ".cache" / "damsm" / "abc"
    cache_entry.mkdir(parents=True)
    blob = {"stages": {"damsm": "pretrained/damsm", "old": str(cache_entry)}, "vocab_size": 5}
    (run.path / "pretrained.json").write_text(json.dumps(blob))
    assert ck.read_pretrained(run)["stages"] == {"damsm": str(run.path / "pretrained" / "damsm"),
                                                 "old": str(cache_entry.resolve())}
    for bad in ("../../elsewhere", str(tmp_path / "elsewhere")):
        (run.path / "pretrained.json").write_text(json.dumps({"stages": {"damsm": bad}, "vocab_size": 5}))
        with pytest.raises(PathOutsideError, match="pretrained.json: stage 'damsm'"):
            ck.read_pretrained(run)


# ------------------------------------------------------------------------------------------------------
# report of a damaged run
# ------------------------------------------------------------------------------------------------------
def test_non_finite_logged_values_are_skipped_in_plots():
    entries = [{"step": 1, "loss_d": 1.0, "terms": {"kl": 0.5}}, {"step": 2, "loss_d": float("nan"),
                                                                  "terms": {"kl": float("inf")}},
               {"step": float("inf"), "loss_d": 2.0}, {"step": float("nan"), "loss_d": 2.0},
               {"step": 3, "loss_d": 3.0, "terms": "not a mapping", "images_per_s": -float("inf")}]
    assert log_series(entries) == {"kl": ([1], [0.5]), "loss_d": ([1, 3], [1.0, 3.0])}


def _bomb_png(path: Path) -> None:
    """A PNG of 10,000 × 10,000 one-bit pixels: some 10 kB on disk, 100 million pixels once decoded."""
    Image.new("1", (10_000, 10_000)).save(path, optimize=True)


def test_report_of_a_damaged_run_has_placeholders_warnings_and_a_page(tmp_path, capsys):
    root = tmp_path / "results"
    run = RunDir.create(root, name="attngan-shapes-s0-x")
    run.save_config(prepare_config(PLUGINS, "attngan", dataset="shapes", data_dir=None, preset="test",
                                   overrides=[], seed=0))
    good = Image.new("RGB", (48, 16), (0, 128, 0))
    good.save(run.samples / "step-1.png")
    (tmp_path / "secret.png").write_bytes((run.samples / "step-1.png").read_bytes())
    (run.samples / "step-2.png").symlink_to(tmp_path / "secret.png")  # a link out of the run
    (run.samples / "step-3.png").write_bytes(b"GIF89a not a png at all")
    _bomb_png(run.samples / "step-4.png")
    (run.samples / "step-5.png").write_bytes((run.samples / "step-1.png").read_bytes())
    log = ['{"step": 1, "epoch": 0, "loss_d": 1.0, "loss_g": 2.0, "terms": {"d_16": 1.0}}',
           '{"step": 2, "epoch": 0, "loss_d": NaN, "loss_g": Infinity, "terms": {"d_16": -Infinity}}',
           '{"step": Infinity, "epoch": 0, "loss_d": 1.0}', '{"step": 3, "epoch": 0, "loss_d": 0.5, "loss_g": 1.5}']
    run.log_path.write_text("\n".join(log) + "\n")
    (run.path / "pretrained.json").write_text(json.dumps({"stages": {"damsm": "../../../etc"}, "vocab_size": 5}))
    out = tmp_path / "report.html"
    capsys.readouterr()
    assert main(["report", str(run.path), "--out", str(out)], plugins=PLUGINS) == 0
    err = capsys.readouterr().err
    page = out.read_text()
    sheets = {name: data for data, name in re.findall(r'<img src="data:image/png;base64,([^"]+)" '
                                                      r'alt="[^"]* (step-\d\.png)"', page)}
    assert sorted(sheets) == ["step-1.png", "step-3.png", "step-5.png"]  # first, middle and last of five
    shown = {n: Image.open(io.BytesIO(base64.b64decode(d))) for n, d in sheets.items()}
    assert shown["step-1.png"].size == (48, 16) and shown["step-3.png"].size[1] == 40  # the placeholder
    assert f"{run.samples / 'step-3.png'} cannot be shown" in err and "pretrained.json" in err, err
    for name in ("step-2.png", "step-4.png"):  # not picked above: read directly, each one a placeholder
        from harness.reporting.report import run_png

        png = Image.open(io.BytesIO(run_png(run, run.samples / name)))
        assert png.size[1] == 40
    err = capsys.readouterr().err
    assert "leads outside" in err and "100,000,000" not in err and "10000×10000 pixels" in err, err
    assert os.path.getsize(out) > 0
