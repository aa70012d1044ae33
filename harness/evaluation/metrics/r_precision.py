"""R-precision (AttnGAN's definition, §4.1 of the paper; DM-GAN's implementation,
``code/trainer.py`` ``sampling``).

For every image: 1 true caption (the one it was generated from) + ``candidates − 1`` mismatched captions, each
of a uniformly drawn test image whose class differs from the query image's class (drawn with replacement, so
duplicates are possible), then a uniformly drawn caption of that image. Score: cosine similarity between the
image's global code and each candidate's sentence embedding; a hit when the true caption scores highest
(R = 1; ties go to the true caption, as ``np.argmax``). The hits are shuffled (seeded) and split into
``folds`` folds; the value is mean ± std (population) over the folds, in per cent.

Fixed here: the reference averages only the first 2,999 of each fold of 3,000 (``R[i*3000:(i+1)*3000-1]``);
every fold here averages all of its images (folds of ⌊N/folds⌋ or ⌈N/folds⌉ when N is not a multiple).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from harness.evaluation.metrics.interface import MetricNotApplicable, check_finite, nonfinite_rows
from harness.evaluation.metrics.power import rp_power


@dataclass
class CaptionIndex:
    """Where each test image's captions sit in a flat caption list: captions of image i are
    ``offsets[i] : offsets[i] + counts[i]``."""

    class_ids: np.ndarray  # M image class ids
    offsets: np.ndarray  # M
    counts: np.ndarray  # M

    @classmethod
    def from_counts(cls, class_ids, counts) -> "CaptionIndex":
        counts = np.asarray(counts, dtype=np.int64)
        if (counts < 1).any():
            raise ValueError("every image needs at least one caption")
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return cls(np.asarray(class_ids, dtype=np.int64), offsets, counts)

    def random_caption(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One uniformly drawn caption id of each given image."""
        images = np.asarray(images, dtype=np.int64)
        return self.offsets[images] + (rng.random(images.shape) * self.counts[images]).astype(np.int64)


def draw_mismatched(index: CaptionIndex, query_images: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` caption ids per query image, each from a uniformly drawn test image of another class (N×n)."""
    query_images = np.asarray(query_images, dtype=np.int64)
    query_class = index.class_ids[query_images]
    if (np.bincount(index.class_ids)[np.unique(query_class)] == len(index.class_ids)).any():
        raise ValueError("R-precision needs test images of at least two classes")
    m = len(index.class_ids)
    images = rng.integers(0, m, size=(len(query_images), n))
    same = index.class_ids[images] == query_class[:, None]
    while same.any():  # redraw (the reference retries until the class differs)
        images[same] = rng.integers(0, m, size=int(same.sum()))
        same = index.class_ids[images] == query_class[:, None]
    return index.random_caption(images, rng)


def retrieval_hits(image_codes: Tensor, true_sent: Tensor, mismatched_sent: Tensor) -> Tensor:
    """Top-1 hits: image codes B×D, true sentence embeddings B×D, mismatched ones B×K×D → B bools.

    Raises ValueError naming the rows whose similarities are not finite (``argmax`` over a NaN row would return
    index 0, the true caption: a NaN must never count as a hit)."""
    cands = torch.cat([true_sent[:, None, :], mismatched_sent], dim=1)  # B×(K+1)×D, index 0 = truth
    sim = F.cosine_similarity(image_codes[:, None, :].float(), cands.float(), dim=-1)  # B×(K+1)
    bad = nonfinite_rows(sim)
    if len(bad):
        raise ValueError(f"R-precision: non-finite similarities in rows {bad.tolist()} of the batch")
    return sim.argmax(dim=1) == 0


def fold_mean_std(hits: np.ndarray, folds: int, seed: int) -> tuple[float, float]:
    """Shuffle the hits (seeded), split them into ``folds`` folds, return mean ± std (population) in per cent."""
    hits = np.asarray(hits, dtype=np.float64)
    if len(hits) < folds:
        raise ValueError(f"R-precision with {folds} folds needs at least {folds} images, got {len(hits)}")
    shuffled = hits[np.random.RandomState(seed).permutation(len(hits))]
    scores = np.array([f.mean() for f in np.array_split(shuffled, folds)]) * 100.0
    return float(scores.mean()), float(scores.std())


# ----------------------------------------------------------------------------------------------------------
# The streaming metric (rp, rp_real, rp_ext with DAMSM encoders; clip_rp with CLIP's)
# ----------------------------------------------------------------------------------------------------------
class RPrecision:
    """R-precision of generated images (``real=False``) or of the real test images (``real=True``).

    encode_images: B×3×H×W float images in [-1, 1] → B×D global codes
    caption_embeddings: Ncap×D sentence embeddings of every caption of the caption bank (same encoder family)
    """

    distributed_state = ("hits",)  # (harness.core.distributed)

    def __init__(self, ctx, metric: str, encode_images, caption_embeddings: Tensor, *, variant: str,
                 weights: dict | None = None, real: bool = False, encode_batch=None):
        self.ctx, self.metric, self.encode_images = ctx, metric, encode_images
        self.encode_batch = encode_batch  # optional: GeneratedBatch → codes (lets metrics share one forward pass)
        self.sent = caption_embeddings
        self.variant, self.weights, self.real = variant, dict(weights or {}), real
        self.candidates = ctx.cfg.eval.rp_candidates
        self.folds = ctx.cfg.eval.rp_folds
        self.rng = np.random.default_rng([ctx.seed, 7, int(real)])
        self.hits: list[np.ndarray] = []

    def _score(self, images: Tensor, image_indices: np.ndarray, caption_ids: np.ndarray,
               codes: Tensor | None = None) -> None:
        if codes is None:
            with torch.no_grad():
                codes = self.encode_images(images)
        codes = codes.float().cpu()
        if self.real:
            check_finite(codes, f"{self.metric} image code", lambda r: self.ctx.describe_real(image_indices[r]))
        else:
            check_finite(codes, f"{self.metric} image code", lambda r: self.ctx.describe_caption(caption_ids[r]))
        wrong = draw_mismatched(self.ctx.bank.index, image_indices, self.candidates - 1, self.rng)
        true = self.sent[torch.as_tensor(caption_ids, dtype=torch.long)]
        mism = self.sent[torch.as_tensor(wrong, dtype=torch.long)]
        self.hits.append(retrieval_hits(codes, true, mism).numpy())

    def update(self, batch) -> None:
        if not self.real:  # mismatched captions drawn per batch: the same on whichever rank runs it
            self.rng = np.random.default_rng([self.ctx.seed, 7, int(self.real), int(batch.index)])
            codes = self.encode_batch(batch) if self.encode_batch is not None else None
            self._score(batch.images, batch.image_indices, batch.caption_ids, codes)

    def finish(self) -> list:
        from harness.evaluation.metrics.interface import MetricResult

        if self.real:
            for real in self.ctx.real_batches():
                idx = real.indices.numpy()
                caps = self.ctx.bank.index.random_caption(idx, self.rng)  # one random caption of each image
                self._score(real.images[-1].to(self.ctx.device), idx, caps)
        hits = np.concatenate(self.hits)
        mean, std = fold_mean_std(hits, self.folds, self.ctx.seed)
        return [MetricResult(self.metric, mean, std, "folds", variant=self.variant, weights=self.weights,
                             num_images=len(hits) if self.real else None,
                             extra={"candidates": self.candidates, "folds": self.folds},
                             underpowered=rp_power(len(hits), self.folds))]


def _bank_sentences(ctx, text_encoder, key: str) -> Tensor:
    """Sentence embeddings of the whole caption bank under ``text_encoder`` (once per evaluation)."""
    from harness.evaluation.metrics.interface import encode_sentences

    n = len(ctx.bank.lengths)

    def build() -> Tensor:
        sent = encode_sentences(text_encoder, ctx.bank, np.arange(n), ctx.device)
        check_finite(sent, "sentence embedding", ctx.describe_caption)
        return sent

    return ctx.share(f"sentences:{key}", build)


def _damsm_label(cfg, where: str) -> str:
    d = cfg.pretrain.damsm
    origin = "released weights" if d.text_encoder_file else "trained here"
    return f"DAMSM {d.image_encoder} ({where}, {origin}); 1 true + {cfg.eval.rp_candidates - 1} other-class " \
           f"captions, cosine, R=1, {cfg.eval.rp_folds} folds (all items of each fold)"


def _training_damsm(ctx):
    """The run's DAMSM; never an untrained one (a run without a DAMSM stage makes R-precision ``skipped``)."""
    from harness.util.errors import MissingWeightsError

    if ctx.models is None:
        raise MetricNotApplicable("R-precision needs the run's DAMSM encoders")
    if "damsm" not in (ctx.models.pretrained or {}):
        raise MissingWeightsError("R-precision needs the run's trained DAMSM, and its pretrained.json lists no "
                                  "damsm stage (the encoders would be untrained)")
    return ctx.models.modules.damsm


def _rp_with(ctx, metric: str, damsm, key: str, where: str, *, real: bool) -> RPrecision:
    sent = _bank_sentences(ctx, damsm.text, key)
    return RPrecision(ctx, metric, lambda x: damsm.image(x)[1], sent, variant=_damsm_label(ctx.cfg, where), real=real)


def make_rp(ctx) -> RPrecision:
    """``rp``: generated images, the DAMSM used in training (comparable to papers)."""
    return _rp_with(ctx, "rp", _training_damsm(ctx), "damsm-train", "training encoder", real=False)


def make_rp_real(ctx) -> RPrecision:
    """``rp_real``: the real test images, one random caption each, the training DAMSM (a reference row)."""
    return _rp_with(ctx, "rp_real", _training_damsm(ctx), "damsm-train", "training encoder, real images", real=True)


def make_rp_ext(ctx) -> RPrecision:
    """``rp_ext``: generated images scored with a separately trained DAMSM (``--rp-encoder``)."""
    given = ctx.options.value("rp_encoder")
    if not given:
        raise MetricNotApplicable("rp_ext needs --rp-encoder RUN_OR_DIR (a separately trained DAMSM)")
    if ctx.load_damsm is None:
        raise MetricNotApplicable("rp_ext needs a DAMSM loader in the evaluation context "
                                  "(harness.evaluation.evaluate sets it)")
    path = resolve_rp_encoder(given, ctx.root)
    damsm = ctx.share(f"damsm-ext:{path}", lambda: ctx.load_damsm(path))
    return _rp_with(ctx, "rp_ext", damsm, "damsm-ext", f"independent encoder {path}", real=False)


def resolve_rp_encoder(arg: str, root: Path) -> str:
    """``--rp-encoder RUN_OR_DIR``: an existing directory (a run or a DAMSM cache entry) as given, else a run id
    under the results root (``harness.core.rundir.resolve_run``; an unknown one raises HarnessError)."""
    from harness.core.rundir import resolve_run

    if Path(arg).expanduser().is_dir():
        return str(Path(arg).expanduser())
    return str(resolve_run(arg, root).path)
