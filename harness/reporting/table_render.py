"""Renderers of the shown table: ``TableCells`` → Markdown (``cells_to_markdown``) or LaTeX (``cells_to_latex``).

Both print exactly the cells, markers, footnotes and legend of ``harness.reporting.table_cells``. LaTeX:
booktabs; a ``table`` up to ``ONE_COLUMN_MAX`` columns, else a ``table*``, shrunk to ``\\columnwidth`` /
``\\textwidth`` only when wider; caption + the protocol sentence, label; optional siunitx ``S`` columns.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Optional

from harness.reporting.table_cells import HeadCell, TableCell, TableCells
from harness.util.text import join_sentences

# Metric columns up to which a LaTeX table is a one-column ``table`` at \columnwidth; beyond, ``table*``.
ONE_COLUMN_MAX = 3
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "→": r"$\to$", "×": r"$\times$",
                  "≤": r"$\leq$", "≥": r"$\geq$", "·": r"$\cdot$", "–": "--", "—": "---", "…": r"\dots{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "³": r"$^{3}$", "²": r"$^{2}$"}


def cells_to_markdown(cells: TableCells, *, caption: Optional[str] = None) -> str:
    """GitHub Markdown: **best**, footnote markers [a], the footnotes, the legend and the protocol sentence."""

    def md(cell: TableCell) -> str:
        text = f"**{md_escape(cell.text)}**" if cell.best else md_escape(cell.text)
        return text + (f" [{','.join(cell.markers)}]" if cell.markers else "")

    lines = [f"**{md_escape(caption)}**", ""] if caption else []
    lines += ["| " + " | ".join(md(h) for h in cells.head) + " |",
              "|" + "|".join(["---"] + ["---:"] * (len(cells.head) - 1)) + "|"]
    lines += ["| " + " | ".join(md(c) for c in row.cells) + " |" for row in cells.rows]
    lines.append("")
    # footnotes and legend keep their `code` spans (the harness writes them); HTML in them is still shown as text
    lines += [f"[{m}] {_md_line(t)}" for m, t in cells.footnotes]
    lines += [_md_line(t) for t in cells.legend] + [cells.protocol]
    return "\n".join(lines) + "\n"


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*[]<>|&"} | {"\n": " ", "\r": " "})
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")  # an intra-word _ never emphasises: kept
# footnotes keep their `code` spans; HTML in them backslash-escaped (a \< still reads as < in a terminal)
_HTML_SPECIAL = str.maketrans({c: "\\" + c for c in "<>&|"} | {"\n": " ", "\r": " "})


def md_escape(text: str) -> str:
    """Text shown as text in a Markdown table cell: Markdown syntax (``*[]`\\``, ``_`` but inside a word) and HTML
    (``<>&``) backslash-escaped (CommonMark), the cell separator ``|`` too, line breaks made spaces."""
    return _MD_UNDERSCORE.sub(r"\\_", str(text).translate(_MD_SPECIAL))


def _md_line(text: str) -> str:
    return str(text).translate(_HTML_SPECIAL)


def csv_text(value: object) -> object:
    """A CSV text cell a spreadsheet shows as text: one starting with ``= + - @``, a tab or a carriage return gets a
    leading ``'`` (OWASP's advice against formula injection); numbers and empty cells pass unchanged."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


LATEX_DEFAULT_LABEL = "tab:results"
LATEX_LABEL_MAX = 80  # characters of a row label in LaTeX; a longer one ends in an ellipsis (the table compiles)


def latex_label_key(label: str) -> str:
    """A ``\\label{}`` key: letters, digits and ``:._-/`` kept, anything else (braces, backslashes, spaces) made
    ``-``, so no option text reaches LaTeX as code."""
    return "".join(ch if (ch.isascii() and ch.isalnum()) or ch in ":._-/" else "-" for ch in str(label)) or "tab"


def latex_label_notice(label: Optional[str]) -> Optional[str]:
    """The warning for a ``--label`` that ``latex_label_key`` writes differently (None: written as given)."""
    written = latex_label_key(label or LATEX_DEFAULT_LABEL)  # as the LaTeX table writes it
    if label is None or written == label:
        return None
    return (f"--label {label!r} is written as {written!r} (a LaTeX label keeps letters, digits and :._-/ only, and "
            f"is not empty)")


def latex_row_label(text: str) -> str:
    """A row label, escaped, at most ``LATEX_LABEL_MAX`` characters (a 5,000-character name no longer breaks the
    build)."""
    text = str(text)
    return latex_escape(text if len(text) <= LATEX_LABEL_MAX else text[:LATEX_LABEL_MAX - 1].rstrip() + "…")


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


def cells_to_latex(cells: TableCells, *, caption: Optional[str] = None, label: Optional[str] = None,
                   siunitx: bool = False) -> str:
    """A LaTeX float (booktabs; graphicx; siunitx with ``siunitx``).

    Up to ``ONE_COLUMN_MAX`` columns (metrics and extras) a ``table`` no wider than ``\\columnwidth``, beyond a
    ``table*`` no wider than ``\\textwidth`` (shrunk only if its natural width exceeds that). The caption is
    ``caption`` (default "Text-to-image results.") followed by the protocol sentence; ``label`` defaults to
    ``tab:results``. With ``siunitx`` the number columns are ``S`` columns aligned on the decimal point.
    """
    columns = len(cells.head) - 1
    env, width = ("table*", r"\textwidth") if columns > ONE_COLUMN_MAX else ("table", r"\columnwidth")
    packages = "booktabs,graphicx" + (",siunitx" if siunitx else "")
    heads = [_latex_head(h, siunitx) for h in cells.head[1:]]
    spec = "l" + "".join(_siunitx_spec(cells, i) if siunitx else "r" for i in range(1, columns + 1))
    lines = [f"% t2i-harness results table; needs \\usepackage{{{packages}}}",
             rf"\begin{{{env}}}[t]", r"\centering",
             rf"\caption{{{latex_escape(join_sentences(caption or 'Text-to-image results.', cells.protocol))}}}",
             rf"\label{{{latex_label_key(label or LATEX_DEFAULT_LABEL)}}}", r"\small", r"\setlength{\tabcolsep}{4pt}",
             rf"\resizebox{{\ifdim\width>{width}{width}\else\width\fi}}{{!}}{{%",
             rf"\begin{{tabular}}{{@{{}}{spec}@{{}}}}", r"\toprule",
             " & ".join(["Method"] + heads) + r" \\", r"\midrule"]
    previous_kind = None
    for row in cells.rows:
        if previous_kind is not None and row.kind != previous_kind and "real" in (row.kind, previous_kind):
            lines.append(r"\midrule")
        previous_kind = row.kind
        label_cell, *rest = row.cells
        out = [latex_row_label(label_cell.text) + _sup(label_cell.markers)] + [_latex_cell(c, siunitx) for c in rest]
        lines.append(" & ".join(out) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}"]
    foot = [rf"\textsuperscript{{{m}}}\,{_latex_text(t)}." for m, t in cells.footnotes]
    foot += [_latex_text(t).replace("Bold:", r"\textbf{Bold}:") for t in cells.legend]
    if foot:
        lines += [r"\par\smallskip", r"{\footnotesize\raggedright " + " ".join(foot) + r"\par}"]
    lines.append(rf"\end{{{env}}}")
    return "\n".join(lines) + "\n"


def _latex_head(head: HeadCell, siunitx: bool) -> str:
    """"R-precision" over "(%) ↑ᵃ": a header no wider than its longest part."""
    fmt = head.format
    name = fmt.latex or latex_escape(fmt.name)
    if fmt.unit:
        name += f" ({fmt.latex_unit or latex_escape(fmt.unit)})"
    arrow = latex_escape(head.arrow)
    h = name + (f" {arrow}" if arrow else "") + _sup(head.markers)
    first, sep, rest = h.partition(" (")
    if sep and "(" not in first and "$" not in first:
        h = rf"\begin{{tabular}}[b]{{@{{}}r@{{}}}}{first}\\({rest}\end{{tabular}}"
    return f"{{{h}}}" if siunitx else h


def _latex_cell(cell: TableCell, siunitx: bool) -> str:
    marks = _sup(cell.markers)
    if cell.number is None:
        text = latex_escape(cell.text)
        return f"{{{text}{marks}}}" if siunitx else text + marks
    if siunitx:  # S column: the number (and its uncertainty) parsed by siunitx; the marker as text after it
        number = cell.number + (rf" \pm {cell.std}" if cell.std is not None else "")
        return (r"\bfseries " if cell.best else "") + number + (f"{{{marks}}}" if marks else "")
    number = cell.number + (rf"\,$\pm$\,{cell.std}" if cell.std is not None else "")
    return (rf"\textbf{{{number}}}" if cell.best else number) + marks


def _siunitx_spec(cells: TableCells, i: int) -> str:
    """``S[table-format=I.D(J.D)]`` wide enough for every number of column ``i`` (J.D: its ±, printed as
    "± x"), bold by ``\bfseries``, with room after the numbers for the column's widest footnote marker."""
    column = [row.cells[i] for row in cells.rows if row.cells[i].number is not None]
    values = [c.number for c in column]
    digits = max([len(v.lstrip("-").split(".")[0]) for v in values] or [1])
    decimals = max([len(v.split(".")[1]) if "." in v else 0 for v in values] or [0])
    spec = ("-" if any(v.startswith("-") for v in values) else "") + f"{digits}" + (f".{decimals}" if decimals else "")
    stds = [c.std for c in column if c.std is not None]
    if stds:
        std_digits = max(len(s.split(".")[0]) for s in stds)
        spec += f"({std_digits}" + (f".{decimals})" if decimals else ")")
    options = [f"table-format={spec}", "detect-weight"]
    if stds:  # "± 0.00" stays printed, as in the plain table
        options += ["uncertainty-mode=separate", "retain-zero-uncertainty"]
    marks = [",".join(c.markers) for c in column if c.markers]
    if marks:
        options.append(rf"table-space-text-post={{{_sup([max(marks, key=len)])}}}")
    return f"S[{', '.join(options)}]"
