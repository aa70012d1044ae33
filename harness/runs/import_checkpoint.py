"""`harness import-checkpoint`: a run made from a method's released reference generator (e.g. AttnGAN's
``bird_AttnGAN2.pth``, DM-GAN's ``bird_DMGAN.pth``) and the released DAMSM encoders it was trained with.

The generator file is read with ``weights_only=True`` (a file that needs code to load is refused), mapped to
this harness's keys by the method's ``harness_import_generator_state`` hook and loaded strictly (a mismatch names
the first offending key and both shapes; missing BatchNorm ``num_batches_tracked`` is tolerated). Everything is
checked before the run directory is created, including that the text encoder's vocabulary has the size of the
data set's (``captions.pickle``, or the one built from ``text/``). The run then holds ``config.yaml``,
``pretrained.json`` (the DAMSM cache entry of the imported encoders) and ``checkpoints/step-0.pt`` whose
``generator_ema`` (and ``generator``) is the released generator, so ``harness sample`` and ``harness evaluate`` work
on it.

The run is configured as the original evaluated: ``model.attention_mask=reference`` (the original's padding-mask
row pattern, ``harness.nn.word_attention``) and ``eval.batch_size`` = the method's
``MethodInfo.reference_eval_batch_size`` (AttnGAN 100, DM-GAN 10), plus the method's ``MethodInfo.reference_eval``
settings (e.g. ``eval.truncation``), each a declared deviation; one line on stderr says so (``--set`` after it
can change any). With ``discriminators`` (the original's ``netD0.pth`` … in its layout; spectral-norm layers are
renamed by ``harness.nn.spectral_norm.from_reference_layout``) the checkpoint also holds them and the epoch to
start from (N+1 for ``netG_epoch_N.pth``, or ``start_epoch``): ``harness train --resume`` then continues as the
original resumes (saved G as the live G and its EMA, fresh optimisers). A method whose original saves everything in
one file (e.g. ``{'model': {...}, 'optimizers': {...}, 'epoch': N}``) reads it with
``harness_read_reference_checkpoint``: generator and discriminators then come from that file (loaded strictly) and
the run resumes at the epoch after the saved one.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from harness.util.errors import HarnessError
from harness.core.rundir import RunDir

if TYPE_CHECKING:  # pragma: no cover
    from harness.contract.plugins import Plugins
    from harness.contract.types import ReferenceCheckpoint
    from torch import nn


def _vocab_size(text_state: dict, path: Path) -> int:
    weight = text_state.get("encoder.weight")
    if weight is None or weight.dim() != 2:
        raise HarnessError(f"{path}: not a DAMSM text encoder (no 2-d 'encoder.weight' embedding)")
    return int(weight.shape[0])


_EPOCH = re.compile(r"epoch_(\d+)")


def start_epoch_of(file: Path, start_epoch: Optional[int]) -> int:
    """The epoch a resumed original run starts at: ``start_epoch`` if given, else N+1 for a file named
    ``netG_epoch_N.pth`` (the original's ``int(istart) + 1``). Raises HarnessError when neither is available."""
    if start_epoch is not None:
        if start_epoch < 0:
            raise HarnessError(f"--start-epoch must be ≥ 0, got {start_epoch}")
        return int(start_epoch)
    m = _EPOCH.search(Path(file).name)
    if m is None:
        raise HarnessError(f"cannot tell the epoch of {Path(file).name} (no 'epoch_N' in its name, as the original's "
                           f"netG_epoch_N.pth): pass --start-epoch N+1")
    return int(m.group(1)) + 1


def load_reference_discriminators(discs: "nn.ModuleList", files: Sequence[str | Path]) -> dict:
    """Load the original's per-stage D files (``netD0.pth`` …, low → high resolution) strictly into ``discs``,
    renamed from the original spectral-norm layout; returns the ModuleList's state dict (cloned). Raises
    HarnessError for a wrong number of files, a file that is not a state dict of tensors, or a missing, extra or
    mis-shaped key (named; BatchNorm ``num_batches_tracked`` may be absent)."""
    from harness.nn.spectral_norm import from_reference_layout
    from harness.core.state_dicts import load_state_strict, load_weights_file, tensor_state

    if len(files) != len(discs):
        raise HarnessError(f"--discriminators: {len(files)} file(s) given, the method has {len(discs)} stage "
                           f"discriminators (netD0.pth … netD{len(discs) - 1}.pth, comma-separated, low → high)")
    for i, f in enumerate(files):
        path = Path(f).expanduser()
        state = from_reference_layout(tensor_state(load_weights_file(path, what=f"discriminator {i} file"), path))
        load_state_strict(discs[i], state, source=str(path))
    return {k: v.detach().clone() for k, v in discs.state_dict().items()}


@dataclass
class ReleasedFiles:
    """The original code's files of one trained model: the generator (``netG_epoch_N.pth``), the DAMSM text and
    image encoders it was trained with (default: the config's ``pretrain.damsm.*_file``), optionally the per-stage
    discriminators (low → high: the run can then be resumed) and the epoch a resumed run starts at (default N+1)."""

    generator: Path | str
    text_encoder: Optional[str] = None
    image_encoder: Optional[str] = None
    discriminators: Optional[Sequence[str]] = None
    start_epoch: Optional[int] = None


def _reference_generator(hooks, cfg, file: Path) -> tuple[Optional["ReferenceCheckpoint"], dict]:
    """(the method's reading of a whole reference checkpoint or None, the generator state in the method's keys)
    from ``file``: ``harness_read_reference_checkpoint`` when the method answers it, else the file as the
    generator's state dict mapped by ``harness_import_generator_state``."""
    from harness.core.state_dicts import load_weights_file, tensor_state

    loaded = load_weights_file(file, what="generator file")
    whole = hooks.harness_read_reference_checkpoint(cfg=cfg, checkpoint=loaded)
    if whole is not None:
        return whole, whole.generator
    mapped = hooks.harness_import_generator_state(cfg=cfg, state_dict=tensor_state(loaded, file))
    if mapped is None:
        raise HarnessError(f"method {cfg.method!r} has no importer of reference weights "
                           f"(harness_import_generator_state)")
    return None, mapped


def _resume_epoch(file: Path, start_epoch: Optional[int], whole: Optional["ReferenceCheckpoint"],
                  discriminators: Optional[Sequence[str]]) -> int:
    """The epoch ``harness train --resume`` starts at (0 without discriminators: the run is for evaluation):
    ``start_epoch`` if given, else the one after the epoch a whole checkpoint was saved after, else from the file
    name (``start_epoch_of``)."""
    in_file = whole is not None and whole.discriminators is not None
    if in_file and discriminators:
        raise HarnessError(f"--discriminators: {file.name} holds the discriminators already; drop the option")
    if not (in_file or discriminators):
        return 0
    if start_epoch is None and whole is not None and whole.epoch is not None:
        return int(whole.epoch) + 1
    return start_epoch_of(file, start_epoch)


def _discriminator_state(discs: "nn.ModuleList", file: Path, whole: Optional["ReferenceCheckpoint"],
                         files: Optional[Sequence[str]]) -> Optional[dict]:
    """The discriminators' state for resuming (the original's netD files, or those in a whole checkpoint), loaded
    strictly into ``discs``; None without either."""
    from harness.core.state_dicts import load_state_strict

    if files:
        return load_reference_discriminators(discs, list(files))
    if whole is None or whole.discriminators is None:
        return None
    load_state_strict(discs, whole.discriminators, source=f"{file} discriminators")
    return {k: v.detach().clone() for k, v in discs.state_dict().items()}


def import_checkpoint(plugins: Plugins, method: str, files: ReleasedFiles, *, dataset: str = "cub",
                      data_dir: Optional[str] = None, preset: str = "paper", overrides: Optional[list[str]] = None,
                      root: Path) -> RunDir:
    """Create a run under ``root`` whose EMA generator is the released reference generator, configured with the
    original's padding mask and evaluation batch; with ``files.discriminators`` (one original ``netD<i>.pth`` per
    stage) a run that ``harness train --resume`` continues from ``start_epoch_of(generator, start_epoch)``.
    Raises HarnessError (one line, before the run directory exists) for any unreadable or mismatched file."""
    from harness.build import build_method, build_split, prepare_config
    from harness.config import declare_deviation, parse_override
    from harness.core.checkpoint import save_checkpoint, write_pretrained
    from harness.core.state_dicts import load_state_strict, load_weights_file, tensor_state
    from harness.data.vocab import check_vocabulary_size
    from harness.runs.info import create_run
    from harness.nn.damsm import load_damsm
    from harness.train.pretrain import import_damsm
    from harness.core.weights import weight_sha256

    file, discriminators = Path(files.generator).expanduser(), files.discriminators
    info = plugins.method(method)
    cfg = prepare_config(plugins, method, dataset=dataset, data_dir=data_dir, preset=preset,
                         overrides=list(overrides or []), seed=0)
    # the original's evaluation, declared as deviations from the protocol (README "Protocols"); a --set wins
    reference = {"model.attention_mask": "reference"}
    if info.reference_eval_batch_size:
        reference["eval.batch_size"] = info.reference_eval_batch_size
    reference.update(info.reference_eval)
    reference = {k: v for k, v in reference.items() if v is not None}  # None: a setting the method does not have
    given = {parse_override(o)[0] for o in overrides or []}
    for key, value in reference.items():
        if key not in given and cfg.get(key) != value:
            declare_deviation(cfg, key, value)
    dc = cfg.pretrain.damsm
    text_file = files.text_encoder or dc.text_encoder_file
    image_file = files.image_encoder or dc.image_encoder_file
    if not (text_file and image_file):
        raise HarnessError(f"import-checkpoint needs the DAMSM encoders {file.name} was trained with: "
                           f"--text-encoder FILE --image-encoder FILE (for CUB: text_encoder200.pth and "
                           f"image_encoder200.pth)")
    dc.text_encoder_file, dc.image_encoder_file = str(Path(text_file).expanduser()), str(Path(image_file).expanduser())

    # 1. the generator file: safe load, mapping to our keys, strict check against a freshly built method
    #    (before anything is written)
    whole, mapped = _reference_generator(plugins.method_hooks(method), cfg, file)
    epoch = _resume_epoch(file, files.start_epoch, whole, discriminators)
    text_state = tensor_state(load_weights_file(dc.text_encoder_file, what="DAMSM text encoder file"),
                              dc.text_encoder_file)
    vocab_size = _vocab_size(text_state, Path(dc.text_encoder_file))
    train_set = build_split(plugins, cfg, "train", train=False, cache_root=root)
    check_vocabulary_size(vocab_size, train_set, f"--text-encoder {dc.text_encoder_file}")

    modules = build_method(plugins, cfg, vocab_size)
    load_state_strict(modules.generator, mapped, source=str(file))
    state = {k: v.detach().clone() for k, v in modules.generator.state_dict().items()}
    d_state = _discriminator_state(modules.discriminators, file, whole, discriminators)

    # 2. the DAMSM encoders: a cache entry shared with every later use of the same files, loaded strictly
    pretrained = {"damsm": import_damsm(cfg, dc.text_encoder_file, dc.image_encoder_file, root)}
    load_damsm(modules.damsm, pretrained["damsm"])

    # 3. the run
    run = create_run(plugins, cfg, root, tag="imported")
    write_pretrained(run, pretrained, vocab_size)
    from harness.data.vocab import VOCAB_FILE, save_vocabulary

    save_vocabulary(train_set.vocab, run.path / VOCAB_FILE)
    imported = {"file": file.name, "sha256": weight_sha256(file)}
    ckpt = {"method": method, "vocab_size": vocab_size, "generator_ema": state, "generator": state,
            "imported": imported, "epoch": epoch, "position": 0}
    if d_state is not None:
        ckpt["discriminators"] = d_state
        imported["discriminators"] = [{"file": Path(f).name, "sha256": weight_sha256(Path(f).expanduser())}
                                      for f in discriminators or [file]]
    save_checkpoint(run, ckpt, step=0)
    shown = ", ".join(f"{key}={cfg.get(key)}" for key in dict.fromkeys([*reference, "eval.batch_size"]))
    print(f"import-checkpoint: configured as the original code evaluates: {shown}"
          + (f"; harness train --resume starts at epoch {epoch}" if d_state is not None else ""),
          file=sys.stderr, flush=True)
    return run
