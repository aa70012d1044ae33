"""`harness report`: one self-contained HTML page for a session (or any runs), written by `harness run` beside
``table.md``.

The page holds, in this order (section ids in brackets):

1. ``results``: the results table, laid out by ``harness.reporting.table_cells`` exactly as ``table.md`` (same
   cells, markers, footnotes, protocol notes), or "not evaluated" when no run has records;
2. ``comparison``: per data set, the same captions (the first test captions) and noise through every trained run's
   final EMA generator (``harness.runs.sample.sample_sheet``, what `harness sample` draws), the attention maps of the
   first 3 of those captions for methods whose generator returns them, and for image runs (``run.json`` kind
   ``images``) their images of the same captions where their manifest lists them;
3. ``curves``: per method, every logged loss term, the totals and images/s over steps, debiased-EMA smoothed
   (``harness.reporting.plots``), seeds overlaid; metric-over-step curves where ``eval.every`` evaluated in training;
4. ``samples``: the first, a middle and the last ``samples/step-*.png`` of each run;
5. ``runs``: per run the config keys that differ from the other methods, environment, device, precision, weight
   files with SHA-256, wall time; "not recorded" for what an older run lacks.

Everything is embedded (PNG data URIs, inline style, no script): the page opens offline, e.g. from a mail.
"""
from __future__ import annotations

import base64
import functools
import io
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from harness.util.errors import HarnessError
from harness.config.protocol import flatten
from harness.core.rundir import IMAGE_RUN_METHOD, RunDir, read_run_info
from harness.core.runfiles import RunInfo, RunInfoError
from harness.util.atomic import check_target, write_file
from harness.core.weights import file_digest
from harness.runs.info import FAILED_KEY

if TYPE_CHECKING:  # type hints only
    from harness.build import InferenceModels
    from harness.data.dataset import TextImageDataset
    from harness.data.vocab import Vocabulary
    from harness.contract.plugins import Plugins

REPORT_FILE = "report.html"
SECTIONS = ("results", "comparison", "curves", "samples", "runs")
TABLE_COLUMNS = ("probe_attributes",)  # as `harness run` writes table.md
NUM_CAPTIONS = 6  # captions of the comparison sheet
ATTENTION_CAPTIONS = 3  # of which the first ones get attention maps
SAMPLE_SEED = 0  # noise seed of the comparison sheet (`harness sample --seed`)
MAX_IMAGE_WIDTH = 1400  # embedded sheets wider than this are scaled down (pixels)
MAX_ATTENTION_WIDTH = 800  # attention sheets (a column per word) are scaled down further: they are a glance
MAX_SHEET_PIXELS = 50_000_000  # larger images are not decoded (a training sheet has a few million pixels)
NOT_RECORDED = "not recorded"
MANIFEST_NAMES = ("manifest.csv", "captions.csv")  # where an image run's manifest is looked for, in its folder


# ------------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------------
def png_data_uri(data: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _png_file(path: Path, max_width: int = MAX_IMAGE_WIDTH) -> bytes:
    """A PNG file's bytes, scaled down (Lanczos) when wider than ``max_width`` pixels and re-encoded optimised.
    Raises ``HarnessError`` for a file that is not a PNG or holds more than ``MAX_SHEET_PIXELS`` pixels (checked
    from its header, before any decoding)."""
    from PIL import Image

    with Image.open(path, formats=["PNG"]) as im:
        if im.width * im.height > MAX_SHEET_PIXELS:
            raise HarnessError(f"{im.width}×{im.height} pixels, more than the {MAX_SHEET_PIXELS:,} a sheet may have")
        im.load()
        if im.width <= max_width:
            return path.read_bytes()
        im = im.convert("RGB")
        im = im.resize((max_width, round(im.height * max_width / im.width)), Image.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
        return buf.getvalue()


def run_png(run: RunDir, path: Path, max_width: int = MAX_IMAGE_WIDTH) -> bytes:
    """``_png_file`` of a file of ``run``, or a placeholder PNG naming the problem, with a warning line, when it
    cannot be shown: a link (or a path) out of the run, not a PNG, too many pixels (a decompression bomb),
    unreadable. A damaged run still gets its page."""
    from harness.util.paths import resolve_inside

    def png() -> bytes:
        resolve_inside(run.path, Path(path).relative_to(run.path), "file")
        return _png_file(path, max_width)

    return png_or_placeholder(path, png)


def png_or_placeholder(path: Path, png: Callable[[], bytes]) -> bytes:
    """``png()`` (the PNG bytes shown for ``path``), or a placeholder naming the file, with a warning line, when it
    raises anything: PIL raises many types for a damaged file, and each one means "show a placeholder"."""
    from harness.core.rundir import warn

    try:
        return png()
    except Exception as e:  # noqa: BLE001 (see the docstring)
        why = " ".join(str(e).split())[:160] or type(e).__name__
        warn(f"report: {path} cannot be shown ({why}); a placeholder stands in its place")
        return placeholder_png(f"{Path(path).name}: cannot be shown")


def placeholder_png(text: str) -> bytes:
    """A small grey PNG with ``text`` on it, standing in for an image that cannot be shown."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (max(160, 7 * len(text) + 20), 40), (225, 225, 225))
    ImageDraw.Draw(im).text((10, 14), text, fill=(90, 0, 0))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _parse_time(text: object) -> Optional[datetime]:
    if not isinstance(text, str):
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min {s:02d} s" if h else (f"{m} min {s:02d} s" if m else f"{s} s")


# ------------------------------------------------------------------------------------------------------
# The runs
# ------------------------------------------------------------------------------------------------------
@dataclass
class ReportRun:
    """One run as the report sees it: a trained run (config.yaml) or an image run (run.json kind ``images``)."""

    run: RunDir
    info: RunInfo  # run.json (all defaults when absent)
    config: dict  # config.yaml as a dict, {} for an image run
    method: str
    dataset: str
    seed: Optional[int]
    label: str
    name: str = ""  # the method's display name (MethodInfo.display_name)

    @property
    def is_images(self) -> bool:
        return self.info.kind == IMAGE_RUN_METHOD


def _report_run(plugins: Plugins, run: RunDir) -> ReportRun:
    info = read_run_info(run) or RunInfo()  # RunInfoError (one line) for a damaged run.json
    if info.kind == IMAGE_RUN_METHOD:
        return ReportRun(run, info, {}, info.label or run.id, info.dataset or "?", None, info.label or run.id)
    from harness.runs.info import method_display_name, run_label

    cfg = run.config_dict()  # RunConfigError (one line) for a damaged run
    method = str(cfg["method"])
    return ReportRun(run, info, cfg, method, str((cfg.get("data") or {}).get("name", "?")), cfg.get("seed"),
                     run_label(plugins, run), method_display_name(plugins, method))


# ------------------------------------------------------------------------------------------------------
# 1. The results table: harness.reporting.table_cells' cells, as table.md prints them
# ------------------------------------------------------------------------------------------------------
def _results_section(plugins: Plugins, runs: list[ReportRun]) -> dict:
    from harness.reporting.table_cells import rows_to_cells
    from harness.reporting.table_render import cells_to_markdown
    from harness.reporting.tables import TableOptions, build_table

    evaluated = any(r.run.records_path.is_file() and r.run.records_path.stat().st_size > 0 for r in runs)
    if not evaluated:
        return {"evaluated": False, "table": None, "markdown": "", "note": None}
    cells = rows_to_cells(build_table(plugins, [r.run for r in runs], TableOptions(columns=TABLE_COLUMNS)))
    return {"evaluated": True, "table": cells, "markdown": cells_to_markdown(cells), "note": None}


# ------------------------------------------------------------------------------------------------------
# 2. Comparison sheets
# ------------------------------------------------------------------------------------------------------
def comparison_captions(plugins: Plugins, run: ReportRun, n: int = NUM_CAPTIONS) -> tuple[list[str], TextImageDataset]:
    """The first ``n`` captions of the run's evaluation split, as the vocabulary spells them (so every trained
    run of the data set can encode them), and that split's data set (its ``vocab``)."""
    from harness.build import build_split
    from harness.train.engine import caption_words

    cfg = run.run.load_config(plugins)
    ds = build_split(plugins, cfg, cfg.eval.split, train=False, cache_root=None)
    if hasattr(ds, "set_epoch"):
        ds.set_epoch(0)
    n = min(n, len(ds))
    batch = ds.collate([ds[i] for i in range(n)])
    return [" ".join(words) for words in caption_words(ds, batch)], ds


def final_attention_sheet(plugins: Plugins, run: RunDir, captions: Sequence[str], vocab: Vocabulary, *, seed: int,
                          count: int = ATTENTION_CAPTIONS, models: Optional[InferenceModels] = None) -> Optional[bytes]:
    """PNG bytes of the attention sheet (``harness.train.samples.write_training_sheets``: each caption's image
    and each word's map over it, last attention stage) of the run's final EMA generator for the first ``count``
    of ``captions``, generated as the comparison sheet (`harness sample`) generates them
    (``harness.evaluation.generation.generate_images``); None for a method whose generator returns no attention
    maps. ``models``: the run's loaded ``InferenceModels`` (loaded here when None)."""
    from harness.build import load_inference_models
    from harness.core.runtime import resolve_device
    from harness.evaluation.generation import ALONE, generate_images
    from harness.train.samples import write_training_sheets

    if models is None:
        models = load_inference_models(plugins, run, device=resolve_device(run.load_config(plugins).train.device))
    shown = list(captions[:count])
    out = generate_images(models, [vocab.encode(c) for c in shown], seed, with_attention=True, items=ALONE)
    if not out.attention or not out.attention[0]:
        return None
    words = [[vocab.ixtoword[t] for t in tokens] for tokens in out.tokens]
    attn = [_padded([maps[-1] for maps in out.attention])]  # the sheet shows the last attention stage
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "final.png"
        write_training_sheets([out.images], shown, words, attn, path)
        return _png_file(path.with_name("final-attn.png"), MAX_ATTENTION_WIDTH)


def _padded(maps: list) -> Any:
    """Per-caption attention maps (T_i×h×w) as one N×T×h×w tensor, zero-padded to the longest caption."""
    import torch

    out = torch.zeros(len(maps), max(m.shape[0] for m in maps), *maps[0].shape[1:])
    for i, m in enumerate(maps):
        out[i, :m.shape[0]] = m
    return out


def _training_sheets(run: RunDir) -> list[Path]:
    pattern = re.compile(r"^step-(\d+)\.png$")
    found = [(int(m.group(1)), p) for p in Path(run.samples).glob("step-*.png") if (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


def find_manifest(run: ReportRun) -> Optional[Path]:
    """An image run's manifest CSV (``harness evaluate-images``) as it was evaluated: the path its run.json records
    (``manifest.path``), else ``manifest.csv``/``captions.csv`` in its folder (``source``), whichever still has the
    sha256 run.json records (runs that recorded none: the first that exists). None when there is none: a manifest
    edited or replaced since the evaluation is not read, since its rows may name other files than those scored."""
    from harness.evaluation.manifest import manifest_sha256

    info = run.info
    recorded = info.manifest or {}
    candidates = [Path(recorded["path"])] if recorded.get("path") else []
    if info.source is not None:
        candidates += [Path(info.source) / name for name in MANIFEST_NAMES]
    for path in candidates:
        if path.is_file() and (not recorded.get("sha256") or manifest_sha256(path) == recorded["sha256"]):
            return path
    return None


def image_run_images(run: ReportRun, captions: Sequence[str]) -> list[tuple[str, bytes]]:
    """(caption, PNG bytes) of an image run's images whose manifest caption (``caption_tokens``, else ``caption``,
    compared lower-cased) is one of ``captions``, first image per caption, in the order of ``captions``.

    Files are looked up inside the folder that was evaluated (``source``; a row leading out of it is skipped with a
    warning); an image that cannot be shown (undecodable, more than ``MAX_SHEET_PIXELS`` pixels) is a placeholder
    with a warning, so a damaged folder still gets its page."""
    from harness.core.rundir import warn
    from harness.data.image_file import read_rgb8
    from harness.evaluation.manifest import read_manifest
    from harness.util.paths import resolve_inside

    manifest = find_manifest(run)
    if manifest is None:
        return []
    folder = Path(run.info.source) if run.info.source is not None else manifest.parent
    try:
        rows = read_manifest(manifest)
    except HarnessError as e:
        warn(f"report: {e}; the images of {run.label} are not shown")
        return []
    wanted = {c.lower().strip(): c for c in captions}
    found: dict[str, Path] = {}
    for row in rows:
        for text in (row.caption_tokens.lower().strip(), row.caption.lower().strip()):
            if text in wanted and wanted[text] not in found:
                try:  # a row naming a file outside the evaluated folder is not shown
                    path = resolve_inside(folder, row.file, f"manifest {manifest} file")
                except HarnessError as e:
                    warn(f"report: {e}")
                    break
                if path.is_file():
                    found[wanted[text]] = path
                break
    def thumbnail(path: Path) -> bytes:  # as evaluate-images read it (a 16-bit file by its high byte), size first
        im = read_rgb8(path, max_pixels=MAX_SHEET_PIXELS)
        im.thumbnail((256, 256))
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
        return buf.getvalue()

    return [(c, png_or_placeholder(found[c], functools.partial(thumbnail, found[c]))) for c in captions if c in found]


def _image_run_note(run: ReportRun, captions: Sequence[str]) -> str:
    """Why an image run shows no image in the comparison section."""
    if not captions:
        return "no comparison captions: no trained run of this data set has a checkpoint to draw them"
    if find_manifest(run) is None:
        return "no manifest as evaluated was found (missing, or changed since the evaluation)"
    return "its manifest lists none of these captions"


def _comparison_section(plugins: Plugins, runs: list[ReportRun]) -> list[dict]:
    from harness.runs.sample import sample_sheet
    from harness.core.checkpoint import list_checkpoints

    out = []
    for dataset in dict.fromkeys(r.dataset for r in runs):
        group = [r for r in runs if r.dataset == dataset]
        trained = [r for r in group if not r.is_images and not r.info.extra.get(FAILED_KEY) and list_checkpoints(r.run)]
        entry: dict[str, Any] = {"dataset": dataset, "sheet": None, "captions": [], "note": None,
                                 "attention": [], "image_runs": []}
        if not trained:
            entry["note"] = "no trained run of this data set has a checkpoint"
        else:
            try:
                captions, ds = comparison_captions(plugins, trained[0])
                entry["captions"] = captions
                loaded: dict[Path, InferenceModels] = {}
                with tempfile.TemporaryDirectory() as tmp:
                    path = sample_sheet(plugins, [r.run for r in trained], captions, seed=SAMPLE_SEED,
                                        out=Path(tmp) / "sheet.png", checkpoint=None, loaded=loaded)
                    entry["sheet"] = png_data_uri(_png_file(path))
                seen = set()
                for r in trained:
                    if r.label in seen:  # one seed per method
                        continue
                    seen.add(r.label)
                    png = final_attention_sheet(plugins, r.run, captions, ds.vocab, seed=SAMPLE_SEED,
                                                models=loaded.get(r.run.path))
                    if png is not None:
                        entry["attention"].append({"label": f"{r.label} (seed {r.seed})", "uri": png_data_uri(png)})
            except HarnessError as e:
                entry["note"] = f"comparison sheet not drawn: {e}"
        for r in group:
            if r.is_images:
                images = image_run_images(r, entry["captions"])
                entry["image_runs"].append({
                    "label": r.label, "images": [{"caption": c, "uri": png_data_uri(b)} for c, b in images],
                    "note": None if images else _image_run_note(r, entry["captions"])})
        out.append(entry)
    return out


# ------------------------------------------------------------------------------------------------------
# 3./4. Curves and training sheets
# ------------------------------------------------------------------------------------------------------
def _curves_section(runs: list[ReportRun]) -> list[dict]:
    from harness.reporting.plots import curves_figure, figure_png, metric_figure

    out = []
    trained = [r for r in runs if not r.is_images]
    for method in dict.fromkeys(r.method for r in trained):
        group = [r for r in trained if r.method == method]
        labels = [f"{r.label} s{r.seed}" + (f" [{r.dataset}]" if len({g.dataset for g in group}) > 1 else "")
                  for r in group]
        logs = [(label, r.run.read_log()) for label, r in zip(labels, group)]
        records = [(label, r.run.read_records()) for label, r in zip(labels, group)]
        curves = figure_png(curves_figure(logs))
        metrics = figure_png(metric_figure(records))
        out.append({"method": group[0].name or method, "runs": ", ".join(labels),
                    "curves": png_data_uri(curves) if curves else None,
                    "metrics": png_data_uri(metrics) if metrics else None})
    return out


def _samples_section(runs: list[ReportRun]) -> list[dict]:
    out = []
    for r in runs:
        if r.is_images:
            continue
        sheets = _training_sheets(r.run)
        picks = list(dict.fromkeys([sheets[0], sheets[len(sheets) // 2], sheets[-1]])) if sheets else []
        out.append({"label": f"{r.label} seed {r.seed}", "run": r.run.id,
                    "sheets": [{"name": p.name, "uri": png_data_uri(run_png(r.run, p))} for p in picks]})
    return out


# ------------------------------------------------------------------------------------------------------
# 5. Per run
# ------------------------------------------------------------------------------------------------------
def config_differences(configs: Sequence[tuple[str, dict]]) -> list[dict[str, Any]]:
    """Per run, the flattened config keys whose value differs from that key's value in a run of another method
    (a key a run lacks counts as different). ``configs``: (method, config dict) pairs; with one method only, the
    keys that differ between its runs. Returns one {key: value} per run, keys sorted."""
    MISSING = object()
    flat = [(m, flatten(c)) for m, c in configs]
    several = len({m for m, _ in flat}) > 1
    out = []
    for method, mine in flat:
        others = [f for m, f in flat if (m != method if several else f is not mine)]
        keys = set(mine) | {k for f in others for k in f}
        diff = {k: mine.get(k, NOT_RECORDED) for k in sorted(keys)
                if any(f.get(k, MISSING) != mine.get(k, MISSING) for f in others)}
        out.append({k: v for k, v in diff.items() if k != "seed"})
    return out


def _environment(r: ReportRun) -> dict[str, str]:
    if r.info.environment:
        return {str(k): str(v) for k, v in r.info.environment.items()}
    for rec in reversed(r.run.read_records()):  # older runs: the versions their records carry
        versions = rec.protocol.get("versions")
        if isinstance(versions, dict) and versions:
            return {str(k): str(v) for k, v in versions.items()} | {"source": "versions of its latest record"}
    return {}


def _weight_files(r: ReportRun) -> list[dict]:
    """The run's latest checkpoint and pretrained stage files (hashed here), and the weight files its latest
    records name with their hashes (``protocol.weights``)."""
    from harness.core.checkpoint import list_checkpoints, read_pretrained

    files: list[tuple[str, Path]] = []
    ckpts = list_checkpoints(r.run)
    if ckpts:
        files.append((f"checkpoint (step {max(ckpts)}, the latest)", ckpts[max(ckpts)]))
    try:
        stages = read_pretrained(r.run).get("stages", {})
    except (ValueError, HarnessError) as e:  # unreadable, or a stage directory outside the run: not listed
        from harness.core.rundir import warn

        warn(f"report: {r.run.path / 'pretrained.json'}: {e}; its stage files are not listed")
        stages = {}
    for stage, d in stages.items():
        d = Path(d)
        found = sorted(p for p in d.glob("*") if p.is_file() and p.suffix in (".pt", ".pth", ".bin", ".npz")) \
            if d.is_dir() else ([d] if d.is_file() else [])
        files += [(f"pretrained {stage}", p) for p in found]
    out = [{"role": role, "path": str(p), "size": f"{p.stat().st_size / 1e6:.2f} MB", "sha256": file_digest(p)}
           for role, p in files]
    named: dict[str, dict] = {}
    for rec in r.run.read_records():
        weights = rec.protocol.get("weights")
        if isinstance(weights, dict):
            for file, digest in weights.items():
                named[str(file)] = {"role": f"evaluation ({rec.metric})", "path": str(file), "size": "",
                                    "sha256": str(digest)}
    return out + list(named.values())


def _wall_time(r: ReportRun) -> dict[str, str]:
    started, finished = _parse_time(r.info.started), _parse_time(r.info.finished)
    times = [t for e in r.run.read_log() if (t := _parse_time(e.get("time"))) is not None] \
        if not r.is_images else []
    out = {"started": r.info.started or NOT_RECORDED, "finished": r.info.finished or NOT_RECORDED}
    if started and finished:
        out["wall time"] = _duration((finished - started).total_seconds())
    elif not started:
        out["wall time"] = NOT_RECORDED
    else:
        out["wall time"] = "not finished"
    out["training (first to last log entry)"] = (
        _duration((times[-1] - times[0]).total_seconds()) + f" over {len(times)} log entries"
        if len(times) >= 2 else NOT_RECORDED)
    return out


def _runs_section(runs: list[ReportRun]) -> list[dict]:
    trained = [r for r in runs if not r.is_images]
    diffs = dict(zip((id(r) for r in trained), config_differences([(r.method, r.config) for r in trained])))
    out = []
    for r in runs:
        proto = r.info.protocol
        out.append({
            "label": r.label, "id": r.run.id, "path": str(r.run.path), "method": r.method, "seed": r.seed,
            "dataset": r.dataset, "kind": r.info.kind or "trained",
            "protocol": f"{proto.get('name')} ({proto.get('id')})" if proto else NOT_RECORDED,
            "device": r.info.device or NOT_RECORDED, "precision": r.info.precision or NOT_RECORDED,
            "config": diffs.get(id(r), {}), "environment": _environment(r), "weights": _weight_files(r),
            "time": _wall_time(r), "failed": r.info.extra.get(FAILED_KEY),
        })
    return out


# ------------------------------------------------------------------------------------------------------
# The page
# ------------------------------------------------------------------------------------------------------
def render_report(plugins: Plugins, runs: Sequence[RunDir], *, title: Optional[str] = None) -> str:
    """The report page of ``runs`` as HTML text. Raises HarnessError when there is no run or a run's config is
    unreadable."""
    import jinja2

    runs = list(runs)
    if not runs:
        raise HarnessError("no runs to report on (give a session directory, or run directories)")
    items = [_report_run(plugins, r) for r in runs]
    env = jinja2.Environment(loader=jinja2.PackageLoader("harness.reporting", "templates"),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                             undefined=jinja2.StrictUndefined)
    page = env.get_template("report.html.j2").render(
        title=title or "t2i-harness report", generated=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        datasets=", ".join(dict.fromkeys(r.dataset for r in items)), sections=SECTIONS,
        results=_results_section(plugins, items), comparison=_comparison_section(plugins, items),
        curves=_curves_section(items), samples=_samples_section(items), runs=_runs_section(items),
        not_recorded=NOT_RECORDED, sample_seed=SAMPLE_SEED)
    return page


def write_report(plugins: Plugins, runs: Sequence[RunDir], out: Path | str, *, title: Optional[str] = None,
                 force: bool = False) -> Path:
    """Write the report of ``runs`` to ``out`` through the one writer (``out`` is checked before the page is
    rendered; ``force``: a symlink there is replaced); returns the path."""
    check_target(out, force=force)
    text = render_report(plugins, runs, title=title)
    return write_file(Path(out), text, force=force)


def _is_run_dir(p: Path) -> bool:
    if (p / "config.yaml").is_file():
        return True
    try:
        info = read_run_info(RunDir(p))
    except RunInfoError:  # damaged: `harness report` on the run itself names the file
        return False
    return info is not None and info.kind == IMAGE_RUN_METHOD


def report_runs(plugins: Plugins, args: Sequence[str], root: Path) -> tuple[list[RunDir], list[Path]]:
    """The runs named by ``harness report`` arguments (a session directory, run directories, run ids) and the
    sessions (parent directories) they come from. Raises HarnessError (one line) for an argument that is none."""
    from harness.core.rundir import find_runs, is_session_id, readable_runs, resolve_run

    runs: list[RunDir] = []
    sessions: list[Path] = []
    for a in args:
        p = Path(a)
        if not p.exists() and is_session_id(a, root):  # a session named by its id
            p = root / a
        if p.is_dir() and _is_run_dir(p):
            found = [RunDir(p)]
            if (p / "config.yaml").is_file():
                found[0].config_dict()  # a run named alone: its broken config is the error
            sessions.append(p.parent)
        elif p.is_dir():
            found = readable_runs(find_runs([p]), plugins)
            found += [RunDir(d) for d in sorted(p.iterdir()) if d.is_dir() and not (d / "config.yaml").exists()
                      and _is_run_dir(d)]
            if not found:
                raise HarnessError(f"{p} holds no runs (a session directory holds <method>-s<seed>/config.yaml)")
            sessions.append(p)
        else:
            found = [resolve_run(a, root)]
            sessions.append(found[0].path.parent)
        runs += [r for r in found if r.path not in {x.path for x in runs}]
    return runs, list(dict.fromkeys(s.resolve() for s in sessions))


def report_command(plugins: Plugins, args: Sequence[str], root: Path, out: Optional[str], *,
                   force: bool = False) -> Path:
    """`harness report SESSION | RUN... [--out FILE] [--force]`: default output ``report.html`` in the directory the
    runs lie in (a session, or the results root for runs of `harness train`); ``--out`` is required when they lie
    in several; ``force``: a symlink at ``out`` is replaced."""
    if out is not None:
        check_target(out, force=force)  # before any run is read
    runs, sessions = report_runs(plugins, args, root)
    if out is None:
        if len(sessions) != 1:
            raise HarnessError(f"the runs lie in {len(sessions)} directories ({', '.join(map(str, sessions))}), "
                               f"and report.html goes beside the runs only when they share one; give --out FILE")
        out = sessions[0] / REPORT_FILE
    title = f"t2i-harness report: {sessions[0].name}" if len(sessions) == 1 else None
    return write_report(plugins, runs, out, title=title, force=force)
