"""`harness evaluate`: generate from a run's EMA generator for test captions and stream every batch into every
requested metric in one pass, writing one record per metric (README "Run layout and records").

Protocol (recorded with every number):

* captions: passes over the evaluation split, each a seeded shuffle of its images with one uniformly drawn caption
  per image, until exactly ``num_images`` images (DM-GAN's 30,000 ≈ 10.2 passes over CUB's 2,933 test images);
  captions padded, or order-keeping subsampled once per caption (seeded), to ``eval.words_num`` words;
* noise: N(0, I) from a CPU generator seeded with ``eval.seed`` (the same images on every device); with
  ``eval.truncation`` t > 0 mapped to t·(N(0, 1) truncated to [−2, 2]) (``harness.core.seed.truncated``);
* images: the last stage, quantised as the reference saves PNGs (truncating ``(x + 1)·127.5`` to uint8), for every
  metric: the float image a metric sees (R-precision's) is that uint8 image read back as the data transform reads a
  PNG (``x / 127.5 − 1``), so ``harness evaluate-images`` on the saved folder gives the same numbers.

A metric whose weight file is missing is recorded as ``skipped`` with the one-line reason, unless it was named
explicitly with ``strict=True`` (``harness evaluate --metrics X``), which raises. No PNG is written unless
``save_images`` is given; then ``<dir>/<schedule position>.png`` and ``<dir>/manifest.csv``
(``harness.evaluation.manifest``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Optional, TYPE_CHECKING

import numpy as np
import torch

from harness.util.errors import ConfigError, HarnessError, MissingWeightsError, UnknownNameError
from harness.util.version import library_versions
from harness.evaluation.metrics.interface import (
    CaptionBank,
    EvalContext,
    EvalModels,
    EvalOptions,
    GeneratedBatch,
    MetricNotApplicable,
    MetricResult,
    StreamingMetric,
    check_finite,
    dequantize_png,
    quantize_like_png,
)
from harness.core.rundir import new_eval_id
from harness.core.runfiles import Record

if TYPE_CHECKING:  # type hints only
    from harness.build import InferenceModels, MethodModules
    from harness.config import Config
    from harness.data.dataset import TextImageDataset
    from harness.evaluation.metrics.r_precision import CaptionIndex
    from harness.contract.plugins import Plugins
    from harness.core.rundir import RunDir

CAPTIONS_POLICY = "one random caption per test image per pass, seeded shuffled passes until num_images"


# ------------------------------------------------------------------------------------------------------
# Metric selection
# ------------------------------------------------------------------------------------------------------
def _parse(metrics: str | list[str] | None) -> list[str]:
    if metrics is None:
        return []
    items = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    return [m.strip() for m in items if m.strip() and m.strip() != "auto"]


def check_metric_names(plugins: Plugins, metrics: str | None) -> None:
    """Fail before any work when ``metrics`` (comma-separated ids, or None / "auto") names an unknown metric."""
    available = plugins.metrics()
    for name in _parse(metrics):
        if name not in available:
            raise UnknownNameError("metric", name, list(available))


def select_metrics(plugins: Plugins, metrics: str | list[str] | None, dataset: str) -> tuple[list[str], bool]:
    """The metric ids to compute and whether they were named explicitly (else: every metric that applies)."""
    check_metric_names(plugins, ",".join(_parse(metrics)) or None)
    names = _parse(metrics)
    available = plugins.metrics()
    if names:
        for n in names:
            ds = available[n].datasets
            if ds is not None and dataset not in ds:
                raise HarnessError(f"metric {n!r} applies to {', '.join(ds)} only, not {dataset!r}")
        return list(dict.fromkeys(names)), True
    return [n for n, m in available.items() if m.datasets is None or dataset in m.datasets], False


# ------------------------------------------------------------------------------------------------------
# Captions and the generation schedule
# ------------------------------------------------------------------------------------------------------
def build_caption_bank(dataset: TextImageDataset, words_num: int, seed: int) -> CaptionBank:
    """Every caption of the split, padded or subsampled (once, seeded) to ``words_num``."""
    from harness.data.captions import pad_or_subsample
    from harness.evaluation.metrics.r_precision import CaptionIndex

    rng = np.random.default_rng([seed, 11])
    rows, lengths, owner, counts, raw = [], [], [], [], []
    for i in range(len(dataset)):
        caps = dataset.captions(i)
        counts.append(len(caps))
        for tokens in caps:
            ids, n = pad_or_subsample(tokens, words_num, rng)
            rows.append(ids)
            lengths.append(max(int(n), 1))
            owner.append(i)
            raw.append(list(tokens))
    index = CaptionIndex.from_counts(dataset.class_ids, counts)
    return CaptionBank(torch.from_numpy(np.stack(rows)), torch.tensor(lengths, dtype=torch.long),
                       np.asarray(owner, dtype=np.int64), index, raw)


def generation_schedule(index: CaptionIndex, num_images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(image indices, caption ids) of ``num_images`` generations: shuffled passes, one random caption each."""
    rng = np.random.default_rng([seed, 13])
    m = len(index.class_ids)
    images = np.concatenate([rng.permutation(m) for _ in range(-(-num_images // m))])[:num_images]
    return images, index.random_caption(images, rng)


# ------------------------------------------------------------------------------------------------------
# Records
# ------------------------------------------------------------------------------------------------------
def _damsm_protocol(models: Optional[EvalModels]) -> dict:
    if models is None or "damsm" not in (models.pretrained or {}):
        return {}
    from harness.nn.damsm import damsm_info

    return damsm_info(models.pretrained["damsm"])


def protocol_fields(cfg: Config, models: Optional[EvalModels], *, split: str, method_config: dict) -> dict:
    """The protocol fields every record of one evaluation shares, for a run's evaluation and an image folder's
    alike (``make_records``' ``common``): split, captions policy and seed, DAMSM, versions, caption length, padding
    mask and batch size; ``method_config``: the method's ablation switches as trained ({} for an image run)."""
    return {"split": split, "captions_policy": CAPTIONS_POLICY, "seed": cfg.eval.seed,
            "damsm_image_encoder": cfg.pretrain.damsm.image_encoder, "damsm": _damsm_protocol(models),
            "versions": library_versions(), "words_num": cfg.eval.words_num,
            # under attention_mask=reference an image depends on its batch: both are part of the protocol
            "attention_mask": cfg.model.attention_mask, "batch_size": cfg.eval.batch_size,
            "method_config": method_config}


# ------------------------------------------------------------------------------------------------------
# The evaluation
# ------------------------------------------------------------------------------------------------------
def check_metric_options(plugins: Plugins, options: EvalOptions) -> None:
    """Fail before any work when ``options`` names a metric option no installed metric declares."""
    declared = plugins.metric_options()
    for name in options.metric_options:
        if name not in declared:
            raise UnknownNameError("metric option", name, list(declared))


def evaluate_run(plugins: Plugins, run: RunDir, options: Optional[EvalOptions] = None, *, strict: bool, root: Path,
                 step: Optional[int] = None, lock: bool = True) -> list[Record]:
    """Evaluate the run's EMA generator (of checkpoint ``step``, default the latest) as ``options`` asks, holding the
    run's writer lock (``harness.core.rundir.run_lock``) unless ``lock`` is False because the caller holds it;
    appends the records to ``run.records_path`` and returns them."""
    from harness.core.rundir import run_lock

    with run_lock(run, "evaluate") if lock else contextlib.nullcontext():
        return evaluate_unlocked(plugins, run, options, strict=strict, root=root, step=step)


def evaluate_unlocked(plugins: Plugins, run: RunDir, options: Optional[EvalOptions] = None, *, strict: bool,
                      root: Path, step: Optional[int] = None) -> list[Record]:
    """``evaluate_run`` without taking the lock."""
    from harness.build import build_split, load_inference_models
    from harness.config.rules import key_problem
    from harness.core.distributed import init_distributed
    from harness.core.rundir import IMAGE_RUN_METHOD

    options = options or EvalOptions()
    check_metric_options(plugins, options)
    cfg0 = run.load_config(plugins)
    too_many = key_problem(cfg0, "eval.num_images", options.num_images or cfg0.eval.num_images,
                           given_as="--num-images" if options.num_images else None)
    if too_many:  # before any model, data set or image schedule is built
        raise ConfigError(too_many)
    if cfg0.method == IMAGE_RUN_METHOD:
        raise HarnessError(f"{run.path} is an image run (no generator); evaluate its folder again with "
                           f"`harness evaluate-images`")
    select_metrics(plugins, _asked_metrics(options, cfg0), cfg0.data.name)  # unknown names fail before any work
    device = init_distributed(cfg0.train.device).device  # torchrun: joins the group, cuda:LOCAL_RANK
    models = load_inference_models(plugins, run, step=step, device=device)
    cfg = models.cfg
    options = dataclasses.replace(options, split=options.split or cfg.eval.split,
                                  num_images=options.num_images or cfg.eval.num_images)
    dataset = build_split(plugins, cfg, options.split, train=False, cache_root=root)
    from harness.data.vocab import check_vocabulary_size

    check_vocabulary_size(models.vocab_size, dataset, f"run {run.path.name}'s text encoder")
    return evaluate_models(plugins, models, dataset, options, strict=strict, device=device, root=root, run=run)


def _asked_metrics(options: EvalOptions, cfg: Config) -> Optional[str]:
    """The metrics asked for: the options', else the config's ``eval.metrics`` (None: every one that applies)."""
    return options.metrics or (",".join(cfg.eval.metrics) if cfg.eval.metrics != ["auto"] else None)


def make_context(plugins: Plugins, models: EvalModels, dataset: TextImageDataset, options: EvalOptions, *,
                 device: torch.device | str, root: Path, run: RunDir | None = None) -> EvalContext:
    """The evaluation context (caption bank included) for ``models`` on ``dataset``; ``options.split`` and
    ``options.num_images`` are the evaluation's (not None)."""
    from harness.build import load_external_damsm

    cfg = models.cfg
    num_images = int(options.num_images)
    least = max(2, cfg.eval.rp_folds, cfg.eval.is_splits)
    if num_images < least:
        raise HarnessError(f"{num_images} images are too few: R-precision folds ({cfg.eval.rp_folds}) and IS splits "
                           f"({cfg.eval.is_splits}) need at least {least} (--num-images / eval.num_images)")
    bank = build_caption_bank(dataset, cfg.eval.words_num, cfg.eval.seed)
    return EvalContext(plugins=plugins, cfg=cfg, dataset=dataset, split=options.split, device=torch.device(device),
                       root=Path(root), bank=bank, resolution=int(dataset.stage_sizes[-1]), num_images=num_images,
                       seed=cfg.eval.seed, options=options, models=models, run=run,
                       real_batch_size=cfg.eval.batch_size, load_damsm=lambda path: load_external_damsm(
                           plugins, path, cfg=cfg, vocab_size=models.vocab_size, device=torch.device(device)))


def build_metrics(ctx: EvalContext, names: list[str], *, explicit: bool,
                  strict: bool) -> tuple[dict[str, StreamingMetric], list[tuple[str, str]]]:
    """Each metric's streaming computer, and (metric, one-line reason) for those skipped for missing weights.

    Missing weights raise when the metric was named explicitly under ``strict``; a metric that needs an option
    not given (``MetricNotApplicable``) is left out of an automatic selection and fails when named."""
    skipped: list[tuple[str, str]] = []
    computers: dict[str, StreamingMetric] = {}
    for name in names:
        info = ctx.plugins.metric(name)
        try:
            computers[name] = info.factory(ctx)
        except MissingWeightsError as e:
            if strict and explicit:
                raise
            skipped.append((name, str(e)))
        except MetricNotApplicable as e:
            if explicit:
                raise HarnessError(f"metric {name!r}: {e}") from None
    return computers, skipped


def evaluate_models(plugins: Plugins, models: InferenceModels, dataset: TextImageDataset, options: EvalOptions, *,
                    strict: bool, device: torch.device, root: Path, run: RunDir | None = None) -> list[Record]:
    """The evaluation itself, on already built models and data (``options.split`` and ``options.num_images``
    set: the evaluation's)."""
    cfg = models.cfg
    split, num_images = options.split, int(options.num_images)
    names, explicit = select_metrics(plugins, _asked_metrics(options, cfg), cfg.data.name)
    ctx = make_context(plugins, models, dataset, options, device=device, root=root, run=run)
    from harness.core.distributed import broadcast_object, finish_metrics, is_main

    eval_id = broadcast_object(new_eval_id())  # one id on every rank
    computers, skipped = build_metrics(ctx, names, explicit=explicit, strict=strict)

    results: list[MetricResult] = []
    if computers:
        generate_into(ctx, models.modules, list(computers.values()), save_images=options.save_images)
        results = finish_metrics(list(computers.values()))  # N ranks: states gathered, finished on rank 0

    base = {"method": cfg.method, "dataset": cfg.data.name, "seed": cfg.seed, "eval_id": eval_id}
    # the method's ablation switches as trained (e.g. ECAGAN's loss.perceptual.weights=random)
    ablation = {k: cfg.get(k) for k in plugins.method(cfg.method).ablation_keys}
    common = protocol_fields(cfg, models, split=split, method_config=ablation)
    records = make_records(cfg, results, skipped, base=base, common=common, num_images=num_images, step=models.step)
    if run is not None and is_main():
        run.append_records(records)
        plugins.pm.hook.harness_on_evaluated(run=run, records=[r.to_json() for r in records])
    return records


def record_lines(records: list[Record]) -> list[str]:
    """One line per record, as ``harness evaluate`` prints them: metric, value ± std, or why it was skipped."""
    lines = []
    for r in records:
        val = "skipped: " + str(r.reason) if not r.ok else (
            f"{r.value:.4g}" + (f" ± {r.std:.2g} ({r.std_over})" if r.std is not None else ""))
        power = f"  (underpowered: {r.underpowered})" if r.underpowered else ""
        lines.append(f"{r.metric:11s} {val}{power}")
    return lines


def make_records(cfg: Config, results: list[MetricResult], skipped: list[tuple[str, str]], *, base: dict,
                 common: dict, num_images: int, step: Optional[int], **extra: Any) -> list[Record]:
    """The records of one evaluation: one per result, one ``skipped`` record per (metric, reason); ``base`` holds
    the record's identity (method, dataset, seed, eval_id), ``common`` the protocol fields every record shares
    (the evaluated ``split`` among them), ``extra`` further record fields (e.g. an image run's ``label``)."""
    from harness.config.protocol import evaluated_values, protocol_name, record_protocol

    # the protocol as this evaluation ran it
    values = evaluated_values(cfg, num_images=num_images, split=common["split"])
    pname = protocol_name(cfg.to_dict())
    records = []
    for r in results:
        protocol = dict(common, num_images=r.num_images or num_images, variant=r.variant, weights=r.weights,
                        **record_protocol(values, name=pname, variant=r.variant, weights=r.weights))
        power = {"underpowered": r.underpowered} if r.underpowered else {}  # harness.evaluation.metrics.power
        records.append(Record(**base, metric=r.metric, value=r.value, std=r.std, std_over=r.std_over,
                              protocol=protocol, extra={"step": step, "variant": r.variant, **power, **extra,
                                                        **r.extra}))
    for name, reason in skipped:
        protocol = dict(common, num_images=num_images, variant="", weights={},
                        **record_protocol(values, name=pname, variant="", weights={}))
        records.append(Record(**base, metric=name, status="skipped", reason=reason, protocol=protocol,
                              extra={"step": step, **extra}))
    return records


def generate_into(ctx: EvalContext, modules: MethodModules, computers: list[StreamingMetric], *,
                  save_images: Optional[str] = None, progress: bool = True) -> float:
    """Generate ``ctx.num_images`` images batch by batch and hand each batch to every metric; returns images/s
    of the loop (generation and every metric's per-batch work)."""
    from tqdm import tqdm
    from harness.core.distributed import batch_rng, is_main, on_main, owned_batches
    from harness.core.seed import truncated
    from harness.util.atomic import check_writable_dir, removed_on_failure

    images_idx, caption_ids = generation_schedule(ctx.bank.index, ctx.num_images, ctx.seed)
    noise_gen = torch.Generator().manual_seed(ctx.seed)
    z_dim, truncation = ctx.cfg.model.z_dim, ctx.cfg.eval.truncation
    bs = ctx.cfg.eval.batch_size
    out_dir = Path(save_images) if save_images else None
    created = False  # a folder this call made is removed again when the generation fails (by rank 0)
    if out_dir is not None:  # an unwritable folder fails here, before any image is generated
        created = bool(on_main(lambda: _made_writable_dir(out_dir)))  # decided before another rank can make it
        check_writable_dir(out_dir)
    amp = ctx.device.type == "cuda" and ctx.cfg.train.amp != "off"  # the generator in bf16 on CUDA
    mine = owned_batches(-(-ctx.num_images // bs))  # N ranks: a contiguous block of batches each
    bar = tqdm(total=ctx.num_images, unit="img", desc="evaluate", disable=not (progress and is_main()), file=sys.stderr)
    start = time.perf_counter()
    with removed_on_failure(out_dir, remove=created and is_main()) if out_dir else contextlib.nullcontext():
        if out_dir is not None and is_main():  # the manifest, in schedule order, replacing any earlier one
            from harness.evaluation.manifest import MANIFEST_NAME, schedule_rows, write_manifest

            write_manifest(out_dir / MANIFEST_NAME, schedule_rows(ctx.dataset, ctx.bank, images_idx, caption_ids))
        for k, lo in enumerate(range(0, ctx.num_images, bs)):
            captions, lengths, img_i, cap_i, order = schedule_batch(ctx.bank, images_idx[lo: lo + bs],
                                                                    caption_ids[lo: lo + bs])
            noise = torch.randn(len(cap_i), z_dim, generator=noise_gen)
            noise = (truncated(noise, truncation) if truncation else noise).to(ctx.device)
            if k not in mine:  # another rank's batch (its noise was drawn above: the stream stays aligned)
                continue
            with torch.no_grad(), batch_rng(ctx.seed, k, ctx.device):
                text = modules.text_encoder(captions.to(ctx.device), lengths.to(ctx.device))
                with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=amp):  # extractors: fp32
                    images = modules.generator(noise, text).images[-1].float()
            check_finite(images, "generated image", lambda r: ctx.describe_caption(cap_i[r]))
            images_uint8 = quantize_like_png(images)  # every metric scores what a saved PNG holds
            feed_batch(ctx, computers, images_uint8, captions, lengths, img_i, cap_i, k)
            if out_dir is not None:
                _save_pngs(images_uint8, out_dir, lo + order.numpy())
            bar.update(len(cap_i))
    bar.close()
    return ctx.num_images / max(time.perf_counter() - start, 1e-9)


def _made_writable_dir(path: Path) -> bool:
    """``check_writable_dir(path)``; True when ``path`` did not exist before."""
    from harness.util.atomic import check_writable_dir

    made = not path.exists()
    check_writable_dir(path)
    return made


def schedule_batch(bank: CaptionBank, image_indices: np.ndarray,
                   caption_ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray, torch.Tensor]:
    """One batch of the schedule sorted by caption length (descending, stable) as the generator and the
    metrics see it: ``(captions B×T, lengths B, image indices, caption ids, order)``; sorted row ``j`` is the
    batch's input position ``order[j]``."""
    from harness.data.captions import sort_by_length

    captions, lengths = bank.batch(caption_ids)
    order = sort_by_length(lengths)
    return (captions[order], lengths[order], np.asarray(image_indices)[order.numpy()],
            np.asarray(caption_ids)[order.numpy()], order)


def feed_batch(ctx: EvalContext, computers: list[StreamingMetric], images_uint8: torch.Tensor, captions: torch.Tensor,
               lengths: torch.Tensor, image_indices: np.ndarray, caption_ids: np.ndarray, index: int) -> None:
    """Hand batch ``index`` (B×3×H×W uint8 images on the evaluation device, sorted as ``schedule_batch`` sorts)
    to every metric: the float images are the uint8 ones read back as the data transform reads a PNG, so a run's
    own evaluation and the evaluation of its saved folder (``harness evaluate-images``) give the same numbers."""
    batch = GeneratedBatch(images=dequantize_png(images_uint8), images_uint8=images_uint8, captions=captions,
                           lengths=lengths, caption_ids=caption_ids, image_indices=image_indices,
                           class_ids=ctx.bank.index.class_ids[image_indices], index=index)
    for c in computers:
        c.update(batch)


def _save_pngs(images_uint8: torch.Tensor, out_dir: Path, positions: np.ndarray) -> None:
    """Save each image as ``<schedule position>.png`` (``harness.evaluation.manifest.image_file_name``)."""
    from PIL import Image

    from harness.evaluation.manifest import image_file_name
    from harness.util.atomic import write_file

    for im, pos in zip(images_uint8.cpu().permute(0, 2, 3, 1).numpy(), positions):
        write_file(out_dir / image_file_name(int(pos)), lambda f: Image.fromarray(im).save(f, format="PNG"),
                   parents=False)
