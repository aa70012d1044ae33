"""What the evaluation loop hands a metric, and what a metric hands back.

A metric is announced by a ``MetricInfo`` whose ``factory(ctx: EvalContext)`` builds a ``StreamingMetric``
for one evaluation. The factory finds its weight files (``harness.core.weights.find_weight``; a
``MissingWeightsError`` makes the metric ``skipped``) and raises ``MetricNotApplicable`` when an option it
needs was not given. The loop then calls ``update(batch)`` once per generated batch and ``finish()`` once;
metrics that share a feature extractor share it through ``ctx.share`` (one forward pass per batch).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Protocol, TypeVar

import numpy as np
import torch
from torch import Tensor

from harness.util.errors import HarnessError

if TYPE_CHECKING:  # type hints only
    from harness.config import Config
    from harness.data.dataset import TextImageDataset
    from harness.evaluation.metrics.r_precision import CaptionIndex
    from harness.contract.plugins import Plugins
    from harness.core.rundir import RunDir
    from harness.contract.types import Batch, DamsmEncoders

T = TypeVar("T")


class NonFiniteError(HarnessError):
    """A generated image, a feature or an embedding holds NaN or ±inf: no metric may count it (a NaN image is not
    black pixels, a NaN code is not a retrieval hit). The message names the caption or real image it came from."""


def nonfinite_rows(values: Tensor | np.ndarray) -> np.ndarray:
    """Indices of the rows (first dimension) of ``values`` holding any NaN or ±inf."""
    t = torch.as_tensor(values)
    if t.numel() == 0 or not t.is_floating_point():
        return np.zeros(0, dtype=np.int64)
    bad = ~torch.isfinite(t.reshape(len(t), -1)).all(dim=1)
    return bad.nonzero().flatten().cpu().numpy()


def check_finite(values: Tensor | np.ndarray, what: str, describe: Callable[[int], str]) -> None:
    """Raise ``NonFiniteError`` in one line when a row of ``values`` (N×…) is not finite: ``what`` names the
    quantity (e.g. "generated image"), ``describe(row)`` where the first such row came from."""
    bad = nonfinite_rows(values)
    if len(bad):
        more = f" (and {len(bad) - 1} more in the same batch)" if len(bad) > 1 else ""
        raise NonFiniteError(f"non-finite (NaN or inf) {what} for {describe(int(bad[0]))}{more}; no metric "
                             f"counts it")


class MetricNotApplicable(HarnessError):
    """The metric needs an option that was not given (e.g. ``is_ft`` without ``--is-classifier``): left out
    of an automatic selection, an error when asked for by name."""


@dataclass(frozen=True)
class EvalOptions:
    """What one evaluation is asked for, built once (the CLI builds it from its options) and passed down whole.

    metrics:        comma-separated metric ids (None: the config's ``eval.metrics``, "auto" = every one that applies)
    num_images:     images to generate (None: ``eval.num_images``)
    split:          the evaluation split (None: ``eval.split``)
    save_images:    a folder for the generated PNGs and their manifest (None: none written)
    metric_options: the metrics' own options (``harness.contract.types.MetricOption``) by name; a metric reads
                    its own with ``value(name)``
    """

    metrics: Optional[str] = None
    num_images: Optional[int] = None
    split: Optional[str] = None
    save_images: Optional[str] = None
    metric_options: dict[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> Any:
        """The value of metric option ``name``, None when it was not given."""
        return self.metric_options.get(name)


@dataclass
class CaptionBank:
    """Every caption of the evaluation split, padded (or order-keeping subsampled, once, seeded) to
    ``words_num``: caption ``k`` is ``tokens[k, :lengths[k]]`` and belongs to image ``owner[k]``."""

    tokens: Tensor  # Ncap×words_num long
    lengths: Tensor  # Ncap long
    owner: np.ndarray  # Ncap image index
    index: CaptionIndex
    raw: list[list[int]] = field(default_factory=list)  # every caption's full token list (for CLIP's text)

    def batch(self, caption_ids: np.ndarray) -> tuple[Tensor, Tensor]:
        """Captions B×T (T = the longest of them) and lengths, in the given order (not sorted)."""
        ids = torch.as_tensor(np.asarray(caption_ids), dtype=torch.long)
        lengths = self.lengths[ids]
        return self.tokens[ids, : int(lengths.max())], lengths


def encode_sentences(text_encoder: torch.nn.Module, bank: CaptionBank, caption_ids: np.ndarray,
                     device: torch.device, batch_size: int = 256) -> Tensor:
    """Sentence embeddings (len×D, on the CPU, float) of the given captions, in the given order; each chunk is
    sorted by length for the packed LSTM and put back in order."""
    from harness.data.captions import sort_by_length

    caption_ids = np.asarray(caption_ids)
    out = []
    with torch.no_grad():
        for lo in range(0, len(caption_ids), batch_size):
            caps, lens = bank.batch(caption_ids[lo: lo + batch_size])
            order = sort_by_length(lens)
            feats = text_encoder(caps[order].to(device), lens[order].to(device))
            sent = torch.empty_like(feats.sent)
            sent[order.to(sent.device)] = feats.sent
            out.append(sent.float().cpu())
    return torch.cat(out)


@dataclass
class GeneratedBatch:
    """One batch of generated images with what they were generated from (sorted by caption length, desc).

    images:        final stage, B×3×H×W float in [-1, 1] (on the evaluation device): ``images_uint8`` read back
                   (``dequantize_png``), so every metric scores what a saved PNG holds
    images_uint8:  the same quantised as the reference saves PNGs: truncating (x + 1)·127.5, B×3×H×W uint8
    captions, lengths: the captions the generator was given
    caption_ids:   their ids in the caption bank
    image_indices: the test images the captions belong to
    class_ids:     those images' classes
    index:         the batch number (metrics sharing an extractor key their cache on it)
    """

    images: Tensor
    images_uint8: Tensor
    captions: Tensor
    lengths: Tensor
    caption_ids: np.ndarray
    image_indices: np.ndarray
    class_ids: np.ndarray
    index: int


def quantize_like_png(images: Tensor) -> Tensor:
    """[-1, 1] float → uint8 as the reference's PNG save: ``((x + 1) · 127.5).astype(uint8)`` (truncation).

    Raises ``NonFiniteError`` when an image holds NaN or ±inf (they would become black or white pixels)."""
    check_finite(images, "image", lambda i: f"image {i} of the batch")
    return ((images.detach().float() + 1.0) * 127.5).clamp_(0, 255).to(torch.uint8)


def dequantize_png(images_uint8: Tensor) -> Tensor:
    """uint8 B×3×H×W → float in [-1, 1] as the data transform reads a PNG (``x / 127.5 − 1``,
    ``harness.data.transforms``): what every metric sees of a generated image."""
    return images_uint8.float().div(127.5).sub_(1.0)


def real_to_uint8(images: Tensor) -> Tensor:
    """Real images ([-1, 1], from uint8 pixels by the data transform) back to uint8: rounding, the exact
    inverse of the normalisation (truncation would lose a level to float error)."""
    return ((images.detach().float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


@dataclass
class MetricResult:
    """One number for one metric id.

    variant:  what exactly produced it (extractor, weights, protocol details), shown in the record
    weights:  {file name: sha256} of every weight file used
    extra:    additional record fields (e.g. ``per_attribute``)
    """

    metric: str
    value: float
    std: Optional[float] = None
    std_over: Optional[str] = None
    variant: str = ""
    weights: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    num_images: Optional[int] = None  # when not the generated images (e.g. rp_real: the real test images)
    underpowered: Optional[str] = None  # why the value rests on too few images (metrics.power), or None


class StreamingMetric(Protocol):
    """A metric for one evaluation: sees every generated batch once, then gives its results."""

    def update(self, batch: GeneratedBatch) -> None: ...

    def finish(self) -> list[MetricResult]: ...


class DamsmModules(Protocol):
    """What the evaluation reads of ``EvalModels.modules``: the DAMSM encoders (a run's
    ``harness.build.MethodModules``; a folder of images has nothing else, None until it is loaded)."""

    @property
    def damsm(self) -> Optional[DamsmEncoders]: ...


class EvalModels(Protocol):
    """What the evaluation and the metrics read of the models they score: a run's ``harness.build.InferenceModels``,
    or ``harness.runs.images.FolderModels`` for a folder of images (no generator)."""

    @property
    def cfg(self) -> Config: ...

    @property
    def modules(self) -> DamsmModules: ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def pretrained(self) -> dict[str, Path]: ...


@dataclass
class EvalContext:
    """Everything a metric factory may need for one evaluation.

    models:      the run's inference models (``harness.build.InferenceModels``; ``models.modules``
                 has the DAMSM encoders used in training; ``EvalModels`` says what is read of them), or None in
                 tests that do not need them
    dataset:     the evaluation split (deterministic transform)
    resolution:  the generated images' size (last stage)
    real_batch_size: batch size for passes over real images
    load_damsm:  ``path -> DamsmEncoders``: a separately trained DAMSM for ``--rp-encoder`` (a run or a DAMSM
                 cache directory); ``harness.evaluation.evaluate`` sets it to ``harness.build.load_external_damsm``
    """

    plugins: Plugins
    cfg: Config
    dataset: TextImageDataset
    split: str
    device: torch.device
    root: Path
    bank: CaptionBank
    resolution: int
    num_images: int
    seed: int
    options: EvalOptions = field(default_factory=EvalOptions)
    models: Optional[EvalModels] = None
    run: Optional[RunDir] = None
    real_batch_size: int = 50
    load_damsm: Optional[Callable[[str], DamsmEncoders]] = None
    _shared: dict[str, Any] = field(default_factory=dict)

    def describe_caption(self, caption_id: int) -> str:
        """Where caption ``caption_id`` of the bank comes from: split, image key, caption index and its words."""
        image = int(self.bank.owner[int(caption_id)])
        j = int(caption_id) - int(self.bank.index.offsets[image])
        words = self.dataset.vocab.decode(self.bank.raw[int(caption_id)]) if self.bank.raw else ""
        return f"{self.split} image {self.dataset.keys[image]!r} caption {j} ({words!r})"

    def describe_real(self, index: int) -> str:
        """Real image ``index`` of the evaluation split, by key."""
        return f"real {self.split} image {self.dataset.keys[int(index)]!r}"

    def share(self, key: str, build: Callable[[], T]) -> T:
        """One object per key for this evaluation (e.g. a feature extractor several metrics use)."""
        if key not in self._shared:
            self._shared[key] = build()
        return self._shared[key]

    def dataset_key(self, dataset: Optional[TextImageDataset] = None, split: Optional[str] = None) -> dict:
        """What identifies the real images of this evaluation (part of every real-statistics cache key): the data
        settings, split and resolution, and a digest of the split's image files and split lists
        (``harness.data.validate.source_digest``; by content with ``data.strict_cache``), so statistics of images
        changed since are never found again. ``dataset`` and ``split``: another split of the same data settings
        (e.g. the training split a cached model is trained on) in place of the evaluation's."""
        from harness.data.validate import source_digest

        dataset, split = (dataset, split) if dataset is not None else (self.dataset, self.split)

        d = dataclasses.asdict(self.cfg.data)
        # the method's stages (base_size, branch_num) do not change the real images at ``resolution``: a run and
        # the folder of its saved images (``harness evaluate-images``) share the real statistics and the probe
        keep = {k: v for k, v in d.items() if k not in ("num_workers", "words_num", "eval_words_num",
                                                        "captions_per_image", "base_size", "branch_num",
                                                        "strict_cache")}
        if keep.get("data_dir"):
            keep["data_dir"] = str(Path(keep["data_dir"]).expanduser().resolve())
        key = {"data": keep, "split": split, "resolution": self.resolution}
        files = self.share(f"dataset-files:{split}", lambda: source_digest(dataset, self.cfg.data.data_dir,
                                                                           strict=self.cfg.data.strict_cache,
                                                                           captions=False))
        return {**key, "files": files} if files is not None else key

    def real_batches(self) -> Iterator[Batch]:
        """The evaluation split's real images in order, as collated ``Batch`` objects."""
        n = len(self.dataset)
        for lo in range(0, n, self.real_batch_size):
            items = [self.dataset[i] for i in range(lo, min(n, lo + self.real_batch_size))]
            yield self.dataset.collate(items)
