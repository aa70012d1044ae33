"""Reading the original's ``state_epoch_N.pth`` (``code/lib/utils.py`` ``save_models``):
``{'model': {'netG': ..., 'netD': ..., 'netC': ...}, 'optimizers': {...}, 'epoch': N}``, each network's state dict
saved from a DistributedDataParallel wrapper (``module.`` prefixes) or not. The networks here use the original's
parameter names, so the generator's keys are NetG's and the discriminators' are ``0.netD.*`` and ``0.netC.*``."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from harness.contract.types import ReferenceCheckpoint
from harness.util.errors import HarnessError

NETWORKS = ("netG", "netD", "netC")
LAYOUT = "{'model': {'netG', 'netD', 'netC'}, 'optimizers', 'epoch'} (DF-GAN's state_epoch_N.pth)"


def _network_state(model: Mapping, name: str) -> dict[str, Tensor]:
    state = model[name]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise HarnessError(f"model[{name!r}] of the checkpoint is not a state dict of tensors; expected {LAYOUT}")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def _outline(checkpoint: Any, model: Any) -> str:
    """What a file of another layout holds, for the error line: its 'model' keys, else its top-level keys."""
    if not isinstance(checkpoint, Mapping):
        return f"a {type(checkpoint).__name__}"
    keys, where = (model, "'model' keys") if isinstance(model, Mapping) else (checkpoint, "keys")
    names = sorted(map(str, keys))
    return f"{where} {', '.join(names[:6])}{', ...' if len(names) > 6 else ''}"


def read_state_epoch(checkpoint: Any) -> ReferenceCheckpoint:
    """The generator, the discriminator (NetD and NetC in this plugin's keys) and the epoch of a loaded
    ``state_epoch_N.pth``; a file of another layout raises HarnessError naming what it holds."""
    model = checkpoint.get("model") if isinstance(checkpoint, Mapping) else None
    if not isinstance(model, Mapping) or set(model) != set(NETWORKS):
        raise HarnessError(f"not a DF-GAN checkpoint: expected {LAYOUT}, found {_outline(checkpoint, model)}")
    states = {name: _network_state(model, name) for name in NETWORKS}
    discriminators = {f"0.{net}.{k}": v for net in ("netD", "netC") for k, v in states[net].items()}
    epoch = checkpoint.get("epoch")
    return ReferenceCheckpoint(generator=states["netG"], discriminators=discriminators,
                               epoch=int(epoch) if isinstance(epoch, int) else None)
