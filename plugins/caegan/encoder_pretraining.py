"""The ``caegan_encoder`` pretraining stage: builds the region bank, then trains C_E; cached like DAMSM.

Runs after the shared DAMSM stage, with the DAMSM encoders frozen in eval():

1. **Bank.** The training images (only the training split) go twice through the DAMSM image encoder: the first
   pass's global codes are clustered (spherical k-means), the second pass averages each cluster's codes and
   pooled regions into its prototype (``region_bank.py``).
2. **Encoder.** For each training batch: DAMSM text features (s, sentence) of the captions; F_R retrieved from
   the bank by the sentence feature (the generation path, never the caption's image); f_c = C_E(s, F_R).
   Objective: DAMSM's sentence loss with f_c in the sentence's place,
   L = CE(γ3·cos(code_j, f_c_i)) in both directions (same-class pairs are not negatives), code = the DAMSM
   global code of the caption's real image. So f_c learns to predict the visual code of an image the
   caption describes from the words and the retrieved prototypes; the real image is only the target.
3. Writes ``encoder.pth`` (C_E and bank state, bank included as buffers) and ``summary.json`` (loss, bank
   occupancy; on test batches the top-1 image-code matching accuracy and mean cosine of f_c and of the plain
   sentence feature, the test images being targets only).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.config import Config
from harness.util.atomic import write_file
from harness.util.errors import HarnessError
from harness.nn.damsm_loss import sent_loss
from harness.core.seed import epoch_batches
from harness.contract.types import Batch, DamsmEncoders, PretrainContext, PretrainStage
from plugins.caegan.cross_attention_encoder import CrossAttentionEncoder
from plugins.caegan.region_bank import RegionBank

STAGE_NAME = "caegan_encoder"
ENCODER_FILE = "encoder.pth"
SUMMARY_FILE = "summary.json"
STAGE_VERSION = 1  # bump when this stage's code changes what an entry holds


def build_encoder(cfg: Config) -> CrossAttentionEncoder:
    """C_E with an empty region bank, sized by the model section."""
    m = cfg.model
    bank = RegionBank(m.bank_entries, m.embedding_dim, m.bank_pool, m.retrieval_topk, m.retrieval_gamma)
    return CrossAttentionEncoder(m.embedding_dim, heads=m.encoder_heads, dropout=m.encoder_dropout, bank=bank)


def load_encoder(cfg: Config, directory: Path) -> CrossAttentionEncoder:
    """C_E and its bank as the pretraining stage saved them (strict; one-line errors naming the file)."""
    from harness.core.state_dicts import load_state_strict, load_weights_file

    enc = build_encoder(cfg)
    path = Path(directory) / ENCODER_FILE
    load_state_strict(enc, load_weights_file(path, what="CAE-GAN encoder file"), source=str(path))
    return enc


def stage_key(cfg: Config) -> dict:
    """What determines the stage's result besides what the harness adds to every stage's key (the data set's
    fingerprint, the vocabulary size and the DAMSM entry)."""
    m = cfg.model
    return {
        "version": STAGE_VERSION,
        "encoder": {k: getattr(m, k) for k in ("embedding_dim", "encoder_heads", "encoder_dropout", "bank_entries",
                                              "bank_pool", "retrieval_topk", "retrieval_gamma")},
        "pretrain": asdict(cfg.pretrain.caegan_encoder),
    }


def encoder_stage(cfg: Config) -> PretrainStage:
    return PretrainStage(name=STAGE_NAME, key=stage_key(cfg), train=train_encoder)


# ---------------------------------------------------------------------------------------------------------
def _batches(dataset, indices: list[int], batch_size: int) -> Iterator[Batch]:
    for i in range(0, len(indices), batch_size):
        yield dataset.collate([dataset[j] for j in indices[i:i + batch_size]])


@torch.no_grad()
def _image_pass(image_encoder, dataset, indices: list[int], batch_size: int,
                device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    dataset.set_epoch(0)  # both passes see the same items
    for batch in _batches(dataset, indices, batch_size):
        regions, code = image_encoder(batch.images[-1].to(device))
        yield code.float(), regions.float()


@torch.no_grad()
def build_bank(bank: RegionBank, image_encoder, dataset, *, batch_size: int, device: torch.device,
               max_images: Optional[int] = None, seed: int = 0, iterations: int = 25) -> Tensor:
    """Fill ``bank`` from ``dataset``'s images (two passes through the frozen image encoder); returns the
    member count of each entry."""
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    if n == 0:
        raise HarnessError("caegan_encoder: the training split is empty; the region bank needs training images")
    indices = list(range(n))
    if n < len(dataset):  # an even spread over the split, not its first images
        g = torch.Generator().manual_seed(seed)
        indices = sorted(torch.randperm(len(dataset), generator=g)[:n].tolist())
    codes = torch.cat([c.cpu() for c, _ in _image_pass(image_encoder, dataset, indices, batch_size, device)])
    return bank.build(codes, _image_pass(image_encoder, dataset, indices, batch_size, device), seed=seed,
                      iterations=iterations)


def encoder_loss(encoder: CrossAttentionEncoder, damsm: DamsmEncoders, batch: Batch,
                 gamma3: float) -> tuple[Tensor, Tensor]:
    """(loss, f_c) for one batch: the bidirectional sentence loss between f_c (retrieval path) and the DAMSM
    code of the caption's image."""
    with torch.no_grad():
        text = damsm.text(batch.captions, batch.lengths)
        _, code = damsm.image(batch.images[-1])
    f_c = encoder.encode(text.words.float(), text.mask, text.sent.float()).f_c
    s0, s1 = sent_loss(code, f_c, batch.class_ids, gamma3)
    return s0 + s1, f_c


@torch.no_grad()
def matching_accuracy(encoder: CrossAttentionEncoder, damsm: DamsmEncoders, dataset, *, batch_size: int,
                      device: torch.device, max_batches: int = 10) -> dict[str, float]:
    """Validation figures on test batches (the test images are only targets here, never encoder or bank
    input): top-1 accuracy of finding a caption's image code among its batch's codes by f_c and by the plain
    DAMSM sentence feature, and the mean cosine between f_c / the sentence and the caption's own image code."""
    sums = {"top1_fc": 0.0, "top1_sent": 0.0, "cos_fc": 0.0, "cos_sent": 0.0}
    total = 0
    n = min(len(dataset), max_batches * batch_size)
    dataset.set_epoch(0)
    for batch in _batches(dataset, list(range(n)), batch_size):
        batch = batch.to(device)
        text = damsm.text(batch.captions, batch.lengths)
        _, code = damsm.image(batch.images[-1])
        code = F.normalize(code.float(), dim=1)
        f_c = encoder.encode(text.words.float(), text.mask, text.sent.float()).f_c
        target = torch.arange(len(batch), device=device)
        for name, query in (("fc", f_c), ("sent", text.sent.float())):
            sim = F.normalize(query, dim=1) @ code.t()
            sums[f"top1_{name}"] += float((sim.argmax(1) == target).sum())
            sums[f"cos_{name}"] += float(sim.diagonal().sum())
        total += len(batch)
    out: dict[str, float] = {f"test_{k}": v / max(total, 1) for k, v in sums.items()}
    out["test_pairs"] = total
    return out


def train_encoder(ctx: PretrainContext) -> None:
    """The stage's ``train``: bank, then encoder; writes ``encoder.pth`` and ``summary.json``.
    ``ctx.damsm`` is frozen and in eval() (the harness prepares it so)."""
    cfg, p, device, damsm = ctx.cfg, ctx.cfg.pretrain.caegan_encoder, ctx.device, ctx.damsm
    start = time.perf_counter()
    torch.manual_seed(p.seed)
    encoder = build_encoder(cfg).to(device)
    members = build_bank(encoder.bank, damsm.image, ctx.train_set, batch_size=p.batch_size, device=device,
                         max_images=p.bank_images, seed=p.seed, iterations=p.kmeans_iterations)
    bank_seconds = time.perf_counter() - start

    opt = torch.optim.Adam(encoder.parameters(), lr=p.lr, betas=(0.5, 0.999))
    n = len(ctx.train_set)
    batch_size = min(p.batch_size, n)
    per_epoch = max(n // batch_size, 1)
    total = p.epochs * per_epoch if p.max_steps is None else p.max_steps
    encoder.train()
    step, epoch, losses = 0, 0, []
    while step < total:
        ctx.train_set.set_epoch(epoch)
        for idx in epoch_batches(p.seed, epoch, n, batch_size):
            batch = ctx.train_set.collate([ctx.train_set[i] for i in idx]).to(device)
            loss, _ = encoder_loss(encoder, damsm, batch, p.gamma3)
            if not torch.isfinite(loss):
                raise HarnessError(f"caegan_encoder pretraining: non-finite loss at step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            if step >= total:
                break
        epoch += 1
    encoder.eval()
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    write_file(Path(ctx.out_dir) / ENCODER_FILE, lambda f: torch.save(state, f))
    tail = losses[-10:]
    summary = {
        "steps": step,
        "first_loss": losses[0] if losses else None,
        "last_loss": sum(tail) / len(tail) if tail else None,
        "bank_entries": int(encoder.bank.count),
        "bank_members_min": int(members.min()),
        "bank_members_max": int(members.max()),
        "bank_seconds": round(bank_seconds, 2),
        "seconds": round(time.perf_counter() - start, 2),
    }
    if ctx.test_set is not None and len(ctx.test_set) > 1:
        summary.update(matching_accuracy(encoder, damsm, ctx.test_set, batch_size=batch_size, device=device))
    write_file(Path(ctx.out_dir) / SUMMARY_FILE, json.dumps(summary, indent=1))
    print(f"pretrain {STAGE_NAME}: {step} steps, bank {summary['bank_entries']} entries, loss "
          f"{summary['first_loss']} -> {summary['last_loss']}", flush=True)
