"""The public Python API: a trained run's generator from a few lines of Python.

    import harness
    run = harness.load_run("results/dmgan-shapes-s0-20260101-120000-ab12")
    images = harness.generate(run, ["a red circle on a blue background"], seed=0)   # N×3×H×W in [-1, 1]

``load_run`` rebuilds the run's method from its ``config.yaml``, its pretraining stages (the DAMSM encoders and the
method's own, kept in ``<run>/pretrained/``: the cache is not needed) and its newest checkpoint, with the EMA
generator, everything in ``eval()`` and frozen. The captions are tokenised with the vocabulary the run stored
(``<run>/vocab.json``, written by ``harness train`` and ``harness import-checkpoint``), so the data set is not
needed; a run made before that file existed falls back to its data set's vocabulary (through the cache of the
results root, where its training left the vocabulary it built from a ``text/`` folder).

Reproducibility: image ``i`` is generated from draws of (``seed``, ``i``) alone: its noise, the generator's own
draws (conditioning augmentation) and the subsample of a caption longer than ``eval.words_num`` words
(``harness.evaluation.generation.generate_images``, which `harness sample` and the report's sheets use too, each
caption drawn as if alone: their image of caption X is ``generate(run, [X], seed)``). So the
same call gives the same images, ``generate(run, [a, b])[0]`` equals ``generate(run, [a])[0]`` (up to float rounding
of batched arithmetic), and the generator sees at most ``eval.batch_size`` captions at a time.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from harness.config import Config
from harness.data.vocab import Vocabulary
from harness.util.errors import HarnessError
from harness.contract.plugins import Plugins
from harness.contract.types import DamsmEncoders

@dataclass
class LoadedRun:
    """A run ready to generate: ``cfg`` (its Config), ``generator`` (EMA weights), ``text_encoder`` and
    ``image_encoder`` (the DAMSM sides the method uses), ``discriminators``, ``damsm``, ``vocab``
    (``harness.data.vocab.Vocabulary``), ``step`` (of the checkpoint), ``device`` and ``path``."""

    path: Path
    cfg: Config
    generator: nn.Module
    text_encoder: nn.Module
    image_encoder: nn.Module
    discriminators: nn.ModuleList
    damsm: DamsmEncoders
    vocab: Vocabulary
    step: int
    device: torch.device


def load_run(run: str | Path, device: Optional[str | torch.device] = None, *, step: Optional[int] = None,
             plugins: Optional[Plugins] = None, results_dir: Optional[str | Path] = None) -> LoadedRun:
    """Load ``run`` for generation on ``device`` (default: CUDA when available, else CPU), from checkpoint ``step``
    (default: the newest).

    run:         a run directory's path, or a run id under the results root (``results_dir``, else
                 ``$HARNESS_RESULTS``, else ``./results``), as the CLI's RUN arguments
    plugins:     the plugin manager (default: the installed plugins, ``harness.contract.plugins.build_plugins()``); pass
                 ``build_plugins(extra=[...])`` for a run of a method registered by hand
    Raises HarnessError (one line) when ``run`` is neither, its method is not installed, it has no checkpoint (of
    ``step``), a pretrained stage directory it names is gone, or ``device`` is not a usable device."""
    from harness.build import build_split, load_inference_models
    from harness.data.vocab import VOCAB_FILE, load_vocabulary
    from harness.contract.plugins import build_plugins
    from harness.core.rundir import RunDir, resolve_run, results_root
    from harness.core.runtime import resolve_device

    if not isinstance(run, (str, Path)):
        raise HarnessError(f"load_run needs a run directory's path or a run id, got {type(run).__name__}")
    dev = resolve_device("auto" if device is None else device, setting="device")
    path = Path(run).expanduser()
    root = results_root(results_dir, create=False)
    if not (path / "config.yaml").is_file():  # a run id, as the CLI's RUN arguments (no run, ambiguous: one line)
        if not root.is_dir():
            raise HarnessError(f"{run}: not a run directory (expected <run>/config.yaml, <run>/checkpoints/, "
                               f"<run>/pretrained.json as `harness train` writes them), and no results root {root} "
                               f"to look it up as a run id in")
        path = Path(resolve_run(str(run), root).path)
    rd = RunDir(path)
    plugins = plugins or build_plugins()
    method = rd.config_dict()["method"]  # a damaged config.yaml: RunConfigError, one line
    if method not in plugins.methods():
        raise HarnessError(f"run {path.name} was made by method {method!r}, which is not registered here "
                           f"(registered: {', '.join(sorted(plugins.methods()))}); install its plugin, or pass "
                           f"plugins=harness.contract.plugins.build_plugins(extra=[...])")
    models = load_inference_models(plugins, rd, step=step, device=dev)
    if (path / VOCAB_FILE).is_file():
        vocab = load_vocabulary(path / VOCAB_FILE)
    else:  # a run made before vocab.json: the data set's vocabulary, from the results root's cache as training
        vocab = build_split(plugins, models.cfg, "train", train=False, cache_root=root if root.is_dir() else None).vocab
    if len(vocab) != models.vocab_size:
        raise HarnessError(f"{path}: the vocabulary has {len(vocab)} words, the text encoder {models.vocab_size}")
    m = models.modules
    return LoadedRun(path, models.cfg, m.generator, m.text_encoder, m.image_encoder, m.discriminators, m.damsm,
                     vocab, models.step, dev)


def _is_integer(value: object) -> bool:
    """An int (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def generate(run: LoadedRun, captions: Sequence[str], seed: int = 0, stage: int = -1) -> Tensor:
    """Images for ``captions`` (N texts) from the run's EMA generator: N×3×H×W float in [-1, 1] on the CPU, H = W
    the resolution of generator stage ``stage`` (default the last). The same (captions, seed) give the same
    images. Under ``model.attention_mask=per_sample`` (the default) an image does not depend on the other captions
    of the call (to fp32 rounding); under ``reference`` (runs made by ``import-checkpoint``) it does, as in the
    original code (README "Released weights"). Raises HarnessError naming the words the run's vocabulary does not
    know (with the index of their caption), for an empty caption list or caption, a caption that is not a string, a
    negative or non-integer ``seed``, or a ``stage`` the generator does not have. Captions longer than
    ``eval.words_num`` words are subsampled keeping word order (seeded by ``seed`` and the caption's index). The
    generator runs on ``eval.batch_size`` captions at a time."""
    from harness.config import stage_sizes
    from harness.evaluation.generation import generate_images

    if isinstance(captions, str):
        captions = [captions]
    captions = list(captions)
    if not captions:
        raise HarnessError("generate needs at least one caption")
    not_text = [c for c in captions if not isinstance(c, str)]
    if not_text:
        raise HarnessError(f"captions must be strings; got {type(not_text[0]).__name__} {not_text[0]!r}")
    if not _is_integer(seed) or seed < 0:
        raise HarnessError(f"seed={seed!r}: the seed is a non-negative integer")
    n = len(stage_sizes(run.cfg))
    if not _is_integer(stage) or not -n <= stage < n:
        raise HarnessError(f"stage {stage!r}: the generator has {n} stages, 0 … {n - 1} from low to high resolution "
                           f"(or -{n} … -1 counted from the last)")
    unknown = {w: i for i, c in reversed(list(enumerate(captions))) for w in run.vocab.unknown_words(c)}
    if unknown:
        words = ", ".join(f"{w} (caption {i})" for w, i in sorted(unknown.items(), key=lambda x: x[1]))
        raise HarnessError(f"words not in the vocabulary of run {run.path.name} ({len(run.vocab)} words): {words}")
    tokens = [run.vocab.encode(c) for c in captions]  # an empty caption: HarnessError
    return generate_images(run, tokens, seed, stage=stage).images.clamp_(-1.0, 1.0)
