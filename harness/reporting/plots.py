"""Plots of the HTML report (``harness.reporting.report``): training curves from ``log.jsonl`` and metric-over-step
curves from ``records.jsonl``, drawn with matplotlib's Agg canvas (no display, no pyplot global state) and returned
as PNG bytes.

Smoothing: the debiased exponential moving average TensorBoard shows, ``m_t = w·m_{t−1} + (1−w)·x_t`` from
``m_0 = 0``, divided by ``1 − w^t`` so that early values are not pulled towards 0; weight ``w = 0.9``. The raw values
are drawn faint behind the smoothed line.
"""
from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:  # type hints only
    from harness.core.runfiles import Record

SMOOTHING = 0.9  # debiased-EMA weight of the curves
RAW_ALPHA = 0.25  # opacity of the raw values behind the smoothed line
SPEED_KEY = "images_per_s"
TOTAL_KEYS = ("loss_d", "loss_g")
DPI = 72


def debiased_ema(values: Sequence[float], weight: float = SMOOTHING) -> list[float]:
    """The debiased exponential moving average of ``values`` (in order), same length; ``weight`` in [0, 1).

    A non-finite value is passed through as NaN and leaves the average unchanged. Raises ValueError for a weight
    outside [0, 1)."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out, m, n = [], 0.0, 0
    for v in values:
        v = float(v)
        if not math.isfinite(v):
            out.append(math.nan)
            continue
        n += 1
        m = weight * m + (1.0 - weight) * v
        out.append(m / (1.0 - weight ** n))
    return out


def finite_number(v: object) -> bool:
    """A finite int or float (not a bool): what a plot can place (``log.jsonl`` may hold NaN or Infinity)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def log_series(entries: Sequence[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """``{name: (steps, values)}`` of a run's ``log.jsonl`` entries: every loss term (``terms``), the totals
    ``loss_d`` and ``loss_g``, and ``images_per_s``; entries without a finite step, and values that are not finite
    numbers, are skipped."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for e in entries:
        if not isinstance(e, dict) or not finite_number(e.get("step")):
            continue
        terms = e.get("terms")
        values = dict(terms) if isinstance(terms, dict) else {}
        values.update({k: e[k] for k in (*TOTAL_KEYS, SPEED_KEY) if k in e})
        for name, v in values.items():
            if finite_number(v):
                steps, vals = series.setdefault(name, ([], []))
                steps.append(int(e["step"]))
                vals.append(float(v))
    return series


def _figure(n_panels: int, ncols: int = 4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, n_panels))
    nrows = -(-n_panels // ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.4 * nrows), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False,  # fixed margins: a layout engine costs ~1 s a figure
                        gridspec_kw={"left": 0.06, "right": 0.98, "bottom": 0.5 / (2.4 * nrows) + 0.02,
                                     "top": 1 - 0.35 / (2.4 * nrows), "wspace": 0.3, "hspace": 0.55}).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def curves_figure(runs: Sequence[tuple[str, Sequence[dict]]], *, weight: float = SMOOTHING):
    """One panel per logged series (loss terms, totals, images/s), each run (seed) of a method overlaid in its
    own colour: raw values faint, the debiased EMA (``weight``) solid. ``runs``: (label, log entries) pairs.
    Returns the matplotlib Figure, or None when no run logged anything. The smoothed line of series ``name`` of
    run ``label`` has gid ``smoothed:<name>:<label>``."""
    per_run = [(label, log_series(entries)) for label, entries in runs]
    names: list[str] = []
    for _, series in per_run:
        for name in series:
            if name not in names:
                names.append(name)
    if not names:
        return None
    order = [n for n in names if n not in (*TOTAL_KEYS, SPEED_KEY)] + [n for n in (*TOTAL_KEYS, SPEED_KEY)
                                                                     if n in names]
    fig, axes = _figure(len(order))
    for ax, name in zip(axes, order):
        for i, (label, series) in enumerate(per_run):
            if name not in series:
                continue
            steps, values = series[name]
            colour = f"C{i % 10}"
            ax.plot(steps, values, color=colour, alpha=RAW_ALPHA, linewidth=1)
            ax.plot(steps, debiased_ema(values, weight), color=colour, linewidth=1.6, label=label,
                    gid=f"smoothed:{name}:{label}")
        _style(ax, "images/s" if name == SPEED_KEY else name)
    return _legend(fig, axes, len(per_run))


def metric_series(records: Sequence[Record]) -> dict[str, tuple[list[int], list[float]]]:
    """``{metric: (steps, values)}`` of a run's successful records that carry a step, the latest evaluation of
    each step (records are appended, so the last one wins); only metrics evaluated at two or more steps."""
    latest: dict[str, dict[int, float]] = {}
    for r in records:
        if not r.ok or not finite_number(r.step) or not finite_number(r.value):
            continue
        latest.setdefault(r.metric, {})[int(r.step)] = float(r.value)
    return {m: (sorted(by), [by[s] for s in sorted(by)]) for m, by in latest.items() if len(by) >= 2}


def metric_figure(runs: Sequence[tuple[str, Sequence[Record]]]):
    """Metric-over-step curves (one panel per metric, runs overlaid) from (label, records) pairs; None when no
    metric was evaluated at two or more steps (``eval.every`` unset)."""
    per_run = [(label, metric_series(records)) for label, records in runs]
    names = sorted({m for _, s in per_run for m in s})
    if not names:
        return None
    fig, axes = _figure(len(names))
    for ax, name in zip(axes, names):
        for i, (label, series) in enumerate(per_run):
            if name in series:
                ax.plot(*series[name], marker="o", markersize=3, color=f"C{i % 10}", label=label)
        _style(ax, name)
    return _legend(fig, axes, len(per_run))


def _style(ax, title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_title(title, fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def _legend(fig, axes, n_runs: int):
    """A legend in the first panel when several runs are overlaid; returns the figure."""
    if n_runs > 1:
        axes[0].legend(fontsize=7)
    return fig


def figure_png(fig) -> Optional[bytes]:
    """The figure as PNG bytes (None for None)."""
    if fig is None:
        return None
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()
