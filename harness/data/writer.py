"""``harness datasets write shapes DIR --layout cub|coco``: a generated data set in an original layout.

The loaders, the tests' fixtures and users who want to see the format share this one path.

* ``cub``: each scene (``image_size``², default ``int(final · 76/64)`` = 304) is pasted into a 4:3 canvas of its
  background colour at a per-image horizontal offset, and ``bounding_boxes.txt`` gets the box whose reference
  crop (1.5 × max side around its centre) is exactly the scene again. Class directories are
  ``NNN.<colour>_<shape>``; ``class_info.pickle`` holds the 1-based class numbers, as CUB's does.
* ``coco``: the square scene as ``images/<key>.jpg``; no bbox, no class_info.
* Both: ``text/<key>.txt`` (one caption a line), ``{train,test}/filenames.pickle`` and ``captions.pickle``
  (``[train_captions, test_captions, ixtoword, wordtoix]``) written with protocol 2, like the reference.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from harness.config import Config, parse_override, set_key
from harness.data.attngan_layout import SPLITS, reference_captions_pickle
from harness.data.coco import COCO
from harness.data.cub import CUB
from harness.data.safe_pickle import dump_pickle
from harness.data.shapes import BACKGROUNDS, ShapesDataset, render_scene
from harness.data.transforms import bbox_crop_box, load_size
from harness.util.atomic import write_file
from harness.util.errors import HarnessError

if TYPE_CHECKING:  # type hints only
    from harness.contract.plugins import Plugins

LAYOUTS = ("cub", "coco")
JPEG_QUALITY = 95


def scene_bbox(side: int, offset_x: int) -> tuple[int, int, int, int]:
    """An (x, y, w, h) box whose reference crop is exactly the side×side square at (offset_x, 0) (side even)."""
    half = side // 2
    w = next(v for v in range(half, 2 * side) if int(v * 0.75) == half)  # r = int(max(w, h) · 0.75) = side / 2

    def corner(centre: int) -> int:  # the x with int((2x + w) / 2) == centre
        return next(x for x in range(centre - w, centre + 1) if int((2 * x + w) / 2) == centre)

    return corner(offset_x + half), corner(half), w, w


def _split_sets(cfg: Config) -> dict[str, ShapesDataset]:
    return {s: ShapesDataset(cfg.data, s, train=False) for s in SPLITS}


def write_dataset(plugins: Plugins, name: str, out_dir: Path, *, layout: str, overrides: list[str],
                  image_size: int | None = None) -> Path:
    """Write data set ``name`` (only generated ones: shapes) into ``out_dir`` in ``layout``; returns out_dir.

    overrides: ``data.…=value`` keys applied to a default config (e.g. ``data.shapes.train_images=40``).
    The directory is built in a temporary sibling and renamed into place (no partial output).
    """
    info = plugins.dataset(name)
    if name != "shapes":
        raise HarnessError(f"datasets write: only generated data sets can be written (shapes), not {name!r}"
                           + ("" if not info.needs_data_dir else f"; {name} is read from --data-dir"))
    if layout not in LAYOUTS:
        raise HarnessError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    cfg = Config()
    for text in overrides:
        key, value = parse_override(text)
        if not key.startswith("data."):
            raise HarnessError(f"datasets write: only data.* keys can be set, not {key!r}")
        set_key(cfg, key, value)
    if cfg.data.captions_per_image is None:  # the layout's own number (cub 10, coco 5)
        cfg.data.captions_per_image = (CUB if layout == "cub" else COCO).captions_per_image
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise HarnessError(f"{out_dir} exists and is not empty; choose a new directory")
    side = image_size or cfg.data.shapes.image_size or load_size(cfg.data.base_size * 2 ** (cfg.data.branch_num - 1),
                                                                 train=True)
    side += side % 2  # an even side, so the bbox crop can reproduce the scene exactly
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _write(cfg, _split_sets(cfg), tmp, layout, side)
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _write(cfg: Config, sets: dict[str, ShapesDataset], root: Path, layout: str, side: int) -> None:
    image_root = root / ("CUB_200_2011/images" if layout == "cub" else "images")
    text_dir = root / "text"
    rows_images, rows_boxes = [], []
    flat_caps: dict[str, list[list[int]]] = {}
    for split, ds in sets.items():
        keys = ds.keys if layout == "cub" else [f"SHAPES_{split}2014_{i:012d}" for i in range(len(ds))]
        flat_caps[split] = [c for i in range(len(ds)) for c in ds.captions(i)]
        for i, key in enumerate(keys):
            scene = ds.scenes[i]
            img = render_scene(scene, side)
            path = image_root / f"{key}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            if layout == "cub":
                canvas_w = side * 4 // 3
                rng = np.random.default_rng([cfg.data.shapes.seed, 7, i, len(split)])
                off = int(rng.integers(0, canvas_w - side + 1))
                canvas = Image.new("RGB", (canvas_w, side), list(BACKGROUNDS.values())[scene.background])
                canvas.paste(img, (off, 0))
                box = scene_bbox(side, off)
                assert bbox_crop_box(box, canvas_w, side) == (off, 0, off + side, side)
                img = canvas
                rows_images.append(f"{len(rows_images) + 1} {key}.jpg")
                rows_boxes.append(f"{len(rows_boxes) + 1} " + " ".join(f"{float(v):.1f}" for v in box))
            write_file(path, lambda f: img.save(f, format="JPEG", quality=JPEG_QUALITY), parents=False)
            tpath = text_dir / f"{key}.txt"
            tpath.parent.mkdir(parents=True, exist_ok=True)
            write_file(tpath, "\n".join(ds.texts[i]) + "\n", parents=False)
        (root / split).mkdir(parents=True, exist_ok=True)
        dump_pickle(list(keys), root / split / "filenames.pickle")
        if layout == "cub":
            dump_pickle([int(c) + 1 for c in ds.class_ids], root / split / "class_info.pickle")
    if layout == "cub":
        write_file(root / "CUB_200_2011" / "images.txt", "\n".join(rows_images) + "\n")
        write_file(root / "CUB_200_2011" / "bounding_boxes.txt", "\n".join(rows_boxes) + "\n")
    vocab = next(iter(sets.values())).vocab
    dump_pickle(reference_captions_pickle(vocab, flat_caps), root / "captions.pickle")
