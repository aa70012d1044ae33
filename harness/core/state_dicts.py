"""Loading weight files and state dicts safely and strictly (released reference weights, user checkpoints).

* ``load_weights_file``: ``torch.load(..., weights_only=True)``; a file that needs arbitrary code to load (a
  pickled module, a custom class) is refused with one line.
* ``load_state_strict``: every key of the module must be in the state dict with the same shape and no extra key
  may be left; a mismatch names the first offending key and both shapes. BatchNorm ``num_batches_tracked``
  buffers missing from old (PyTorch ≤ 0.3) files are tolerated and left as they are.
"""
from __future__ import annotations

import re
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from harness.util.errors import HarnessError

OPTIONAL_SUFFIXES = ("num_batches_tracked",)


def load_weights_file(path: str | Path, *, what: str = "weight file") -> Any:
    """The object in ``path`` loaded on the CPU with ``weights_only=True``; one-line HarnessError otherwise: a file
    that pickles code (a module, a class) is refused as such, any other failure names the file as not a readable
    torch file with the first sentence of the reason."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{what} {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch's own advice (e.g. to load with weights_only=False) is not ours
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError, RuntimeError, …
        text = str(e)
        if re.search(r"\bGLOBAL\b|Unsupported global", text):  # the weights-only unpickler met code to import
            raise HarnessError(f"refusing {what} {path}: it needs arbitrary code to load, which weights_only=True "
                               f"refuses (save a state dict of tensors instead)") from None
        with open(path, "rb") as f:
            head = f.read(2)
        if head not in (b"PK", b"\x80\x02"):  # neither a torch zip archive nor the legacy pickle format
            raise HarnessError(f"{what} {path} is not a torch file (neither a torch zip archive nor a torch "
                               f"pickle)") from None
        operand = re.search(r"Unsupported operand \S+", text)
        reason = operand.group(0) if operand else re.split(r"(?<=[.!?])\s", " ".join(text.split()), maxsplit=1)[0]
        raise HarnessError(f"{what} {path} is not a readable torch file: damaged or truncated "
                           f"({type(e).__name__}: {reason[:160]})") from None


def tensor_state(obj: Any, path: str | Path, *, key: str | None = None) -> "OrderedDict[str, torch.Tensor]":
    """The state dict in a loaded file: the object itself, or ``obj[key]``; a dict of tensors is required."""
    if key is not None and isinstance(obj, Mapping) and key in obj:
        obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise HarnessError(f"{path} does not hold a state dict of tensors")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in obj.items():
        out[str(k).removeprefix("module.")] = v  # files saved from a DataParallel wrapper
    return out


def load_state_strict(module: nn.Module, state: Mapping[str, torch.Tensor], *, source: str = "state dict") -> None:
    """Load ``state`` into ``module`` strictly, naming the first offending key (and both shapes) on a mismatch."""
    expected = module.state_dict()
    for k, v in expected.items():
        if k not in state:
            if k.endswith(OPTIONAL_SUFFIXES):
                continue
            raise HarnessError(f"{source}: missing key {k!r} (expected shape {list(v.shape)}, file has no such key)")
        if tuple(state[k].shape) != tuple(v.shape):
            raise HarnessError(f"{source}: key {k!r} has shape {list(state[k].shape)} in the file, the model expects "
                               f"{list(v.shape)}")
    for k, v in state.items():
        if k not in expected:
            raise HarnessError(f"{source}: unexpected key {k!r} (shape {list(v.shape)}; the model has no such key)")
    full = dict(state)
    for k, v in expected.items():
        full.setdefault(k, v)  # tolerated missing num_batches_tracked: keep the module's own
    module.load_state_dict(full, strict=True)
