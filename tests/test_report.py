"""`harness report` and the report.html `harness run` writes (issue 18): a self-contained page whose sections come in
order, whose table cells are the records' values, whose images all decode and which needs no network; curves
smoothed by a debiased EMA; a headless-Chromium rendering that is not blank."""
from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core_tiny_method import TinyMethod
from harness.cli import main
from harness.contract.plugins import build_plugins
from harness.reporting.report import SECTIONS, ReportRun, config_differences, image_run_images
from harness.reporting.plots import curves_figure
from harness.core.rundir import RunDir
from harness.core.runfiles import RunInfo
from sixteen_bit import write_16bit


class Page(HTMLParser):
    """What the tests read from the page: section ids in order, <img> sources, the results table's cells (text,
    markers excluded), every URL-bearing attribute, the text of each section, scripts and stylesheets."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.rows: list[list[str]] = []
        self.text: dict[str, str] = {}
        self._in_table = self._in_sup = False
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.sections.append(a.get("id"))
        if tag == "img":
            self.images.append(a.get("src", ""))
        for k in ("src", "href", "data", "poster"):
            if a.get(k):
                self.urls.append(a[k])
        if tag == "table" and a.get("class") == "results":
            self._in_table = True
        if self._in_table and tag == "tr":
            self.rows.append([])
        if self._in_table and tag in ("td", "th"):
            self._cell = []
        if tag == "sup":
            self._in_sup = True

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "sup":
            self._in_sup = False

    def handle_data(self, data):
        if self.sections:
            self.text[self.sections[-1]] = self.text.get(self.sections[-1], "") + data
        if self._cell is not None and not self._in_sup:
            self._cell.append(data)


def decode_png(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,"), uri[:40]
    im = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1], validate=True)))
    im.load()
    return im


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    """A `test` session of tinygan and ecagan (attention maps), evaluated with rp (ok) and is (skipped: no
    Inception weights), made with `harness run` in an isolated environment."""
    base = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("results", "weights", "torch_home", "home"):
            (base / name).mkdir()
        mp.setenv("HARNESS_RESULTS", str(base / "results"))
        mp.setenv("HARNESS_WEIGHTS", str(base / "weights"))
        mp.setenv("TORCH_HOME", str(base / "torch_home"))
        mp.setenv("HOME", str(base / "home"))
        mp.setenv("XDG_CACHE_HOME", str(base / "home" / ".cache"))
        plugins = build_plugins(extra=[TinyMethod(base / "tiny")])
        argv = ["run", "--plugins", "tinygan,ecagan", "--dataset", "shapes", "--preset", "test",
                "--metrics", "rp,is", "--set", "train.log_every=1"]
        assert main(argv, plugins=plugins) == 0
    (path,) = [p for p in (base / "results").iterdir() if not p.name.startswith(".")]
    return path


def _latest(records: list, metric: str) -> dict:
    return [r.to_json() for r in records if r.metric == metric][-1]


@pytest.mark.slow
def test_run_writes_a_self_contained_report_whose_table_holds_the_records(session):
    page_text = (session / "report.html").read_text()
    page = Page(page_text)
    assert page.sections == list(SECTIONS)  # in the order
    # no network: no script at all, no stylesheet link, every URL an embedded PNG or an in-page anchor
    assert "script" not in page.tags and "link" not in page.tags
    assert all(u.startswith("data:image/png;base64,") or u.startswith("#") for u in page.urls), page.urls
    style = page_text.split("<style>")[1].split("</style>")[0]
    assert not re.search(r"https?://|@import|url\(", style)  # the inline style fetches no font or sheet
    # every embedded image decodes; one comparison sheet, ecagan's attention maps, 2 curve plots, 2 training sheets
    sizes = [decode_png(u).size for u in page.images]
    assert len(sizes) == 1 + 1 + 2 + 2 and all(w > 10 and h > 10 for w, h in sizes)

    # the table: its cells are the records' values; a metric skipped everywhere reads as in table.md: no column,
    # and the line under the table says it was not computed and why (issue 19)
    head, *rows = page.rows
    assert head[0] == "Method"
    col = {h.split(" (")[0]: i for i, h in enumerate(head)}  # display names: "R-precision (%) ↑ [a]"
    by_label = {r[0]: r for r in rows}
    assert "IS" not in col
    # header and cell footnote markers are superscripts, not text (the page uses table_cells.rows_to_cells)
    assert re.search(r"<th>R-precision \(%\) ↑<sup>\[a\]</sup></th>", page_text), page_text.split("<thead>")[1][:300]
    assert "Not computed: IS: Inception weights not installed" in page.text["results"]
    for method, shown in (("tinygan", "tinygan"), ("ecagan", "ECAGAN")):  # rows named by display name
        records = RunDir(session / f"{method}-s0").read_records()
        rp = _latest(records, "rp")
        value, std = (float(x) for x in re.findall(r"[-\d.]+", by_label[shown][col["R-precision"]])[:2])
        assert math.isclose(value, rp["value"], abs_tol=0.006) and math.isclose(std, rp["std"], abs_tol=0.006)
        assert _latest(records, "is")["status"] == "skipped"
    # the same cells as table.md (the same code)
    md = [line for line in (session / "table.md").read_text().splitlines() if line.startswith("| ")]
    md_rows = [[re.sub(r" \[[a-z,]+\]$", "", c.strip()).strip("*") for c in line.strip("|").split(" | ")]
               for line in md]
    assert md_rows == [[re.sub(r" \[[a-z,]+\]$", "", c.strip()) for c in r] for r in page.rows]

    # per run: device, precision, wall time, environment from run.json, the checkpoint's SHA-256
    info = json.loads((session / "ecagan-s0" / "run.json").read_text())
    assert info["finished"] and info["environment"]["torch"]
    runs_text = page.text["runs"]
    ckpt = next((session / "ecagan-s0" / "checkpoints").glob("*.pt"))
    import hashlib

    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() in runs_text
    assert info["started"] in runs_text and info["environment"]["torch"] in runs_text
    assert all("time" in e for e in RunDir(session / "ecagan-s0").read_log())  # timestamped log entries
    assert "model.z_dim" in runs_text  # a config key that differs between the methods


@pytest.mark.slow
def test_report_command_reports_old_runs_as_not_recorded(session, tmp_path):
    """A run made before run.json and log times: `harness report RUN --out` says "not recorded"."""
    old = tmp_path / "old" / "tinygan-s0"
    shutil.copytree(session / "tinygan-s0", old)
    (old / "run.json").unlink()
    log = [json.loads(line) for line in (old / "log.jsonl").read_text().splitlines()]
    (old / "log.jsonl").write_text("".join(json.dumps({k: v for k, v in e.items() if k != "time"}) + "\n"
                                           for e in log))
    plugins = build_plugins(extra=[TinyMethod(tmp_path / "tiny")])
    out = tmp_path / "r.html"
    assert main(["report", str(old), "--out", str(out)], plugins=plugins) == 0
    page = Page(out.read_text())
    assert page.sections == list(SECTIONS)
    assert page.text["runs"].count("not recorded") >= 4  # device, precision, started/finished, log time


@pytest.mark.slow
def test_no_eval_session_report_says_not_evaluated_and_several_sessions_need_out(results_root, tmp_path, capsys):
    plugins = build_plugins(extra=[TinyMethod(tmp_path / "tiny")])
    argv = ["run", "--plugins", "tinygan", "--dataset", "shapes", "--preset", "test", "--no-eval"]
    assert main(argv, plugins=plugins) == 0
    assert main(argv, plugins=plugins) == 0
    first, second = sorted(p for p in results_root.iterdir() if not p.name.startswith("."))
    page = Page((first / "report.html").read_text())
    assert page.sections == list(SECTIONS) and "not evaluated" in page.text["results"]
    capsys.readouterr()
    assert main(["report", str(first / "tinygan-s0"), str(second / "tinygan-s0")], plugins=plugins) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"harness: error: the runs lie in 2 directories ({first}, {second}), and report.html goes beside "
                   f"the runs only when they share one; give --out FILE"]
    out = tmp_path / "both.html"
    assert main(["report", str(first / "tinygan-s0"), str(second / "tinygan-s0"), "--out", str(out)],
                plugins=plugins) == 0
    assert len(Page(out.read_text()).images) >= 2
    # a session named by the id `harness run` printed, as a run is
    (first / "report.html").unlink()
    assert main(["report", first.name], plugins=plugins) == 0 and (first / "report.html").is_file()
    capsys.readouterr()
    assert main(["table", first.name, "--format", "csv"], plugins=plugins) == 0
    assert [line.split(",")[0] for line in capsys.readouterr().out.splitlines() if line] == ["row", "tinygan"]


def _independent_debiased_ema(values: list[float], w: float) -> list[float]:
    """Closed form: m_t = Σ_{i≤t} (1−w)·w^(t−i)·x_i, debiased by 1 − w^(t+1) (t from 0)."""
    return [sum((1 - w) * w ** (t - i) * values[i] for i in range(t + 1)) / (1 - w ** (t + 1))
            for t in range(len(values))]


def test_curves_are_the_debiased_ema_of_a_hand_written_log(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    d = [2.0, 1.5, 1.7, 0.9, 1.1, 0.4, 0.8]
    lines = [{"step": 10 * (i + 1), "epoch": 0, "terms": {"d_64": v, "g_adv_64": 3 - v}, "loss_d": v,
              "loss_g": 3 - v, "images_per_s": 100.0 + i} for i, v in enumerate(d)]
    run.log_path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    other = [{"step": 5, "loss_d": 1.0}, {"step": 15, "loss_d": 3.0}]
    fig = curves_figure([("a s0", run.read_log()), ("a s1", other)])
    lines_by_gid = {line.get_gid(): line for ax in fig.axes for line in ax.get_lines() if line.get_gid()}
    smoothed = lines_by_gid["smoothed:d_64:a s0"]
    assert list(smoothed.get_xdata()) == [10, 20, 30, 40, 50, 60, 70]
    assert smoothed.get_ydata() == pytest.approx(_independent_debiased_ema(d, 0.9), rel=1e-12)
    speed = lines_by_gid["smoothed:images_per_s:a s0"]
    assert speed.get_ydata() == pytest.approx(_independent_debiased_ema([100.0 + i for i in range(7)], 0.9))
    # seeds overlaid: the second run's loss_d in the same panel, with its own smoothing; raw values drawn faint
    panel = lines_by_gid["smoothed:loss_d:a s1"].axes
    assert lines_by_gid["smoothed:loss_d:a s0"].axes is panel
    assert lines_by_gid["smoothed:loss_d:a s1"].get_ydata() == pytest.approx(_independent_debiased_ema([1, 3], .9))
    raw = [line for line in panel.get_lines() if not line.get_gid()]
    assert [list(r.get_ydata()) for r in raw] == [d, [1.0, 3.0]] and all(r.get_alpha() < 0.5 for r in raw)


def test_config_differences_are_those_that_differ_from_another_method():
    a = {"method": "a", "seed": 0, "model": {"z_dim": 100, "only_a": 1}, "train": {"lr": 2e-4}}
    b = {"method": "b", "seed": 0, "model": {"z_dim": 16}, "train": {"lr": 2e-4}}
    a1 = {**a, "seed": 1}
    got = config_differences([("a", a), ("a", a1), ("b", b)])
    assert got[0] == {"method": "a", "model.z_dim": 100, "model.only_a": 1}
    assert got[2] == {"method": "b", "model.z_dim": 16, "model.only_a": "not recorded"}


def test_image_run_shows_its_images_of_the_comparison_captions(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rows = ["file,image_key,caption_index,caption,caption_tokens"]
    for i, (caption, colour) in enumerate([("A red circle.", "red"), ("a blue square", "blue")]):
        Image.new("RGB", (32, 32), colour).save(folder / f"{i}.png")
        rows.append(f"{i}.png,k{i},0,{caption},{caption.lower().strip('.')}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    run = RunDir(tmp_path / "images-ext")
    info = RunInfo(kind="images", label="ext", dataset="shapes", source=str(folder))
    got = image_run_images(ReportRun(run, info, {}, "ext", "shapes", None, "ext"),
                           ["a blue square", "a green star", "a red circle"])
    assert [c for c, _ in got] == ["a blue square", "a red circle"]
    assert Image.open(io.BytesIO(got[1][1])).convert("RGB").getpixel((5, 5)) == (255, 0, 0)


def test_image_run_16bit_image_is_shown_by_its_high_byte(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    grey = np.full((32, 32), 0x40, dtype=np.uint8)
    expected = write_16bit(folder / "0.png", Image.fromarray(grey), "png-I;16")
    (folder / "manifest.csv").write_text("file,image_key,caption_index,caption,caption_tokens\n"
                                         "0.png,k0,0,a red circle,a red circle\n")
    info = RunInfo(kind="images", label="ext", dataset="shapes", source=str(folder))
    ((_, png),) = image_run_images(ReportRun(RunDir(tmp_path / "images-ext"), info, {}, "ext", "shapes", None, "ext"),
                                   ["a red circle"])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), expected)


def _image_folder(folder: Path, captions: list[tuple[str, str]]) -> str:
    """PNG files 0.png … of the given (caption, colour) pairs and their manifest text."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["file,image_key,caption_index,caption,caption_tokens"]
    for i, (caption, colour) in enumerate(captions):
        Image.new("RGB", (32, 32), colour).save(folder / f"{i}.png")
        rows.append(f"{i}.png,k{i},0,{caption},{caption}")
    return "\n".join(rows) + "\n"


def _image_report_run(tmp_path: Path, folder: Path, manifest: Path) -> ReportRun:
    from harness.evaluation.manifest import manifest_sha256

    info = RunInfo(kind="images", label="ext", dataset="shapes", source=str(folder),
                   manifest={"path": str(manifest), "sha256": manifest_sha256(manifest)})
    return ReportRun(RunDir(tmp_path / "images-ext"), info, {}, "ext", "shapes", None, "ext")


def test_image_run_with_its_manifest_elsewhere_shows_the_evaluated_folders_images(tmp_path):
    # `evaluate-images DIR --manifest FILE`: the rows name files of DIR, not of FILE's folder
    folder = tmp_path / "images"
    manifest = tmp_path / "elsewhere" / "m.csv"
    manifest.parent.mkdir()
    manifest.write_text(_image_folder(folder, [("a red circle", "red")]))
    Image.new("RGB", (32, 32), "blue").save(manifest.parent / "0.png")  # a decoy beside the manifest
    ((_, png),) = image_run_images(_image_report_run(tmp_path, folder, manifest), ["a red circle"])
    assert Image.open(io.BytesIO(png)).convert("RGB").getpixel((5, 5)) == (255, 0, 0)


def test_image_run_manifest_changed_since_the_evaluation_is_not_read(tmp_path, capsys):
    folder = tmp_path / "images"
    manifest = folder / "manifest.csv"
    manifest.write_text(_image_folder(folder, [("a red circle", "red")]))
    run = _image_report_run(tmp_path, folder, manifest)
    manifest.write_text(manifest.read_text().replace("0.png", "../../secret.png"))  # edited after scoring
    assert image_run_images(run, ["a red circle"]) == []
    # a run.json naming another file (its digest not the recorded one) is not read either
    other = tmp_path / "other" / "m.csv"
    other.write_text(_image_folder(tmp_path / "other", [("a red circle", "red")]).replace("k0", "another key"))
    run.info.manifest["path"] = str(other)
    assert image_run_images(run, ["a red circle"]) == []


def test_image_run_decompression_bomb_is_a_placeholder_not_decoded(tmp_path, capsys):
    folder = tmp_path / "images"
    manifest = folder / "manifest.csv"
    manifest.write_text(_image_folder(folder, [("a red circle", "red"), ("a blue square", "blue")]))
    Image.new("1", (10_000, 6_000)).save(folder / "0.png")  # 60 million pixels in a few kilobytes
    got = dict(image_run_images(_image_report_run(tmp_path, folder, manifest), ["a red circle", "a blue square"]))
    assert Image.open(io.BytesIO(got["a blue square"])).convert("RGB").getpixel((5, 5)) == (0, 0, 255)
    placeholder = Image.open(io.BytesIO(got["a red circle"]))
    assert placeholder.size[1] == 40  # the placeholder's height, not a thumbnail of the 6,000-pixel-high file
    err = capsys.readouterr().err
    assert "0.png cannot be shown" in err and "10000×6000 pixels, more than the 50,000,000" in err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless browser: no `chromium` on PATH "
                                             "(Debian: apt-get install chromium)")
def test_chromium_renders_a_test_session_report(session, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1280,2000", f"--screenshot={shot}", (session / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    im = Image.open(shot).convert("RGB")
    colours = im.getcolors(maxcolors=im.width * im.height)
    common = max(colours)[0]
    assert 1 - common / (im.width * im.height) > 0.01


def test_metric_curves_from_records_of_evaluations_during_training():
    from harness.core.runfiles import Record
    from harness.reporting.plots import metric_figure

    records = [Record.from_json(d) for d in [{"metric": "rp", "step": 10, "value": 0.2, "status": "ok"},
               {"metric": "fid", "step": 10, "value": None, "status": "skipped"},
               {"metric": "rp", "step": 20, "value": 0.5, "status": "ok"},
               {"metric": "rp", "step": 20, "value": 0.6, "status": "ok"},  # re-evaluated: the later one counts
               {"metric": "probe_acc", "step": 20, "value": 40.0, "status": "ok"}]]  # one step: no curve
    fig = metric_figure([("m s0", records)])
    (ax,) = [a for a in fig.axes if a.get_visible()]
    assert ax.get_title() == "rp"
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == [10, 20] and list(line.get_ydata()) == [0.2, 0.6]
    assert metric_figure([("m s0", records[1:2] + records[4:])]) is None


def test_image_run_note_says_why_no_image_is_shown(tmp_path):
    from harness.reporting.report import _image_run_note

    folder = tmp_path / "images"
    manifest = folder / "manifest.csv"
    manifest.write_text(_image_folder(folder, [("a red circle", "red")]))
    run = _image_report_run(tmp_path, folder, manifest)
    assert _image_run_note(run, []) == ("no comparison captions: no trained run of this data set has a checkpoint "
                                        "to draw them")
    assert _image_run_note(run, ["a green star"]) == "its manifest lists none of these captions"
    manifest.write_text("edited")
    assert _image_run_note(run, ["a green star"]).startswith("no manifest as evaluated was found")
