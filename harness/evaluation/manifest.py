"""The image manifest: which caption each image of a folder was generated from, in the protocol's
schedule order.

A CSV file with a header, one row per image::

    file,image_key,caption_index,caption,caption_tokens
    000000.png,001.red_circle/test_00017,3,A small red circle.,a small red circle

* ``file``: the image's file name inside the folder (``%06d.png``, the position in the schedule);
* ``image_key``, ``caption_index``: the test image and which of its captions, 0-based, counting the captions the
  loader keeps (``dataset.captions(i)``, the order R-precision's caption bank uses): for ``cub`` / ``coco`` these
  are the first ``captions_per_image`` lines of ``text/<key>.txt`` that hold a word (blank and punctuation-only
  lines are skipped, as AttnGAN's builder skips them) less the empty captions the loader leaves out (a line whose
  words all drop), so ``caption_index`` is the raw line number only when nothing was skipped;
* ``caption``: that caption as written: for ``cub`` / ``coco`` the raw line of ``text/<key>.txt`` it was read from
  (capitals and punctuation kept, surrounding whitespace removed; read only when a manifest is written, and a
  missing file is named), for ``shapes`` its generated sentence: what an external model should be given;
* ``caption_tokens``: the caption as the vocabulary sees it (lower-cased, unknown words dropped).

Rows follow the protocol's schedule (``harness.evaluation.evaluate.generation_schedule``), before any per-batch sorting
by caption length. ``harness evaluate --save-images DIR`` writes ``DIR/manifest.csv`` (overwriting);
``harness datasets captions`` writes the same rows without images; ``harness evaluate-images`` reads it.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.util.errors import HarnessError
from harness.core.weights import file_digest

if TYPE_CHECKING:  # type hints only
    from harness.data.dataset import TextImageDataset
    from harness.evaluation.metrics.interface import CaptionBank

MANIFEST_NAME = "manifest.csv"
FIELDS = ("file", "image_key", "caption_index", "caption", "caption_tokens")


@dataclass(frozen=True)
class ManifestRow:
    """One image of a manifest (see the module docstring for the fields)."""

    file: str
    image_key: str
    caption_index: int
    caption: str
    caption_tokens: str


def image_file_name(position: int) -> str:
    """The file name of the image at ``position`` (0-based) of the schedule: ``000042.png``."""
    return f"{position:06d}.png"


def schedule_rows(dataset: TextImageDataset, bank: CaptionBank, image_indices: np.ndarray,
                  caption_ids: np.ndarray) -> list[ManifestRow]:
    """The manifest rows of a generation schedule: ``image_indices`` (test image of each generation) and
    ``caption_ids`` (their ids in ``bank``, a ``harness.evaluation.metrics.interface.CaptionBank``), in schedule
    order."""
    rows = []
    for pos, (img, cap) in enumerate(zip(np.asarray(image_indices), np.asarray(caption_ids))):
        j = int(cap) - int(bank.index.offsets[int(img)])
        rows.append(ManifestRow(image_file_name(pos), str(dataset.keys[int(img)]), j,
                                str(dataset.raw_caption(int(img), j)), dataset.vocab.decode(bank.raw[int(cap)])))
    return rows


def manifest_text(rows: list[ManifestRow]) -> str:
    """The CSV text of ``rows`` (header first)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FIELDS)
    for r in rows:
        w.writerow([r.file, r.image_key, r.caption_index, r.caption, r.caption_tokens])
    return buf.getvalue()


def write_manifest(path: Path | str, rows: list[ManifestRow], *, force: bool = False) -> Path:
    """Write ``rows`` to ``path`` through the one writer (replacing a regular file there, never appending; ``force``:
    a symlink there is replaced); returns the path."""
    from harness.util.atomic import write_file

    return write_file(Path(path), manifest_text(rows), force=force)


def read_manifest(path: Path | str) -> list[ManifestRow]:
    """The rows of a manifest file. Raises HarnessError (one line) when the file is missing, its header is not
    ``file,image_key,caption_index,caption,caption_tokens``, a row has the wrong number of fields, a
    caption index is not a non-negative integer, or a file name repeats."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"no manifest {path}: expected a CSV with the header {','.join(FIELDS)} (written by "
                           f"`harness evaluate --save-images DIR` or `harness datasets captions --out FILE`; "
                           f"give another with --manifest FILE)")
    try:
        lines = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (UnicodeDecodeError, csv.Error) as e:
        raise HarnessError(f"manifest {path}: not a UTF-8 CSV file ({e})") from None
    if not lines or tuple(h.strip() for h in lines[0]) != FIELDS:
        got = ",".join(lines[0]) if lines else "an empty file"
        raise HarnessError(f"manifest {path}: the header must be {','.join(FIELDS)}, got {got}")
    rows, seen = [], set()
    for n, fields in enumerate(lines[1:], start=2):
        if not fields:
            continue
        if len(fields) != len(FIELDS):
            raise HarnessError(f"manifest {path} line {n}: {len(fields)} fields, expected {len(FIELDS)} "
                               f"({','.join(FIELDS)})")
        file, key, index, caption, tokens = fields
        if not index.strip().isdigit():
            raise HarnessError(f"manifest {path} line {n}: caption_index {index!r} is not a non-negative integer")
        if file in seen:
            raise HarnessError(f"manifest {path} line {n}: the file {file} is listed twice")
        seen.add(file)
        rows.append(ManifestRow(file, key, int(index), caption, tokens))
    return rows


def manifest_sha256(path: Path | str) -> str:
    """sha256 (hex) of the manifest file's bytes (recorded with an image run)."""
    return file_digest(Path(path))
