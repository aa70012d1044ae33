"""Rows stage of the results table: ``TableRecords`` → ``ResultsTable`` (rows of cells with numbers, not text).

* **Rows.** One row per method, or per method variant (the run's label, ``harness.runs.info.row_label``); with
  runs of several data sets the label ends in ``[dataset]``. Reproduced rows are grouped by method, in order of
  first appearance, variants after their method; ``<method> (reported)`` rows (``MethodInfo.reported``, for the
  data sets in the table) after each method's rows when asked; the real-image rows last.
* **Columns.** Metric ids in the order of ``METRIC_ORDER``; another id of the same family right after it
  (``rp_ext`` after ``rp``), any other in registry order; ``picked`` (``--metrics``) picks and orders them.
  ``shown`` holds those with a computed value (the Markdown and LaTeX columns).
* **Cells.** With several runs of a row: mean ± sample standard deviation (ddof = 1) over them ("seeds" when
  the runs have distinct seeds, else "runs"). With one run: the record's value ± its own std, over what the
  record says (``std_over``: folds, splits).
* **Best.** Per column, among the reproduced rows only, the lowest mean for metrics whose
  ``MetricInfo.direction`` is ``lower``, the highest otherwise; values equal at the printed precision are all
  marked; underpowered cells and metrics without a direction are never marked.
* **Extra columns.** ``params`` (generator parameters), ``speed`` (training images/s: median of the run's
  ``log.jsonl`` ``images_per_s``), ``probe_acc.<attribute>`` (the shapes probe's accuracy on one attribute);
  each the mean over the row's runs.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Optional

import pandas as pd

from harness.contract.types import MetricFormat
from harness.core.rundir import RunDir
from harness.reporting.table_records import (RunRow, TableRecords, column_protocols, latest_probe, num,
                                             protocol_notes)
from harness.util.errors import HarnessError

if TYPE_CHECKING:  # type hints only
    from harness.contract.plugins import Plugins
    from harness.contract.types import MetricInfo, ReportedNumber

# Metric ids in table order (``rp_real`` becomes the ``real images`` row under ``rp``).
METRIC_ORDER = ("is", "is_ft", "fid", "fid_tv", "kid", "rp", "rp_real", "clip_rp", "clip_score", "probe_acc",
                "probe_fid", "probe_is")
ATTRIBUTE_PREFIX = "probe_acc."  # probe_attributes expands into probe_acc.<attribute> columns
SPEED_KEY = "images_per_s"  # the training loop's log.jsonl key for training throughput


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
    underpowered: Optional[str] = None  # the records' reasons (harness.evaluation.metrics.power): never best
    published: list[Cell] = field(default_factory=list)  # a reported cell of several published numbers: each one


@dataclass
class Row:
    label: str
    kind: str  # reproduced | reported | real
    cells: dict[str, Cell] = field(default_factory=dict)
    extras: dict[str, Optional[float]] = field(default_factory=dict)  # params, speed, probe attributes
    sources: list[str] = field(default_factory=list)  # reported rows: where the numbers were published
    runs: list[RunRow] = field(default_factory=list)  # reproduced rows: the runs it aggregates


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


def records_to_rows(plugins: Plugins, records: TableRecords, *, extra: list[str], picked: list[str],
                    with_paper_numbers: bool = False) -> ResultsTable:
    """Aggregate the records into rows of cells, order rows and columns, mark the best, fill the extra columns
    (``extra``: ``params``, ``speed``, ``probe_acc.<attribute>``); ``picked`` metric ids replace the columns."""
    long = records.lines
    rows: dict[tuple[str, str], Row] = {}  # (label, kind) -> Row, in order of first appearance
    method_of: dict[str, str] = {}
    for run_row in records.runs:  # every run gets its row, even without records
        label = records.row_label(run_row.label, run_row.dataset)
        rows.setdefault((label, "reproduced"), Row(label, "reproduced")).runs.append(run_row)
        method_of[label] = run_row.method
    metric_columns: list[str] = []
    if not long.empty:
        long["label"] = [records.row_label(r, d) for r, d in zip(long["row"], long["dataset"])]
        for (label, kind, column), group in long.groupby(["label", "kind", "column"], sort=False):
            row = rows.setdefault((label, kind), Row(label, kind))
            ids = set(group["rid"].dropna())
            row.cells[column] = _aggregate(group, dedupe=(kind == "real")) if len(ids) <= 1 else Cell(
                note=f"not averaged: records of {len(ids)} protocol ids (metric settings or weights differ)")
        metric_columns = list(dict.fromkeys(long["column"]))

    ordered = _order_rows(list(rows.values()), method_of, records)
    if with_paper_numbers:
        ordered = _add_reported_rows(plugins, ordered, method_of, records)
    for c in (c for r in ordered for c in r.cells):
        if c not in metric_columns:
            metric_columns.append(c)
    registry = metric_registry(plugins)
    metric_columns = _order_columns(registry, metric_columns)
    if picked:
        metric_columns = list(dict.fromkeys(picked))
        shown = list(metric_columns)
    else:
        shown = [c for c in metric_columns if any(c in r.cells and r.cells[c].status == "ok" for r in ordered)]
    directions = {c: _direction(registry.get(c)) for c in metric_columns}
    formats = {c: _metric_format(registry.get(c), c, [r.cells[c].value for r in ordered if c in r.cells])
               for c in metric_columns}
    _mark_best(ordered, directions, formats)
    _fill_extras(plugins, ordered, extra)
    formats.update({c: _extra_format(c) for c in extra})
    ok = long[(long["status"] == "ok") & (long["kind"] == "reproduced")] if not long.empty else long
    return ResultsTable(metric_columns, extra, ordered, directions, records.datasets,
                        column_protocols(long, metric_columns), protocol_notes=protocol_notes(records), shown=shown,
                        formats=formats, weight_labels=_weight_labels(plugins),
                        splits=[str(x) for x in dict.fromkeys(ok["split"].dropna())] if not ok.empty else [],
                        num_images=[int(x) for x in dict.fromkeys(ok["num_images"].dropna())] if not ok.empty else [])


def metric_registry(plugins: Plugins) -> dict[str, MetricInfo]:
    """The installed metrics; {} when the registry cannot be read (the table is still made, unformatted)."""
    try:
        return dict(plugins.metrics())
    except HarnessError:
        return {}


def _weight_labels(plugins: Plugins) -> dict[str, str]:
    """Weight file name → its short label (for the "not installed" notes); {} when the registry cannot be read."""
    try:
        return {n: w.label for n, w in plugins.weight_files().items() if getattr(w, "label", "")}
    except HarnessError:
        return {}


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
        std = num(rec["std"])
        return Cell(value=float(rec["value"]), std=std, over=(rec["std_over"] or None) if std is not None else None,
                    n=1, status="ok", note=note, underpowered=weak, **counts)
    values = ok["value"].astype(float)
    distinct_seeds = len(set(map(str, ok["seed"].tolist()))) == n and not dedupe
    over = f"{n} {'seeds' if distinct_seeds else 'runs'}"
    return Cell(value=float(values.mean()), std=float(values.std(ddof=1)), over=over, n=n, status="ok", note=note,
                underpowered=weak, **counts)


def _order_rows(rows: list[Row], method_of: dict[str, str], records: TableRecords) -> list[Row]:
    """Reproduced rows grouped by method (in order of first appearance, variants after their method);
    the real-image rows last."""
    reproduced = [r for r in rows if r.kind == "reproduced"]
    order = list(dict.fromkeys(method_of.get(r.label, r.label) for r in reproduced))

    def variant(label: str) -> bool:
        return label not in method_of or label != records.name(method_of[label])

    reproduced.sort(key=lambda r: (order.index(method_of.get(r.label, r.label)), variant(r.label)))
    return reproduced + [r for r in rows if r.kind == "real"]


def _add_reported_rows(plugins: Plugins, rows: list[Row], method_of: dict[str, str],
                       records: TableRecords) -> list[Row]:
    """Insert ``<method> (reported)`` after each method's reproduced rows."""
    out: list[Row] = []
    reproduced = [r for r in rows if r.kind == "reproduced"]
    methods = list(dict.fromkeys(method_of.get(r.label, r.label) for r in reproduced))
    for method in methods:
        out += [r for r in reproduced if method_of.get(r.label) == method]
        try:
            info = plugins.method(method)
        except HarnessError:  # an image run, or a method no longer installed: nothing published to add
            continue
        for dataset in records.datasets:
            numbers = [n for n in info.reported if (n.dataset or "cub") == dataset]
            if numbers:
                out.append(_reported_row(records.row_label(f"{info.display_name} (reported)", dataset), numbers,
                                         records))
    return out + [r for r in rows if r.kind == "real"]


def _reported_row(label: str, numbers: list[ReportedNumber], records: TableRecords) -> Row:
    row = Row(label, "reported")
    row.sources = list(dict.fromkeys(n.source for n in numbers if n.source))
    for number in numbers:
        cell = _reported_cell(number, records)
        if number.metric in row.cells:  # two published numbers for one metric: keep both, as text
            prev = row.cells[number.metric]
            prev.published = (prev.published or [replace(prev)]) + [cell]
            prev.note = "; ".join(x for x in (prev.note or _plain_number(prev), cell.note or _plain_number(cell)) if x)
            prev.value = None
        else:
            row.cells[number.metric] = cell
    return row


def _reported_cell(number: ReportedNumber, records: TableRecords) -> Cell:
    if number.relative_to:
        return Cell(status="ok", note=f"{number.value:+.2f} % vs {records.name(number.relative_to)} (reported)",
                    n=0, reported=True)
    std = num(number.std)
    return Cell(value=float(number.value), std=std, over=number.std_over if std is not None else None, n=0,
                status="ok", reported=True)


def _plain_number(cell: Cell) -> str:
    if cell.value is None:
        return ""
    return f"{cell.value:g}" + (f" ± {cell.std:g}" if cell.std is not None else "")


def _order_columns(registry: dict[str, MetricInfo], columns: list[str]) -> list[str]:
    registered = list(registry)
    order = list(METRIC_ORDER)

    def position(base: str) -> float:
        if base in order:
            return order.index(base)
        family = base.split("_")[0]  # e.g. rp_ext right after rp
        if family in order:
            return order.index(family) + 0.5
        return len(order) + (registered.index(base) if base in registered else len(registered))

    return sorted(columns, key=lambda c: (position(c), c))


def _direction(info: Optional[MetricInfo]) -> Optional[str]:
    d = getattr(info, "direction", None)
    return d if d in ("higher", "lower") else None


def _metric_format(info: Optional[MetricInfo], column: str, values: list[Optional[float]]) -> MetricFormat:
    """The metric's registered ``MetricFormat``; without one, its id with decimals for the column's typical
    magnitude (two from 1 up, three significant digits below)."""
    fmt = getattr(info, "format", None)
    if isinstance(fmt, MetricFormat):
        return fmt
    numbers = sorted(abs(v) for v in values if v is not None)
    return MetricFormat(column, decimals=_decimals(numbers[len(numbers) // 2]) if numbers else 2)


def _decimals(v: float) -> int:
    """Two decimals from 1 up; three significant digits below 1 (KID, fractions)."""
    a = abs(v)
    if a == 0 or a >= 1:
        return 2
    return min(6, 2 - math.floor(math.log10(a)))


def _extra_format(column: str) -> MetricFormat:
    if column == "params":
        return MetricFormat("Params", unit="M", decimals=2, scale=1e-6)
    if column == "speed":
        return MetricFormat("Speed", unit="img/s", decimals=1)
    return MetricFormat(f"{column[len(ATTRIBUTE_PREFIX):]} acc.", unit="%", decimals=1)  # a probe attribute


def _mark_best(rows: list[Row], directions: dict[str, Optional[str]], formats: dict[str, MetricFormat]) -> None:
    for column, direction in directions.items():
        if direction is None:
            continue
        cells = [r.cells[column] for r in rows if r.kind == "reproduced" and column in r.cells
                 and r.cells[column].value is not None and r.cells[column].status == "ok"
                 and not r.cells[column].underpowered]  # too few images: never the best
        if not cells:
            continue
        fmt = formats[column]
        shown = [round(c.value * fmt.scale, fmt.decimals) for c in cells]  # ties as printed are all marked
        best = min(shown) if direction == "lower" else max(shown)
        for c, v in zip(cells, shown):
            c.best = v == best


def _fill_extras(plugins: Plugins, rows: list[Row], extra: list[str]) -> None:
    """The extra columns of every reproduced row: the mean over the row's runs of what each run has."""
    for row in rows:
        if row.kind == "reproduced":
            for c in extra:
                row.extras[c] = _extra_value(plugins, c, [r.run for r in row.runs])


def _extra_value(plugins: Plugins, column: str, runs: list[RunDir]) -> Optional[float]:
    from harness.runs.info import generator_parameters

    if column == "params":
        found = (generator_parameters(plugins, r) for r in runs)
    elif column.startswith(ATTRIBUTE_PREFIX):
        found = (num(latest_probe(r).get(column[len(ATTRIBUTE_PREFIX):])) for r in runs)
    else:
        found = (_speed(r) for r in runs)
    values = [float(v) for v in found if v is not None]
    return float(sum(values) / len(values)) if values else None


def probe_attributes(runs: list[RunDir]) -> list[str]:
    """Every attribute the runs' probes report, in order of first appearance."""
    return list(dict.fromkeys(a for r in runs for a in latest_probe(r)))


def _speed(run: RunDir) -> Optional[float]:
    """Training images/s: the median over the run's log entries that carry it."""
    values = [num(entry[SPEED_KEY]) for entry in run.read_log() if SPEED_KEY in entry]
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else None

