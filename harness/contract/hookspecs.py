"""The whole plugin contract of t2i-harness.

A plugin is any object or module with functions named like the hooks below, marked with
``harness.hookimpl``. Built-in data sets, metrics and methods register through these same hooks; third-party
packages register through the entry-point group ``harness`` (see README, "Writing a method plugin").

Three kinds of hooks:

* **Registration** (every plugin may answer; the results are collected into one list):
  ``harness_methods``, ``harness_datasets``, ``harness_metrics``, ``harness_weight_files``.
* **Components** (only the selected method answers: the harness calls them through pluggy's
  ``subset_hook_caller`` with every other *method* plugin removed; ``firstresult``, so the first non-None
  answer wins): ``harness_text_encoder``, ``harness_image_encoder``, ``harness_generator``,
  ``harness_discriminators``, ``harness_auxiliary_modules``, ``harness_pretrain_stages``,
  ``harness_discriminator_loss``, ``harness_generator_loss``. Cross-cutting plugins (not methods) stay in
  the subset, so a ``hookwrapper=True`` implementation of a component hook wraps every method.
* **Lifecycle** (optional, all called, results ignored): ``harness_on_step_end``, ``harness_on_evaluated``.

Types are in ``harness.contract.types``; the config in ``harness.config``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, TYPE_CHECKING

import pluggy
from torch import Tensor, nn

from harness.config import Config
from harness.contract.types import (
    DamsmEncoders,
    DatasetInfo,
    MethodInfo,
    MetricInfo,
    PretrainStage,
    ReferenceCheckpoint,
    Step,
    WeightFile,
)

if TYPE_CHECKING:  # type hints only
    from harness.core.rundir import RunDir

PROJECT = "harness"
hookspec = pluggy.HookspecMarker(PROJECT)


# ------------------------------------------------------------------------------------------------------
# Registration: collected from every plugin.
# ------------------------------------------------------------------------------------------------------
@hookspec
def harness_methods() -> list[MethodInfo]:
    """Announce the methods this plugin provides.

    Receives: nothing. Returns: a list of ``MethodInfo`` (name, paper, defaults.yaml path, reported numbers,
    config section types, ablation keys). Called when the plugin manager is built and whenever the list of
    methods is needed (``harness plugins``, ``--plugins`` validation). Collected from every plugin.
    A plugin that answers this hook with exactly one method is that method's plugin: its component hooks
    are called only when that method is being built.
    """


@hookspec
def harness_datasets() -> list[DatasetInfo]:
    """Announce the data sets this plugin provides.

    Receives: nothing. Returns: a list of ``DatasetInfo`` (name, builder, expected layout for error
    messages). Called for ``harness datasets``, ``--dataset`` validation and before loading data.
    Collected from every plugin.
    """


@hookspec
def harness_metrics() -> list[MetricInfo]:
    """Announce the metrics this plugin provides.

    Receives: nothing. Returns: a list of ``MetricInfo`` (metric id, direction, weight files it needs,
    factory, and optionally a ``MetricFormat``: the display name, LaTeX form and decimals the results tables
    use). Called for ``harness metrics``, ``--metrics`` validation, at evaluation and by ``harness table``.
    Collected from every plugin.
    """


@hookspec
def harness_weight_files() -> list[WeightFile]:
    """Announce the pretrained weight files this plugin can use.

    Receives: nothing. Returns: a list of ``WeightFile`` (name, purpose, accepted file names, check).
    Called for ``harness weights`` and whenever a weight file is looked up. Collected from every plugin.
    """


# ------------------------------------------------------------------------------------------------------
# Components: only the selected method answers (firstresult).
# ------------------------------------------------------------------------------------------------------
@hookspec(firstresult=True)
def harness_pretrain_stages(cfg: Config) -> list[PretrainStage]:
    """Pretraining stages this method needs *besides* the shared DAMSM stage (which the harness always runs
    first), e.g. CAE-GAN's cross-attention encoder.

    Receives: the resolved config. Returns: a list of ``PretrainStage``. Optional: a method without a stage of
    its own does not implement it (the harness's default, ``harness.contract.plugins.OPTIONAL_HOOK_DEFAULTS``,
    is []). Called once per run before any module is built; each stage's result is cached under
    ``<root>/.cache/<stage.name>/<key>/`` and its directory is passed on as ``pretrained[stage.name]``.
    firstresult.
    """


@hookspec(firstresult=True)
def harness_auxiliary_modules(cfg: Config, damsm: DamsmEncoders, pretrained: dict[str, Path],
                              training: bool, find_weight: Callable[[str], Path]) -> dict[str, nn.Module]:
    """Modules the method uses besides the encoders, G and the Ds (e.g. ECAGAN's VGG-16 feature extractor
    for the perceptual loss, CAE-GAN's cross-attention encoder).

    Receives: the config, the DAMSM encoders, the pretrained stages' directories (empty for ``inspect``), and
    ``training``: True when the modules are built for GAN training, False for evaluation, sampling and
    ``inspect`` (so a module that only serves a training loss, e.g. ECAGAN's VGG, needs its weight file only
    then); ``find_weight(name)``: the verified local path of an announced weight file (``harness_weight_files``),
    looked for where ``harness weights`` says, ``--weights-dir`` first (MissingWeightsError, one line, if absent).
    Returns: ``{name: module}``. Optional: not implementing it (or answering None) means none (default {}).
    Called once when the method is built, before ``harness_generator``; the same instances are passed to
    ``harness_generator`` and are in ``Step.aux``.
    Their parameters are listed under ``other`` by ``harness inspect``; modules with trainable parameters are
    not optimised by the harness (a method that needs that trains them in a pretraining stage). firstresult.
    """


@hookspec(firstresult=True)
def harness_text_encoder(cfg: Config, damsm: DamsmEncoders) -> nn.Module:
    """The text encoder whose features condition the generator.

    Receives: the config and the shared DAMSM encoders (pretrained, or freshly initialised for ``inspect``).
    Returns: a module ``forward(captions: B×T long, lengths: B long) -> TextFeatures``. A method that does not
    implement this hook gets ``damsm.text`` itself. The harness freezes it and keeps it in eval() during GAN
    training. firstresult.
    """


@hookspec(firstresult=True)
def harness_image_encoder(cfg: Config, damsm: DamsmEncoders) -> nn.Module:
    """The image encoder used by the DAMSM terms of the generator loss.

    Receives: the config and the shared DAMSM encoders. Returns: a module
    ``forward(images: B×3×H×W in [-1,1]) -> (regions B×D×h×w, code B×D)``. A method that does not implement
    this hook gets ``damsm.image``. Frozen and in eval() during GAN training. firstresult.
    """


@hookspec(firstresult=True)
def harness_generator(cfg: Config, aux: dict[str, nn.Module]) -> nn.Module:
    """The generator.

    Receives: the config and the auxiliary modules (``harness_auxiliary_modules``; a generator may hold
    one of them as a submodule, its parameters are then not counted as the generator's by ``inspect``).
    Returns: a module with ``forward(noise: B×z, text: TextFeatures) -> GenOutput`` (``harness.contract.types``); every
    state it needs at inference is a parameter or buffer, so it is saved in its checkpoint. A random draw
    inside ``forward`` (e.g. conditioning augmentation's ε) should use ``harness.nn.item_noise.item_randn``:
    in training it is then drawn per item, the same on any number of ranks. firstresult.
    """


@hookspec(firstresult=True)
def harness_discriminators(cfg: Config) -> nn.ModuleList:
    """The discriminators, one per generator stage, low → high resolution.

    Receives: the config. Returns: an ``nn.ModuleList``; the loss hooks decide how they are called. A
    discriminator that is one module made of several networks may name them in a ``parts`` attribute (its
    children's names, e.g. DF-GAN's ``("netD", "netC")``): ``harness inspect`` then counts each. firstresult.
    """


# The loss contract (both loss hooks; ``types.Step`` repeats it; harness.train.engine.GanTrainer.train_step):
#   precision   each loss hook runs under bf16 autocast when the run's precision is bf16 (``train.amp=bf16``, or
#               ``auto`` on CUDA): the networks it calls return bf16 activations. It must still return fp32:
#               take ``.float()`` of network outputs before the loss arithmetic.
#   returns     a non-empty ``{name: tensor}``; every tensor is a 0-dim fp32 scalar that is part of the graph
#               (the engine sums them, back-propagates the sum and logs each term; anything else stops
#               training with one line naming the term, ``check_loss_terms``).
#   D loss      called once per stage, in stage order, with gradients on for every module; only
#               ``step.discriminators[stage]``'s optimiser steps afterwards. Detach the fakes yourself.
#   G loss      called after every discriminator has stepped, with the discriminators' parameters at
#               ``requires_grad=False`` (``GanTrainer(skip_d_weight_grads=True)``, as training builds it: their
#               weight gradients would be discarded anyway; gradients still flow through them into G) and, under
#               torchrun, with DDP's gradient synchronisation of the discriminators off (``no_sync``): only the
#               generator's gradients are all-reduced.
#   randomness  the generator ran under ``harness.nn.item_noise.per_item_draws``; a loss that draws random
#               numbers uses the global generator (seeded per run, per rank).
#   inputs      ``step.batch.images`` and ``step.text`` arrive detached. A D loss that needs gradients with respect
#               to them (a gradient penalty on the real image or the text feature) makes its own leaves
#               (``x.detach().requires_grad_()``), calls ``torch.autograd.grad(..., create_graph=True)`` in the hook
#               and returns the penalty as a term: the engine's backward of the sum runs the double backward (under
#               bf16 autocast too; the gradients come back in the leaves' dtype).
#   pairs       a loss that pairs an item with another of the batch (mismatched image/sentence pairs) and should
#               train the same on N processes as on one uses ``step.roll_batch(x)``: the next item's row of the
#               global batch, across the processes' shares under torchrun, differentiable.


@hookspec(firstresult=True)
def harness_discriminator_loss(step: Step, stage: int) -> dict[str, Tensor]:
    """The loss of discriminator ``stage`` for this iteration.

    Receives: the ``Step`` (real batch, text features, generator output — detach the fakes yourself) and the
    stage index. Returns: named 0-dim fp32 terms, e.g. ``{"d_64": t}``; the harness sums them, back-propagates
    into ``step.discriminators[stage]``, steps its optimiser, and logs every term. Called once per stage per
    iteration, in stage order, before the generator step, under bf16 autocast when the run is bf16 (the loss
    contract above). firstresult.
    """


@hookspec(firstresult=True)
def harness_generator_loss(step: Step) -> dict[str, Tensor]:
    """The generator's loss for this iteration.

    Receives: the ``Step``, after every discriminator has stepped. Returns: named scalar terms (e.g.
    ``{"g_adv_64": t, ..., "damsm_words": t, "damsm_sent": t, "kl": t}``), already weighted, 0-dim fp32; the
    harness sums them, back-propagates, steps the generator optimiser, updates the EMA, and logs each term. Runs
    under bf16 autocast when the run is bf16, with the discriminators' parameters frozen (requires_grad off)
    and their DDP synchronisation off (the loss contract above). firstresult.
    """


@hookspec(firstresult=True)
def harness_import_generator_state(cfg: Config, state_dict: dict) -> dict:
    """Map a generator state dict saved by the method's reference implementation (e.g. the released
    ``bird_AttnGAN2.pth``, keys of the reference ``G_NET.state_dict()``) to this method's generator keys.

    Receives: the config and the loaded state dict (tensors only). Returns: a state dict for
    ``harness_generator(cfg, aux)``; the harness loads it strictly and names the first offending key and both
    shapes on a mismatch. Methods without released weights do not implement it. firstresult.
    """


@hookspec(firstresult=True)
def harness_read_reference_checkpoint(cfg: Config, checkpoint: Any) -> ReferenceCheckpoint:
    """Read a checkpoint file of the method's reference implementation that holds more than the generator (e.g. a
    ``state_epoch_N.pth`` of ``{'model': {'netG', 'netD', 'netC'}, 'optimizers', 'epoch'}``).

    Receives: the config and the object loaded from the file (``torch.load(weights_only=True)``: nested dicts,
    tensors, numbers). Returns: a ``ReferenceCheckpoint`` (generator and, if present, discriminators in this
    method's keys, and the epoch); the harness loads both strictly and, with discriminators, makes a run that
    ``harness train --resume`` continues from epoch + 1. Raise ``harness.util.errors.HarnessError`` (one line) for a
    file of another layout. A method whose released file is the generator's state dict alone implements
    ``harness_import_generator_state`` instead; when this hook answers, that one is not called. firstresult.
    """


# ------------------------------------------------------------------------------------------------------
# Checks: the selected method (and cross-cutting plugins) answer; every answer is collected.
# ------------------------------------------------------------------------------------------------------
@hookspec
def harness_check_config(cfg: Config) -> list[str]:
    """The method's own constraints on a resolved config, beyond each field's range (``harness.config.rules``),
    e.g. "the first stage's side is 4·2ⁿ" or "BatchNorm needs at least 2 items per process".

    Receives: the fully resolved config (every field already within its range). Returns: a list of problems,
    each one line naming the key, its value and what is allowed (empty when the config is fine). Called once
    per run config before any directory is created or any work starts (``train``, ``run``, ``train --resume``,
    ``import-checkpoint``, ``inspect``); the first problem is raised as ``ConfigError``. Called on the selected
    method only (and on non-method plugins); not implementing it means no extra constraint.
    """


# ------------------------------------------------------------------------------------------------------
# Lifecycle: all implementations called, results ignored.
# ------------------------------------------------------------------------------------------------------
@hookspec
def harness_on_step_end(run: RunDir, step: Step, logs: dict[str, float]) -> None:
    """Called after every training iteration (after the EMA update).

    Receives: the run (``harness.core.rundir.RunDir``), the iteration's ``Step`` and the logged scalars
    (loss terms, images/s) — on logging steps (every ``train.log_every``) only, ``{}`` otherwise, so the
    engine never waits for the device just to fill it. Returns nothing. For loggers and extensions; must not
    modify the models. In distributed training every rank calls it (rank 0 alone writes the run).
    """


@hookspec
def harness_on_evaluated(run: RunDir, records: list[dict]) -> None:
    """Called after an evaluation has written its records.

    Receives: the run (``harness.core.rundir.RunDir``) and the new records as plain dicts, one per record, exactly
    the JSON objects just appended to ``records.jsonl`` (keys as README "Run layout and records" lists them, then
    the record's further keys such as ``step``). Dicts, not the harness's ``Record`` class, so that a plugin
    depends on the file layout only; a plugin that wants the typed form calls
    ``harness.core.runfiles.Record.from_json`` on each.
    Returns nothing.
    """
