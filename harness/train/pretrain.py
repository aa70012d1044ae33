"""Stage 0: the DAMSM text and image encoders (AttnGAN ``pretrain_DAMSM.py``), plus any pretraining stage a method
asks for (``harness_pretrain_stages``), each cached under ``<root>/.cache/<kind>/<key>/``.

The DAMSM stage is shared: its key is the data set's fingerprint (with a digest of the training split's files, so
an entry trained on files changed since is not found), ``cfg.pretrain.damsm`` and the vocabulary (its size and a
hash of its words in id order), never the method or the run's seed, so every method of a run and every later run
on the same data reuse it.
Images: the data set's last stage (256² for CUB; the ``inception_v3`` encoder resizes to 299, where the reference
crops 299 from a 355 rescale); captions of ``pretrain.damsm.words_num`` words. Training follows the reference:
loss w0 + w1 + s0 + s1 (no λ), Adam(β 0.5, 0.999) re-created every epoch, lr × 0.98 per epoch while lr > lr/10,
gradient norm clip 0.25 on the RNN only, both encoders in train() (so the frozen Inception's BatchNorm statistics
drift, as in the reference). ``max_steps`` stops early (CPU presets).

Released encoders (``text_encoder200.pth`` / ``image_encoder200.pth``) are imported into a cache entry keyed by
their sha256 instead (``import_damsm``; ``pretrain.damsm.text_encoder_file`` / ``image_encoder_file``).

This module also registers the ImageNet Inception-v3 weight file that the ``inception_v3`` image encoder starts
from (``harness weights`` lists it).
"""
from __future__ import annotations

import dataclasses
import json
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, TYPE_CHECKING

import torch
from torch import nn

from harness.build import build_split
from harness.core.cache import cached, lookup
from harness.config import Config, stage_sizes
from harness.util.atomic import copy_file, write_file
from harness.util.errors import HarnessError
from harness.contract.plugins import hookimpl
from harness.core.seed import epoch_batches, preserved_rng, seed_everything
from harness.nn.damsm import IMAGE_FILE, INFO_FILE, TEXT_FILE, load_damsm
from harness.core.runtime import Precision, batch_loader
from harness.contract.types import Batch, DamsmEncoders, Download, PretrainContext, PretrainStage, WeightFile

if TYPE_CHECKING:  # type hints only
    from harness.data.dataset import TextImageDataset
    from harness.contract.plugins import Plugins
    from harness.core.rundir import RunDir

INCEPTION_WEIGHT = "damsm_inception_v3"
INCEPTION_FILES = ["inception_v3_google-0cc3c7bd.pth", "inception_v3_google-1a9a5a14.pth"]
STAGE_VERSION = 1  # bump when the DAMSM training code changes what an entry holds


@hookimpl
def harness_weight_files() -> list[WeightFile]:
    return [inception_weight_file()]


def inception_weight_file() -> WeightFile:
    """The ImageNet Inception-v3 file the DAMSM image encoder's trunk starts from (announced to ``harness
    weights`` by ``harness_weight_files``)."""
    return WeightFile(
        name=INCEPTION_WEIGHT,
        purpose="ImageNet Inception-v3 trunk of the DAMSM image encoder (pretrain.damsm.image_encoder=inception_v3)",
        filenames=list(INCEPTION_FILES),
        check="sha256-prefix",  # the older 1a9a5a14 file: only the prefix in its name is published
        source="torchvision inception_v3 IMAGENET1K_V1, download.pytorch.org/models/",
        label="torchvision Inception-v3",
        # torchvision's current file; the full sha256 as stated by several public projects pinning it
        downloads=[Download(INCEPTION_FILES[0], (f"https://download.pytorch.org/models/{INCEPTION_FILES[0]}",),
                            digest="sha256:0cc3c7bd75056d25e46cba549dc184522069b81e9787eff6df84f397bd52a5ef")],
    )


# ------------------------------------------------------------------------------------------------------
# Keys
# ------------------------------------------------------------------------------------------------------
def dataset_fingerprint(cfg: Config, files: Optional[dict] = None) -> dict:
    """What identifies the training data: name, directory, generator settings (shapes), sizes, caption length, and
    ``files``: the digest of the files read (``harness.data.validate.source_digest``) where there are files."""
    d = cfg.data
    fp: dict[str, Any] = {
        "name": d.name,
        "data_dir": str(Path(d.data_dir).expanduser().resolve()) if d.data_dir else None,
        "image_size": stage_sizes(cfg)[-1],  # the protocol's resolution, not the method's stages
        "words_num": d.words_num,
        "captions_per_image": d.captions_per_image,
    }
    if d.name == "shapes":
        fp["shapes"] = dataclasses.asdict(d.shapes)
    if files is not None:
        fp["files"] = files
    return fp


def training_files(cfg: Config, train_set: TextImageDataset) -> Optional[dict]:
    """The training split's file digest for the pretraining keys (``data.strict_cache``: by content)."""
    from harness.data.validate import source_digest

    return source_digest(train_set, cfg.data.data_dir, strict=cfg.data.strict_cache)


def damsm_key(cfg: Config, vocab_size: int, vocab_hash: Optional[str] = None, files: Optional[dict] = None) -> dict:
    """The shared DAMSM cache key: data fingerprint (with ``files``, the training split's digest), ``pretrain.damsm``
    settings, embedding size and the vocabulary's size and ``Vocabulary.fingerprint()`` (equal sizes with other
    words or order differ)."""
    dc = dataclasses.asdict(cfg.pretrain.damsm)
    dc.pop("text_encoder_file", None)
    dc.pop("image_encoder_file", None)
    return {"stage": "damsm", "version": STAGE_VERSION, "data": dataset_fingerprint(cfg, files), "damsm": dc,
            "embedding_dim": cfg.model.embedding_dim, "vocab_size": int(vocab_size), "vocab_hash": vocab_hash}


# ------------------------------------------------------------------------------------------------------
# The DAMSM stage
# ------------------------------------------------------------------------------------------------------
def damsm_stage(cfg: Config, *, vocab_size: Optional[int] = None, inception: Optional[Path] = None,
                vocab_hash: Optional[str] = None, files: Optional[dict] = None) -> PretrainStage:
    """The shared DAMSM stage. ``vocab_size`` (default: from the training set when it runs), ``vocab_hash`` and
    ``files`` enter the key; ``inception`` is the verified ImageNet Inception file (looked up when needed and not
    given)."""

    def train(ctx: PretrainContext) -> None:
        n = vocab_size if vocab_size is not None else len(ctx.train_set.vocab)
        train_damsm(ctx, n, inception)

    return PretrainStage(name="damsm", train=train,
                         key=damsm_key(cfg, vocab_size if vocab_size is not None else -1, vocab_hash, files))


def _load_imagenet_trunk(image: nn.Module, path: Path) -> None:
    """Load the torchvision ImageNet Inception-v3 file into the image encoder's frozen trunk."""
    load = getattr(image, "load_imagenet_trunk", None)
    if not callable(load):
        raise HarnessError(f"the DAMSM image encoder {type(image).__name__} cannot load Inception weights")
    load(path)


def _damsm_loss(damsm: DamsmEncoders, batch: Batch, cfg: Config) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """w0 + w1 + s0 + s1 on one batch (class ids given: same-class pairs are not negatives)."""
    from harness.nn.damsm_loss import sent_loss, words_loss

    dc = cfg.pretrain.damsm
    regions, code = damsm.image(batch.images[-1])
    text = damsm.text(batch.captions, batch.lengths)
    w0, w1, _ = words_loss(regions, text.words, batch.lengths, batch.class_ids, dc.gamma1, dc.gamma2, dc.gamma3)
    s0, s1 = sent_loss(code, text.sent, batch.class_ids, dc.gamma3)
    return w0 + w1 + s0 + s1, {"w0": w0, "w1": w1, "s0": s0, "s1": s1}


def _batches(dataset: TextImageDataset, seed: int, epoch: int, batch_size: int, num_workers: int = 0):
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    return batch_loader(dataset, epoch_batches(seed, epoch, len(dataset), batch_size), num_workers)


def next_damsm_lr(lr: float, cfg: Config) -> float:
    """The next epoch's learning rate: × lr_decay while above lr/10 (the reference's check, so the floor is
    undershot by at most one decay)."""
    dc = cfg.pretrain.damsm
    return lr * dc.lr_decay if lr > dc.lr / 10.0 else lr


def train_damsm(ctx: PretrainContext, vocab_size: int, inception: Optional[Path] = None) -> dict:
    """Train the DAMSM encoders into ``ctx.out_dir`` (text_encoder.pth, image_encoder.pth, info.json)."""
    from tqdm import tqdm

    from harness.nn.damsm import build_damsm
    from harness.core.weights import weight_sha256

    cfg, dc, device = ctx.cfg, ctx.cfg.pretrain.damsm, ctx.device
    seed_everything(dc.seed)
    damsm = build_damsm(cfg, vocab_size)
    inception_info = None
    if dc.image_encoder == "inception_v3":
        if inception is None:
            from harness.core.weights import require_weight

            inception = require_weight(inception_weight_file())
        _load_imagenet_trunk(damsm.image, Path(inception))
        inception_info = {"file": Path(inception).name, "sha256": weight_sha256(Path(inception))}
    prec = Precision.from_config(cfg, device)  # bf16 autocast and channels_last on CUDA; fp32 on the CPU
    damsm.text.to(device).train()
    damsm.image.to(device).train()  # the reference trains in train(): the trunk's BN statistics drift
    if prec.channels_last:
        damsm.image.to(memory_format=torch.channels_last)
    params = [p for m in (damsm.text, damsm.image) for p in m.parameters() if p.requires_grad]
    n = len(ctx.train_set)
    batch_size = min(dc.batch_size, n)
    per_epoch = n // batch_size
    if per_epoch == 0:
        raise HarnessError(f"DAMSM pretraining: the training split has {n} items, fewer than one batch")
    total = dc.max_steps if dc.max_steps is not None else dc.epochs * per_epoch
    lr, step, last = dc.lr, 0, {}
    bar = tqdm(total=total, desc="DAMSM", unit="it", mininterval=1.0, dynamic_ncols=True)
    epoch = 0
    while step < total:
        optimizer = torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))  # re-created every epoch
        for batch in _batches(ctx.train_set, dc.seed, epoch, batch_size, cfg.data.num_workers):
            batch = batch.to(device)
            batch.images = [prec.images(x) for x in batch.images]
            with prec.autocast():  # the losses themselves are computed in fp32
                loss, parts = _damsm_loss(damsm, batch, cfg)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(damsm.text.parameters(), dc.grad_clip)  # RNN only
            optimizer.step()
            step += 1
            if step % 10 == 0 or step == total:
                last = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}}
                if not all(map(lambda v: v == v and abs(v) != float("inf"), last.values())):
                    raise HarnessError(f"DAMSM pretraining: non-finite loss at step {step} ({last})")
                bar.set_postfix(loss=f"{last['loss']:.3f}", lr=f"{lr:.2e}")
            bar.update(1)
            if step >= total:
                break
        lr = next_damsm_lr(lr, cfg)
        epoch += 1
    bar.close()
    test_loss = _evaluate_damsm(damsm, ctx.test_set, cfg, batch_size, device)
    write_file(ctx.out_dir / TEXT_FILE, lambda f: torch.save(damsm.text.state_dict(), f))
    write_file(ctx.out_dir / IMAGE_FILE, lambda f: torch.save(damsm.image.state_dict(), f))
    info = {"source": "trained here", "steps": step, "epochs": epoch, "final_loss": last, "test_loss": test_loss,
            "image_encoder": dc.image_encoder, "inception": inception_info, "vocab_size": vocab_size,
            "batch_size": batch_size, "final_lr": lr}
    write_file(ctx.out_dir / INFO_FILE, json.dumps(info, indent=1))
    print(f"DAMSM: {step} steps, final loss {last.get('loss', float('nan')):.4f}, test loss "
          f"{test_loss if test_loss is None else round(test_loss, 4)}", flush=True)
    return info


@torch.no_grad()
def _evaluate_damsm(damsm: DamsmEncoders, test_set: Optional[TextImageDataset], cfg: Config, batch_size: int,
                    device: torch.device, max_batches: int = 10) -> Optional[float]:
    """Mean w0 + w1 + s0 + s1 over up to ``max_batches`` test batches (encoders in eval)."""
    if test_set is None or len(test_set) < 2:
        return None
    damsm.text.eval()
    damsm.image.eval()
    bs = min(batch_size, len(test_set))
    losses = []
    for k, batch in enumerate(_batches(test_set, 0, 0, bs)):
        if k >= max_batches:
            break
        loss, _ = _damsm_loss(damsm, batch.to(device), cfg)
        losses.append(float(loss))
    return sum(losses) / len(losses) if losses else None


# ------------------------------------------------------------------------------------------------------
# Loading, importing, orchestrating
# ------------------------------------------------------------------------------------------------------
def import_damsm(cfg: Config, text_file: str | Path, image_file: str | Path, root: Path) -> Path:
    """Put released DAMSM encoders (``text_encoder200.pth`` / ``image_encoder200.pth``) into a cache entry keyed
    by their sha256; both are checked to load with ``weights_only=True`` first."""
    from harness.core.state_dicts import load_weights_file, tensor_state
    from harness.core.weights import weight_sha256

    files = {"text": Path(text_file).expanduser(), "image": Path(image_file).expanduser()}
    for kind, f in files.items():
        tensor_state(load_weights_file(f, what=f"DAMSM {kind} encoder"), f)
    key = {"stage": "damsm", "imported": {k: weight_sha256(f) for k, f in files.items()},
           "image_encoder": cfg.pretrain.damsm.image_encoder}

    def build(out: Path) -> None:
        copy_file(files["text"], out / TEXT_FILE)
        copy_file(files["image"], out / IMAGE_FILE)
        info = {"source": "imported", "files": {k: {"name": f.name, "sha256": key["imported"][k]}
                                                for k, f in files.items()}}
        write_file(out / INFO_FILE, json.dumps(info, indent=1))

    return cached(root, "damsm", key, build)


def _stage_seed(key: dict) -> int:
    from harness.util.hashing import stable_hash

    return int(stable_hash(key, length=8), 16)


def run_stage(stage: PretrainStage, description: dict, root: Path,
              context: Callable[..., PretrainContext]) -> Path:
    """The stage's cache entry, trained now (under its own seed, leaving the caller's random state as it was)
    when it does not exist yet; ``context(out_dir=...)`` makes what the stage receives for the temporary directory it
    writes into."""
    hit = lookup(root, stage.name, description)
    if hit is not None:
        print(f"pretrain {stage.name}: cached {hit}", flush=True)
        return hit

    def build(out: Path) -> None:
        ctx = context(out_dir=out)
        with preserved_rng():
            seed_everything(_stage_seed(description))
            stage.train(ctx)

    print(f"pretrain {stage.name}: training (not cached yet{_closest_note(root, stage.name, description)})",
          flush=True)
    return cached(root, stage.name, description, build)


def _closest_note(root: Path, kind: str, description: dict) -> str:
    """``; the closest cached entry, DIR, was made for other KEYS …`` when ``kind`` has entries, else ``""``."""
    from harness.core.cache import closest_entry

    found = closest_entry(root, kind, description)
    if found is None:
        return ""
    entry, keys = found
    shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more keys" if len(keys) > 4 else "")
    return f"; the closest cached entry, {entry.path}, was made for other {shown}"


def ensure_pretrained(plugins: Plugins, cfg: Config, root: Path, train_set: TextImageDataset,
                      test_set: TextImageDataset, device: torch.device | str) -> dict[str, Path]:
    """Run (or find in the cache) the DAMSM stage, then the method's own stages in order; returns
    ``{stage name: cache directory}`` with ``damsm`` first."""
    from harness.nn.damsm import build_damsm

    device = torch.device(device)
    vocab_size = len(train_set.vocab)
    vocab_hash = getattr(train_set.vocab, "fingerprint", lambda: None)()  # None: a vocabulary without words
    pretrained: dict[str, Path] = {"damsm": ensure_damsm(plugins, cfg, root, train_set, test_set, device)}
    stages = plugins.method_hooks(cfg.method).harness_pretrain_stages(cfg=cfg)  # [] when not implemented
    if stages:
        damsm = build_damsm(cfg, vocab_size)
        load_damsm(damsm, pretrained["damsm"])
        for m in (damsm.text, damsm.image):
            m.to(device).eval().requires_grad_(False)
        files = training_files(cfg, train_set)
        for stage in stages:
            if stage.name in pretrained:
                raise HarnessError(f"method {cfg.method!r}: two pretraining stages are named {stage.name!r}")
            description = {"stage": stage.name, "data": dataset_fingerprint(cfg, files), "vocab_size": vocab_size,
                           "vocab_hash": vocab_hash, "damsm": pretrained["damsm"].name, "key": stage.key}
            context = partial(PretrainContext, cfg=cfg, train_set=train_set, test_set=test_set, damsm=damsm,
                              pretrained=dict(pretrained), device=device)
            pretrained[stage.name] = run_stage(stage, description, root, context)
    return pretrained


def ensure_damsm(plugins: Plugins, cfg: Config, root: Path, train_set: TextImageDataset,
                 test_set: TextImageDataset, device: torch.device | str) -> Path:
    """The protocol's shared DAMSM cache entry: the released encoder files the config names (imported), else the
    cache entry of this data set, vocabulary and ``pretrain.damsm`` settings, trained now (with a progress bar)
    when it does not exist yet. Every method of a protocol, and ``harness evaluate-images``, gets the same one."""
    device = torch.device(device)
    dc = cfg.pretrain.damsm
    vocab_size = len(train_set.vocab)
    vocab_hash = getattr(train_set.vocab, "fingerprint", lambda: None)()  # None: a vocabulary without words
    if dc.text_encoder_file or dc.image_encoder_file:
        if not (dc.text_encoder_file and dc.image_encoder_file):
            raise HarnessError("pretrain.damsm: importing released DAMSM encoders needs both text_encoder_file "
                               "and image_encoder_file")
        return import_damsm(cfg, dc.text_encoder_file, dc.image_encoder_file, root)
    files = training_files(cfg, train_set)
    key = damsm_key(cfg, vocab_size, vocab_hash, files)
    inception = None
    if dc.image_encoder == "inception_v3" and lookup(root, "damsm", key) is None:
        from harness.core.weights import find_weight

        inception = find_weight(plugins, INCEPTION_WEIGHT)  # refuses with one line naming the file
    stage = damsm_stage(cfg, vocab_size=vocab_size, inception=inception, vocab_hash=vocab_hash, files=files)
    damsm_set = train_set
    if dc.words_num != cfg.data.words_num and lookup(root, "damsm", key) is None:
        # DAMSM trains on captions of pretrain.damsm.words_num words (e.g. 15 for COCO, 12 for its GAN)
        damsm_cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, words_num=dc.words_num))
        damsm_set = build_split(plugins, damsm_cfg, "train", train=True, cache_root=root)
    return run_stage(stage, key, root, partial(PretrainContext, cfg=cfg, train_set=damsm_set, test_set=test_set,
                                               damsm=None, pretrained={}, device=device))


def run_pretrained(run: RunDir) -> dict[str, Path]:
    """The pretraining stages a run used (``<run>/pretrained.json``), ``{stage name: cache directory}``."""
    from harness.core.checkpoint import read_pretrained

    return {k: Path(v) for k, v in read_pretrained(run)["stages"].items()}
