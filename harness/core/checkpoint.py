"""Training checkpoints: ``<run>/checkpoints/step-<N>.pt``, written atomically, read with ``weights_only=True``.

A checkpoint is a dict of tensors, plain containers and numbers only (so ``torch.load(..., weights_only=True)``
reads it and a file that needs arbitrary code is refused):

    format, step, epoch, position   global step done; epoch; next batch index in that epoch's permutation
    method, vocab_size              the vocabulary size (the models can be rebuilt without the data)
    generator, generator_ema        state dicts (generator_ema = averaged parameters + live buffers)
    discriminators                  the ModuleList's state dict
    opt_g, opt_d                    optimiser state dicts (opt_d: one per discriminator)
    aux                             {name: state} of auxiliary modules that have buffers or trainable parameters
    rng                             harness.core.seed.rng_state()
    pretrained                      {stage name: directory}

``harness.build.load_inference_models`` needs only ``generator_ema`` and ``vocab_size`` (``import-checkpoint``
writes such a minimal checkpoint with ``save_checkpoint``).
"""
from __future__ import annotations

import filecmp
import json
import os
import re
import secrets
import shutil
import zipfile
from pathlib import Path
from typing import Any, Optional, TYPE_CHECKING

import torch
from torch import nn

from harness.util.atomic import copy_file, write_file
from harness.util.errors import HarnessError

if TYPE_CHECKING:  # type hints only
    from harness.core.rundir import RunDir

FORMAT = 1
_NAME = re.compile(r"^step-(\d+)\.pt$")
_TMP = re.compile(r"^\.step-\d+\.pt\.tmp-[0-9a-f]+$")  # atomic_torch_save's temporary files
PRETRAINED_FILE = "pretrained.json"


# ------------------------------------------------------------------------------------------------------
# Writing and finding
# ------------------------------------------------------------------------------------------------------
def checkpoint_path(run: RunDir, step: int) -> Path:
    return Path(run.checkpoints) / f"step-{int(step)}.pt"


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same directory, flushed to disk, then ``os.replace``: a crash
    at any point leaves either the old file or the new one, never a partial file."""
    write_file(path, lambda f: torch.save(obj, f), fsync=True)


def list_checkpoints(run: RunDir) -> dict[int, Path]:
    """{step: path} of the run's checkpoints (temporary files ignored)."""
    folder = Path(run.checkpoints)
    if not folder.is_dir():
        return {}
    out = {}
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if m:
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


class CheckpointWriteError(HarnessError):
    """A checkpoint could not be written (e.g. the disk is full); the message names the last good one."""


def last_good(run: RunDir) -> str:
    """"the last good checkpoint is <path>" (or "no checkpoint was written yet") for messages that stop training."""
    found = list_checkpoints(run)
    return f"the last good checkpoint is {found[max(found)]}" if found else "no checkpoint was written yet"


def resume_hint(run: RunDir) -> str:
    """"the last good checkpoint is …; resume with `harness train --resume RUN`"."""
    return f"{last_good(run)}; resume with `harness train --resume {Path(run.path)}`"


def sweep_temporaries(folder: Path) -> list[Path]:
    """Delete temporary files left by an interrupted ``atomic_torch_save`` (``.<name>.tmp-<hex>``) in ``folder``;
    returns them. Only the process that writes the run's checkpoints calls this."""
    stale = [p for p in Path(folder).iterdir() if _TMP.match(p.name)] if Path(folder).is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_checkpoint(run: RunDir, state: dict, step: int, *, keep: Optional[int] = None) -> Path:
    """Write ``state`` as ``checkpoints/step-<step>.pt`` atomically; with ``keep``, delete all but the ``keep``
    newest checkpoints afterwards (the one just written is always kept). Temporary files of earlier interrupted
    saves are swept first. A failed write (a full disk) leaves no temporary file and raises
    ``CheckpointWriteError`` naming the last good checkpoint and how to resume."""
    Path(run.checkpoints).mkdir(parents=True, exist_ok=True)
    sweep_temporaries(Path(run.checkpoints))
    state = dict(state)
    state.setdefault("format", FORMAT)
    state["step"] = int(step)
    path = checkpoint_path(run, step)
    try:
        atomic_torch_save(state, path)
    except OSError as e:
        raise CheckpointWriteError(f"could not write checkpoint {path.name} ({e.strerror or e}); "
                                   f"{resume_hint(run)} once there is space") from None
    if keep is not None and keep > 0:
        older = [p for s, p in list_checkpoints(run).items() if s != int(step)]
        for p in older[: max(0, len(older) - (keep - 1))]:
            p.unlink(missing_ok=True)
    return path


def latest_checkpoint(run: RunDir, step: Optional[int] = None) -> Path:
    """The checkpoint of ``step`` (default: the newest); a missing one raises HarnessError naming what exists."""
    found = list_checkpoints(run)
    if step is not None:
        step = int(step)
        if step not in found:
            have = ", ".join(map(str, found)) or "none"
            raise HarnessError(f"run {Path(run.path).name} has no checkpoint of step {step} (have: {have})")
        return found[step]
    if not found:
        where = "is empty" if Path(run.checkpoints).is_dir() else "does not exist"
        raise HarnessError(f"run {Path(run.path).name} has no checkpoint yet ({Path(run.checkpoints)} {where}); "
                           f"train it first (harness train --resume {Path(run.path)})")
    return found[max(found)]


class CheckpointDamagedError(HarnessError):
    """A checkpoint file is truncated or its bytes are corrupt (not a refusal for safety); the message names it."""


def checkpoint_damage(path: Path) -> Optional[str]:
    """Why the checkpoint file is damaged, or None: ``torch.save`` writes a zip archive, so a file that is not a
    complete zip was cut short (a killed copy, a full disk), and a member that fails its CRC had bytes changed in
    place (``torch.load`` itself reads such a member without noticing)."""
    try:
        if not zipfile.is_zipfile(path):
            return f"truncated or not a torch file ({Path(path).stat().st_size} bytes, no complete zip archive)"
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        return f"unreadable ({e})"
    return f"corrupt: member {bad} fails its CRC check" if bad else None


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint with ``weights_only=True``; a file that needs arbitrary code to unpickle is refused with
    one line (``harness.core.state_dicts.load_weights_file``). A damaged one (``checkpoint_damage``) raises
    ``CheckpointDamagedError`` saying so, before any unpickling."""
    from harness.core.state_dicts import load_weights_file

    why = checkpoint_damage(path) if Path(path).is_file() else None
    if why:
        raise CheckpointDamagedError(f"checkpoint {path} is damaged: {why}")
    obj = load_weights_file(path, what="checkpoint")
    if not isinstance(obj, dict):
        raise HarnessError(f"checkpoint {path} does not hold a dict (it holds a {type(obj).__name__})")
    return obj


def newest_good_checkpoint(run: RunDir) -> tuple[Path, dict]:
    """The newest checkpoint of ``run`` that loads, and its state: a damaged newer one is renamed aside to
    ``<name>.damaged`` (so later saves and ``keep_checkpoints`` never count it) and named in a warning line saying
    which one training resumes from instead. A safety refusal still raises; so does a run whose every checkpoint
    is damaged, and one with none (``latest_checkpoint``)."""
    from harness.core.distributed import is_main
    from harness.core.rundir import warn

    latest_checkpoint(run)  # none at all: the usual one line
    damaged: list[str] = []
    for path in reversed(list_checkpoints(run).values()):
        try:
            state = load_checkpoint(path)
        except CheckpointDamagedError as e:
            damaged.append(str(e))
            if is_main():  # torchrun: the rank that writes files moves it; every rank skips it
                path.rename(path.with_name(path.name + ".damaged"))
            continue
        if damaged and is_main():
            warn(f"{'; '.join(damaged)} (kept as .damaged); resuming from {path.name}, the newest good checkpoint")
        return path, state
    raise CheckpointDamagedError(f"{'; '.join(damaged)}: run {Path(run.path).name} has no good checkpoint left to "
                                 f"resume from (the damaged files are kept as .damaged)")


# ------------------------------------------------------------------------------------------------------
# Module states
# ------------------------------------------------------------------------------------------------------
def aux_state(aux: dict[str, nn.Module]) -> dict[str, dict]:
    """The part of the auxiliary modules' state that training can change: buffers and trainable parameters
    (frozen pretrained weights such as a VGG are rebuilt from their own files, not copied into checkpoints)."""
    out: dict[str, dict] = {}
    for name, module in aux.items():
        sd = {k: v.detach().clone() for k, v in module.state_dict(keep_vars=True).items()
              if not (isinstance(v, nn.Parameter) and not v.requires_grad)}
        if sd:
            out[name] = sd
    return out


def load_aux_state(aux: dict[str, nn.Module], state: dict[str, dict]) -> None:
    for name, sd in (state or {}).items():
        if name not in aux:
            raise HarnessError(f"checkpoint holds auxiliary module {name!r} that this method does not build "
                               f"(it builds: {', '.join(aux) or 'none'})")
        result = aux[name].load_state_dict(sd, strict=False)
        if result.unexpected_keys:
            raise HarnessError(f"auxiliary module {name!r}: unexpected key {result.unexpected_keys[0]!r} in checkpoint")


# ------------------------------------------------------------------------------------------------------
# pretrained.json and <run>/pretrained/: the pretraining stages a run used, kept in the run
# ------------------------------------------------------------------------------------------------------
PRETRAINED_DIR = "pretrained"


def _entry_files(directory: Path) -> dict[str, int]:
    """{relative path: size} of the regular files of a cache entry (``harness.core.cache.cached`` builds an entry aside
    and renames it in, its lock beside it: every file inside is the entry's)."""
    return {str(f.relative_to(directory)): f.stat().st_size for f in sorted(directory.rglob("*")) if f.is_file()}


def _link_or_copy(src: Path, dest: Path) -> None:
    """A hard link to ``src`` (no extra disk on the same file system), else a copy (another file system, or one
    without hard links)."""
    try:
        os.link(src, dest)
    except OSError:
        copy_file(src, dest)
        shutil.copystat(src, dest)


def keep_in_run(run: RunDir, name: str, source: Path) -> Path:
    """Materialise the pretraining stage ``name``'s cache entry ``source`` as ``<run>/pretrained/<name>/`` (hard
    links where possible, copies otherwise), so the run directory holds every file it needs to be rebuilt (``harness
    evaluate``, ``harness.load_run``) after the cache is cleared or the run is copied to another machine. Atomic: the
    entry is assembled beside its place and renamed in; an existing identical one is kept. Returns its path."""
    source = Path(source)
    dest = Path(run.path) / PRETRAINED_DIR / name
    files = _entry_files(source)
    if dest.is_dir() and _entry_files(dest) == files and all(
            os.path.samefile(source / rel, dest / rel) or filecmp.cmp(source / rel, dest / rel, shallow=False)
            for rel in files):
        return dest  # kept before (train --resume): the same files
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{name}.tmp-{secrets.token_hex(3)}")
    try:
        for rel in files:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(source / rel, tmp / rel)
        old = dest.with_name(f".{name}.old-{secrets.token_hex(3)}")
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def write_pretrained(run: RunDir, pretrained: dict[str, Path], vocab_size: int) -> Path:
    """``<run>/pretrained.json``: {"stages": {name: "pretrained/<name>"}, "sources": {name: cache directory},
    "vocab_size": N}, after keeping each stage's files in the run (``keep_in_run``). Stage paths are relative to the
    run directory; ``read_pretrained`` resolves them."""
    from harness.core.rundir import atomic_write_text

    path = Path(run.path) / PRETRAINED_FILE
    stages = {k: keep_in_run(run, k, Path(v)).relative_to(run.path).as_posix() for k, v in pretrained.items()}
    blob = {"stages": stages, "sources": {k: str(Path(v).resolve()) for k, v in pretrained.items()},
            "vocab_size": int(vocab_size)}
    atomic_write_text(path, json.dumps(blob, indent=1))
    return path


def read_pretrained(run: RunDir) -> dict:
    """``<run>/pretrained.json`` with every stage directory as an absolute path: the run's own copy
    (``<run>/pretrained/<name>``); runs written before the harness kept them name the cache entry itself."""
    path = Path(run.path) / PRETRAINED_FILE
    if not path.is_file():
        return {"stages": {}, "vocab_size": None}
    blob = json.loads(path.read_text())
    if "stages" not in blob:  # a flat {name: directory} file
        blob = {"stages": {k: v for k, v in blob.items() if k != "vocab_size"}, "vocab_size": blob.get("vocab_size")}
    blob["stages"] = {k: _stage_directory(run, k, v) for k, v in blob["stages"].items()}
    return blob


def _stage_directory(run: RunDir, name: str, value: str) -> str:
    """A stage directory of ``pretrained.json``, confined: a relative one inside the run; an absolute one (runs
    written before the harness kept the files) inside the ``.cache`` of a directory that holds the run (the
    results root). Anything else raises ``PathOutsideError`` naming the file and the stage."""
    from harness.util.paths import PathOutsideError, resolve_inside

    what = f"{Path(run.path) / PRETRAINED_FILE}: stage {name!r}"
    if not Path(value).is_absolute():
        return str(resolve_inside(run.path, value, what))
    for holder in Path(run.path).resolve().parents:
        try:
            return str(resolve_inside(holder / ".cache", Path(value).resolve().relative_to(holder / ".cache"), what))
        except (ValueError, PathOutsideError):
            continue
    raise PathOutsideError(f"{what} {value!r} is neither inside the run nor in the cache of its results root; "
                           f"refused")


# ------------------------------------------------------------------------------------------------------
# Inference
# ------------------------------------------------------------------------------------------------------
