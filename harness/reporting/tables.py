"""``harness table``: run directories → the results table as Markdown, LaTeX or CSV, or ``--explain``'s text.

The table is made in stages, each its own module:

1. records (``harness.reporting.table_records.collect_records``): the latest evaluation's records of every run,
   with its row label (from ``run.json``) and protocol;
2. rows (``harness.reporting.table_rows.records_to_rows``): one row per method or variant, cells aggregated over
   seeds, columns ordered, best marked, extra columns filled (``ResultsTable``: numbers, no text);
3. cells (``harness.reporting.table_cells.rows_to_cells``): the one layout of the shown table (text, best marks,
   footnotes, legend), printed by ``cells_to_markdown`` and ``cells_to_latex``
   (``harness.reporting.table_render``) and by the HTML report.

The CSV (``rows_to_csv``) and ``explain_table`` print the rows themselves: every metric column at full
precision, with the full skip reasons. CSV layout (metric ids, never display names): ``row, kind`` (reproduced:
trained and evaluated here | images: a folder's images evaluated here | reported | real), then for each metric
``<m>, <m>_std, <m>_over, <m>_n, <m>_best, <m>_note, <m>_underpowered`` (``<m>_note`` holds a skip reason or a
relative claim), then the extra columns asked for (``params``, ``speed``, ``probe_acc.<attribute>``), then
``RUN_COLUMNS``: per run of the row (``;`` between runs) the step its latest evaluation scored and its final
checkpoint's step, and for an image run how many images were resized, from which sizes, to which, with which
filter.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from harness.core.rundir import IMAGE_RUN_METHOD, RunDir, atomic_write_text
from harness.reporting.table_cells import rows_to_cells
from harness.reporting.table_records import REAL_ROW, collect_records
from harness.reporting.table_render import cells_to_latex, cells_to_markdown, csv_text
from harness.reporting.table_rows import (ATTRIBUTE_PREFIX, Cell, ResultsTable, Row, metric_registry,
                                          probe_attributes, records_to_rows)
from harness.util.errors import HarnessError

if TYPE_CHECKING:  # type hints only
    from harness.contract.plugins import Plugins

EXTRA_COLUMNS = ("params", "speed", "probe_attributes")
# CSV columns after the metrics and extras, describing what each row's runs measured
RUN_COLUMNS = ("step", "final_step", "resized", "resized_from", "resized_to", "resize_filter")
FORMATS = ("markdown", "latex", "csv")


@dataclass(frozen=True)
class TableOptions:
    """What a table shows. ``with_paper_numbers`` adds each method's reported numbers; ``columns`` adds extra
    columns (``params``, ``speed``, ``probe_attributes``); ``metrics`` picks and orders the metric columns (ids,
    e.g. ``("is", "fid", "rp")``; default: every metric with a computed value in Markdown and LaTeX, every metric
    in the CSV). ``caption``, ``label`` and ``siunitx`` are for LaTeX (the caption also heads the Markdown)."""

    with_paper_numbers: bool = False
    columns: tuple[str, ...] = ()
    metrics: Optional[tuple[str, ...]] = None
    caption: Optional[str] = None
    label: Optional[str] = None
    siunitx: bool = False


def write_table(plugins: Plugins, runs: Sequence[RunDir], options: TableOptions = TableOptions(), *,
                fmt: str = "markdown", out: Optional[Path | str] = None) -> str:
    """Render the results of ``runs`` as ``fmt`` (markdown | latex | csv) as ``options`` asks; write it to ``out``
    when given. Returns the text. Raises HarnessError for an unknown format, extra column or metric, or when there
    is no run."""
    if fmt not in FORMATS:
        raise HarnessError(f"unknown table format {fmt!r}; valid: {', '.join(FORMATS)}")
    table = build_table(plugins, runs, options)
    if fmt == "markdown":
        text = cells_to_markdown(rows_to_cells(table), caption=options.caption)
    elif fmt == "latex":
        text = cells_to_latex(rows_to_cells(table), caption=options.caption, label=options.label,
                              siunitx=options.siunitx)
    else:
        text = rows_to_csv(table)
    if out is not None:
        atomic_write_text(Path(out), text)
    return text


def build_table(plugins: Plugins, runs: Sequence[RunDir], options: TableOptions = TableOptions()) -> ResultsTable:
    """Records → rows: the table independent of its format (``options``' caption, label and siunitx are not used).

    ``options.metrics`` (ids) picks and orders the metric columns of every format; without it ``columns`` holds
    every metric with a record and ``shown`` those with at least one number (or reported claim). Raises
    HarnessError for an unknown extra column or metric id, or when there is no run.
    """
    extra = [c.strip() for c in options.columns if c and c.strip()]
    for c in extra:
        if c not in EXTRA_COLUMNS:
            raise HarnessError(f"unknown table column {c!r}; valid: {', '.join(EXTRA_COLUMNS)}")
    picked = [m.strip() for m in options.metrics or () if m and m.strip()]
    registry = metric_registry(plugins)
    unknown = [m for m in picked if m not in registry]
    if unknown:
        raise HarnessError(f"unknown metric {unknown[0]!r} in --metrics; installed: {', '.join(sorted(registry))}")
    runs = list(runs)
    if not runs:
        raise HarnessError("no run directories to tabulate (give RUN paths or ids, or a results root that holds runs)")
    if "probe_attributes" in extra:
        i = extra.index("probe_attributes")
        extra[i:i + 1] = [ATTRIBUTE_PREFIX + a for a in probe_attributes(runs)]
    return records_to_rows(plugins, collect_records(plugins, runs), extra=extra, picked=picked,
                           with_paper_numbers=options.with_paper_numbers)


def explain_table(table: ResultsTable) -> str:
    """The text of ``harness table --explain``: for each metric column, the full reasons of every skip (with
    the rows they concern) and the protocol texts of its records; paths and URLs included."""
    lines = []
    for c in table.columns:
        state = "shown" if c in table.shown else "not shown (no computed value)"
        lines.append(f"{c} ({table.formats[c].header()}): {state}")
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


def rows_to_csv(table: ResultsTable) -> str:
    """Every row and metric column at full precision (the layout in the module docstring)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["row", "kind"]
    for c in table.columns:
        head += [c, f"{c}_std", f"{c}_over", f"{c}_n", f"{c}_best", f"{c}_note", f"{c}_underpowered"]
    w.writerow(head + table.extra_columns + list(RUN_COLUMNS))
    for row in table.rows:
        images = row.kind == "reproduced" and row.runs and all(r.method == IMAGE_RUN_METHOD for r in row.runs)
        line: list[Any] = [row.label, "images" if images else row.kind]
        for c in table.columns:
            cell = row.cells.get(c, Cell())
            note = cell.note if cell.status != "skipped" else f"skipped: {cell.note}"
            line += [_csv_num(cell.value), _csv_num(cell.std), cell.over or "", cell.n or "",
                     "*" if cell.best and not cell.underpowered else "", note or "", cell.underpowered or ""]
        line += [_csv_num(row.extras.get(c)) for c in table.extra_columns] + _run_columns(row)
        w.writerow([csv_text(v) if not isinstance(v, float) else v for v in line])
    return buf.getvalue()


def _run_columns(row: Row) -> list[str]:
    """``RUN_COLUMNS`` of a row: per run of the row (``;`` between runs) the step its latest evaluation scored,
    its final checkpoint's step, and for image runs the resized images' count, stored sizes, size and filter."""

    def each(values: list[Any]) -> str:
        return ";".join("" if v is None else str(v) for v in values) if any(v is not None for v in values) else ""

    resized = [r.resized or {} for r in row.runs]
    return [each([r.step for r in row.runs]), each([r.final_step for r in row.runs]),
            each([x.get("count") for x in resized]), each([" ".join(x.get("from") or []) or None for x in resized]),
            each([f"{x['to']}x{x['to']}" if x.get("to") else None for x in resized]),
            each([x.get("filter") for x in resized])]


def _csv_num(v: Optional[float]) -> str:
    return "" if v is None else repr(float(v))
