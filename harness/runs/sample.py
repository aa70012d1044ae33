"""`harness sample`: one comparison sheet, the same captions and the same noise for every run, side by side
(rows = runs, labelled with method and variant, seed and step; columns = captions, written under the
last row) — what a paper's qualitative figure needs.

Generation: ``harness.evaluation.generation.generate_images``, the convention of ``harness.generate``, each caption
drawn as if alone (its noise, the generator's own draws, the subsample of a caption longer than ``eval.words_num``
words come from ``--seed`` only), the same for every run: the image of caption X is
``harness.generate(run, [X], seed)`` and depends neither on the other captions nor on the other rows.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, TYPE_CHECKING

import torch

from harness.util.errors import ConfigError, HarnessError

if TYPE_CHECKING:  # type hints only
    from harness.build import InferenceModels
    from harness.data.dataset import TextImageDataset
    from harness.contract.plugins import Plugins
    from harness.core.rundir import RunDir

MIN_CELL = 128  # pixels per image on the sheet


def read_captions(captions: list[str], file: str | None) -> list[str]:
    """The ``--caption`` texts followed by the lines of ``--captions FILE`` (UTF-8; blank lines and ``#`` comments
    skipped). A file that is not UTF-8 is refused naming the line: its words would be read with letters lost."""
    empty = [c for c in captions or [] if not c.strip()]
    if empty:
        raise HarnessError(f"--caption {empty[0]!r} is empty: give a caption with words")
    out = [c.strip() for c in captions or []]
    if file:
        path = Path(file)
        if not path.is_file():
            raise HarnessError(f"--captions {file}: no such file (one caption per line)")
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise HarnessError(f"--captions {file} line {line}: byte 0x{raw[e.start]:02x} is not UTF-8; save the "
                               f"file as UTF-8") from None
        out += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not out:
        raise HarnessError("no captions: give --caption TEXT (repeatable) or --captions FILE")
    return out


def sample_sheet(plugins: Plugins, runs: list[RunDir], captions: list[str], *, seed: int, out: Optional[str | Path],
                 checkpoint: Optional[str | int], loaded: Optional[dict[Path, InferenceModels]] = None,
                 force: bool = False) -> Path:
    """Draw the sheet and return its path (default: ``<first run>/samples/sheet-s<seed>-<time>.png``).
    ``loaded``, when given, receives each run's ``InferenceModels`` by run path (the HTML report reuses them).
    ``out`` is checked before any model is loaded (``harness.util.atomic.check_target``; ``force``: a symlink
    there is replaced)."""
    from harness.data.vocab import check_vocabulary_size
    from harness.evaluation.metrics.interface import check_finite
    from harness.core.sheets import save_sheet
    from harness.util.atomic import check_target
    from harness.runs.info import RowLabeller, run_label
    from harness.build import build_split, load_inference_models
    from harness.core.runtime import resolve_device
    from harness.evaluation.generation import ALONE, generate_images

    if not runs:
        raise HarnessError("sample needs at least one run")
    from harness.config.rules import field_problem, seed_range

    bad_seed = field_problem("--seed", seed, seed_range())
    if bad_seed:  # before any model is loaded
        raise ConfigError(bad_seed)
    if out is not None:
        check_target(out, force=force)
    step = int(checkpoint) if checkpoint is not None else None
    labeller = RowLabeller(plugins)
    datasets: dict[tuple, TextImageDataset] = {}
    rows, labels = [], []
    for run in runs:
        cfg = run.load_config(plugins)
        device = resolve_device(cfg.train.device)
        key = (cfg.data.name, cfg.data.data_dir, cfg.data.shapes.seed if cfg.data.name == "shapes" else None)
        if key not in datasets:
            datasets[key] = build_split(plugins, cfg, cfg.eval.split, train=False, cache_root=None)  # its vocabulary
        tokens = [datasets[key].vocab.encode(c) for c in captions]  # unknown words: HarnessError naming them
        models = load_inference_models(plugins, run, step=step, device=device)
        if loaded is not None:
            loaded[run.path] = models
        check_vocabulary_size(models.vocab_size, datasets[key], f"run {run.path.name}'s text encoder")
        images = generate_images(models, tokens, seed, items=ALONE).images  # caption X: generate(run, [X], seed)
        check_finite(images, f"generated image of run {run.path.name}", lambda r: f"caption {captions[r]!r}")
        rows.append(list(images))
        labels.append(f"{run_label(plugins, run, labeller)} s{cfg.seed} @{models.step}")
    if out is None:
        out = Path(runs[0].samples) / f"sheet-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}.png"
    # small images are enlarged (nearest, integer factor) to at least MIN_CELL pixels so captions fit under them
    cell = max(int(t.shape[-1]) for r in rows for t in r)
    factor = -(-MIN_CELL // cell)
    if factor > 1:
        rows = [[torch.nn.functional.interpolate(t[None], scale_factor=factor, mode="nearest")[0] for t in r]
                for r in rows]
    # each caption is written (wrapped) under its column's last image
    under = [[""] * len(captions) for _ in rows[:-1]] + [list(captions)]
    return save_sheet(rows, under, out, row_labels=labels, force=force)
