"""Benchmark any model's images: export the protocol's captions, evaluate a folder of images under the
protocol, and get a row in the same table as the trained methods.

* ``harness datasets captions D --preset P --out captions.csv`` (``export_captions``): the manifest
  (``harness.evaluation.manifest``) of exactly the captions ``harness evaluate`` generates from under protocol
  ``D/P``, in its order, drawn as it draws them (``harness.evaluation.evaluate.generation_schedule``).
* ``harness evaluate-images DIR --dataset D --preset P --name LABEL`` (``evaluate_images``): reads the folder's
  images in manifest order (``DIR/manifest.csv`` or ``--manifest FILE``), batches them with the protocol's
  ``eval.batch_size`` and sorts each batch by caption length exactly as ``harness evaluate`` does, so every seeded
  draw (R-precision's mismatched captions) is the same, and hands them to the same metric code. Images are
  read as 8-bit RGB as the data sets read theirs (``harness.data.image_file``: 16-bit pixels keep their high byte);
  one whose size is not the protocol's ``data.image_size`` is resized with PIL bicubic: one printed line says how
  many and from which sizes, and the records' ``resized`` keep it (``resize_summary``).

An *image run* is the directory ``<results root>/images-<label slug>-<4 hex>`` holding ``config.yaml`` (the
protocol's config; ``method: images``), ``run.json`` (``kind: images``, the label, the protocol id, the source
folder, the manifest's sha256) and ``records.jsonl``: ``harness table`` shows it as a row labelled ``LABEL``
(parameter and speed columns "–"). It is written only once the evaluation succeeded.

R-precision (``rp``, ``rp_real``) scores with the protocol's shared DAMSM, obtained as ``harness run`` obtains it
(``harness.train.pretrain.ensure_damsm``: the cache, the released encoder files the protocol's config names, or
training it), or with ``--rp-encoder RUN_OR_DIR``; the record's ``rp_encoder`` says which.

A bad folder gets one line, checked in this order before any metric runs: a file the manifest lists is missing
(the first one named); an image in the folder that the manifest does not list (named; ``--ignore-extra`` skips
them); an unreadable image (named); fewer images than the protocol's ``eval.num_images`` (refused unless
``--allow-fewer``; the records then carry the count and the "underpowered" flag); a manifest caption with no word
the vocabulary knows. Then the manifest must be the protocol's schedule (its prefix under ``--allow-fewer``).
"""
from __future__ import annotations

import dataclasses
import json
import re
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch

from harness.config import Config
from harness.build import build_split
from harness.util.errors import HarnessError
from harness.util.paths import resolve_inside
from harness.evaluation.manifest import MANIFEST_NAME, ManifestRow, manifest_sha256, read_manifest
from harness.core.rundir import IMAGE_RUN_METHOD, RunDir
from harness.core.runfiles import Record
from harness.evaluation.metrics.interface import EvalOptions

if TYPE_CHECKING:  # type hints only
    from harness.data.dataset import TextImageDataset
    from harness.evaluation.metrics.interface import CaptionBank, EvalContext, MetricResult, StreamingMetric
    from harness.contract.plugins import Plugins

# Files of a folder that count as images (any other file, e.g. manifest.csv or a README, is not looked at).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
RESIZE_FILTER = "PIL bicubic"  # how an image not at the protocol's size is resized (load_images)


def protocol_config(plugins: Plugins, dataset: str, preset: str, data_dir: Optional[str] = None) -> Config:
    """The config of protocol ``preset`` of ``dataset`` alone (no method): defaults, then the protocol's layers,
    the data set's name and ``data_dir``; one stage at the protocol's resolution. Raises ConfigError (one line)
    for an unknown data set or protocol."""
    from harness.config import new_config, set_key
    from harness.config.protocol import flatten, preset_names, protocol_layers

    info = plugins.dataset(dataset)
    protocol, _ = preset_names(preset, dataset)
    cfg = new_config()
    for _, values in protocol_layers(dataset, protocol, info.protocols):
        for key, value in flatten(values).items():
            set_key(cfg, key, value)
    cfg.method, cfg.preset, cfg.protocol, cfg.seed = IMAGE_RUN_METHOD, protocol, protocol, 0
    cfg.data.name = dataset
    if data_dir is not None:
        cfg.data.data_dir = str(data_dir)
    cfg.data.branch_num, cfg.data.base_size = 1, cfg.data.image_size  # the final stage is all a folder has
    return cfg


def protocol_schedule(plugins: Plugins, cfg: Config,
                      root: Path) -> tuple[TextImageDataset, CaptionBank, np.ndarray, np.ndarray]:
    """(evaluation split, caption bank, image indices, caption ids) of the protocol's ``eval.num_images``
    generations, exactly as ``harness evaluate`` draws them."""
    from harness.evaluation.evaluate import build_caption_bank, generation_schedule

    dataset = build_split(plugins, cfg, cfg.eval.split, train=False, cache_root=root)
    bank = build_caption_bank(dataset, cfg.eval.words_num, cfg.eval.seed)
    images, captions = generation_schedule(bank.index, cfg.eval.num_images, cfg.eval.seed)
    return dataset, bank, images, captions


def export_captions(plugins: Plugins, dataset: str, preset: str, out: Path | str, *, data_dir: Optional[str] = None,
                    root: Path, force: bool = False) -> tuple[Path, int]:
    """``harness datasets captions``: write the manifest of the protocol's captions to ``out`` (replacing a regular
    file; ``force``: a symlink; anything else is refused before any work); returns (path, number of rows)."""
    from harness.evaluation.manifest import schedule_rows, write_manifest
    from harness.util.atomic import check_target

    check_target(out, force=force)
    cfg = protocol_config(plugins, dataset, preset, data_dir)
    ds, bank, images, captions = protocol_schedule(plugins, cfg, root)
    rows = schedule_rows(ds, bank, images, captions)
    return write_manifest(out, rows, force=force), len(rows)


# ------------------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------------------
def label_slug(label: str) -> str:
    """``"My GAN (v2)"`` → ``my-gan-v2``: ASCII letters, digits and ``-`` (``image`` when nothing is left)."""
    text = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:40] or "image"


def check_label(plugins: Plugins, label: str) -> str:
    """The stripped label; raises HarnessError when it is empty, an installed method's name, or shaped like a row
    the harness writes itself ("real images …", "… (reported)"): such a row would be mistaken for that one."""
    label = (label or "").strip()
    if not label:
        raise HarnessError("evaluate-images needs --name LABEL (the table row's label)")
    if label.casefold().startswith("real images") or label.casefold().endswith("(reported)"):
        raise HarnessError(f"--name {label!r} reads like a row the table writes itself (real images, reported "
                           f"numbers); give the image run a label of its own")
    methods = plugins.methods()
    if label in methods or label == IMAGE_RUN_METHOD:
        raise HarnessError(f"--name {label!r} is an installed method's name; an image run needs a label of its own "
                           f"(installed methods: {', '.join(sorted(methods))})")
    return label


@dataclass
class FolderImages:
    """The checked images of a folder, in manifest order."""

    folder: Path
    rows: list[ManifestRow]
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # file -> (width, height) as stored
    ignored: list[str] = field(default_factory=list)  # images in the folder that the manifest does not list


def check_folder(folder: Path, rows: list[ManifestRow], *, ignore_extra: bool) -> FolderImages:
    """The first three checks of a folder, in order: every file the manifest lists lies inside the folder and
    exists (the first missing one named), no image outside the manifest (unless ``ignore_extra``), every image
    decodes to 8-bit RGB. Raises HarnessError."""
    from harness.data.image_file import read_rgb8

    for r in rows:
        resolve_inside(folder, r.file, "the manifest's file")  # never read or score a file outside the folder
        if not (folder / r.file).is_file():
            raise HarnessError(f"{folder}: {r.file} is missing (the manifest lists {len(rows)} images, named as its "
                               f"'file' column says)")
    listed = {r.file for r in rows}
    extra = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and p.name not in listed)
    if extra and not ignore_extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise HarnessError(f"{folder}: {extra[0]}{more} is not in the manifest; remove it or pass --ignore-extra")
    sizes = {}
    for r in rows:
        try:
            sizes[r.file] = read_rgb8(folder / r.file).size
        except HarnessError:
            raise
        except Exception as e:  # PIL raises many types for a damaged file
            raise HarnessError(f"{folder / r.file}: not a readable image ({type(e).__name__}: "
                               f"{' '.join(str(e).split())[:120]})") from None
    return FolderImages(folder, rows, sizes, extra)


def manifest_ids(rows: list[ManifestRow], dataset: TextImageDataset, bank: CaptionBank,
                 where: str) -> tuple[np.ndarray, np.ndarray]:
    """(image indices, caption ids in the bank) of the manifest rows. Raises HarnessError naming the row for an
    image key the split lacks, a caption index out of range, or a caption with no word the vocabulary knows."""
    index = {str(k): i for i, k in enumerate(dataset.keys)}
    images, captions = [], []
    for n, r in enumerate(rows, start=2):
        if r.image_key not in index:
            raise HarnessError(f"{where} line {n}: image key {r.image_key!r} is not in the {dataset.split} split "
                               f"of {len(index)} images")
        i = index[r.image_key]
        count = int(bank.index.counts[i])
        if r.caption_index >= count:
            raise HarnessError(f"{where} line {n}: caption_index {r.caption_index} of {r.image_key!r}, which has "
                               f"{count} captions (0-{count - 1})")
        if not dataset.vocab.encode_known(dataset.vocab.tokens_of(r.caption)):
            raise HarnessError(f"{where} line {n}: the caption {r.caption!r} has no word the vocabulary knows")
        images.append(i)
        captions.append(int(bank.index.offsets[i]) + r.caption_index)
    return np.asarray(images, dtype=np.int64), np.asarray(captions, dtype=np.int64)


def resize_summary(sizes: dict[str, tuple[int, int]], resolution: int, *, say: Optional[int] = None) -> dict:
    """What the record says about resizing: ``{"count": n, "from": ["WxH", ...], "to": resolution, "filter":
    "PIL bicubic"}`` (``from``: the distinct stored sizes of the resized images, most frequent first). With
    ``say`` (the number of images evaluated), ``resize_note``'s line is printed when any image was resized."""
    resized = [f"{w}x{h}" for w, h in sizes.values() if (w, h) != (resolution, resolution)]
    counts = {size: resized.count(size) for size in dict.fromkeys(resized)}
    summary = {"count": len(resized), "from": sorted(counts, key=lambda size: -counts[size]), "to": resolution,
               "filter": RESIZE_FILTER}
    if say is not None and resized:
        print(resize_note(summary, say), flush=True)
    return summary


def resize_note(resized: dict, images: Optional[int]) -> str:
    """One line saying which images were resized before scoring (``evaluate-images`` prints it; the table
    footnotes it): ``2 of 16 images resized from 48x48 to 32x32 (PIL bicubic) before scoring``."""
    of = f" of {images:,}" if images else ""
    sizes = resized.get("from") or []
    source = f" from {', '.join(sizes)}" if sizes else ""
    to, how = resized.get("to"), resized.get("filter") or RESIZE_FILTER
    return f"{resized.get('count', 0)}{of} images resized{source} to {to}x{to} ({how}) before scoring"


def load_images(folder: Path, files: list[str], resolution: int) -> torch.Tensor:
    """B×3×H×W uint8: each file read as 8-bit RGB (16-bit scaled), resized with PIL bicubic when not
    ``resolution``²."""
    from PIL import Image

    from harness.data.image_file import read_rgb8

    out = []
    for f in files:
        im = read_rgb8(folder / f)
        if im.size != (resolution, resolution):
            im = im.resize((resolution, resolution), Image.BICUBIC)
        out.append(torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1))
    return torch.stack(out)


# ------------------------------------------------------------------------------------------------------
# DAMSM for R-precision
# ------------------------------------------------------------------------------------------------------
@dataclass
class FolderModels:
    """What the metrics read of ``EvalContext.models`` for a folder: the config, the DAMSM encoders
    (``modules.damsm``), the vocabulary size and the DAMSM cache entry (``pretrained["damsm"]``)."""

    cfg: Config
    modules: SimpleNamespace  # damsm=DamsmEncoders or None: all a folder has of MethodModules
    vocab_size: int
    step: Optional[int] = None
    pretrained: dict[str, Path] = field(default_factory=dict)


def folder_models(plugins: Plugins, cfg: Config, dataset: TextImageDataset, *, need_damsm: bool,
                  rp_encoder: Optional[str], root: Path, device: torch.device) -> tuple[FolderModels, Optional[str]]:
    """The DAMSM of the protocol (``ensure_damsm``) or of ``--rp-encoder`` (a run or a DAMSM cache directory),
    loaded on ``device``, and the text the record carries about it (None when no R-precision runs)."""
    from harness.nn.damsm import build_damsm
    from harness.nn.damsm import load_damsm
    from harness.train.pretrain import ensure_damsm

    vocab_size = len(dataset.vocab)
    models = FolderModels(cfg, SimpleNamespace(damsm=None), vocab_size)
    if not need_damsm and not rp_encoder:
        return models, None
    if rp_encoder:
        from harness.evaluation.metrics.r_precision import load_external_damsm, resolve_rp_encoder

        path = resolve_rp_encoder(rp_encoder, root)
        ctx = SimpleNamespace(plugins=plugins, cfg=cfg, device=device, models=models)
        models.modules.damsm = load_external_damsm(ctx, path)
        models.pretrained["damsm"] = Path(path)
        return models, f"--rp-encoder {path}"
    train_set = build_split(plugins, cfg, "train", train=True, cache_root=root)
    entry = ensure_damsm(plugins, cfg, root, train_set, dataset, device)
    damsm = build_damsm(cfg, vocab_size)
    load_damsm(damsm, entry)
    for m in (damsm.text, damsm.image):
        m.to(device).eval().requires_grad_(False)
    models.modules.damsm, models.pretrained["damsm"] = damsm, entry
    return models, f"the protocol's shared DAMSM ({entry})"


# ------------------------------------------------------------------------------------------------------
# The evaluation
# ------------------------------------------------------------------------------------------------------
@dataclass
class ImageFolder:
    """A folder of images to evaluate (``harness evaluate-images``): the images of ``path`` listed by its manifest
    (``DIR/manifest.csv`` unless ``manifest``), under protocol ``dataset``/``preset``, as the table row ``name``.
    ``allow_fewer``: fewer images than the protocol's count are evaluated (records marked underpowered);
    ``ignore_extra``: images the manifest does not list are ignored; ``device``: auto, cpu, cuda or cuda:N."""

    path: Path | str
    name: str
    dataset: str
    preset: str
    data_dir: Optional[str] = None
    manifest: Optional[Path | str] = None
    allow_fewer: bool = False
    ignore_extra: bool = False
    device: Optional[str] = None


def evaluate_images(plugins: Plugins, images: ImageFolder, options: Optional[EvalOptions] = None, *, root: Path,
                    progress: bool = True) -> tuple[RunDir, list[Record]]:
    """Evaluate the images of ``images.path`` under its protocol with the metrics and metric options of
    ``options`` (``rp_encoder`` also replaces the protocol's DAMSM for ``rp`` and ``rp_real``) and write an image
    run under ``root``; returns (the run, its records). Every check (see the module docstring) runs before any
    metric, and nothing is written when one fails (HarnessError, one line)."""
    from harness.core.runtime import resolve_device
    from harness.evaluation.evaluate import build_metrics, check_metric_options, make_context, select_metrics
    from harness.util.atomic import check_writable_dir, removed_on_failure

    options = options or EvalOptions()
    label = check_label(plugins, images.name)
    cfg = protocol_config(plugins, images.dataset, images.preset, images.data_dir)
    check_metric_options(plugins, options)
    names, explicit = select_metrics(plugins, options.metrics, images.dataset)
    folder = Path(images.path).expanduser()
    if not folder.is_dir():
        raise HarnessError(f"{folder}: no such folder (expected a folder of images and its {MANIFEST_NAME})")
    manifest_path = Path(images.manifest).expanduser() if images.manifest else folder / MANIFEST_NAME
    rows = read_manifest(manifest_path)
    if not rows:
        raise HarnessError(f"manifest {manifest_path} lists no image")
    found = check_folder(folder, rows, ignore_extra=images.ignore_extra)
    _check_count(cfg, len(rows), images, manifest_path)
    ds, img_ids, cap_ids = _check_schedule(plugins, cfg, rows, images, manifest_path, root)

    check_writable_dir(root)  # an unwritable results root fails here, not after the scoring
    dev = resolve_device(images.device, setting="--device") if images.device else resolve_device(cfg.train.device)
    rp_encoder = options.value("rp_encoder")
    models, rp_source = folder_models(plugins, cfg, ds, need_damsm=any(n in ("rp", "rp_real") for n in names),
                                      rp_encoder=rp_encoder, root=root, device=dev)
    n = len(rows)
    if rp_encoder:  # rp_ext scores with the encoder loaded above
        given = dict(options.metric_options, rp_encoder=str(models.pretrained.get("damsm")))
        options = dataclasses.replace(options, metric_options=given)
    options = dataclasses.replace(options, split=cfg.eval.split, num_images=n)
    ctx = make_context(plugins, models, ds, options, device=dev, root=root)
    computers, skipped = build_metrics(ctx, names, explicit=explicit, strict=True)
    results = _score_folder(ctx, computers, folder, rows, (img_ids, cap_ids), progress) if computers else []
    resolution, expected = int(cfg.data.image_size), int(cfg.eval.num_images)
    if n < expected:
        for r in results:
            few = f"{n} of the protocol's {expected} images (--allow-fewer)"
            r.underpowered = f"{few}; {r.underpowered}" if r.underpowered else few
    resized = resize_summary(found.sizes, resolution, say=n)
    sha = manifest_sha256(manifest_path)
    extra = {"label": label, "images": n, "resized": resized, "source": str(folder.resolve()), "manifest_sha256": sha}
    if rp_source:
        extra["rp_encoder"] = rp_source
    records = _image_records(cfg, models, results, skipped, n, extra)
    run = write_image_run(cfg, root, label=label, num_images=n, folder=folder, manifest=manifest_path, sha256=sha,
                          extra={"device": str(dev), "resized": resized, "ignored": found.ignored,
                                 "rp_encoder": rp_source})
    with removed_on_failure(run.path):  # an image run exists only with its records
        run.append_records(records)
    return run, records


def _check_count(cfg: Config, n: int, images: ImageFolder, manifest_path: Path) -> None:
    """The manifest's image count against the protocol's ``eval.num_images`` (fewer only with allow_fewer)."""
    expected = int(cfg.eval.num_images)
    if n < expected and not images.allow_fewer:
        raise HarnessError(f"{images.path}: {n} images, the protocol {images.dataset}/{cfg.protocol} evaluates "
                           f"{expected}; pass --allow-fewer to evaluate them anyway (the records are then marked "
                           f"underpowered)")
    if n > expected:
        raise HarnessError(f"manifest {manifest_path}: {n} images, the protocol {images.dataset}/{cfg.protocol} "
                           f"evaluates {expected} (export its captions with `harness datasets captions`)")


def _check_schedule(plugins: Plugins, cfg: Config, rows: list[ManifestRow], images: ImageFolder, manifest_path: Path,
                    root: Path) -> tuple[TextImageDataset, np.ndarray, np.ndarray]:
    """The manifest must be the protocol's schedule (its prefix): (split, image ids, caption ids)."""
    ds, bank, sched_images, sched_captions = protocol_schedule(plugins, cfg, root)
    img_ids, cap_ids = manifest_ids(rows, ds, bank, f"manifest {manifest_path}")
    for n, (a, b, c, d) in enumerate(zip(img_ids, cap_ids, sched_images, sched_captions)):
        if a != c or b != d:
            raise HarnessError(f"manifest {manifest_path} line {n + 2}: {rows[n].image_key} caption "
                               f"{rows[n].caption_index}, but the protocol draws {ds.keys[int(c)]} caption "
                               f"{int(d) - int(bank.index.offsets[int(c)])} there (export the protocol's captions "
                               f"with `harness datasets captions {images.dataset} --preset {images.preset}`)")
    return ds, img_ids, cap_ids


def _score_folder(ctx: EvalContext, computers: dict[str, StreamingMetric], folder: Path, rows: list[ManifestRow],
                  ids: tuple[np.ndarray, np.ndarray], progress: bool) -> list[MetricResult]:
    """Feed the folder's images, in batches sorted as ``harness evaluate`` sorts them, to every metric."""
    from harness.core.distributed import finish_metrics
    from tqdm import tqdm
    from harness.evaluation.evaluate import feed_batch, schedule_batch

    img_ids, cap_ids = ids
    n, bs, resolution = len(rows), int(ctx.cfg.eval.batch_size), int(ctx.cfg.data.image_size)
    bar = tqdm(total=n, unit="img", desc="evaluate-images", disable=not progress)
    for k, lo in enumerate(range(0, n, bs)):
        captions, lengths, img_i, cap_i, order = schedule_batch(ctx.bank, img_ids[lo: lo + bs],
                                                                cap_ids[lo: lo + bs])
        files = [rows[lo + int(j)].file for j in order]
        pixels = load_images(folder, files, resolution).to(ctx.device)
        feed_batch(ctx, list(computers.values()), pixels, captions, lengths, img_i, cap_i, k)
        bar.update(len(files))
    bar.close()
    return finish_metrics(list(computers.values()))


def _image_records(cfg: Config, models: FolderModels, results: list, skipped: list, n: int,
                   extra: dict) -> list[Record]:
    from harness.core.rundir import new_eval_id
    from harness.evaluation.evaluate import make_records, protocol_fields

    base = {"method": IMAGE_RUN_METHOD, "dataset": cfg.data.name, "seed": cfg.seed, "eval_id": new_eval_id()}
    common = protocol_fields(cfg, models, split=cfg.eval.split, method_config={})
    return make_records(cfg, results, skipped, base=base, common=common, num_images=n, step=None, **extra)


def write_image_run(cfg: Config, root: Path, *, label: str, num_images: int, folder: Path, manifest: Path,
                    sha256: str, extra: dict) -> RunDir:
    """Create ``<root>/images-<slug>-<4 hex>`` with ``config.yaml`` and ``run.json`` (kind ``images``; ``extra``
    adds keys, e.g. the device); a failure on the way removes the directory again."""
    from harness.core.rundir import exclusive_dir
    from harness.util.atomic import removed_on_failure

    run = RunDir(exclusive_dir(Path(root), f"images-{label_slug(label)}"))
    with removed_on_failure(run.path):
        _fill_image_run(run, cfg, label=label, num_images=num_images, folder=folder, manifest=manifest,
                        sha256=sha256, extra=extra)
    return run


def _fill_image_run(run: RunDir, cfg: Config, *, label: str, num_images: int, folder: Path, manifest: Path,
                    sha256: str, extra: dict) -> None:
    from harness.config.protocol import evaluated_values, protocol_id, protocol_name
    from harness.core.rundir import RUN_INFO, atomic_write_text
    from harness.runs.info import VERSION

    run.save_config(cfg)
    values = evaluated_values(cfg, num_images=num_images, split=cfg.eval.split)
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    info = {"version": VERSION, "kind": IMAGE_RUN_METHOD, "method": IMAGE_RUN_METHOD, "dataset": cfg.data.name,
            "seed": cfg.seed, "label": label, "ablation": {}, "deviations": {}, "params": {},
            "protocol": {"name": protocol_name(cfg.to_dict()), "id": protocol_id(values), "values": values},
            "source": str(folder.resolve()), "manifest": {"path": str(manifest.resolve()), "sha256": sha256},
            "images": num_images, "precision": "uint8 images", "started": now,
            "finished": now, **extra}
    atomic_write_text(run.path / RUN_INFO, json.dumps(info, indent=1, default=str))
