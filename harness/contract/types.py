"""The data types of the plugin contract.

Everything a plugin receives from or hands to the harness is one of these. `hookspecs.py` says *when* each is
exchanged; this module says *what* it is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # pragma: no cover
    from harness.config import Config
    from harness.data.dataset import TextImageDataset
    from harness.evaluation.metrics.interface import EvalContext, StreamingMetric


# ----------------------------------------------------------------------------------------------------------
# Generation interface: evaluation, sampling, DDP and the leakage test call generators only
# through these two types.
# ----------------------------------------------------------------------------------------------------------
@dataclass
class TextFeatures:
    """What a text encoder gives the generator.

    words:   B×D×T word features
    sent:    B×D sentence feature
    mask:    B×T bool, True = padding
    lengths: B caption lengths (long)
    """

    words: Tensor
    sent: Tensor
    mask: Tensor
    lengths: Tensor

    def detach(self) -> "TextFeatures":
        return TextFeatures(self.words.detach(), self.sent.detach(), self.mask, self.lengths)

    def __getitem__(self, index: Any) -> "TextFeatures":
        """Select samples (a slice, an index tensor) from every field."""
        return TextFeatures(self.words[index], self.sent[index], self.mask[index], self.lengths[index])


@dataclass
class GenOutput:
    """What `G.forward(noise, text)` returns.

    images: one tensor per stage, low → high resolution, B×3×s×s in [-1, 1]
    mu, logvar: conditioning-augmentation statistics (B×c_dim), for the KL term
    attn: attention maps per refinement stage (B×T×h×w), empty for methods without attention
    """

    images: list[Tensor]
    mu: Tensor
    logvar: Tensor
    attn: list[Tensor] = field(default_factory=list)


@dataclass
class Batch:
    """One collated batch, sorted by caption length, descending (the packed LSTM and the "wrong" pairs of
    the discriminator loss depend on this order).

    images:    one tensor per stage, low → high resolution, B×3×s×s in [-1, 1]
    captions:  B×T long token ids, 0 = padding (T = the longest caption of the batch)
    lengths:   B long
    class_ids: B long
    keys:      image keys (e.g. "002.Laysan_Albatross/Laysan_Albatross_0002_1027")
    indices:   B long, the items' indices in their data set (on the host: ``to`` moves every tensor but this one)
    """

    images: list[Tensor]
    captions: Tensor
    lengths: Tensor
    class_ids: Tensor
    keys: list[str]
    indices: Tensor

    def to(self, device: torch.device | str) -> "Batch":
        """Every tensor but ``indices`` on ``device`` (asynchronous from pinned memory: see ``pin_memory``)."""
        return Batch(
            [im.to(device, non_blocking=True) for im in self.images],
            self.captions.to(device, non_blocking=True),
            self.lengths.to(device, non_blocking=True),
            self.class_ids.to(device, non_blocking=True),
            self.keys,
            self.indices,  # stays on the host: bookkeeping for per-item draws, never an input to a network
        )

    def pin_memory(self) -> "Batch":
        """The tensors ``to`` moves, in page-locked memory (the DataLoader calls this with ``pin_memory=True``),
        so that copying them to a GPU does not synchronise the host with the device."""
        return Batch([im.pin_memory() for im in self.images], self.captions.pin_memory(),
                     self.lengths.pin_memory(), self.class_ids.pin_memory(), self.keys, self.indices)

    def __len__(self) -> int:
        return int(self.captions.shape[0])


# ----------------------------------------------------------------------------------------------------------
# Registration types: what plugins announce.
# ----------------------------------------------------------------------------------------------------------
@dataclass
class ReportedNumber:
    """A published number, shown as a "reported" row of the results table, in its own metric's column only.

    relative_to: None for an absolute value; a method name when `value` is a relative change in per cent
                 (printed as "+2.53 % vs dmgan (reported)").
    """

    metric: str
    value: float
    std: Optional[float] = None
    std_over: Optional[str] = None  # folds | splits | seeds | None
    relative_to: Optional[str] = None
    source: str = ""
    dataset: str = "cub"


@dataclass
class MethodInfo:
    """A method plugin's announcement.

    name:            the plugin name users pass to --plugins
    paper:           citation line
    defaults:        path of the method's defaults.yaml (presets)
    reported:        published numbers (see ReportedNumber)
    config_sections: optional dataclass types replacing a config section for this method (e.g. a ModelConfig
                     subclass with the method's own switches); keys: data, model, pretrain, train, loss, eval
    ablation_keys:   dotted config keys whose non-default values name a variant in the table's row label
    reference_eval_batch_size: the original code's evaluation batch (``harness import-checkpoint`` sets
                     ``eval.batch_size`` to it, with ``model.attention_mask=reference``); None: no released weights
    reference_eval:  further settings of the original code's evaluation, dotted config key → value (e.g.
                     ``{"eval.truncation": 0.88}`` for truncated noise), which ``harness import-checkpoint`` sets
                     as declared deviations too; a value None leaves a key out (``{"model.attention_mask": None}``
                     for a method without word attention)
    display_name:    how tables and the report name the method, e.g. "DM-GAN" ("" = the plugin name)
    """

    name: str
    paper: str
    defaults: Path
    reported: list[ReportedNumber] = field(default_factory=list)
    config_sections: dict[str, type] = field(default_factory=dict)
    ablation_keys: list[str] = field(default_factory=list)
    description: str = ""
    reference_eval_batch_size: Optional[int] = None
    reference_eval: dict[str, Any] = field(default_factory=dict)
    display_name: str = ""

    def __post_init__(self) -> None:
        self.display_name = self.display_name or self.name


@dataclass
class DatasetInfo:
    """A data set's announcement.

    build(cfg: DataConfig, split: str, *, train: bool, seed: int = 0, cache_root: Path | None = None)
        -> TextImageDataset; item randomness derives from (seed, epoch, index)
        `train` selects the random training transform; False gives the deterministic evaluation transform.
    layout:          the expected on-disk layout, printed when the data directory is missing or malformed
    needs_data_dir:  False for generated data sets (shapes)
    protocols:       the data set's protocol presets (harness.config.protocol): a YAML file or a mapping
                     ``name -> values``; None = ``harness/config/protocols/<name>.yaml`` when it exists
    downloads:       the archives ``harness fetch NAME --data-dir DIR`` fetches and unpacks into DIR, in order
    """

    name: str
    description: str
    build: Callable[..., TextImageDataset]
    layout: str = ""
    needs_data_dir: bool = True
    protocols: Optional[Path | dict] = None
    downloads: list[Download] = field(default_factory=list)  # ``harness fetch NAME``: archives, unpacked in order


@dataclass(frozen=True)
class Download:
    """Where a weight file or a data set's archive can be fetched (``harness fetch``) and how it is verified.

    filename: the name it is saved under (a weight file: one of its accepted names)
    urls:     addresses of the same bytes, tried in order
    digest:   "sha256:<hex>" or "md5:<hex>" of the whole file, as a public source states it; None where none
              does (the file is then fetched but reported as unverified). A weight file whose accepted name has
              a declared digest is checked on it wherever it is found.
    size:     bytes, None when unknown (checked before the digest)
    strip:    archives: a leading folder taken off every member's path, e.g. "birds/"
    into:     archives: the folder (relative to the data directory) the members go to, e.g. "images"
    inner:    archives: archives it holds (paths after ``strip``/``into``) unpacked in place afterwards, then removed
    """

    filename: str
    urls: tuple[str, ...]
    digest: Optional[str] = None
    size: Optional[int] = None
    strip: str = ""
    into: str = ""
    inner: tuple[str, ...] = ()


@dataclass
class WeightFile:
    """A pretrained weight file the harness can use; ``harness fetch NAME`` downloads it from ``downloads``, and
    nothing is downloaded implicitly unless ``HARNESS_FETCH=auto``.

    check: "sha256" (digest = full hex), "sha256-prefix" (digest = the hex prefix, usually the 8-hex suffix of
           the file name), "md5", or "none" (shown as "unverified", never silently). A file whose name has a
           full digest in ``downloads`` is checked on that digest; one that passes only a prefix check is shown
           as "prefix-checked only".
    """

    name: str
    purpose: str
    filenames: list[str]
    check: str = "none"
    digest: Optional[str] = None
    source: str = ""  # where a user can get it (shown in the missing-file line)
    label: str = ""  # a few words for tables' "not computed" line, e.g. "Inception"; "" → the name
    downloads: list[Download] = field(default_factory=list)  # ``harness fetch NAME``: the first that succeeds


@dataclass(frozen=True)
class MetricFormat:
    """How a results table shows a metric in Markdown and LaTeX (ids stay in the CSV and JSON).

    name:       display name, e.g. "FID (torchvision)", "R-precision", "CLIP-R"; also used in the "not
                computed" line
    unit:       what the shown numbers are in, after the name in the header: "%", "×10³" ("" = none)
    decimals:   fixed decimal places of every number in the column (its ± too)
    scale:      shown number = recorded value × scale (e.g. 1000 for KID shown as ×10³); the CSV keeps the value
    latex:      the name in LaTeX ("" = the name, escaped); e.g. "CLIP-R", "$\\text{IS}^{*}$"
    latex_unit: the unit in LaTeX ("" = the unit, escaped), e.g. "$\\times 10^{3}$"
    """

    name: str
    unit: str = ""
    decimals: int = 2
    scale: float = 1.0
    latex: str = ""
    latex_unit: str = ""

    def header(self) -> str:
        """The plain-text header without arrow: ``KID (×10³)``."""
        return f"{self.name} ({self.unit})" if self.unit else self.name


@dataclass
class MetricInfo:
    """A metric's announcement.

    name:       the metric id (is, is_ft, fid, fid_tv, kid, rp, rp_real, clip_rp, clip_score,
                probe_acc, probe_fid, probe_is, or a plugin's own)
    direction:  "higher" or "lower" is better (for the table's best mark)
    weights:    names of the WeightFile entries it needs
    factory:    ``factory(ctx: EvalContext) -> StreamingMetric`` builds the metric for one evaluation
                (``harness.evaluation.metrics.interface`` defines both)
    datasets:   data sets the metric applies to (None = all)
    format:     display name, LaTeX form and decimals in tables (None = the id, decimals from the values)
    options:    the options the metric reads (``MetricOption``): ``harness evaluate``, ``evaluate-images`` and
                ``run`` accept each, and the factory reads its value as ``ctx.options.value(name)``
    """

    name: str
    direction: str
    description: str
    weights: list[str] = field(default_factory=list)
    factory: Optional[Callable[[EvalContext], StreamingMetric]] = None
    datasets: Optional[list[str]] = None
    format: Optional[MetricFormat] = None
    options: list[MetricOption] = field(default_factory=list)


@dataclass(frozen=True)
class MetricOption:
    """An option of a metric, e.g. ``MetricOption("is_classes", "classes of the classifier", int)``: the command
    line takes it as ``--is-classes N``; the metric reads it (None when not given) as ``ctx.options.value(name)``.

    name:    a Python identifier; ``_`` becomes ``-`` on the command line. Metrics that declare the same name
             (with the same type) share one value, e.g. CLIP-R and CLIPScore's ``clip_model``
    help:    one line for ``--help``
    type:    turns the command line's text into the value (str, int, float, ...)
    metavar: the value's placeholder in ``--help`` (default: the name in capitals)
    """

    name: str
    help: str
    type: Callable[[str], Any] = str
    metavar: Optional[str] = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass
class PretrainContext:
    """What a pretraining stage receives.

    cfg:        the resolved config
    train_set:  the training split (random training transform)
    test_set:   the test split (evaluation transform), for validation figures
    damsm:      the DAMSM encoders (trained, frozen) – None while the DAMSM stage itself runs
    pretrained: directories of the stages that ran before, by stage name
    out_dir:    an empty temporary directory; everything the stage writes goes here (renamed into the cache)
    device:     torch device
    """

    cfg: "Config"
    train_set: TextImageDataset
    test_set: TextImageDataset
    damsm: Optional[DamsmEncoders]
    pretrained: dict[str, Path]
    out_dir: Path
    device: torch.device


@dataclass
class PretrainStage:
    """A stage that trains something before the GAN and is cached under <root>/.cache/<name>/<key>/.

    name:  the cache kind and the key under which later hooks find its directory
    key:   JSON-able description of everything (besides the data set) that determines the result
    train: callable(PretrainContext) -> None, writes its files into ctx.out_dir
    """

    name: str
    key: dict
    train: Callable[[PretrainContext], None]


# ----------------------------------------------------------------------------------------------------------
# What the loss hooks receive.
# ----------------------------------------------------------------------------------------------------------
@dataclass
class Step:
    """Everything one training iteration has computed, handed to the loss hooks (so no new hook is needed
    for a new method).

    batch:          the real batch (images per stage, captions, lengths, class ids)
    text:           the method's conditioning text features (frozen encoder, detached)
    damsm_text:     DAMSM text features for the DAMSM losses (the same object when the method conditions on
                    DAMSM features)
    noise:          the noise the generator was called with
    output:         the generator's output for this iteration (not detached)
    discriminators: the discriminators, one per stage
    image_encoder:  the frozen DAMSM image encoder (regions, global code)
    aux:            the method's auxiliary modules (harness_auxiliary_modules)
    cfg:            the resolved config
    iteration:      the global step number
    roll_batch:     ``roll_batch(x)``: rows of a per-item tensor of this batch (B×…) each replaced by the next
                    item's of the global batch, the last by the first's (mismatched pairs); ``torch.roll(x, -1, 0)``
                    in one process, across the processes' shares under torchrun (differentiable), so N processes
                    pair items as one does

    The loss contract (``harness/contract/hookspecs.py`` has it in full): a loss hook receiving a Step runs under bf16
    autocast when the run's precision is bf16, so ``output`` and what ``discriminators``/``image_encoder``/``aux``
    return may be bf16; it returns non-empty ``{name: 0-dim fp32 tensor}``. During the generator loss the
    discriminators' parameters have ``requires_grad=False`` (gradients still flow through them into the
    generator) and, under torchrun, their DDP gradient synchronisation is off.
    """

    batch: Batch
    text: TextFeatures
    damsm_text: TextFeatures
    noise: Tensor
    output: GenOutput
    discriminators: nn.ModuleList
    image_encoder: nn.Module
    aux: dict[str, nn.Module]
    cfg: "Config"
    iteration: int = 0
    # one process's roll by default; the engine passes harness.core.distributed.roll_batch
    roll_batch: Callable[[Tensor], Tensor] = field(default=lambda x: torch.roll(x, shifts=-1, dims=0))


@dataclass
class ReferenceCheckpoint:
    """What a method reads from its original code's one-file checkpoint (generator, discriminators and optimisers
    saved together, e.g. ``{'model': {...}, 'optimizers': {...}, 'epoch': N}``), for ``harness import-checkpoint``.

    generator:       the generator's state dict in this method's keys (loaded strictly)
    discriminators:  the discriminators' ``nn.ModuleList`` state dict in this method's keys (loaded strictly), or
                     None when the file has none
    epoch:           the epoch the file was saved after (``harness train --resume`` starts at epoch + 1), or None
    """
    generator: dict[str, Tensor]
    discriminators: Optional[dict[str, Tensor]] = None
    epoch: Optional[int] = None


@dataclass
class DamsmEncoders:
    """The shared DAMSM encoders: `text(captions, lengths) -> TextFeatures`, `image(x) -> (regions B×D×17×17,
    code B×D)`."""

    text: nn.Module
    image: nn.Module
