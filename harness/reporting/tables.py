"""The results table (DESIGN.md §8 and §10): records of run directories → Markdown, LaTeX or CSV.

How the table is made
---------------------
* **Which records.** For each run and metric only the records of the latest evaluation count: the ``eval_id``
  of the last record of that metric in the run's ``records.jsonl`` (records are only ever appended).
* **Rows.** One row per method, or per method *variant*: when a run's config gives one of the method's
  ``MethodInfo.ablation_keys`` a value different from the same preset without ``--set`` overrides (or, when
  the preset can no longer be resolved, from the dataclass default), the row label says so, e.g.
  ``ecagan (model.upsample=nearest)``. With runs of several data sets the label ends in ``[dataset]``.
  Real-image records (metric ids ending in ``_real``, e.g. ``rp_real``, or records with ``"real": true``) form
  the row ``real images``, in the column of the metric they measure (``rp_real`` → ``rp``).
  ``--with-paper-numbers`` adds ``<method> (reported)`` rows from ``MethodInfo.reported`` (of the methods in
  the table, for the data sets in the table), each number in its own metric's column only.
* **Columns.** Metric ids in the order of DESIGN.md §10 (is, is_ft, fid, fid_tv, kid, rp, clip_rp,
  clip_score, probe_acc, probe_fid, probe_is); another id of the same family right after it (``rp_ext`` after
  ``rp``), any other in registry order; ``metrics`` (``--metrics``) picks and orders them instead. The CSV has
  every one; Markdown and LaTeX only those with a computed value (``ResultsTable.shown``), and a line under
  the table names the others with a short reason (``harness.reporting.table_text``: no paths, URLs or search paths; the
  full reasons are in the CSV and ``explain_table``, which also lists the protocol each column was measured
  with, the records' ``variant`` texts). Optional extra columns: ``params``
  (generator parameters), ``speed`` (training images/s, median over the run's ``log.jsonl``) and
  ``probe_attributes`` (one column ``probe_acc.<attribute>`` per attribute of the shapes probe: the accuracy in %
  on that attribute alone, from the latest ``probe_acc`` record's ``per_attribute``; mean over the row's runs).
* **Cells.** With several runs of a row: mean ± sample standard deviation (ddof = 1) over them ("seeds" when
  the runs have distinct seeds, else "runs"). With one run: the record's value ± its own std, which is over
  what the record says (``std_over``: folds, splits). In Markdown and LaTeX, headers are the metrics' display
  names (``MetricInfo.format``, a ``MetricFormat``: name, unit, LaTeX form, decimals, scale) with ↑/↓; numbers
  have the metric's fixed decimals; what ± is over is one footnote on the header (the column's most common
  basis) and a footnote on each cell whose basis differs. A skipped cell in a shown column reads "–" with a
  short reason as a footnote.
* **LaTeX.** booktabs; a ``table`` up to ``ONE_COLUMN_MAX`` columns, else a ``table*``, shrunk to
  ``\\columnwidth`` / ``\\textwidth`` only when wider; caption + the protocol sentence, label; optional siunitx
  ``S`` columns.
* **Best.** Per column, among the reproduced rows only (reported and real-image rows never), the lowest mean
  for metrics whose ``MetricInfo.direction`` is ``lower`` (FID, KID), the highest otherwise; values equal at
  the printed precision are all marked; metrics without a registered direction are not marked. Markdown:
  ``**x**``; LaTeX: ``\\textbf{x}``; CSV: the column ``<metric>_best`` holds ``*``.

CSV layout (metric ids, never display names): ``row, kind`` (reproduced | reported | real), then for each metric ``<m>, <m>_std, <m>_over,
<m>_n, <m>_best, <m>_note`` (numbers at full precision; ``<m>_note`` holds a skip reason or a relative claim),
then the extra columns asked for (``params``, ``speed``, ``probe_acc.<attribute>``).
"""
from __future__ import annotations

import csv
import io
import json
import math
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, TYPE_CHECKING

import pandas as pd

from harness.util.text import join_sentences
from harness.util.errors import HarnessError
from harness.core.rundir import RunDir, atomic_write_text
from harness.reporting.table_text import join_reasons, scrub, short_reason
from harness.runs.info import RowLabeller, show_value
from harness.contract.types import MetricFormat

if TYPE_CHECKING:  # type hints only
    from harness.contract.plugins import Plugins
    from harness.contract.types import MetricInfo, ReportedNumber

# DESIGN.md §10 metric ids, in table order (``rp_real`` becomes the ``real images`` row under ``rp``).
METRIC_ORDER = ("is", "is_ft", "fid", "fid_tv", "kid", "rp", "rp_real", "clip_rp", "clip_score", "probe_acc",
                "probe_fid", "probe_is")
EXTRA_COLUMNS = ("params", "speed", "probe_attributes")
ATTRIBUTE_PREFIX = "probe_acc."  # probe_attributes expands into probe_acc.<attribute> columns
FORMATS = ("markdown", "latex", "csv")
REAL_ROW = "real images"
REAL_SUFFIX = "_real"
# Keys of a log.jsonl entry that hold training throughput (images per second), first match wins.
SPEED_LOG_KEYS = ("images_per_s", "images_per_sec", "img_per_s", "images/s", "img/s")


# ------------------------------------------------------------------------------------------------------
# The table as data
# ------------------------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One cell: a number (± std over something), a skip, or a reported relative claim."""

    value: Optional[float] = None
    std: Optional[float] = None
    over: Optional[str] = None  # what ± is over, e.g. "3 seeds", "folds"
    n: int = 0  # runs the value aggregates
    status: str = "empty"  # ok | skipped | empty
    note: Optional[str] = None  # skip reason(s), or a relative claim ("+2.53 % vs dmgan (reported)")
    best: bool = False
    reported: bool = False  # a published number (its ± is as published)
    reasons: list[str] = field(default_factory=list)  # the full skip reasons (CSV, --explain)
    skipped_runs: int = 0  # of total_runs, were skipped
    total_runs: int = 0
    underpowered: Optional[str] = None  # the records' reasons (harness.evaluation.metrics.power): footnoted, never best


@dataclass
class Row:
    label: str
    kind: str  # reproduced | reported | real
    cells: dict[str, Cell] = field(default_factory=dict)
    extras: dict[str, Optional[float]] = field(default_factory=dict)  # params, speed
    sources: list[str] = field(default_factory=list)  # reported rows: where the numbers were published


@dataclass
class ResultsTable:
    columns: list[str]  # metric columns, in order
    extra_columns: list[str]
    rows: list[Row]
    directions: dict[str, Optional[str]]  # column -> "higher" | "lower" | None
    datasets: list[str]
    protocols: dict[str, list[str]] = field(default_factory=dict)  # column -> the records' protocol texts
    shown: list[str] = field(default_factory=list)  # metric columns of the Markdown and LaTeX tables
    formats: dict[str, MetricFormat] = field(default_factory=dict)  # column (metric or extra) -> how it is shown
    weight_labels: dict[str, str] = field(default_factory=dict)  # weight file name -> its short label
    splits: list[str] = field(default_factory=list)  # the evaluations' splits and image counts (the protocol)
    num_images: list[int] = field(default_factory=list)
    protocol_notes: list[str] = field(default_factory=list)  # rows of one method measured under other protocols

    def frame(self) -> pd.DataFrame:
        """The table's numbers as a DataFrame (rows × columns; NaN where there is no number)."""
        data = {c: [r.cells.get(c, Cell()).value for r in self.rows] for c in self.columns}
        for c in self.extra_columns:
            data[c] = [r.extras.get(c) for r in self.rows]
        return pd.DataFrame(data, index=[r.label for r in self.rows], dtype=float)


# ------------------------------------------------------------------------------------------------------
# Public entry points
# ------------------------------------------------------------------------------------------------------
def write_table(plugins: Plugins, runs: Sequence[RunDir], *, fmt: str = "markdown", with_paper_numbers: bool = False,
                columns: Iterable[str] = (), out: Optional[Path | str] = None,
                metrics: Optional[Sequence[str]] = None, caption: Optional[str] = None,
                label: Optional[str] = None, siunitx: bool = False) -> str:
    """Render the results of ``runs`` as ``fmt`` (markdown | latex | csv); write it to ``out`` when given.

    Returns the text. ``columns`` adds extra columns (``params``, ``speed``, ``probe_attributes``); ``metrics``
    picks and orders the metric columns (ids, e.g. ``["is", "fid", "rp"]``; default: every metric with a
    computed value in Markdown and LaTeX, every metric in the CSV). ``caption``, ``label`` and ``siunitx`` are
    for LaTeX (the caption also heads the Markdown). Raises HarnessError for an unknown format, extra column or
    metric, or when there is no run.
    """
    if fmt not in FORMATS:
        raise HarnessError(f"unknown table format {fmt!r}; valid: {', '.join(FORMATS)}")
    table = build_table(plugins, runs, with_paper_numbers=with_paper_numbers, columns=columns, metrics=metrics)
    if fmt == "markdown":
        text = render_markdown(table, caption=caption)
    elif fmt == "latex":
        text = render_latex(table, caption=caption, label=label, siunitx=siunitx)
    else:
        text = render_csv(table)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, text)
    return text


def build_table(plugins: Plugins, runs: Sequence[RunDir], *, with_paper_numbers: bool = False,
                columns: Iterable[str] = (), metrics: Optional[Sequence[str]] = None) -> ResultsTable:
    """Collect, aggregate and mark: the table independent of its format.

    ``metrics`` (ids) picks and orders the metric columns of every format; without it ``columns`` holds every
    metric with a record and ``shown`` those with at least one number (or reported claim). Raises HarnessError
    for an unknown extra column or metric id, or when there is no run.
    """
    extra = [c.strip() for c in columns if c and c.strip()]
    for c in extra:
        if c not in EXTRA_COLUMNS:
            raise HarnessError(f"unknown table column {c!r}; valid: {', '.join(EXTRA_COLUMNS)}")
    picked = [m.strip() for m in metrics or () if m and m.strip()]
    registry = _registry(plugins)
    unknown = [m for m in picked if m not in registry]
    if unknown:
        raise HarnessError(f"unknown metric {unknown[0]!r} in --metrics; installed: {', '.join(sorted(registry))}")
    runs = list(runs)
    if not runs:
        raise HarnessError("no run directories to tabulate (give RUN paths or ids, or a results root that holds runs)")
    if "probe_attributes" in extra:
        i = extra.index("probe_attributes")
        extra[i:i + 1] = [ATTRIBUTE_PREFIX + a for a in _probe_attributes(runs)]

    long, run_rows, datasets, protocol_values = _collect(plugins, runs)
    multi = len(datasets) > 1
    rows: dict[tuple[str, str], Row] = {}  # (label, kind) -> Row, in order of first appearance
    method_of: dict[str, str] = {}
    for run_row in run_rows:  # every run gets its row, even without records
        label = _with_dataset(run_row["row"], run_row["dataset"], multi)
        rows.setdefault((label, "reproduced"), Row(label, "reproduced"))
        method_of[label] = run_row["method"]

    metric_columns: list[str] = []
    if not long.empty:
        long["label"] = [_with_dataset(r, d, multi) for r, d in zip(long["row"], long["dataset"])]
        for (label, kind, column), group in long.groupby(["label", "kind", "column"], sort=False):
            row = rows.setdefault((label, kind), Row(label, kind))
            ids = set(group["rid"].dropna())
            row.cells[column] = _aggregate(group, dedupe=(kind == "real")) if len(ids) <= 1 else Cell(
                note=f"not averaged: records of {len(ids)} protocol ids (metric settings or weights differ)")
        metric_columns = list(dict.fromkeys(long["column"]))

    ordered = _order_rows(list(rows.values()), method_of)
    if with_paper_numbers:
        ordered = _add_reported_rows(plugins, ordered, method_of, datasets, multi)

    for c in (c for r in ordered for c in r.cells):
        if c not in metric_columns:
            metric_columns.append(c)
    metric_columns = _order_columns(plugins, metric_columns)
    if picked:
        metric_columns = list(dict.fromkeys(picked))
        shown = list(metric_columns)
    else:
        shown = [c for c in metric_columns if any(c in r.cells and r.cells[c].status == "ok" for r in ordered)]
    directions = {c: _direction(plugins, c) for c in metric_columns}
    formats = {c: _metric_format(registry.get(c), c, [r.cells[c].value for r in ordered if c in r.cells])
               for c in metric_columns}
    _mark_best(ordered, directions, formats)
    protocols = _protocols(long, metric_columns)
    notes = _protocol_notes(run_rows, long, protocol_values, multi)

    if extra:
        by_label: dict[str, list[RunDir]] = {}
        for run_row in run_rows:
            by_label.setdefault(_with_dataset(run_row["row"], run_row["dataset"], multi), []).append(run_row["run"])
        for row in ordered:
            if row.kind == "reproduced":
                for c in extra:
                    row.extras[c] = _extra_value(plugins, c, by_label.get(row.label, []))
    formats.update({c: _extra_format(c) for c in extra})
    ok = long[(long["status"] == "ok") & (long["kind"] == "reproduced")] if not long.empty else long
    try:
        weight_labels = {n: w.label for n, w in plugins.weight_files().items() if getattr(w, "label", "")}
    except Exception:  # a broken weights registry must not hide the table
        weight_labels = {}
    return ResultsTable(metric_columns, extra, ordered, directions, datasets, protocols, protocol_notes=notes, shown=shown,
                        formats=formats, weight_labels=weight_labels,
                        splits=[str(x) for x in dict.fromkeys(ok["split"].dropna())] if not ok.empty else [],
                        num_images=[int(x) for x in dict.fromkeys(ok["num_images"].dropna())] if not ok.empty else [])


# ------------------------------------------------------------------------------------------------------
# Collection
# ------------------------------------------------------------------------------------------------------
def _collect(plugins: Plugins, runs: list[RunDir]) -> tuple[pd.DataFrame, list[dict], list[str], dict[str, dict]]:
    """One long DataFrame with a line per (run, column) of the latest evaluation, each run's row, the data sets
    and the protocol values of every protocol id met.

    A run's label and protocol come from its ``run.json``; a run made before run.json existed is labelled by
    ``RowLabeller`` from its config.yaml and its protocol computed from that. Records carry their protocol id
    (``protocol.base``: the protocol as evaluated) and the metric's (``protocol.id``); older records take the
    run's."""
    from harness.config.protocol import protocol_id, protocol_values
    from harness.core.rundir import read_run_info

    lines, run_rows, datasets = [], [], []
    values_of: dict[str, dict] = {}
    labeller = RowLabeller(plugins)
    for run in runs:
        cfg = run.config_dict()
        info = read_run_info(run)
        method = str(cfg.get("method", "?"))
        dataset = str((cfg.get("data") or {}).get("name", "?"))
        seed = cfg.get("seed")
        if info is not None:
            label, run_values = str(info["label"]), dict(info["protocol"]["values"])
        else:  # a run made before run.json: today's labeller, the protocol from its config
            label, run_values = labeller.label(cfg), protocol_values(cfg)
        run_pid = protocol_id(run_values)
        values_of.setdefault(run_pid, run_values)
        run_rows.append({"row": label, "method": method, "dataset": dataset, "run": run, "pid": run_pid})
        if dataset not in datasets:
            datasets.append(dataset)
        for rec in _latest_records(run.read_records()):
            protocol = rec.get("protocol") or {}
            pid = protocol.get("base") or run_pid
            if isinstance(protocol.get("values"), dict):
                values_of.setdefault(pid, protocol["values"])
            real = bool(rec.get("real")) or str(rec["metric"]).endswith(REAL_SUFFIX)
            metric = str(rec["metric"])
            if metric.endswith(REAL_SUFFIX):
                metric = metric[: -len(REAL_SUFFIX)]
            column = metric
            lines.append({
                "row": REAL_ROW if real else label, "kind": "real" if real else "reproduced",
                "dataset": rec.get("dataset") or dataset, "run": str(run.path), "seed": rec.get("seed", seed),
                "column": column, "metric_id": str(rec["metric"]), "value": _num(rec.get("value")),
                "std": _num(rec.get("std")), "std_over": rec.get("std_over"), "status": rec.get("status", "ok"),
                "reason": rec.get("reason"), "variant": rec.get("variant") or (rec.get("protocol") or {}).get("variant"),
                "split": (rec.get("protocol") or {}).get("split"),
                "num_images": (rec.get("protocol") or {}).get("num_images"),
                "underpowered": rec.get("underpowered") or None,
                "pid": pid, "rid": protocol.get("id"), "method": method,
            })
        evaluated = {line["pid"] for line in lines if line["run"] == str(run.path) and line["kind"] == "reproduced"}
        if len(evaluated) == 1:  # the row of a run is that of the protocol it was evaluated under
            run_rows[-1]["pid"] = evaluated.pop()
    long = pd.DataFrame(lines, columns=["row", "kind", "dataset", "run", "seed", "column", "metric_id", "value",
                                        "std", "std_over", "status", "reason", "variant", "split", "num_images",
                                        "underpowered", "pid", "rid", "method"])
    _key_by_protocol(run_rows, long)
    return long, run_rows, datasets, values_of


def _key_by_protocol(run_rows: list[dict], long: pd.DataFrame) -> None:
    """Rows are keyed by (label, protocol id): a label met with several protocol ids gets `` [protocol <id>]``
    (6 hex) on each of its rows, so records of different protocols never share a cell."""
    pids: dict[tuple[str, str], set] = {}  # (label, data set) -> protocol ids
    for r in run_rows:
        pids.setdefault((r["row"], r["dataset"]), set()).add(r["pid"])
    for label, dataset, pid in zip(long["row"], long["dataset"], long["pid"]):
        pids.setdefault((label, dataset), set()).add(pid)

    def keyed(label: str, dataset: str, pid: str) -> str:
        return f"{label} [protocol {pid[:6]}]" if len(pids[(label, dataset)]) > 1 else label

    for r in run_rows:
        r["row"] = keyed(r["row"], r["dataset"], r["pid"])
    if not long.empty:
        long["row"] = [keyed(*key) for key in zip(long["row"], long["dataset"], long["pid"])]


def _protocol_notes(run_rows: list[dict], long: pd.DataFrame, values_of: dict[str, dict],
                    multi: bool) -> list[str]:
    """One footnote per method (and the real-image rows) whose rows were measured under different protocols,
    naming the keys that differ and each row's value."""
    from harness.config.protocol import differing_keys

    groups: dict[str, dict[str, str]] = {}  # method -> {row label: protocol id}
    for r in run_rows:
        groups.setdefault(r["method"], {}).setdefault(_with_dataset(r["row"], r["dataset"], multi), r["pid"])
    if not long.empty:
        for label, kind, pid, dataset, method in zip(long["row"], long["kind"], long["pid"], long["dataset"],
                                                     long["method"]):
            label = _with_dataset(label, dataset, multi)
            group = REAL_ROW if kind == "real" else method
            groups.setdefault(group, {})[label] = pid
    notes = []
    for group, rows in groups.items():
        pids = list(dict.fromkeys(rows.values()))
        if len(pids) < 2:
            continue
        diff = differing_keys([values_of.get(p, {}) for p in pids])
        labels = {p: [label for label, q in rows.items() if q == p] for p in pids}
        parts = [f"{key} = " + " vs ".join(f"{show_value(v)} ({', '.join(labels[p])})" for p, v in zip(pids, vals))
                 for key, vals in diff.items()]
        notes.append(f"{group}: rows measured under different protocols; they differ in "
                     + ("; ".join(parts) if parts else "settings not recorded"))
    return notes


def _latest_records(records: list[dict]) -> list[dict]:
    """The records of the latest evaluation of each metric (the eval_id of that metric's last record)."""
    latest: dict[str, Any] = {}
    for r in records:
        latest[r["metric"]] = r.get("eval_id")
    chosen: dict[str, dict] = {}
    for r in records:
        if r.get("eval_id") == latest[r["metric"]]:
            chosen[r["metric"]] = r  # a repeated record within one evaluation: the last
    return list(chosen.values())


def _num(v: Any) -> Optional[float]:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _with_dataset(label: str, dataset: str, multi: bool) -> str:
    return f"{label} [{dataset}]" if multi else label


# ------------------------------------------------------------------------------------------------------
# Aggregation and marking
# ------------------------------------------------------------------------------------------------------
def _aggregate(group: pd.DataFrame, *, dedupe: bool) -> Cell:
    """One cell from the records of one row and column (one per run)."""
    ok = group[(group["status"] == "ok") & group["value"].notna()]
    skipped = group[group["status"] != "ok"]
    full = list(dict.fromkeys(str(r) for r in skipped["reason"] if r is not None and str(r)))
    reasons = "; ".join(full)
    if dedupe:  # real-image records repeat in every run of a data set: count each distinct result once
        ok = ok.drop_duplicates(subset=["value", "std", "std_over"])
    if ok.empty:
        if skipped.empty:
            return Cell()
        return Cell(status="skipped", note=reasons or "skipped", n=0, reasons=full or ["skipped"],
                    skipped_runs=len(group), total_runs=len(group))
    n = len(ok)
    note = f"{len(skipped)} of {len(group)} runs skipped: {reasons}" if len(skipped) else None
    counts = {"reasons": full, "skipped_runs": len(skipped), "total_runs": len(group)}
    weak = "; ".join(dict.fromkeys(str(r) for r in ok["underpowered"] if isinstance(r, str) and r)) or None
    if n == 1:
        rec = ok.iloc[0]
        std = _num(rec["std"])
        return Cell(value=float(rec["value"]), std=std, over=(rec["std_over"] or None) if std is not None else None,
                    n=1, status="ok", note=note, underpowered=weak, **counts)
    values = ok["value"].astype(float)
    seeds = ok["seed"].tolist()
    distinct_seeds = len(set(map(str, seeds))) == n and not dedupe
    over = f"{n} {'seeds' if distinct_seeds else 'runs'}"
    return Cell(value=float(values.mean()), std=float(values.std(ddof=1)), over=over, n=n, status="ok", note=note,
                underpowered=weak, **counts)


def _protocols(long: pd.DataFrame, columns: list[str]) -> dict[str, list[str]]:
    """The distinct protocol texts (records' ``variant``) per column, real-image rows separately."""
    out: dict[str, list[str]] = {}
    if long.empty:
        return out
    for column in columns:
        for kind, name in (("reproduced", column), ("real", f"{column} ({REAL_ROW})")):
            texts = long[(long["column"] == column) & (long["kind"] == kind) & long["variant"].notna()]["variant"]
            texts = [t for t in dict.fromkeys(map(str, texts)) if t.strip()]
            if texts:
                out[name] = texts
    return out


def _order_rows(rows: list[Row], method_of: dict[str, str]) -> list[Row]:
    """Reproduced rows grouped by method (in order of first appearance, variants after their method);
    the real-image rows last."""
    reproduced = [r for r in rows if r.kind == "reproduced"]
    order = list(dict.fromkeys(method_of.get(r.label, r.label) for r in reproduced))
    reproduced.sort(key=lambda r: (order.index(method_of.get(r.label, r.label)), r.label != method_of.get(r.label)))
    return reproduced + [r for r in rows if r.kind == "real"]


def _add_reported_rows(plugins: Plugins, rows: list[Row], method_of: dict[str, str], datasets: list[str],
                       multi: bool) -> list[Row]:
    """Insert ``<method> (reported)`` after each method's reproduced rows."""
    out: list[Row] = []
    reproduced = [r for r in rows if r.kind == "reproduced"]
    methods = list(dict.fromkeys(method_of.get(r.label, r.label) for r in reproduced))
    for method in methods:
        out += [r for r in reproduced if method_of.get(r.label) == method]
        try:
            info = plugins.method(method)
        except HarnessError:
            continue
        for dataset in datasets:
            numbers = [n for n in info.reported if (n.dataset or "cub") == dataset]
            if not numbers:
                continue
            row = Row(_with_dataset(f"{method} (reported)", dataset, multi), "reported")
            row.sources = list(dict.fromkeys(n.source for n in numbers if n.source))
            for num in numbers:
                cell = _reported_cell(num)
                if num.metric in row.cells:  # two published numbers for one metric: keep both, as text
                    prev = row.cells[num.metric]
                    prev.note = "; ".join(x for x in (prev.note or _plain_number(prev), cell.note or _plain_number(cell)) if x)
                    prev.value = None
                else:
                    row.cells[num.metric] = cell
            out.append(row)
    return out + [r for r in rows if r.kind == "real"]


def _reported_cell(num: ReportedNumber) -> Cell:
    if num.relative_to:
        return Cell(status="ok", note=f"{num.value:+.2f} % vs {num.relative_to} (reported)", n=0, reported=True)
    std = _num(num.std)
    return Cell(value=float(num.value), std=std, over=num.std_over if std is not None else None, n=0, status="ok",
                reported=True)


def _plain_number(cell: Cell) -> str:
    if cell.value is None:
        return ""
    return f"{cell.value:g}" + (f" ± {cell.std:g}" if cell.std is not None else "")


def _order_columns(plugins: Plugins, columns: list[str]) -> list[str]:
    try:
        registered = list(plugins.metrics())
    except Exception:  # a broken metrics registry must not hide the table
        registered = []
    order = list(METRIC_ORDER)

    def position(base: str) -> float:
        if base in order:
            return order.index(base)
        family = base.split("_")[0]  # e.g. rp_ext right after rp
        if family in order:
            return order.index(family) + 0.5
        return len(order) + (registered.index(base) if base in registered else len(registered))

    return sorted(columns, key=lambda c: (position(c), c))


def _registry(plugins: Plugins) -> dict[str, MetricInfo]:
    try:
        return dict(plugins.metrics())
    except Exception:  # a broken metrics registry must not hide the table
        return {}


def _direction(plugins: Plugins, column: str) -> Optional[str]:
    d = getattr(_registry(plugins).get(column), "direction", None)
    return d if d in ("higher", "lower") else None


def _metric_format(info: Optional[MetricInfo], column: str, values: list[Optional[float]]) -> MetricFormat:
    """The metric's registered ``MetricFormat``; without one, its id with decimals for the column's typical
    magnitude (two from 1 up, three significant digits below)."""
    fmt = getattr(info, "format", None)
    if isinstance(fmt, MetricFormat):
        return fmt
    numbers = sorted(abs(v) for v in values if v is not None)
    return MetricFormat(column, decimals=_decimals(numbers[len(numbers) // 2]) if numbers else 2)


def _extra_format(column: str) -> MetricFormat:
    if column == "params":
        return MetricFormat("Params", unit="M", decimals=2, scale=1e-6)
    if column == "speed":
        return MetricFormat("Speed", unit="img/s", decimals=1)
    return MetricFormat(f"{column[len(ATTRIBUTE_PREFIX):]} acc.", unit="%", decimals=1)  # a probe attribute


def _shown_value(value: float, fmt: MetricFormat) -> float:
    """The number as printed (scaled, rounded to the column's decimals)."""
    return round(value * fmt.scale, fmt.decimals)


def _mark_best(rows: list[Row], directions: dict[str, Optional[str]], formats: dict[str, MetricFormat]) -> None:
    for column, direction in directions.items():
        if direction is None:
            continue
        cells = [r.cells[column] for r in rows if r.kind == "reproduced" and column in r.cells
                 and r.cells[column].value is not None and r.cells[column].status == "ok"
                 and not r.cells[column].underpowered]  # too few images: never the best
        if not cells:
            continue
        shown = [_shown_value(c.value, formats[column]) for c in cells]  # ties as printed are all marked
        best = min(shown) if direction == "lower" else max(shown)
        for c, v in zip(cells, shown):
            c.best = v == best


# ------------------------------------------------------------------------------------------------------
# Extra columns: params, speed, probe attributes
# ------------------------------------------------------------------------------------------------------
def _extra_value(plugins: Plugins, column: str, runs: list[RunDir]) -> Optional[float]:
    if column == "params":
        found = (_params(plugins, r) for r in runs)
    elif column.startswith(ATTRIBUTE_PREFIX):
        found = (_probe_attribute(r, column[len(ATTRIBUTE_PREFIX):]) for r in runs)
    else:
        found = (_speed(r) for r in runs)
    values = [v for v in found if v is not None]
    return float(sum(values) / len(values)) if values else None


def _latest_probe(run: RunDir) -> dict:
    """The per-attribute accuracies of the run's latest ``probe_acc`` record ({} when there is none)."""
    recs = [r for r in _latest_records(run.read_records()) if r["metric"] == "probe_acc"]
    per = recs[0].get("per_attribute") if recs and recs[0].get("status", "ok") == "ok" else None
    return per if isinstance(per, dict) else {}


def _probe_attributes(runs: list[RunDir]) -> list[str]:
    """Every attribute the runs' probes report, in order of first appearance."""
    return list(dict.fromkeys(a for r in runs for a in _latest_probe(r)))


def _probe_attribute(run: RunDir, attribute: str) -> Optional[float]:
    return _num(_latest_probe(run).get(attribute))


def _params(plugins: Plugins, run: RunDir) -> Optional[float]:
    """Generator parameters: ``params.json`` (``{"generator": n}``) or a log entry ``params_generator`` if the
    run recorded them, else counted by building the generator from the run's config (fresh weights; the
    generator's size does not depend on the vocabulary)."""
    from harness.core.rundir import read_run_info

    n = ((read_run_info(run) or {}).get("params") or {}).get("generator")
    if n is not None:
        return float(n)
    p = run.path / "params.json"
    if p.exists():
        try:
            n = json.loads(p.read_text()).get("generator")
            if n is not None:
                return float(n)
        except (ValueError, AttributeError):
            pass
    for entry in run.read_log():
        if "params_generator" in entry:
            return float(entry["params_generator"])
    try:
        from harness.build import build_for_counting, count_parameters

        cfg = run.load_config(plugins)
        mods = build_for_counting(plugins, cfg, 64)
        return float(count_parameters(mods.generator, exclude=list(mods.aux.values())))
    except Exception:  # no engine/encoders yet, or the method is not installed: leave the cell empty
        return None


def _speed(run: RunDir) -> Optional[float]:
    """Training images/s: the median over the run's log entries that carry it."""
    values = []
    for entry in run.read_log():
        for k in SPEED_LOG_KEYS:
            if k in entry and _num(entry[k]) is not None:
                values.append(float(entry[k]))
                break
    if not values:
        return None
    return float(pd.Series(values).median())


# ------------------------------------------------------------------------------------------------------
# Formatting
# ------------------------------------------------------------------------------------------------------
def _decimals(v: float) -> int:
    """Two decimals from 1 up; three significant digits below 1 (KID, fractions)."""
    a = abs(v)
    if a == 0 or a >= 1:
        return 2
    return min(6, 2 - math.floor(math.log10(a)))


def _number(value: float, fmt: MetricFormat) -> str:
    """``value`` as the column prints it: scaled, with the column's fixed decimals."""
    return f"{value * fmt.scale:.{fmt.decimals}f}"


def _over_text(over: str, reported: bool = False) -> str:
    if reported:
        return f"± as published, over {over}"
    if over.endswith("seeds") or over.endswith("runs"):
        return f"mean ± sample std over {over}"
    return f"one evaluation: ± is the std over its {over}"


def _pm_note(cell: Cell) -> Optional[str]:
    """What a cell's ± is over (the footnote text), or None when it has no ±."""
    if cell.value is None or cell.std is None:
        return None
    if cell.over:
        return _over_text(cell.over, cell.reported)
    return "± as published (over what is not stated)" if cell.reported else "± as recorded (over what is not stated)"


class _Notes:
    """Footnote markers a, b, c, … in order of first use."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def marker(self, text: str) -> str:
        if text not in self.texts:
            self.texts.append(text)
        i = self.texts.index(text)
        letters = ""
        i += 1
        while i:
            i, r = divmod(i - 1, 26)
            letters = chr(ord("a") + r) + letters
        return letters


@dataclass
class _Shown:
    """One cell as Markdown and LaTeX print it: a number (± std) or a text, its best mark and footnotes."""

    value: Optional[str] = None
    std: Optional[str] = None
    text: str = "–"
    best: bool = False
    markers: list[str] = field(default_factory=list)


@dataclass
class _Layout:
    """The format-independent content of a Markdown or LaTeX table (only ``table.shown`` metric columns)."""

    columns: list[str]  # shown metric columns, then the extra columns
    header_markers: dict[str, str]
    rows: list[tuple[Row, list[str], list[_Shown]]]  # row, its label's markers, its cells
    notes: _Notes
    legend: list[str]  # plain-text sentences under the footnotes (`code` in backticks)
    protocol: str


def _short(cell: Cell, labels: dict[str, str]) -> tuple[str, str]:
    """(short reason, hint) of a cell's skips, distinct reasons joined."""
    shorts = [short_reason(r, labels) for r in cell.reasons or ["skipped"]]
    text = ", ".join(dict.fromkeys(t for t, _ in shorts))
    hint = "; ".join(dict.fromkeys(h for _, h in shorts if h))
    return text, hint


def _layout(table: ResultsTable) -> _Layout:
    notes = _Notes()
    labels = table.weight_labels
    shared: dict[str, str] = {}  # column -> what its ± is over, said once on the header
    for c in table.shown:  # the most common basis; cells with another carry their own marker
        texts = [t for t in (_pm_note(r.cells[c]) for r in table.rows if c in r.cells) if t]
        if texts:
            shared[c] = max(dict.fromkeys(texts), key=texts.count)
    header_markers = {c: notes.marker(t) for c, t in shared.items()}
    rows = []
    for row in table.rows:
        label_markers = []
        if row.kind == "reported" and row.sources:
            label_markers.append(notes.marker("reported: " + "; ".join(scrub(s) for s in row.sources)))
        cells = []
        for c in table.shown:
            cell = row.cells.get(c, Cell())
            fmt = table.formats[c]
            out = _Shown(best=cell.best and not cell.underpowered)
            if cell.status == "skipped":
                text, hint = _short(cell, labels)
                out.markers.append(notes.marker(f"not computed: {text}" + (f" ({hint})" if hint else "")))
            elif cell.value is None:
                # a reported relative claim; the row already says "reported"
                out.text = scrub(cell.note).replace(" (reported)", "") if cell.note else "–"
            else:
                out.value = _number(cell.value, fmt)
                out.std = _number(cell.std, fmt) if cell.std is not None else None
                pm = _pm_note(cell)
                if pm and pm != shared.get(c):
                    out.markers.append(notes.marker(pm))
                if cell.underpowered:
                    out.markers.append(notes.marker("underpowered (too few images; computed anyway, never marked "
                                                    f"best): {scrub(cell.underpowered)}"))
                if cell.skipped_runs:
                    text, hint = _short(cell, labels)
                    out.markers.append(notes.marker(f"{cell.skipped_runs} of {cell.total_runs} runs not computed: "
                                                    f"{text}" + (f" ({hint})" if hint else "")))
            cells.append(out)
        for c in table.extra_columns:
            v = row.extras.get(c)
            cells.append(_Shown(value=_number(v, table.formats[c])) if v is not None else _Shown())
        rows.append((row, label_markers, cells))
    return _Layout(table.shown + table.extra_columns, header_markers, rows, notes, _legend(table), _protocol(table))


def _legend(table: ResultsTable) -> list[str]:
    """Sentences under the table: best marks, the real-image row, what was not computed and why."""
    lines = []
    if any(r.cells[c].best for r in table.rows for c in table.shown if c in r.cells):
        kinds = {r.kind for r in table.rows}
        others = [name for kind, name in (("reported", "reported"), ("real", "real-image")) if kind in kinds]
        lines.append("Bold: best per column (↑ higher, ↓ lower is better)"
                     + (f"; {' and '.join(others)} rows are not ranked" if others else "") + ".")
    if any(r.kind == "real" for r in table.rows):
        lines.append("Real images: the metric on the real test images, a reference.")
    groups: dict[tuple[str, str], list[str]] = {}
    for c in table.columns:
        if c in table.shown:
            continue
        cells = [r.cells[c] for r in table.rows if c in r.cells and r.cells[c].status == "skipped"]
        if cells:
            merged = Cell(reasons=list(dict.fromkeys(x for cell in cells for x in cell.reasons)))
            groups.setdefault(_short(merged, table.weight_labels), []).append(table.formats[c].name)
    if groups:
        lines.append("Not computed: " + join_reasons([(names, t, h) for (t, h), names in groups.items()]) + ".")
    lines += table.protocol_notes
    return lines


def _protocol(table: ResultsTable) -> str:
    """One sentence: data set(s), split, images generated per evaluation."""
    parts = [f"{' or '.join(table.splits)} split"] if table.splits else []
    if table.num_images:
        parts.append(f"{' or '.join(f'{n:,}' for n in table.num_images)} generated images per evaluation")
    return f"Evaluated on {', '.join(table.datasets)}" + (f" ({', '.join(parts)})" if parts else "") + "."


def _arrow(direction: Optional[str]) -> str:
    return {"higher": "↑", "lower": "↓"}.get(direction or "", "")


@dataclass
class TableCell:
    """One cell as every renderer shows it: plain text (a number with its ± std, a note, or "–"), whether it is
    the best of its column, and its footnote markers (a, b, …; ``TableCells.footnotes`` holds their texts)."""

    text: str
    best: bool = False
    markers: list[str] = field(default_factory=list)


@dataclass
class TableCells:
    """A results table laid out independently of its format (Markdown here, HTML in ``harness.reporting.report``): the
    header (method column first, metric display names with ↑/↓), one row of cells per table row (label first),
    the footnotes as (marker, text), the legend sentences and the protocol sentence."""

    head: list[TableCell]
    rows: list[list[TableCell]]
    footnotes: list[tuple[str, str]]
    legend: list[str]
    protocol: str


def table_cells(table: ResultsTable) -> TableCells:
    """The cells, footnotes and legend of ``table`` (``render_markdown`` prints exactly these)."""
    lay = _layout(table)
    head = [TableCell("Method")]
    for c in lay.columns:
        h = " ".join(x for x in (table.formats[c].header(), _arrow(table.directions.get(c))) if x)
        head.append(TableCell(h, markers=[lay.header_markers[c]] if c in lay.header_markers else []))
    rows = []
    for row, label_markers, cells in lay.rows:
        out = [TableCell(row.label, markers=list(label_markers))]
        for cell in cells:
            if cell.value is None:  # a note or "–": never marked best
                out.append(TableCell(cell.text, markers=list(cell.markers)))
            else:
                text = cell.value + (f" ± {cell.std}" if cell.std is not None else "")
                out.append(TableCell(text, best=cell.best, markers=list(cell.markers)))
        rows.append(out)
    return TableCells(head, rows, [(lay.notes.marker(t), t) for t in lay.notes.texts], lay.legend, lay.protocol)


def render_markdown(table: ResultsTable, *, caption: Optional[str] = None) -> str:
    """The table as GitHub Markdown: display names with arrows, fixed decimals, **best**, footnotes [a], the
    legend and the protocol sentence; no paths or URLs (see ``harness.reporting.table_text``)."""
    parts = table_cells(table)

    def md(cell: TableCell) -> str:
        text = f"**{_md_escape(cell.text)}**" if cell.best else _md_escape(cell.text)
        return text + (f" [{','.join(cell.markers)}]" if cell.markers else "")

    lines = [f"**{_md_escape(caption)}**", ""] if caption else []
    lines += ["| " + " | ".join(md(h) for h in parts.head) + " |",
              "|" + "|".join(["---"] + ["---:"] * (len(parts.head) - 1)) + "|"]
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in parts.rows]
    lines.append("")
    lines += [f"[{m}] {_md_escape(t)}" for m, t in parts.footnotes]
    lines += [_md_escape(t) for t in parts.legend] + [parts.protocol]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "→": r"$\to$", "×": r"$\times$",
                  "≤": r"$\leq$", "≥": r"$\geq$", "·": r"$\cdot$", "–": "--", "—": "---", "…": r"\dots{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "³": r"$^{3}$", "²": r"$^{2}$"}


def latex_escape(text: str) -> str:
    """Escape text for LaTeX (pdflatex-safe: other non-ASCII characters are reduced to ASCII)."""
    out = []
    for ch in str(text):
        if ch in _LATEX_SPECIAL:
            out.append(_LATEX_SPECIAL[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            out.append(unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode() or "?")
    return "".join(out)


def _latex_text(text: str) -> str:
    """Escaped text whose `code` spans become \\texttt."""
    parts = text.split("`")
    return "".join(rf"\texttt{{{latex_escape(p)}}}" if i % 2 else latex_escape(p) for i, p in enumerate(parts))


def _sup(markers: list[str]) -> str:
    return rf"\textsuperscript{{{','.join(markers)}}}" if markers else ""


# Metric columns up to which a LaTeX table is a one-column ``table`` at \columnwidth; beyond, ``table*``.
ONE_COLUMN_MAX = 3


def render_latex(table: ResultsTable, *, caption: Optional[str] = None, label: Optional[str] = None,
                 siunitx: bool = False) -> str:
    """The table as a LaTeX float (booktabs; graphicx; siunitx with ``siunitx``).

    Up to ``ONE_COLUMN_MAX`` columns (metrics and extras) a ``table`` no wider than ``\\columnwidth``, beyond a
    ``table*`` no wider than ``\\textwidth`` (shrunk only if its natural width exceeds that). The caption is
    ``caption`` (default "Text-to-image results.") followed by the protocol sentence; ``label`` defaults to
    ``tab:results``. With ``siunitx`` the number columns are ``S`` columns aligned on the decimal point.
    """
    lay = _layout(table)
    wide = len(lay.columns) > ONE_COLUMN_MAX
    env, width = ("table*", r"\textwidth") if wide else ("table", r"\columnwidth")
    packages = "booktabs,graphicx" + (",siunitx" if siunitx else "")
    heads = []
    for c in lay.columns:  # "R-precision" over "(%) ↑ᵃ": a header no wider than its longest part
        fmt = table.formats[c]
        name = fmt.latex or latex_escape(fmt.name)
        if fmt.unit:
            name += f" ({fmt.latex_unit or latex_escape(fmt.unit)})"
        arrow = latex_escape(_arrow(table.directions.get(c)))
        h = name + (f" {arrow}" if arrow else "") + _sup([lay.header_markers[c]] if c in lay.header_markers else [])
        first, sep, rest = h.partition(" (")
        if sep and "(" not in first and "$" not in first:
            h = rf"\begin{{tabular}}[b]{{@{{}}r@{{}}}}{first}\\({rest}\end{{tabular}}"
        heads.append(f"{{{h}}}" if siunitx else h)
    spec = "l" + "".join(_siunitx_spec(lay, i) if siunitx else "r" for i in range(len(lay.columns)))
    lines = [f"% t2i-harness results table; needs \\usepackage{{{packages}}}",
             rf"\begin{{{env}}}[t]", r"\centering",
             rf"\caption{{{latex_escape(join_sentences(caption or 'Text-to-image results.', lay.protocol))}}}",
             rf"\label{{{label or 'tab:results'}}}", r"\small", r"\setlength{\tabcolsep}{4pt}",
             rf"\resizebox{{\ifdim\width>{width}{width}\else\width\fi}}{{!}}{{%",
             rf"\begin{{tabular}}{{@{{}}{spec}@{{}}}}", r"\toprule",
             " & ".join(["Method"] + heads) + r" \\", r"\midrule"]
    previous_kind = None
    for row, label_markers, cells in lay.rows:
        if previous_kind is not None and row.kind != previous_kind and "real" in (row.kind, previous_kind):
            lines.append(r"\midrule")
        previous_kind = row.kind
        out = [latex_escape(row.label) + _sup(label_markers)]
        for cell in cells:
            out.append(_latex_cell(cell, siunitx))
        lines.append(" & ".join(out) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}"]
    foot = [rf"\textsuperscript{{{lay.notes.marker(t)}}}\,{_latex_text(t)}." for t in lay.notes.texts]
    foot += [_latex_text(t).replace("Bold:", r"\textbf{Bold}:") for t in lay.legend]
    if foot:
        lines += [r"\par\smallskip", r"{\footnotesize\raggedright " + " ".join(foot) + r"\par}"]
    lines.append(rf"\end{{{env}}}")
    return "\n".join(lines) + "\n"


def _latex_cell(cell: _Shown, siunitx: bool) -> str:
    marks = _sup(cell.markers)
    if cell.value is None:
        text = latex_escape(cell.text)
        return f"{{{text}{marks}}}" if siunitx else text + marks
    if siunitx:  # S column: the number (and its uncertainty) parsed by siunitx; the marker as text after it
        number = cell.value + (rf" \pm {cell.std}" if cell.std is not None else "")
        return (r"\bfseries " if cell.best else "") + number + (f"{{{marks}}}" if marks else "")
    number = cell.value + (rf"\,$\pm$\,{cell.std}" if cell.std is not None else "")
    return (rf"\textbf{{{number}}}" if cell.best else number) + marks


def _siunitx_spec(lay: _Layout, i: int) -> str:
    """``S[table-format=I.D(J.D)]`` wide enough for every number of column ``i`` (J.D: its ±, printed as
    "± x"), bold by ``\bfseries``, with room after the numbers for the column's widest footnote marker."""
    cells = [cells[i] for _, _, cells in lay.rows if cells[i].value is not None]
    values = [c.value for c in cells]
    digits = max([len(v.lstrip("-").split(".")[0]) for v in values] or [1])
    decimals = max([len(v.split(".")[1]) if "." in v else 0 for v in values] or [0])
    spec = ("-" if any(v.startswith("-") for v in values) else "") + f"{digits}" + (f".{decimals}" if decimals else "")
    stds = [c.std for c in cells if c.std is not None]
    if stds:
        std_digits = max(len(s.split(".")[0]) for s in stds)
        spec += f"({std_digits}" + (f".{decimals})" if decimals else ")")
    options = [f"table-format={spec}", "detect-weight"]
    if stds:  # "± 0.00" stays printed, as in the plain table
        options += ["uncertainty-mode=separate", "retain-zero-uncertainty"]
    marks = [",".join(c.markers) for c in cells if c.markers]
    if marks:
        options.append(rf"table-space-text-post={{{_sup([max(marks, key=len)])}}}")
    return f"S[{', '.join(options)}]"


def explain_table(table: ResultsTable) -> str:
    """The text of ``harness table --explain``: for each metric column, the full reasons of every skip (with
    the rows they concern) and the protocol texts of its records; paths and URLs included."""
    lines = []
    for c in table.columns:
        fmt = table.formats[c]
        state = "shown" if c in table.shown else "not shown (no computed value)"
        lines.append(f"{c} ({fmt.header()}): {state}")
        reasons: dict[str, list[str]] = {}
        for row in table.rows:
            cell = row.cells.get(c)
            for reason in (cell.reasons if cell else []):
                reasons.setdefault(reason, []).append(row.label)
        for reason, labels in reasons.items():
            lines.append(f"    skipped for {', '.join(labels)}: {reason}")
        for name in (c, f"{c} ({REAL_ROW})"):
            for text in table.protocols.get(name, []):
                lines.append(f"    protocol{' (' + REAL_ROW + ')' if name != c else ''}: {text}")
    return "\n".join(lines) + "\n"


def render_csv(table: ResultsTable) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["row", "kind"]
    for c in table.columns:
        head += [c, f"{c}_std", f"{c}_over", f"{c}_n", f"{c}_best", f"{c}_note", f"{c}_underpowered"]
    head += table.extra_columns
    w.writerow(head)
    for row in table.rows:
        line: list[Any] = [row.label, row.kind]
        for c in table.columns:
            cell = row.cells.get(c, Cell())
            note = cell.note if cell.status != "skipped" else f"skipped: {cell.note}"
            line += [_csv_num(cell.value), _csv_num(cell.std), cell.over or "", cell.n or "",
                     "*" if cell.best and not cell.underpowered else "", note or "", cell.underpowered or ""]
        line += [_csv_num(row.extras.get(c)) for c in table.extra_columns]
        w.writerow(line)
    return buf.getvalue()


def _csv_num(v: Optional[float]) -> str:
    return "" if v is None else repr(float(v))
