"""Cells stage of the results table: ``ResultsTable`` → ``TableCells``, the one layout every shown table is
printed from (Markdown and LaTeX in ``harness.reporting.table_render``, HTML in ``harness.reporting.report``).

Only the ``shown`` metric columns and the extra columns appear. Numbers have the column's fixed decimals
(``MetricFormat``); what ± is over is one footnote on the header (the column's most common basis) and a footnote
on each cell whose basis differs; a skipped cell reads "–" with a short reason as a footnote; footnote markers
are a, b, c, … in order of first use. Texts carry no paths or URLs (``harness.reporting.table_text``); the full
reasons are in the CSV and ``harness table --explain``. Under the table: the legend sentences and one sentence
with the data sets, splits and images per evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from harness.contract.types import MetricFormat
from harness.reporting.table_rows import Cell, ResultsTable, Row
from harness.reporting.table_text import join_reasons, scrub, short_reason

ARROWS = {"higher": "↑", "lower": "↓"}


@dataclass
class TableCell:
    """One cell as every renderer shows it: ``text`` (a number with its ± std, a note, a label or "–"), whether
    it is the best of its column, and its footnote markers (``TableCells.footnotes`` holds their texts). A cell
    holding a number also has it apart (``number``, ``std``: as printed) for renderers that align numbers."""

    text: str
    best: bool = False
    markers: list[str] = field(default_factory=list)
    number: Optional[str] = None
    std: Optional[str] = None


@dataclass
class HeadCell(TableCell):
    """A column header: ``text`` is the display name with unit and arrow; ``format`` and ``arrow`` its parts."""

    format: Optional[MetricFormat] = None
    arrow: str = ""


@dataclass
class CellRow:
    """A row of the shown table: its kind (reproduced | reported | real) and its cells, the label first."""

    kind: str
    cells: list[TableCell]


@dataclass
class TableCells:
    """A results table laid out independently of its format: the header (the method column first), the rows, the
    footnotes as (marker, text), the legend sentences and the protocol sentence."""

    head: list[HeadCell]
    rows: list[CellRow]
    footnotes: list[tuple[str, str]]
    legend: list[str]
    protocol: str


class Footnotes:
    """Footnote markers a, b, c, … in order of first use."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def marker(self, text: str) -> str:
        if text not in self.texts:
            self.texts.append(text)
        i = self.texts.index(text) + 1
        letters = ""
        while i:
            i, r = divmod(i - 1, 26)
            letters = chr(ord("a") + r) + letters
        return letters

    def pairs(self) -> list[tuple[str, str]]:
        return [(self.marker(t), t) for t in self.texts]


def rows_to_cells(table: ResultsTable) -> TableCells:
    """The header, cells, footnotes and legend of ``table``'s shown columns."""
    notes = Footnotes()
    shared: dict[str, str] = {}  # column -> what its ± is over, said once on the header
    for c in table.shown:  # the most common basis; cells with another carry their own marker
        texts = [t for t in (_pm_note(r.cells[c]) for r in table.rows if c in r.cells) if t]
        if texts:
            shared[c] = max(dict.fromkeys(texts), key=texts.count)
    head = [HeadCell("Method")]
    for c in table.shown + table.extra_columns:
        fmt, arrow = table.formats[c], ARROWS.get(table.directions.get(c) or "", "")
        markers = [notes.marker(shared[c])] if c in shared else []
        head.append(HeadCell(" ".join(x for x in (fmt.header(), arrow) if x), markers=markers, format=fmt,
                             arrow=arrow))
    rows = [_cell_row(table, row, shared, notes) for row in table.rows]
    return TableCells(head, rows, notes.pairs(), _legend(table), _protocol(table))


def _cell_row(table: ResultsTable, row: Row, shared: dict[str, str], notes: Footnotes) -> CellRow:
    label = TableCell(row.label)
    if row.kind == "reported" and row.sources:
        label.markers.append(notes.marker("reported: " + "; ".join(scrub(s) for s in row.sources)))
    label.markers += [notes.marker(text) for text in row_notes(row)]
    cells = [label]
    for c in table.shown:
        cells.append(_metric_cell(row.cells.get(c, Cell()), table.formats[c], shared.get(c), notes,
                                  table.weight_labels))
    for c in table.extra_columns:
        v = row.extras.get(c)
        cells.append(_number_cell(v, None, table.formats[c]) if v is not None else TableCell("–"))
    return CellRow(row.kind, cells)


def row_notes(row: Row) -> list[str]:
    """What a row's numbers measured beyond the protocol: runs whose latest evaluation scored an earlier
    checkpoint than their final one, image runs whose images were resized before scoring, and runs that failed
    (the error's line)."""
    from harness.runs.images import resize_note

    early = [r for r in row.runs if r.early]
    out = []
    if early:
        which = ", ".join((f"seed {r.seed} " if len(row.runs) > 1 else "") + f"at step {r.step} of {r.final_step}"
                          for r in early)
        out.append(f"evaluated before the final checkpoint: {which}")
    out += [resize_note(r.resized, r.images) for r in row.runs if r.resized and r.resized.get("count")]
    out += [(f"seed {r.seed} " if len(row.runs) > 1 else "") + f"failed: {r.failed}" for r in row.runs if r.failed]
    return out


def _metric_cell(cell: Cell, fmt: MetricFormat, shared: Optional[str], notes: Footnotes,
                 labels: dict[str, str]) -> TableCell:
    if cell.status == "skipped":
        out = TableCell("–")
        out.markers.append(notes.marker(f"not computed: {_short(cell, labels)}"))
        return out
    if cell.published:  # several published numbers, each in the column's format
        return TableCell("; ".join(_number_cell(c.value, c.std, fmt).text if c.value is not None
                                   else scrub(c.note or "").replace(" (reported)", "") for c in cell.published))
    if cell.value is None:  # a reported relative claim (the row already says "reported"), or nothing
        return TableCell(scrub(cell.note).replace(" (reported)", "") if cell.note else "–")
    out = _number_cell(cell.value, cell.std, fmt)
    out.best = cell.best and not cell.underpowered
    pm = _pm_note(cell)
    if pm and pm != shared:
        out.markers.append(notes.marker(pm))
    if cell.underpowered:
        out.markers.append(notes.marker("underpowered (too few images; computed anyway, never marked best): "
                                        f"{scrub(cell.underpowered)}"))
    if cell.skipped_runs:
        out.markers.append(notes.marker(f"{cell.skipped_runs} of {cell.total_runs} runs not computed: "
                                        f"{_short(cell, labels)}"))
    return out


def _number_cell(value: float, std: Optional[float], fmt: MetricFormat) -> TableCell:
    number = _number(value, fmt)
    shown_std = _number(std, fmt) if std is not None else None
    return TableCell(number + (f" ± {shown_std}" if shown_std is not None else ""), number=number, std=shown_std)


def _number(value: float, fmt: MetricFormat) -> str:
    """``value`` as the column prints it: scaled, with the column's fixed decimals."""
    return f"{value * fmt.scale:.{fmt.decimals}f}"


def _short(cell: Cell, labels: dict[str, str]) -> str:
    """A cell's skip reasons in a few words, distinct ones joined, with their hint in brackets."""
    text, hint = _short_parts(cell, labels)
    return text + (f" ({hint})" if hint else "")


def _short_parts(cell: Cell, labels: dict[str, str]) -> tuple[str, str]:
    shorts = [short_reason(r, labels) for r in cell.reasons or ["skipped"]]
    return ", ".join(dict.fromkeys(t for t, _ in shorts)), "; ".join(dict.fromkeys(h for _, h in shorts if h))


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
            groups.setdefault(_short_parts(merged, table.weight_labels), []).append(table.formats[c].name)
    if groups:
        lines.append("Not computed: " + join_reasons([(names, t, h) for (t, h), names in groups.items()]) + ".")
    return lines + table.protocol_notes


def _protocol(table: ResultsTable) -> str:
    """One sentence: data set(s), split, images generated per evaluation."""
    parts = [f"{' or '.join(table.splits)} split"] if table.splits else []
    if table.num_images:
        parts.append(f"{' or '.join(f'{n:,}' for n in table.num_images)} generated images per evaluation")
    return f"Evaluated on {', '.join(table.datasets)}" + (f" ({', '.join(parts)})" if parts else "") + "."
