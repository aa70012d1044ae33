"""`harness table`: numbers checked against an independent computation on records written by the test."""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest

from core_tiny_method import TinyMethod, TinyRegistry
from harness.cli import main
from harness.build import prepare_config
from harness.util.errors import HarnessError
from harness.contract.plugins import build_plugins, hookimpl
from harness.core.runfiles import Record
from harness.core.rundir import RunDir, new_eval_id
from harness.runs.info import write_run_info
from harness.reporting.table_render import latex_escape
from harness.reporting.tables import RUN_COLUMNS, TableOptions, build_table, explain_table, write_table
from harness.contract.types import ReportedNumber

DIRECTIONS = {"is": "higher", "fid": "lower", "fid_tv": "lower", "kid": "lower", "rp": "higher"}
SKIP_REASON = "missing weight file pt_inception-2015-12-05 (put it into $HARNESS_WEIGHTS)"

# seed -> metric -> (value, std, std_over); "skip" -> skipped record
ALPHA = {
    0: {"is": (4.10, 0.05, "splits"), "fid": (20.5, None, None), "rp": (0.61, 0.01, "folds")},
    1: {"is": (4.30, 0.06, "splits"), "fid": (22.1, None, None), "rp": (0.65, 0.02, "folds")},
    2: {"is": (4.20, 0.04, "splits"), "fid": (21.0, None, None), "rp": (0.63, 0.01, "folds")},
}
BETA = {
    0: {"is": (4.50, 0.05, "splits"), "fid": (25.0, None, None), "rp": (0.70, 0.01, "folds")},
    1: {"is": (4.40, 0.05, "splits"), "fid": (19.0, None, None), "rp": (0.72, 0.01, "folds")},
}
VARIANT = {"is": (3.90, 0.04, "splits"), "fid": (30.0, None, None), "rp": (0.50, 0.02, "folds")}
REAL_RP = (0.52, 0.02, "folds")
REPORTED = [
    ReportedNumber(metric="is", value=4.75, std=0.07, std_over="splits", source="alpha paper, Table 1",
                   dataset="tinyset"),
    ReportedNumber(metric="fid_tv", value=16.09, source="alpha paper, Table 1", dataset="tinyset"),
    ReportedNumber(metric="rp", value=2.53, relative_to="beta", source="alpha paper, Table 2",
                   dataset="tinyset"),
    ReportedNumber(metric="is", value=9.9, dataset="coco", source="not in this table"),
]


def make_plugins(tmp_path: Path):
    known = build_plugins().metrics()
    for name, direction in DIRECTIONS.items():
        if name in known:
            assert known[name].direction == direction
    missing = {k: v for k, v in DIRECTIONS.items() if k not in known}
    alpha = TinyMethod(tmp_path / "alpha", "alpha", reported=REPORTED, ablation_keys=["model.gf_dim", "train.lr_g"])
    beta = TinyMethod(tmp_path / "beta", "beta")
    return build_plugins(extra=[alpha, beta, TinyRegistry(datasets=("tinyset",), metrics=missing)])


def write_run(parent: Path, plugins, method: str, seed: int, metrics: dict, *, overrides=(), preset="test",
              dataset="tinyset", real: tuple | None = REAL_RP, skipped=("kid",)) -> RunDir:
    cfg = prepare_config(plugins, method, dataset=dataset, data_dir=None, preset=preset, overrides=list(overrides),
                         seed=seed)
    run = RunDir.create(parent, stem=f"{method}-s{seed}")
    run.save_config(cfg)
    eid = new_eval_id()
    recs = [Record(method=method, dataset=dataset, seed=seed, metric=m, value=v, std=s, std_over=o, eval_id=eid)
            for m, (v, s, o) in metrics.items()]
    recs += [Record(method=method, dataset=dataset, seed=seed, metric=m, status="skipped", reason=SKIP_REASON,
                    eval_id=eid) for m in skipped]
    if real:
        recs.append(Record(method=method, dataset=dataset, seed=seed, metric="rp_real", value=real[0], std=real[1],
                           std_over=real[2], eval_id=eid))
    run.append_records(recs)
    return run


@pytest.fixture
def table_runs(tmp_path: Path):
    return table_runs_for(tmp_path)


def table_runs_for(tmp_path: Path):
    plugins = make_plugins(tmp_path)
    session = tmp_path / "session"
    runs = []
    for seed, m in ALPHA.items():
        runs.append(write_run(session, plugins, "alpha", seed, m))
    for seed, m in BETA.items():
        if seed == 0:  # an older evaluation of beta seed 0 that must be ignored (latest eval_id wins)
            run = write_run(session, plugins, "beta", seed, {"is": (9.99, 0.1, "splits"), "rp": (0.99, 0.0, "folds")})
            newer = "00000000-000000-0000"  # sorts first: "latest" means last written, not largest string
            run.append_records([Record(method="beta", dataset="tinyset", seed=seed, metric=k, value=v, std=s,
                                       std_over=o, eval_id=newer) for k, (v, s, o) in m.items()])
        else:
            run = write_run(session, plugins, "beta", seed, m)
        runs.append(run)
    runs.append(write_run(session, plugins, "alpha", 0, VARIANT, overrides=["model.gf_dim=16"]))
    return plugins, runs


def parse_csv(text: str) -> dict[str, dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return {r["row"]: r for r in rows}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values)  # sample std, n - 1


def test_csv_numbers_match_an_independent_computation(table_runs):
    plugins, runs = table_runs
    rows = parse_csv(write_table(plugins, runs, TableOptions(with_paper_numbers=True), fmt="csv"))
    header = next(csv.reader(io.StringIO(write_table(plugins, runs, TableOptions(with_paper_numbers=True), fmt="csv"))))
    metric_cols = [h for h in header[2:] if ("_" not in h or h in ("fid_tv",)) and h not in RUN_COLUMNS]
    assert metric_cols == ["is", "fid", "fid_tv", "kid", "rp"]  # DESIGN.md §10 order; rp_real → real row

    expected_rows = ["alpha", "alpha (model.gf_dim=16)", "alpha (reported)", "beta", "real images"]
    assert list(rows) == expected_rows
    for label, table in (("alpha", ALPHA), ("beta", BETA)):
        for metric in ("is", "fid", "rp"):
            mean, std = mean_std([table[s][metric][0] for s in table])
            assert float(rows[label][metric]) == pytest.approx(mean, rel=1e-12)
            assert float(rows[label][f"{metric}_std"]) == pytest.approx(std, rel=1e-12)
            assert rows[label][f"{metric}_over"] == f"{len(table)} seeds"
            assert rows[label][f"{metric}_n"] == str(len(table))
            assert rows[label]["kind"] == "reproduced"

    # best: is and rp higher (beta), fid lower (alpha); reported 4.75 is higher but never marked
    best = {m: [lab for lab, r in rows.items() if r[f"{m}_best"] == "*"] for m in ("is", "fid", "rp", "fid_tv")}
    assert best == {"is": ["beta"], "fid": ["alpha"], "rp": ["beta"], "fid_tv": []}

    # one seed: the record's own std and what it is over
    var = rows["alpha (model.gf_dim=16)"]
    assert (float(var["is"]), float(var["is_std"]), var["is_over"]) == (3.90, 0.04, "splits")
    assert float(var["fid"]) == 30.0 and var["fid_std"] == "" and var["fid_over"] == ""

    # reported numbers only in their own metric's column
    rep = rows["alpha (reported)"]
    assert rep["kind"] == "reported"
    assert (float(rep["is"]), float(rep["is_std"]), rep["is_over"]) == (4.75, 0.07, "splits")
    assert float(rep["fid_tv"]) == 16.09 and rep["fid"] == "" and rows["alpha"]["fid_tv"] == ""
    assert rep["rp"] == "" and rep["rp_note"] == "'+2.53 % vs beta (reported)"  # no formula in a spreadsheet
    assert "9.9" not in rep["is"]  # a coco number stays out of a tinyset table

    # real images: rp_real under rp, counted once although every run recorded it
    real = rows["real images"]
    assert (real["kind"], float(real["rp"]), float(real["rp_std"]), real["rp_over"]) == ("real", 0.52, 0.02, "folds")
    assert real["rp_best"] == ""

    # skipped everywhere: the reason is in the note
    assert rows["alpha"]["kid"] == "" and rows["alpha"]["kid_note"] == f"skipped: {SKIP_REASON}"


def _md_rows(text: str) -> tuple[list[str], dict[str, list[str]], dict[str, str]]:
    lines = [l for l in text.splitlines() if l.startswith("|")]
    split = [[c.strip() for c in re.split(r"(?<!\\)\|", l)[1:-1]] for l in lines]
    header, body = split[0], split[2:]
    notes = dict(re.findall(r"^\[([a-z]+)\] (.*)$", text, flags=re.M))
    return header, {re.sub(r" \[[a-z,]+\]$", "", r[0]): r[1:] for r in body}, notes  # label without its marker


def _parse_cell(cell: str) -> tuple[float | None, float | None, bool, list[str]]:
    """(value, ±, bold, footnote markers) of a Markdown cell."""
    best = cell.startswith("**")
    markers = re.findall(r"\[([a-z,]+)\]\s*$", cell)
    m = re.match(r"^\**(-?\d+\.\d+)(?: ± (\d+\.\d+))?\**", cell)
    if not m:
        return None, None, best, markers[0].split(",") if markers else []
    return float(m.group(1)), (float(m.group(2)) if m.group(2) else None), best, (
        markers[0].split(",") if markers else [])


def _close(printed: float, exact: float, text_decimals: int) -> bool:
    return abs(printed - exact) <= 0.5 * 10 ** -text_decimals + 1e-12


def _header_markers(header: list[str]) -> dict[str, list[str]]:
    """display name (without arrow) -> the header's footnote markers"""
    out = {}
    for h in header[1:]:
        m = re.fullmatch(r"(.*?)(?: [↑↓])?(?: \[([a-z,]+)\])?", h)
        out[m.group(1)] = m.group(2).split(",") if m.group(2) else []
    return out


def test_markdown_cells_best_marks_and_footnotes(table_runs):
    plugins, runs = table_runs
    text = write_table(plugins, runs, TableOptions(with_paper_numbers=True), fmt="markdown")
    header, rows, notes = _md_rows(text)
    # display names from the registry, canonical order; kid (skipped for every row) is left out
    names = {"is": "IS", "fid": "FID", "fid_tv": "FID (torchvision)", "rp": "R-precision (%)"}
    assert [re.sub(r" [↑↓].*", "", h) for h in header] == ["Method", *names.values()]
    assert [h.split(" [")[0] for h in header[1:]] == ["IS ↑", "FID ↓", "FID (torchvision) ↓", "R-precision (%) ↑"]
    col = {m: i for i, m in enumerate(names)}
    on_header = _header_markers(header)
    for label, table in (("alpha", ALPHA), ("beta", BETA)):
        for metric in ("is", "fid", "rp"):
            mean, std = mean_std([table[s][metric][0] for s in table])
            value, pm, best, markers = _parse_cell(rows[label][col[metric]])
            assert _close(value, mean, 2) and _close(pm, std, 2), (label, metric)  # 2 decimals: the registry's
            assert best == ((label, metric) in {("beta", "is"), ("alpha", "fid"), ("beta", "rp")})
            over = markers or on_header[names[metric]]  # a cell's own marker, else the header's (shared ±)
            assert [notes[m] for m in over] == [f"mean ± sample std over {len(table)} seeds"], (label, metric)
    # IS: most cells are over 3 seeds -> the header says so once, alpha's cells carry no marker
    assert notes[on_header["IS"][0]] == "mean ± sample std over 3 seeds" and _parse_cell(rows["alpha"][0])[3] == []
    value, pm, best, markers = _parse_cell(rows["alpha (reported)"][col["is"]])
    assert (value, pm, best) == (4.75, 0.07, False) and notes[markers[0]] == "± as published, over splits"
    assert rows["alpha (reported)"][col["rp"]] == "+2.53 % vs beta"  # the row says "reported"
    assert rows["alpha (reported)"][col["fid"]] == "–"
    assert _parse_cell(rows["alpha (reported)"][col["fid_tv"]])[:3] == (16.09, None, False)
    value, pm, best, markers = _parse_cell(rows["alpha (model.gf_dim=16)"][col["fid"]])
    assert (value, pm, markers) == (30.0, None, [])
    assert _parse_cell(rows["real images"][col["rp"]])[:3] == (0.52, 0.02, False)
    source = re.search(r"^\| alpha \(reported\) \[([a-z])\] \|", text, flags=re.M).group(1)
    assert notes[source] == "reported: alpha paper, Table 1; alpha paper, Table 2"
    # the note line names what was not computed, in a few words
    assert "Not computed: KID: missing weight file pt_inception-2015-12-05." in text.splitlines()
    assert "Evaluated on tinyset." in text.splitlines()


def test_latex_uses_booktabs_and_escapes(table_runs, tmp_path):
    plugins, runs = table_runs
    tex = write_table(plugins, runs, TableOptions(with_paper_numbers=True), fmt="latex",
                      out=tmp_path / "t" / "table.tex")
    assert (tmp_path / "t" / "table.tex").read_text() == tex
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in tex
    assert r"FID\\(torchvision) $\downarrow$" in tex and r"alpha (model.gf\_dim=16)" in tex
    assert r"fid\_tv" not in tex and "kid" not in tex.lower().replace("not computed: kid", "")
    assert r"+2.53 \% vs beta \\" in tex
    assert "±" not in tex and r"$\pm$" in tex
    mean, std = mean_std([BETA[s]["is"][0] for s in BETA])
    assert rf"\textbf{{{mean:.2f}\,$\pm$\,{std:.2f}}}" in tex
    assert r"\begin{table*}" in tex  # 4 metric columns
    assert r"\caption{Text-to-image results. Evaluated on tinyset.}" in tex and r"\label{tab:results}" in tex
    assert r"\textbf{4.75" not in tex  # reported never marked
    assert tex.encode("ascii")  # pdflatex-safe


needs_pdflatex = pytest.mark.skipif(shutil.which("pdflatex") is None,
                                    reason="pdflatex not installed (Debian: texlive-latex-base, "
                                           "texlive-latex-recommended)")
FILLER = "Text of the paper around the table. " * 30


def compile_in_article(directory: Path, tex: str, *, twocolumn: bool, natural: bool = False,
                       packages: str = "booktabs,graphicx") -> str:
    """pdflatex the table inside an ``article`` (one or two columns) between paragraphs; returns the log.

    ``natural``: \\resizebox does nothing, so the table keeps its natural width and an overfull box shows
    that the content itself is too wide (the shrink-only-if-too-wide fallback would hide it)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "table.tex").write_text(tex)
    neutral = "\\renewcommand{\\resizebox}[3]{#3}\n" if natural else ""
    (directory / "doc.tex").write_text(
        f"\\documentclass{{{'[twocolumn]' if twocolumn else ''}article}}".replace("{[twocolumn]", "[twocolumn]{")
        + f"\n\\usepackage{{{packages}}}\n{neutral}\\begin{{document}}\n{FILLER}\n\n\\input{{table.tex}}\n"
        f"{FILLER * 4}\n\\end{{document}}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=directory,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (directory / "doc.pdf").exists()
    return (directory / "doc.log").read_text(errors="replace")


def small_runs(tmp_path: Path, metrics: dict[str, tuple[float, float]]) -> tuple:
    """Two methods × 3 seeds with the given metrics (value, seed-to-seed spread), kid skipped."""
    plugins = make_plugins(tmp_path)
    runs = []
    for method, offset in (("alpha", 0.0), ("beta", 1.0)):
        for seed in range(3):
            values = {m: (v + offset + 0.37 * seed * spread, None, None) for m, (v, spread) in metrics.items()}
            runs.append(write_run(tmp_path / "s", plugins, method, seed, values, real=None))
    return plugins, runs


@needs_pdflatex
def test_three_metric_table_fits_one_and_two_column_articles(tmp_path):
    plugins, runs = small_runs(tmp_path, {"is": (4.123, 0.2), "fid": (21.456, 1.7), "rp": (61.789, 2.1)})
    tex = write_table(plugins, runs, fmt="latex")
    assert r"\begin{table}[t]" in tex and r"\columnwidth" in tex and "table*" not in tex
    for twocolumn in (False, True):
        for natural in (False, True):
            log = compile_in_article(tmp_path / f"doc-{twocolumn}-{natural}", tex, twocolumn=twocolumn,
                                     natural=natural)
            assert "Overfull \\hbox" not in log, (twocolumn, natural)


def test_a_caption_without_a_final_period_ends_its_sentence(tmp_path):
    """`--caption` and the protocol sentence are two sentences: a period is added where the caption has none."""
    plugins, runs = small_runs(tmp_path, {"is": (4.123, 0.2)})
    for caption, shown in (("Shapes benchmark", "Shapes benchmark."), ("Shapes benchmark.", "Shapes benchmark."),
                           ("Is it good?", "Is it good?"), ("Shapes (see text.)", "Shapes (see text.)")):
        tex = write_table(plugins, runs, TableOptions(caption=caption), fmt="latex")
        assert rf"\caption{{{shown} Evaluated on tinyset" in tex, caption


@needs_pdflatex
def test_six_metric_table_is_a_table_star_that_fits_the_text_width(tmp_path):
    plugins, runs = small_runs(tmp_path, {"is": (4.123, 0.2), "fid": (21.456, 1.7), "fid_tv": (25.5, 2.0),
                                          "rp": (61.789, 2.1), "clip_rp": (33.3, 1.0), "clip_score": (24.1, 0.4)})
    tex = write_table(plugins, runs, TableOptions(with_paper_numbers=True, caption="Shapes benchmark.",
                                                  label="tab:shapes"), fmt="latex")
    assert tex.count(r"\begin{table*}[t]") == 1 and r"\textwidth" in tex
    assert r"\caption{Shapes benchmark. Evaluated on tinyset.}" in tex and r"\label{tab:shapes}" in tex
    for natural in (False, True):
        log = compile_in_article(tmp_path / f"doc-{natural}", tex, twocolumn=True, natural=natural)
        assert "Overfull \\hbox" not in log, natural


@needs_pdflatex
def test_siunitx_columns_compile(tmp_path):
    if subprocess.run(["kpsewhich", "siunitx.sty"], capture_output=True, text=True).stdout.strip() == "":
        pytest.skip("siunitx.sty not installed (Debian: texlive-science)")
    plugins, runs = table_runs_for(tmp_path)
    tex = write_table(plugins, runs, TableOptions(with_paper_numbers=True, siunitx=True), fmt="latex")
    assert "S[table-format=1.2(1.2), detect-weight, uncertainty-mode=separate, retain-zero-uncertainty" in tex
    assert r"\bfseries 4.45 \pm 0.07" in tex and "{--}" in tex
    log = compile_in_article(tmp_path / "doc", tex, twocolumn=True, packages="booktabs,graphicx,siunitx")
    assert "Overfull \\hbox" not in log


def test_variant_label_compares_with_the_preset_not_the_dataclass_default(tmp_path):
    plugins = make_plugins(tmp_path)
    # the test preset sets no gf_dim: 32 (default) is the baseline; lr_g given equal to the preset is no variant
    runs = [write_run(tmp_path / "s", plugins, "alpha", 0, VARIANT, overrides=["train.lr_g=0.0002"]),
            write_run(tmp_path / "s", plugins, "alpha", 1, VARIANT, overrides=["model.gf_dim=8", "train.lr_g=1e-3"]),
            # z_dim differs from the preset, but is not an ablation key: no variant
            write_run(tmp_path / "s", plugins, "alpha", 2, VARIANT, overrides=["model.z_dim=4"])]
    rows = parse_csv(write_table(plugins, runs, fmt="csv"))
    assert list(rows) == ["alpha", "alpha (model.gf_dim=8, train.lr_g=0.001)", "real images"]
    assert rows["alpha"]["is_over"] == "2 seeds"


def test_runs_without_records_still_get_a_row_and_empty_tables_fail(tmp_path):
    plugins = make_plugins(tmp_path)
    run = write_run(tmp_path / "s", plugins, "beta", 0, {}, real=None, skipped=())
    text = write_table(plugins, [run], fmt="markdown")
    assert "| beta |" in text
    with pytest.raises(HarnessError, match="no run"):
        write_table(plugins, [], fmt="markdown")
    with pytest.raises(HarnessError, match="valid: markdown, latex, csv"):
        write_table(plugins, [run], fmt="html")
    with pytest.raises(HarnessError, match="valid: params, speed"):
        write_table(plugins, [run], TableOptions(columns=("flops",)), fmt="csv")


def test_speed_and_params_columns(tmp_path):
    plugins = make_plugins(tmp_path)
    runs = [write_run(tmp_path / "s", plugins, "beta", s, BETA[s]) for s in BETA]
    speeds = {0: [10.0, 30.0, 20.0], 1: [40.0, 50.0, 60.0]}
    for run, seed in zip(runs, BETA):
        for i, v in enumerate(speeds[seed]):
            run.append_log({"step": i, "loss": 1.0, "images_per_s": v})
        info = write_run_info(plugins, run, run.load_config(plugins))  # run.json holds the generator's count
        info["params"]["generator"] = 1234567
        (run.path / "run.json").write_text(json.dumps(info))
    rows = parse_csv(write_table(plugins, runs, TableOptions(columns=("params", "speed")), fmt="csv"))
    expected = (statistics.median(speeds[0]) + statistics.median(speeds[1])) / 2
    assert float(rows["beta"]["speed"]) == pytest.approx(expected)
    assert float(rows["beta"]["params"]) == 1234567
    assert rows["real images"]["speed"] == ""
    md = write_table(plugins, runs, TableOptions(columns=("params", "speed")), fmt="markdown")
    assert "| Params (M) | Speed (img/s) |" in md and "| 1.23 | 35.0 |" in md


def test_params_counted_from_the_config_when_not_recorded(tmp_path):
    plugins = make_plugins(tmp_path)
    run = write_run(tmp_path / "s", plugins, "beta", 0, BETA[0])
    from core_tiny_method import build_generator

    cfg = run.load_config(plugins)
    expected = sum(p.numel() for p in build_generator(cfg).parameters())
    table = build_table(plugins, [run], TableOptions(columns=("params",)))
    assert table.rows[0].extras["params"] == expected


def test_several_datasets_label_rows(tmp_path):
    plugins = build_plugins(extra=[TinyMethod(tmp_path / "a", "alpha", reported=REPORTED),
                                   TinyRegistry(datasets=("tinyset", "tinyset2"))])
    runs = [write_run(tmp_path / "s", plugins, "alpha", 0, ALPHA[0], dataset="tinyset"),
            write_run(tmp_path / "s", plugins, "alpha", 0, ALPHA[1], dataset="tinyset2")]
    rows = parse_csv(write_table(plugins, runs, TableOptions(with_paper_numbers=True), fmt="csv"))
    assert list(rows) == ["alpha [tinyset]", "alpha [tinyset2]", "alpha (reported) [tinyset]",
                          "real images [tinyset]", "real images [tinyset2]"]
    assert float(rows["alpha [tinyset2]"]["is"]) == ALPHA[1]["is"][0]


def test_table_cli_prints_or_writes(table_runs, tmp_path, capsys):
    plugins, runs = table_runs
    session = runs[0].path.parent
    assert main(["table", str(session), "--format", "csv", "--with-paper-numbers"], plugins=plugins) == 0
    printed = capsys.readouterr().out
    assert parse_csv(printed) == parse_csv(write_table(plugins, runs, TableOptions(with_paper_numbers=True), fmt="csv"))
    out = tmp_path / "t.md"
    assert main(["table", "--all", "--results-dir", str(session), "--out", str(out)], plugins=plugins) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text().startswith("| Method |")
    assert main(["table", "--all", "--results-dir", str(tmp_path / "empty")], plugins=plugins) == 2
    assert "no run" in capsys.readouterr().err


def test_latex_escape():
    assert latex_escape("a_b 5% ±1 & $x# {}") == r"a\_b 5\% $\pm$1 \& \$x\# \{\}"
    assert latex_escape("naïve → ≥") == r"naive $\to$ $\geq$"


def test_protocol_texts_are_listed_not_split_into_columns(tmp_path):
    plugins = make_plugins(tmp_path)
    run = write_run(tmp_path / "s", plugins, "beta", 0, {}, real=None, skipped=())
    eid = new_eval_id()
    run.append_records([
        Record(method="beta", dataset="tinyset", seed=0, metric="rp", value=50.0, std=1.0, std_over="folds",
               eval_id=eid, extra={"variant": "DAMSM small_cnn; 1 true + 99 captions"}),
        Record(method="beta", dataset="tinyset", seed=0, metric="rp_real", value=40.0, std=1.0, std_over="folds",
               eval_id=eid, extra={"variant": "real images; DAMSM small_cnn"}),
        Record(method="beta", dataset="tinyset", seed=0, metric="fid", status="skipped", reason="r", eval_id=eid,
               extra={"variant": ""}),
    ])
    table = build_table(plugins, [run])
    assert table.columns == ["fid", "rp"]
    assert table.protocols == {"rp": ["DAMSM small_cnn; 1 true + 99 captions"],
                               "rp (real images)": ["real images; DAMSM small_cnn"]}
    md = write_table(plugins, [run], fmt="markdown")
    assert "DAMSM" not in md  # the protocol texts are for --explain; the table says the protocol in one sentence
    explained = explain_table(table)
    assert "    protocol: DAMSM small_cnn; 1 true + 99 captions" in explained
    assert "    protocol (real images): real images; DAMSM small_cnn" in explained
    assert "fid (FID): not shown (no computed value)\n    skipped for beta: r\n" in explained


def test_values_equal_as_printed_are_all_marked(tmp_path):
    plugins = make_plugins(tmp_path)
    runs = [write_run(tmp_path / "s", plugins, "alpha", 0, {"is": (1.0017, None, None)}, real=None, skipped=()),
            write_run(tmp_path / "s", plugins, "beta", 0, {"is": (1.0012, None, None)}, real=None, skipped=()),
            write_run(tmp_path / "s", plugins, "alpha", 1, {"is": (0.9, None, None)}, real=None, skipped=(),
                      overrides=["model.gf_dim=8"])]
    rows = parse_csv(write_table(plugins, runs, fmt="csv"))
    assert {k: r["is_best"] for k, r in rows.items()} == {"alpha": "*", "beta": "*", "alpha (model.gf_dim=8)": ""}


def test_probe_attribute_columns(tmp_path):
    """``probe_attributes`` expands into one column per attribute of the latest probe_acc record, averaged over
    the row's runs; an earlier evaluation and rows without a probe record leave no trace."""
    plugins = make_plugins(tmp_path)
    runs = [write_run(tmp_path / "s", plugins, "beta", s, BETA[s]) for s in BETA]
    per = {0: {"colour": 70.0, "shape": 20.0}, 1: {"colour": 80.0, "shape": 30.0, "size": 40.0}}
    for run, seed in zip(runs, BETA):
        run.append_records([Record(method="beta", dataset="tinyset", seed=seed, metric="probe_acc", value=1.0,
                                   eval_id=new_eval_id(), extra={"per_attribute": {"colour": 0.0, "shape": 0.0}})])
        run.append_records([Record(method="beta", dataset="tinyset", seed=seed, metric="probe_acc", value=2.0,
                                   eval_id=new_eval_id(), extra={"per_attribute": per[seed]})])  # the latest counts
    other = write_run(tmp_path / "s", plugins, "alpha", 0, ALPHA[0])
    rows = parse_csv(write_table(plugins, [*runs, other], TableOptions(columns=("probe_attributes",)), fmt="csv"))
    assert float(rows["beta"]["probe_acc.colour"]) == pytest.approx(75.0)
    assert float(rows["beta"]["probe_acc.shape"]) == pytest.approx(25.0)
    assert float(rows["beta"]["probe_acc.size"]) == pytest.approx(40.0)  # only the run that reports it
    assert rows["alpha"]["probe_acc.colour"] == ""
    md = write_table(plugins, [*runs, other], TableOptions(columns=("probe_attributes",)), fmt="markdown")
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert header.rstrip(" |").endswith("colour acc. (%) | shape acc. (%) | size acc. (%)")
    assert "| 75.0 | 25.0 | 40.0 |" in md  # one decimal
    # no probe record anywhere: the group adds no column
    plain = parse_csv(write_table(plugins, [other], TableOptions(columns=("probe_attributes",)), fmt="csv"))
    assert not any(k.startswith("probe_acc.") for k in plain["alpha"])


# ------------------------------------------------------------------------------------------------------
# Tables that go into a paper as they are (issue 19)
# ------------------------------------------------------------------------------------------------------
def weight_reasons(tmp_path: Path, monkeypatch) -> dict[str, str]:
    """The real skip reasons (MissingWeightsError messages) with every weight missing, CLIP's with a wrong hash."""
    from harness.util.errors import MissingWeightsError
    from harness.core.weights import find_weight

    wdir = tmp_path / "weights"
    wdir.mkdir()
    (wdir / "ViT-B-32.pt").write_bytes(b"not the CLIP weights")
    monkeypatch.setenv("HARNESS_WEIGHTS", str(wdir))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    plugins = build_plugins()
    reasons = {}
    for name in ("inception_tf_fid", "damsm_inception_v3", "clip_vit_b32"):
        with pytest.raises(MissingWeightsError) as e:
            find_weight(plugins, name)
        reasons[name] = str(e.value)
    assert str(wdir) in reasons["inception_tf_fid"] and "github.com" in reasons["inception_tf_fid"]
    return reasons


NEEDS = {"is": "inception_tf_fid", "fid": "inception_tf_fid", "kid": "inception_tf_fid",
         "fid_tv": "damsm_inception_v3", "clip_rp": "clip_vit_b32", "clip_score": "clip_vit_b32"}
PATH_LIKE = re.compile(r"(?<![\w.])(?:~|\.{0,2}/)[\w.-]|://|www\.|\.(?:com|org|net|io)/")


def test_no_machine_details_in_markdown_or_latex(tmp_path, monkeypatch, capsys):
    reasons = weight_reasons(tmp_path, monkeypatch)
    plugins = make_plugins(tmp_path)
    runs = []
    for method, seed in (("alpha", 0), ("alpha", 1), ("beta", 0)):
        run = write_run(tmp_path / "session", plugins, method, seed, {"rp": (60.0 + seed, 1.0, "folds")}, real=None,
                        skipped=())
        eid = new_eval_id()
        run.append_records([Record(method=method, dataset="tinyset", seed=seed, metric=m, status="skipped",
                                   reason=reasons[w], eval_id=eid) for m, w in NEEDS.items()]
                           + [Record(method=method, dataset="tinyset", seed=seed, metric="rp", value=60.0 + seed,
                                     std=1.0, std_over="folds", eval_id=eid)])
        runs.append(run)
    md = write_table(plugins, runs, fmt="markdown")
    tex = write_table(plugins, runs, fmt="latex")
    for text in (md, tex):
        for machine in (str(tmp_path), str(Path.home()), "/root", "http", "github", "HARNESS_WEIGHTS", "searched"):
            assert machine not in text, machine
        assert not PATH_LIKE.search(text), PATH_LIKE.search(text)
    # only rp was computed: the skipped columns are left out, the note line names them with a short reason
    header, rows, _ = _md_rows(md)
    assert [h.split(" [")[0] for h in header] == ["Method", "R-precision (%) ↑"]
    assert ("Not computed: IS, FID, KID: Inception weights not installed; FID (torchvision): torchvision "
            "Inception-v3 weights not installed; CLIP-R, CLIPScore: CLIP ViT-B/32 weights fail their check "
            "(see `harness weights`).") in md.splitlines()
    assert r"(see \texttt{harness weights})" in tex and r"\begin{table}[t]" in tex
    # the CSV keeps every column and the full reasons
    csv_rows = parse_csv(write_table(plugins, runs, fmt="csv"))
    for metric, weight in NEEDS.items():
        assert csv_rows["alpha"][metric] == "" and csv_rows["alpha"][f"{metric}_note"] == f"skipped: {reasons[weight]}"
    # harness table --explain prints them
    assert main(["table", str(tmp_path / "session"), "--explain"], plugins=plugins) == 0
    explained = capsys.readouterr().out
    assert f"kid (KID (×10³)): not shown (no computed value)\n    skipped for alpha, beta: {reasons[NEEDS['kid']]}\n" \
        in explained


def test_short_reasons_and_scrubbing():
    from harness.reporting.table_text import scrub, short_reason

    labels = {"inception_tf_fid": "Inception"}
    assert short_reason("weight file 'inception_tf_fid' (IS) is missing: put x.pth into /root/w", labels) == (
        "Inception weights not installed", "see `harness weights`")
    assert short_reason("weight file 'other': /w/o.pt fails its sha256 check (expected a, got b)", labels) == (
        "other weights fail their check", "see `harness weights`")
    assert short_reason("no probe checkpoint under ~/.cache/harness/probe (run pretrain first)", {}) == (
        "no probe checkpoint", "")
    text = scrub("get it from https://x.org/a.pt or github.com/o/r/releases into $HOME/w, C:\\w or ../w; "
                 "see I/O and owner/repo, doi 10.19678/j.issn")
    assert text.startswith("get it") and text.endswith("; see I/O and owner/repo, doi 10.19678/j.issn")
    for machine in ("x.org", "github", "releases", "HOME", "C:", "../", "w,"):
        assert machine not in text, machine
    # a URL inside brackets takes its closing bracket with it, never the text's
    assert scrub("bird_DMGAN (paper) (github.com/MinfengZhu/DM-GAN)") == "bird_DMGAN (paper)"
    assert scrub("weights (https://x.org/w_(v2).pt, mirrored) here") == "weights (mirrored) here"


class DisplayRegistry:
    """A plugin metric with its own display format, and one without."""

    @hookimpl
    def harness_metrics(self) -> list:
        from harness.contract.types import MetricFormat, MetricInfo

        return [MetricInfo("sharpness", "higher", "a plugin metric",
                           format=MetricFormat("Sharpness", unit="px", decimals=3, latex=r"$S_\mathrm{edge}$")),
                MetricInfo("plain_score", "lower", "a plugin metric without a format")]


def test_display_names_and_decimals_come_from_the_registry(tmp_path):
    alpha, beta = TinyMethod(tmp_path / "a", "alpha"), TinyMethod(tmp_path / "b", "beta")
    plugins = build_plugins(extra=[alpha, beta, TinyRegistry(datasets=("tinyset",)), DisplayRegistry()])
    values = {"alpha": {"sharpness": (1.23456, None, None), "kid": (0.0123461, None, None),
                        "plain_score": (0.0123456, None, None)},
              "beta": {"sharpness": (1.2, None, None), "kid": (0.0123459, None, None),
                       "plain_score": (0.02, None, None)}}
    runs = [write_run(tmp_path / "s", plugins, m, 0, v, real=None, skipped=()) for m, v in values.items()]
    md = write_table(plugins, runs, fmt="markdown")
    header, rows, _ = _md_rows(md)
    assert header == ["Method", "KID (×10³) ↓", "Sharpness (px) ↑", "plain_score ↓"]  # canonical ids first
    # KID ×10³ with 2 decimals: 12.35 for both, so both are best as printed; Sharpness: the registered 3 decimals;
    # an unregistered metric: three significant digits of its typical value, the same for the whole column
    assert rows["alpha"] == ["**12.35**", "**1.235**", "**0.0123**"]
    assert rows["beta"] == ["**12.35**", "1.200", "0.0200"]
    tex = write_table(plugins, runs, fmt="latex")
    assert r"$S_\mathrm{edge}$ (px) $\uparrow$" in tex.replace("\\\\(", " (")
    assert r"KID\\($\times 10^{3}$) $\downarrow$" in tex and r"plain\_score $\downarrow$" in tex
    assert r"\begin{table}[t]" in tex  # three metric columns
    # the CSV keeps ids and values at full precision
    csv_rows = parse_csv(write_table(plugins, runs, fmt="csv"))
    assert float(csv_rows["alpha"]["kid"]) == 0.0123461 and "sharpness" in csv_rows["alpha"]


def test_metrics_option_picks_and_orders_columns(table_runs, capsys):
    plugins, runs = table_runs
    md = write_table(plugins, runs, TableOptions(metrics=("rp", "is", "kid")), fmt="markdown")
    header, rows, notes = _md_rows(md)
    assert [h.split(" [")[0] for h in header] == ["Method", "R-precision (%) ↑", "IS ↑", "KID (×10³) ↓"]
    m = re.fullmatch(r"– \[([a-z]+)\]", rows["beta"][2])  # asked for by name: shown although skipped everywhere
    assert m and notes[m.group(1)] == "not computed: missing weight file pt_inception-2015-12-05"
    text = write_table(plugins, runs, TableOptions(metrics=("rp", "is")), fmt="csv")
    csv_header = next(csv.reader(io.StringIO(text)))
    assert [h for h in csv_header if h in ("is", "fid", "rp", "kid")] == ["rp", "is"]
    with pytest.raises(HarnessError, match=r"unknown metric 'ips' in --metrics; installed: .*\bis\b"):
        write_table(plugins, runs, TableOptions(metrics=("is", "ips")), fmt="markdown")
    session = runs[0].path.parent
    assert main(["table", str(session), "--metrics", "fid,is", "--format", "markdown"], plugins=plugins) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("| Method | FID ↓") and "IS ↑" in first and "R-precision" not in first
    assert main(["table", str(session), "--metrics", "ips"], plugins=plugins) == 2
    assert "unknown metric 'ips'" in capsys.readouterr().err


def test_probe_attribute_columns_only_when_asked(tmp_path):
    plugins = make_plugins(tmp_path)
    run = write_run(tmp_path / "s", plugins, "beta", 0, BETA[0])
    run.append_records([Record(method="beta", dataset="tinyset", seed=0, metric="probe_acc", value=50.0,
                               eval_id=new_eval_id(), extra={"per_attribute": {"colour": 70.0, "shape": 30.0}})])
    header, _, _ = _md_rows(write_table(plugins, [run], fmt="markdown"))
    assert not any("acc." in h and "Probe" not in h for h in header) and "Probe acc. (%) ↑" in header
    header, _, _ = _md_rows(write_table(plugins, [run], TableOptions(columns=("probe_attributes",)), fmt="markdown"))
    assert header[-2:] == ["colour acc. (%)", "shape acc. (%)"]


def test_a_partly_skipped_cell_says_so_in_a_few_words(tmp_path):
    plugins = make_plugins(tmp_path)
    reason = "weight file 'inception_tf_fid' (IS) is missing: put x.pth into /home/someone/.cache (searched: /a)"
    runs = [write_run(tmp_path / "s", plugins, "alpha", s, {"is": (v, None, None)}, real=None, skipped=())
            for s, v in ((0, 4.0), (1, 5.0))]
    runs.append(write_run(tmp_path / "s", plugins, "alpha", 2, {}, real=None, skipped=()))
    runs[-1].append_records([Record(method="alpha", dataset="tinyset", seed=2, metric="is", status="skipped",
                                    reason=reason, eval_id=new_eval_id())])
    md = write_table(plugins, runs, fmt="markdown")
    _, rows, notes = _md_rows(md)
    value, pm, _, markers = _parse_cell(rows["alpha"][0])
    assert (value, pm) == (4.5, round(statistics.stdev([4.0, 5.0]), 2))
    assert notes[markers[0]] == "1 of 3 runs not computed: Inception weights not installed (see `harness weights`)"
    assert "/home" not in md and "searched" not in md
    assert parse_csv(write_table(plugins, runs, fmt="csv"))["alpha"]["is_note"] == f"1 of 3 runs skipped: {reason}"


def test_rows_to_cells_are_what_markdown_prints_and_keep_labels_verbatim():
    """``rows_to_cells`` lays the table out once for Markdown, LaTeX and the HTML report: a label that ends like
    a footnote marker stays text, the best cell is flagged, the header's ± basis is a marker, footnotes are
    numbered in order of first use."""
    from harness.reporting.table_cells import rows_to_cells
    from harness.reporting.table_render import cells_to_markdown
    from harness.reporting.table_rows import Cell, ResultsTable, Row
    from harness.contract.types import MetricFormat

    rows = [Row("ecagan (model.mode=[ab])", "reproduced",
                {"fid": Cell(value=20.123, std=0.5, over="3 seeds", n=3, status="ok")}),
            Row("dmgan", "reproduced", {"fid": Cell(value=18.0, std=0.25, over="3 seeds", n=3, status="ok",
                                                    best=True)}),
            Row("attngan", "reproduced", {"fid": Cell(status="skipped", reasons=["weights missing"])})]
    table = ResultsTable(columns=["fid"], extra_columns=[], rows=rows, directions={"fid": "lower"},
                         datasets=["cub"], shown=["fid"], formats={"fid": MetricFormat("FID", decimals=2)},
                         splits=["test"], num_images=[30000])
    parts = rows_to_cells(table)
    assert [(h.text, h.markers) for h in parts.head] == [("Method", []), ("FID ↓", ["a"])]
    (label, cell), (_, best), (_, skipped) = [row.cells for row in parts.rows]
    assert label.text == "ecagan (model.mode=[ab])" and label.markers == []
    assert (cell.text, cell.best) == ("20.12 ± 0.50", False) and (best.text, best.best) == ("18.00 ± 0.25", True)
    assert skipped.text == "–" and skipped.markers == ["b"]
    assert [m for m, _ in parts.footnotes] == ["a", "b"] and "3 seeds" in parts.footnotes[0][1]
    assert "weights missing" in parts.footnotes[1][1] or "not computed" in parts.footnotes[1][1]
    md = cells_to_markdown(parts).splitlines()
    assert md[0] == "| Method | FID ↓ [a] |"
    assert md[2:5] == [r"| ecagan (model.mode=\[ab\]) | 20.12 ± 0.50 |", "| dmgan | **18.00 ± 0.25** |",
                       "| attngan | – [b] |"]
    assert md[-1] == parts.protocol and parts.protocol.startswith("Evaluated on cub (test split, 30,000")


def test_several_published_numbers_in_one_cell_keep_the_column_decimals(tmp_path):
    published = [(14.81, None), (12.10, None), (42.5, 0.8)]
    gamma = TinyMethod(tmp_path / "gamma", "gamma", reported=[
        ReportedNumber(metric="fid_tv", value=v, std=s, source=f"gamma paper {i}", dataset="tinyset")
        for i, (v, s) in enumerate(published)])
    plugins = build_plugins(extra=[gamma, TinyRegistry()])
    run = write_run(tmp_path / "s", plugins, "gamma", 0, {"fid_tv": (30.0, None, None)}, real=None, skipped=())
    table = write_table(plugins, [run], TableOptions(with_paper_numbers=True), fmt="markdown")
    (row,) = [r for r in table.splitlines() if r.startswith("| gamma (reported)")]
    expected = "; ".join(f"{v:.2f}" + (f" ± {s:.2f}" if s is not None else "") for v, s in published)
    assert f"| {expected} |" in row  # 12.10, not 12.1
    assert "[b]" not in table  # no footnote of a published number is left without its marker
