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
  ``rp``), any other in registry order. The protocol each column was measured with (the records'
  ``variant`` text) is listed below the table. Optional extra columns: ``params``
  (generator parameters), ``speed`` (training images/s, median over the run's ``log.jsonl``) and
  ``probe_attributes`` (one column ``probe_acc.<attribute>`` per attribute of the shapes probe: the accuracy in %
  on that attribute alone, from the latest ``probe_acc`` record's ``per_attribute``; mean over the row's runs).
* **Cells.** With several runs of a row: mean ± sample standard deviation (ddof = 1) over them ("seeds" when
  the runs have distinct seeds, else "runs"). With one run: the record's value ± its own std, which is over
  what the record says (``std_over``: folds, splits). Every ± carries a footnote marker saying what it is over.
  A cell whose every record was skipped reads ``skipped`` with the reason as a footnote.
* **Best.** Per column, among the reproduced rows only (reported and real-image rows never), the lowest mean
  for metrics whose ``MetricInfo.direction`` is ``lower`` (FID, KID), the highest otherwise; values equal at
  the printed precision are all marked; metrics without a registered direction are not marked. Markdown:
  ``**x**``; LaTeX: ``\\textbf{x}``; CSV: the column ``<metric>_best`` holds ``*``.

CSV layout: ``row, kind`` (reproduced | reported | real), then for each metric ``<m>, <m>_std, <m>_over,
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
from typing import Any, Iterable, Optional, Sequence

import pandas as pd

from harness.errors import HarnessError
from harness.results import RunDir, atomic_write_text

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
    underpowered: Optional[str] = None  # the records' reasons (harness.metrics.power): footnoted, never best


@dataclass
class Row:
    label: str
    kind: str  # reproduced | reported | real
    cells: dict[str, Cell] = field(default_factory=dict)
    extras: dict[str, Optional[float]] = field(default_factory=dict)  # params, speed


@dataclass
class ResultsTable:
    columns: list[str]  # metric columns, in order
    extra_columns: list[str]
    rows: list[Row]
    directions: dict[str, Optional[str]]  # column -> "higher" | "lower" | None
    datasets: list[str]
    protocols: dict[str, list[str]] = field(default_factory=dict)  # column -> the records' protocol texts
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
def write_table(plugins: Any, runs: Sequence[RunDir], *, fmt: str = "markdown", with_paper_numbers: bool = False,
                columns: Iterable[str] = (), out: Optional[Path | str] = None) -> str:
    """Render the results of ``runs`` as ``fmt`` (markdown | latex | csv); write it to ``out`` when given.

    Returns the text. ``columns`` adds extra columns (``params``, ``speed``). Raises HarnessError for an unknown
    format or extra column, or when there is no run.
    """
    if fmt not in FORMATS:
        raise HarnessError(f"unknown table format {fmt!r}; valid: {', '.join(FORMATS)}")
    table = build_table(plugins, runs, with_paper_numbers=with_paper_numbers, columns=columns)
    text = {"markdown": render_markdown, "latex": render_latex, "csv": render_csv}[fmt](table)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, text)
    return text


def build_table(plugins: Any, runs: Sequence[RunDir], *, with_paper_numbers: bool = False,
                columns: Iterable[str] = ()) -> ResultsTable:
    """Collect, aggregate and mark: the table independent of its format."""
    extra = [c.strip() for c in columns if c and c.strip()]
    for c in extra:
        if c not in EXTRA_COLUMNS:
            raise HarnessError(f"unknown table column {c!r}; valid: {', '.join(EXTRA_COLUMNS)}")
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
    directions = {c: _direction(plugins, c) for c in metric_columns}
    _mark_best(ordered, directions)
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
    return ResultsTable(metric_columns, extra, ordered, directions, datasets, protocols, notes)


# ------------------------------------------------------------------------------------------------------
# Collection
# ------------------------------------------------------------------------------------------------------
def _collect(plugins: Any, runs: list[RunDir]) -> tuple[pd.DataFrame, list[dict], list[str], dict[str, dict]]:
    """One long DataFrame with a line per (run, column) of the latest evaluation, each run's row, the data sets
    and the protocol values of every protocol id met.

    A run's label and protocol come from its ``run.json``; a run made before run.json existed is labelled by
    ``RowLabeller`` from its config.yaml and its protocol computed from that. Records carry their protocol id
    (``protocol.base``: the protocol as evaluated) and the metric's (``protocol.id``); older records take the
    run's."""
    from harness.protocol import protocol_id, protocol_values
    from harness.run_info import read_run_info

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
                "underpowered": rec.get("underpowered") or None,
                "pid": pid, "rid": protocol.get("id"), "method": method,
            })
        evaluated = {line["pid"] for line in lines if line["run"] == str(run.path) and line["kind"] == "reproduced"}
        if len(evaluated) == 1:  # the row of a run is that of the protocol it was evaluated under
            run_rows[-1]["pid"] = evaluated.pop()
    long = pd.DataFrame(lines, columns=["row", "kind", "dataset", "run", "seed", "column", "metric_id", "value",
                                        "std", "std_over", "status", "reason", "variant", "underpowered", "pid", "rid",
                                        "method"])
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
    from harness.protocol import differing_keys

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
        parts = [f"{key} = " + " | ".join(f"{_show(v)} ({', '.join(labels[p])})" for p, v in zip(pids, vals))
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


class RowLabeller:
    """``method`` or ``method (key=value, ...)`` for runs that change the method's ablation switches."""

    def __init__(self, plugins: Any):
        self.plugins = plugins
        self._baselines: dict[tuple, Any] = {}

    def label(self, cfg: dict) -> str:
        method = str(cfg.get("method", "?"))
        changed = [f"{key}={_show(value)}" for key, value in self.changed(cfg).items()]
        return f"{method} ({', '.join(changed)})" if changed else method

    def changed(self, cfg: dict) -> dict[str, Any]:
        """The method's ablation keys whose value in ``cfg`` differs from its preset's (``{key: value}``)."""
        try:
            info = self.plugins.method(str(cfg.get("method", "?")))
        except HarnessError:
            return {}
        if not info.ablation_keys:
            return {}
        baseline = self._baseline(info, cfg)
        changed = {}
        for key in info.ablation_keys:
            actual = _dict_get(cfg, key)
            try:
                expected = _to_plain(baseline.get(key))
            except AttributeError:
                expected = _MISSING
            if actual is not _MISSING and actual != expected:
                changed[key] = actual
        return changed

    def _baseline(self, info: Any, cfg: dict) -> Any:
        from harness.config import new_config
        from harness.run import resolve_method_config

        dataset = str((cfg.get("data") or {}).get("name", ""))
        preset = str(cfg.get("preset") or "")  # the method's preset: paper-<x> → protocol paper, else the same name
        key = (info.name, preset, dataset)
        if key not in self._baselines:
            try:
                self._baselines[key] = resolve_method_config(self.plugins, info.name, dataset=dataset, data_dir=None,
                                                             preset=preset, overrides=[]).cfg
            except (HarnessError, OSError):
                self._baselines[key] = new_config(info.config_sections)
        return self._baselines[key]


def deviation_label(values: dict[str, Any]) -> str:
    """`` (deviates: eval.num_images=5000)`` for a row label; "" without deviations."""
    if not values:
        return ""
    return " (deviates: " + ", ".join(f"{k}={_show(v)}" for k, v in values.items()) + ")"


_MISSING = object()


def _dict_get(d: dict, dotted: str) -> Any:
    obj: Any = d
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def _to_plain(v: Any) -> Any:
    import dataclasses

    return dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _with_dataset(label: str, dataset: str, multi: bool) -> str:
    return f"{label} [{dataset}]" if multi else label


# ------------------------------------------------------------------------------------------------------
# Aggregation and marking
# ------------------------------------------------------------------------------------------------------
def _aggregate(group: pd.DataFrame, *, dedupe: bool) -> Cell:
    """One cell from the records of one row and column (one per run)."""
    ok = group[(group["status"] == "ok") & group["value"].notna()]
    skipped = group[group["status"] != "ok"]
    reasons = "; ".join(dict.fromkeys(str(r) for r in skipped["reason"] if r is not None and str(r)))
    if dedupe:  # real-image records repeat in every run of a data set: count each distinct result once
        ok = ok.drop_duplicates(subset=["value", "std", "std_over"])
    if ok.empty:
        if skipped.empty:
            return Cell()
        return Cell(status="skipped", note=reasons or "skipped", n=0)
    n = len(ok)
    note = f"{len(skipped)} of {len(group)} runs skipped: {reasons}" if len(skipped) else None
    weak = "; ".join(dict.fromkeys(str(r) for r in ok["underpowered"] if isinstance(r, str) and r)) or None
    if n == 1:
        rec = ok.iloc[0]
        std = _num(rec["std"])
        return Cell(value=float(rec["value"]), std=std, over=(rec["std_over"] or None) if std is not None else None,
                    n=1, status="ok", note=note, underpowered=weak)
    values = ok["value"].astype(float)
    seeds = ok["seed"].tolist()
    distinct_seeds = len(set(map(str, seeds))) == n and not dedupe
    over = f"{n} {'seeds' if distinct_seeds else 'runs'}"
    return Cell(value=float(values.mean()), std=float(values.std(ddof=1)), over=over, n=n, status="ok", note=note,
                underpowered=weak)


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


def _add_reported_rows(plugins: Any, rows: list[Row], method_of: dict[str, str], datasets: list[str],
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


def _reported_cell(num: Any) -> Cell:
    if num.relative_to:
        return Cell(status="ok", note=f"{num.value:+.2f} % vs {num.relative_to} (reported)", n=0, reported=True)
    std = _num(num.std)
    return Cell(value=float(num.value), std=std, over=num.std_over if std is not None else None, n=0, status="ok",
                reported=True)


def _plain_number(cell: Cell) -> str:
    if cell.value is None:
        return ""
    return _fmt_value(cell.value, cell.std)


def _order_columns(plugins: Any, columns: list[str]) -> list[str]:
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


def _direction(plugins: Any, column: str) -> Optional[str]:
    try:
        info = plugins.metrics().get(column)
    except Exception:
        info = None
    d = getattr(info, "direction", None)
    return d if d in ("higher", "lower") else None


def _mark_best(rows: list[Row], directions: dict[str, Optional[str]]) -> None:
    for column, direction in directions.items():
        if direction is None:
            continue
        cells = [r.cells[column] for r in rows if r.kind == "reproduced" and column in r.cells
                 and r.cells[column].value is not None and r.cells[column].status == "ok"
                 and not r.cells[column].underpowered]  # too few images: never the best
        if not cells:
            continue
        shown = [round(c.value, _decimals(c.value)) for c in cells]  # ties as printed are all marked
        best = min(shown) if direction == "lower" else max(shown)
        for c, v in zip(cells, shown):
            c.best = v == best


# ------------------------------------------------------------------------------------------------------
# Extra columns: params, speed, probe attributes
# ------------------------------------------------------------------------------------------------------
def _extra_value(plugins: Any, column: str, runs: list[RunDir]) -> Optional[float]:
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


def _params(plugins: Any, run: RunDir) -> Optional[float]:
    """Generator parameters: ``params.json`` (``{"generator": n}``) or a log entry ``params_generator`` if the
    run recorded them, else counted by building the generator from the run's config (fresh weights; the
    generator's size does not depend on the vocabulary)."""
    from harness.run_info import read_run_info

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
        from harness.build import count_parameters
        from harness.inspect_model import build_for_counting

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


def _fmt_value(value: float, std: Optional[float], pm: str = "±") -> str:
    d = _decimals(value)
    text = f"{value:.{d}f}"
    if std is not None:
        text += f" {pm} {std:.{d}f}"
    return text


def _over_text(over: str, reported: bool = False) -> str:
    if reported:
        return f"reported: ± as published, over {over}"
    if over.endswith("seeds") or over.endswith("runs"):
        return f"mean ± sample std (ddof=1) over {over}"
    return f"a single evaluation: ± is the std over its {over}"


def _fmt_extra(column: str, v: Optional[float]) -> str:
    if v is None:
        return "–"
    if column == "params":
        return f"{v / 1e6:.2f} M"
    return f"{v:.1f}"


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


def _cell_parts(cell: Cell, notes: _Notes) -> tuple[str, Optional[str], bool]:
    """(text, footnote marker, best) for a cell, independent of the format."""
    if cell.status == "skipped":
        return "skipped", notes.marker(f"skipped: {cell.note}"), False
    if cell.value is None:
        return (cell.note or "–"), None, False
    text = _fmt_value(cell.value, cell.std)
    marker = notes.marker(_over_text(cell.over, cell.reported)) if cell.std is not None and cell.over else None
    if cell.std is not None and not cell.over:
        marker = notes.marker("± as published (the source does not say what it is over)" if cell.reported
                              else "± as recorded (the record does not say what it is over)")
    if cell.note:  # some runs skipped
        m2 = notes.marker(cell.note)
        marker = f"{marker},{m2}" if marker else m2
    if cell.underpowered:
        m3 = notes.marker(f"underpowered (too few images; computed anyway, never marked best): {cell.underpowered}")
        marker = f"{marker},{m3}" if marker else m3
    return text, marker, cell.best and not cell.underpowered


def _header(column: str, direction: Optional[str], arrows: tuple[str, str]) -> str:
    if direction == "higher":
        return f"{column} {arrows[0]}"
    if direction == "lower":
        return f"{column} {arrows[1]}"
    return column


def _legend(table: ResultsTable) -> list[str]:
    lines = []
    if any(d for d in table.directions.values()):
        lines.append("best per column in bold (↑ higher is better, ↓ lower is better); reported and real-image "
                     "rows are never marked")
    if any(r.kind == "real" for r in table.rows):
        lines.append("real images: the metric computed on real test images (e.g. rp_real under rp), a reference, "
                     "not a ceiling")
    if table.extra_columns:
        parts = {"params": "params: generator parameters (millions)",
                 "speed": "speed: training images/s (median over the run's log)"}
        lines += [parts[c] for c in table.extra_columns if c in parts]
        attributes = [c[len(ATTRIBUTE_PREFIX):] for c in table.extra_columns if c.startswith(ATTRIBUTE_PREFIX)]
        if attributes:
            lines.append(f"probe_acc.<attribute>: the shapes probe's accuracy (%) on one attribute "
                         f"({', '.join(attributes)}); mean over the row's runs")
    lines += [f"protocol of {name}: {' | '.join(texts)}" for name, texts in table.protocols.items()]
    lines += table.protocol_notes
    lines.append(f"data set: {', '.join(table.datasets)}")
    return lines


def render_markdown(table: ResultsTable) -> str:
    notes = _Notes()
    head = ["method"] + [_header(c, table.directions.get(c), ("↑", "↓")) for c in table.columns] + table.extra_columns
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for row in table.rows:
        cells = [_md_escape(row.label)]
        for c in table.columns:
            text, marker, best = _cell_parts(row.cells.get(c, Cell()), notes)
            text = _md_escape(text)
            if best:
                text = f"**{text}**"
            cells.append(text + (f" [{marker}]" if marker else ""))
        cells += [_fmt_extra(c, row.extras.get(c)) for c in table.extra_columns]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"[{notes.marker(t)}] {_md_escape(t)}" for t in notes.texts]
    if notes.texts:
        lines.append("")
    lines += _legend(table)
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "→": r"$\to$", "×": r"$\times$",
                  "≤": r"$\leq$", "≥": r"$\geq$", "·": r"$\cdot$", "–": "--", "—": "---", "…": r"\dots{}",
                  "<": r"\textless{}", ">": r"\textgreater{}"}


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


def render_latex(table: ResultsTable) -> str:
    notes = _Notes()
    ncols = 1 + len(table.columns) + len(table.extra_columns)
    head = ["method"] + [_header(c, table.directions.get(c), ("↑", "↓")) for c in table.columns] + table.extra_columns
    lines = [r"% t2i-harness results table; needs \usepackage{booktabs}",
             r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * (ncols - 1) + "}", r"\toprule",
             " & ".join(latex_escape(h) for h in head) + r" \\", r"\midrule"]
    previous_kind = None
    for row in table.rows:
        if row.kind == "real" and previous_kind not in (None, "real"):
            lines.append(r"\midrule")
        previous_kind = row.kind
        cells = [latex_escape(row.label)]
        for c in table.columns:
            text, marker, best = _cell_parts(row.cells.get(c, Cell()), notes)
            text = latex_escape(text)
            if best:
                text = rf"\textbf{{{text}}}"
            cells.append(text + (rf"$^{{\mathrm{{{marker}}}}}$" if marker else ""))
        cells += [latex_escape(_fmt_extra(c, row.extras.get(c))) for c in table.extra_columns]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    foot = [rf"$^{{\mathrm{{{notes.marker(t)}}}}}$\,{latex_escape(t)}" for t in notes.texts]
    foot += [latex_escape(t).replace("in bold", r"in \textbf{bold}") for t in _legend(table)]
    lines += [r"\par\smallskip", r"{\footnotesize"] + [f + r"\par" for f in foot] + ["}", r"\end{table}"]
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
