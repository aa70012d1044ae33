"""Records stage of the results table: run directories → the records that count, one line per (run, column).

For each run and metric only the records of the latest evaluation count: the ``eval_id`` of the last record of
that metric in the run's ``records.jsonl`` (records are only ever appended). A run's row label and protocol come
from ``run.json`` (``harness.runs.info.run_info_or_derived``). Real-image records (metric ids ending in
``_real``, or records with ``"real": true``) go to the row ``real images``, in the column of the metric they
measure (``rp_real`` → ``rp``). A label met with several protocol ids gets `` [protocol <6 hex>]`` on each of its
rows, so records of different protocols never share a cell.

``collect_records(plugins, runs)`` → ``TableRecords``; ``harness.reporting.table_rows.records_to_rows`` takes it on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import pandas as pd

from harness.core.rundir import RunDir
from harness.core.runfiles import Record
from harness.runs.info import FAILED_KEY, RowLabeller, display_label, run_info_or_derived, show_value
from harness.util.errors import HarnessError

if TYPE_CHECKING:  # type hints only
    from harness.contract.plugins import Plugins

REAL_ROW = "real images"
REAL_SUFFIX = "_real"
LINE_COLUMNS = ["row", "kind", "dataset", "run", "seed", "column", "metric_id", "value", "std", "std_over", "status",
                "reason", "variant", "split", "num_images", "underpowered", "pid", "rid", "method", "step"]


@dataclass
class RunRow:
    """One run as the table sees it: its row label (as shown), method id, data set, directory, the protocol
    id its row is keyed by (the protocol it was evaluated under when that is one), its seed, the training step
    its latest evaluation scored (the earliest, when metrics were evaluated at different steps) and its final
    checkpoint's step, for an image run what its records say about resized images (and how many images), and
    for a run that failed inside `harness run` the error's one line (``run.json`` ``failed``)."""

    label: str
    method: str
    dataset: str
    run: RunDir
    pid: str
    seed: Any = None
    step: Optional[int] = None
    final_step: Optional[int] = None
    resized: Optional[dict] = None
    images: Optional[int] = None
    failed: Optional[str] = None

    @property
    def early(self) -> bool:
        """Its latest evaluation scored an earlier checkpoint than the run's final one."""
        return self.step is not None and self.final_step is not None and self.step != self.final_step


@dataclass
class TableRecords:
    """What the table is made of: a line per (run, column) of the latest evaluation (``lines``, columns
    ``LINE_COLUMNS``), every run's row, the data sets in order, the protocol values of every protocol id met and
    the display name of every installed method (``MethodInfo.display_name`` by id)."""

    lines: pd.DataFrame
    runs: list[RunRow]
    datasets: list[str]
    protocol_values: dict[str, dict]
    names: dict[str, str]

    def name(self, method: str) -> str:
        """The method's display name; its id when it is not installed."""
        return self.names.get(method, method)

    @property
    def multi(self) -> bool:
        """Runs of several data sets: labels end in ``[dataset]``."""
        return len(self.datasets) > 1

    def row_label(self, label: str, dataset: str) -> str:
        return f"{label} [{dataset}]" if self.multi else label


def collect_records(plugins: Plugins, runs: list[RunDir]) -> TableRecords:
    """The latest evaluation's records of every run, its row and the protocols they were measured under. Records
    carry their protocol id (``protocol.base``: the protocol as evaluated) and the metric's (``protocol.id``);
    older records take the run's."""
    from harness.config.protocol import protocol_id

    lines: list[dict] = []
    run_rows: list[RunRow] = []
    datasets: list[str] = []
    values_of: dict[str, dict] = {}
    labeller = RowLabeller(plugins)
    for run in runs:
        cfg = run.config_dict()
        info = run_info_or_derived(plugins, run, labeller)
        method = str(cfg.get("method", "?"))
        dataset = str((cfg.get("data") or {}).get("name", "?"))
        run_values = info.protocol_values or {}
        run_pid = protocol_id(run_values)
        values_of.setdefault(run_pid, run_values)
        row = RunRow(display_label(plugins, info), method, dataset, run, run_pid, seed=cfg.get("seed"),
                     final_step=final_step(run, cfg), failed=info.extra.get(FAILED_KEY))
        run_rows.append(row)
        if dataset not in datasets:
            datasets.append(dataset)
        latest = latest_records(run.read_records())
        mine = [_line(rec, row, cfg.get("seed"), values_of) for rec in latest]
        lines += mine
        steps = [int(line["step"]) for line in mine if line["kind"] == "reproduced" and line["step"] is not None]
        row.step = min(steps) if steps else None
        resized = [rec for rec in latest if rec.extra.get("resized") is not None]
        if resized:
            row.resized, row.images = resized[0].extra["resized"], resized[0].extra.get("images")
        evaluated = {line["pid"] for line in mine if line["kind"] == "reproduced"}
        if len(evaluated) == 1:  # the row of a run is that of the protocol it was evaluated under
            row.pid = evaluated.pop()
    long = pd.DataFrame(lines, columns=LINE_COLUMNS)
    _key_by_protocol(run_rows, long)
    return TableRecords(long, run_rows, datasets, values_of, _display_names(plugins))


def _display_names(plugins: Plugins) -> dict[str, str]:
    try:
        return {name: info.display_name for name, info in plugins.methods().items()}
    except HarnessError:  # a broken method registry: ids are shown
        return {}


def _line(rec: Record, row: RunRow, seed: Any, values_of: dict[str, dict]) -> dict:
    """One record as a line of ``TableRecords.lines``; a protocol's values met first here are kept."""
    protocol = rec.protocol
    pid = protocol.get("base") or row.pid
    if isinstance(protocol.get("values"), dict):
        values_of.setdefault(pid, protocol["values"])
    metric = rec.metric
    real = rec.real or metric.endswith(REAL_SUFFIX)
    return {
        "row": REAL_ROW if real else row.label, "kind": "real" if real else "reproduced",
        "dataset": rec.dataset or row.dataset, "run": str(row.run.path),
        "seed": rec.seed if rec.seed is not None else seed,
        "column": metric[: -len(REAL_SUFFIX)] if metric.endswith(REAL_SUFFIX) else metric, "metric_id": metric,
        "value": num(rec.value), "std": num(rec.std), "std_over": rec.std_over,
        "status": rec.status, "reason": rec.reason,
        "variant": rec.variant, "split": protocol.get("split"),
        "num_images": protocol.get("num_images"), "underpowered": rec.underpowered,
        "pid": pid, "rid": protocol.get("id"), "method": row.method, "step": rec.step,
    }


def final_step(run: RunDir, cfg: dict) -> Optional[int]:
    """The step of the run's final checkpoint: its newest checkpoint; without one (records copied without their
    checkpoints), the config's ``train.max_steps`` when set."""
    from harness.core.checkpoint import list_checkpoints

    saved = list_checkpoints(run)
    if saved:
        return max(saved)
    steps = (cfg.get("train") or {}).get("max_steps")
    return steps if isinstance(steps, int) else None


def _key_by_protocol(run_rows: list[RunRow], long: pd.DataFrame) -> None:
    """A label met with several protocol ids (within one data set) gets `` [protocol <id>]`` on each row."""
    pids: dict[tuple[str, str], set] = {}  # (label, data set) -> protocol ids
    for r in run_rows:
        pids.setdefault((r.label, r.dataset), set()).add(r.pid)
    for label, dataset, pid in zip(long["row"], long["dataset"], long["pid"]):
        pids.setdefault((label, dataset), set()).add(pid)

    def keyed(label: str, dataset: str, pid: str) -> str:
        return f"{label} [protocol {pid[:6]}]" if len(pids[(label, dataset)]) > 1 else label

    for r in run_rows:
        r.label = keyed(r.label, r.dataset, r.pid)
    if not long.empty:
        long["row"] = [keyed(*key) for key in zip(long["row"], long["dataset"], long["pid"])]


def protocol_notes(records: TableRecords) -> list[str]:
    """One footnote per method (and the real-image rows) whose rows were measured under different protocols,
    naming the keys that differ and each row's value."""
    from harness.config.protocol import differing_keys

    long = records.lines
    groups: dict[str, dict[str, str]] = {}  # method -> {row label: protocol id}
    for r in records.runs:
        groups.setdefault(r.method, {}).setdefault(records.row_label(r.label, r.dataset), r.pid)
    if not long.empty:
        for label, kind, pid, dataset, method in zip(long["row"], long["kind"], long["pid"], long["dataset"],
                                                     long["method"]):
            group = REAL_ROW if kind == "real" else method
            groups.setdefault(group, {})[records.row_label(label, dataset)] = pid
    notes = []
    for group, rows in groups.items():
        pids = list(dict.fromkeys(rows.values()))
        if len(pids) < 2:
            continue
        diff = differing_keys([records.protocol_values.get(p, {}) for p in pids])
        labels = {p: [label for label, q in rows.items() if q == p] for p in pids}
        parts = [f"{key} = " + " vs ".join(f"{show_value(v)} ({', '.join(labels[p])})" for p, v in zip(pids, vals))
                 for key, vals in diff.items()]
        notes.append(f"{records.name(group)}: rows measured under different protocols; they differ in "
                     + ("; ".join(parts) if parts else "settings not recorded"))
    return notes


def column_protocols(long: pd.DataFrame, columns: list[str]) -> dict[str, list[str]]:
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


def latest_records(records: list[Record]) -> list[Record]:
    """The records of the latest evaluation of each metric (the eval_id of that metric's last record)."""
    latest: dict[str, Any] = {}
    for r in records:
        latest[r.metric] = r.eval_id
    chosen: dict[str, Record] = {}
    for r in records:
        if r.eval_id == latest[r.metric]:
            chosen[r.metric] = r  # a repeated record within one evaluation: the last
    return list(chosen.values())


def latest_probe(run: RunDir) -> dict:
    """The per-attribute accuracies of the run's latest ``probe_acc`` record ({} when there is none)."""
    recs = [r for r in latest_records(run.read_records()) if r.metric == "probe_acc"]
    return dict(recs[0].extra.get("per_attribute") or {}) if recs and recs[0].ok else {}


def num(v: Any) -> Optional[float]:
    """``v`` as a float; None for None, NaN or what is not a number."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f
