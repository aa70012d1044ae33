"""Data-set validation: every problem of a data directory, and the cached verdict training checks first.

``find_problems`` lists everything wrong (missing files, unreadable pickles, caption files with too few
captions, unreadable or truncated images); ``check_dataset`` raises one DataError when there is anything, and
caches the verdict under ``<root>/.cache/data-validation/<key>/`` keyed by the data directory's file list,
sizes and modification times (``data.strict_cache``: contents) and the version of the checks (``CHECKS_VERSION``),
so a second start does not decode every image again.
``source_digest`` is the same kind of digest for the cache entries built from one split (DAMSM, real statistics).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from harness.core.cache import cached, files_digest, tree_files
from harness.data.attngan_layout import (
    SPLITS,
    LayoutSpec,
    caption_reading_notes,
    check_data_dir,
    empty_captions,
    keys_text_root,
    open_image,
    read_bboxes,
    read_caption_file,
    read_captions_pickle,
    read_class_info,
    read_filenames,
    read_layout,
    read_text_captions,
    stale_captions_pickle,
    text_root,
)
from harness.data.coco import COCO
from harness.data.cub import CUB
from harness.util.atomic import write_file
from harness.util.errors import ConfigError, DataError

if TYPE_CHECKING:  # type hints only
    from harness.config import DataConfig
    from harness.data.dataset import TextImageDataset

LAYOUT_SPECS: dict[str, LayoutSpec] = {"cub": CUB, "coco": COCO}
# The version of what ``find_problems`` and ``find_warnings`` check, part of the cached verdict's key: raise it
# whenever a check is added or changed, so that verdicts made by the earlier checks are not reused.
# 2: 16-bit images read as 8-bit; caption words read with letters lost.
CHECKS_VERSION = 2
SHOWN_IN_ERROR = 3


def find_problems(spec: LayoutSpec, data_dir: Optional[str | Path], *, captions_per_image: Optional[int] = None,
                  decode_images: bool = True) -> list[str]:
    """Every problem of an AttnGAN-layout directory (empty list: fine)."""
    per = captions_per_image or spec.captions_per_image
    try:
        ddir = check_data_dir(spec, data_dir)
    except DataError as e:
        return [str(e)]
    problems: list[str] = []

    def attempt(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except DataError as e:
            problems.append(str(e))
            return None

    if not (ddir / spec.image_root).is_dir():
        problems.append(str(spec.missing(ddir, f"{spec.image_root}/")))
    keys = {s: attempt(read_filenames, spec, ddir, s) for s in SPLITS}
    for s in SPLITS:
        if keys[s] is not None:
            attempt(read_class_info, spec, ddir, s, len(keys[s]))
    all_keys = [k for s in SPLITS for k in (keys[s] or [])]
    if spec.has_bbox:
        boxes = attempt(read_bboxes, spec, ddir)
        if boxes is not None:
            problems += [f"key {k!r} of filenames.pickle is not in CUB_200_2011/images.txt" for k in all_keys
                         if k not in boxes]
    pickle_path = ddir / "captions.pickle"
    if pickle_path.is_file():
        if all(keys[s] is not None for s in SPLITS):
            attempt(read_captions_pickle, pickle_path, keys, per)
    elif all_keys:
        root = text_root(ddir, all_keys[0])
        for k in all_keys:
            path = root / f"{k}.txt"
            if not path.is_file():
                problems.append(f"missing caption file {path}")
            else:
                attempt(read_caption_file, path, per)
    for k in all_keys:
        path = ddir / spec.image_root / f"{k}.jpg"
        if not path.is_file():
            problems.append(f"missing image {path}")
        elif decode_images:
            attempt(open_image, path)
    return problems


def find_warnings(spec: LayoutSpec, data_dir: Optional[str | Path], *,
                  captions_per_image: Optional[int] = None) -> list[str]:
    """What is read but deserves a look, one line each: a ``captions.pickle`` older than ``text/`` files, every
    empty caption left out (file, split, image key, caption index), and, when the captions come from ``text/``,
    every caption with words read with letters lost (bytes not UTF-8, non-ASCII letters dropped: file, line,
    the words as written and as read). Problems are ``find_problems``'s."""
    per = captions_per_image or spec.captions_per_image
    try:
        ddir = check_data_dir(spec, data_dir)
        warnings = [w for w in [stale_captions_pickle(ddir)] if w]
        keys = {s: read_filenames(spec, ddir, s) for s in SPLITS}
        pickle_path = ddir / "captions.pickle"
        if pickle_path.is_file():
            captions = read_captions_pickle(pickle_path, keys, per, drop_empty=False)[1]
            warnings += empty_captions(captions, keys, pickle_path)[0]  # refused images: find_problems
        else:  # the captions come from text/: a line whose words all drop (e.g. non-ASCII only) is empty too
            tokens = read_text_captions(spec, ddir, keys, per)
            root = keys_text_root(ddir, keys)
            warnings += [n for s in SPLITS for k in keys[s] for n in caption_reading_notes(root / f"{k}.txt", per)]
            warnings += empty_captions(tokens, keys, root)[0]
    except DataError:  # reported by find_problems
        return []
    return warnings


def problems_error(name: str, data_dir: Optional[str | Path], problems: list[str]) -> DataError:
    """One line: how many problems, the first few, and the command that lists them all."""
    shown = "; ".join(problems[:SHOWN_IN_ERROR])
    more = f" (and {len(problems) - SHOWN_IN_ERROR} more)" if len(problems) > SHOWN_IN_ERROR else ""
    return DataError(f"{name} data in {data_dir} has {len(problems)} problem(s): {shown}{more}; "
                     f"`harness datasets inspect {name} --data-dir {data_dir}` lists them all")


def file_listing_hash(data_dir: Path, *, strict: bool = False) -> str:
    """A hash of every file's relative path, size and modification time (``strict``: sha256) under ``data_dir``."""
    return files_digest(tree_files(data_dir), data_dir, strict=strict)


def source_digest(dataset: TextImageDataset, data_dir: Optional[str | Path], *, strict: bool = False,
                  captions: bool = True) -> Optional[dict]:
    """What a cache entry built from ``dataset`` (one split) depends on, for its key: ``files_digest`` of the
    split's files (``dataset.source_files``; every file of ``data_dir`` for a data set that does not list them),
    ``captions=False`` leaving caption files out. None for a data set without files (generated)."""
    files = dataset.source_files(captions=captions)
    if files is None:
        if not data_dir:
            return None
        ddir = Path(data_dir).expanduser().resolve()
        return {"all_files": file_listing_hash(ddir, strict=strict), "strict": strict}
    if not files:
        return None
    return {"files": files_digest(files, strict=strict), "count": len(files), "strict": strict}


def check_dataset(cfg: DataConfig, root: Path, *, batch_size: Optional[int] = None, warn: bool = True) -> None:
    """Raise DataError listing the problems of ``cfg``'s (a DataConfig) data set; generated data sets pass.
    ``batch_size``: the largest ``train.batch_size`` that will train on it; ConfigError (one line naming the key)
    when the training split holds fewer images than that, so it is refused before any run directory exists.
    ``warn``: print the data set's warnings (the command's first check does; a later one of the same data doesn't).

    The full verdict (every image decoded) is cached per file listing, so only the first start pays for it.
    """
    spec = LAYOUT_SPECS.get(cfg.name)
    if spec is None:  # shapes and third-party data sets: nothing on disk to check here
        return
    per = cfg.captions_per_image or spec.captions_per_image
    try:  # quick metadata pass first; it also builds the vocabulary (into the cache) when there is no captions.pickle
        layout = read_layout(spec, cfg.data_dir, captions_per_image=per, cache_root=root)
    except DataError:
        raise problems_error(cfg.name, cfg.data_dir, find_problems(spec, cfg.data_dir, captions_per_image=per,
                                                                   decode_images=False)) from None
    train_images = len(layout.keys["train"])
    if batch_size is not None and batch_size > train_images:  # the engine keeps whole batches only
        raise ConfigError(f"train.batch_size={batch_size} is not allowed; the training split of {cfg.name} in "
                          f"{cfg.data_dir} has {train_images} images, fewer than one batch")
    ddir = Path(cfg.data_dir).expanduser().resolve()  # type: ignore[arg-type]  # read_layout refused None
    description = {"dataset": cfg.name, "data_dir": str(ddir), "captions_per_image": per,
                   "files": file_listing_hash(ddir, strict=cfg.strict_cache), "checks": CHECKS_VERSION}

    def build(tmp: Path) -> None:
        found = find_problems(spec, ddir, captions_per_image=per, decode_images=True)
        warnings = find_warnings(spec, ddir, captions_per_image=per)
        write_file(tmp / "verdict.json", json.dumps({"problems": found, "warnings": warnings}, indent=1))

    entry = cached(Path(root), "data-validation", description, build)
    verdict = json.loads((entry / "verdict.json").read_text())
    if verdict["problems"]:
        raise problems_error(cfg.name, cfg.data_dir, verdict["problems"])
    warnings = (verdict.get("warnings") or []) if warn and os.environ.get("RANK", "0") == "0" else []  # rank 0
    for w in warnings[:SHOWN_IN_ERROR]:
        print(f"warning: {w}", file=sys.stderr)
    if warnings:
        more = f"{len(warnings) - SHOWN_IN_ERROR} more; " if len(warnings) > SHOWN_IN_ERROR else ""
        print(f"warning: {more}`harness datasets inspect {cfg.name} --data-dir {cfg.data_dir}` lists every "
              f"warning", file=sys.stderr)
