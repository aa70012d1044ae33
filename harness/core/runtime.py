"""What running a network needs, below training and evaluation alike: the device (``resolve_device``), the
precision (``Precision``: bf16 autocast, channels_last, fused Adam, torch.compile) and batch loaders
(``batch_loader``). Moved out of ``harness.train.engine`` so that distributed setup, DAMSM pretraining and
``run.json`` use them without importing the training loop."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from harness.config import Config
from harness.util.errors import HarnessError

if TYPE_CHECKING:  # type hints only
    from torch.utils.data import DataLoader

    from harness.data.dataset import TextImageDataset


# ------------------------------------------------------------------------------------------------------
# Device and precision
# ------------------------------------------------------------------------------------------------------
def resolve_device(name: str | torch.device = "auto", *, setting: str = "train.device") -> torch.device:
    """``auto`` → CUDA when available, else CPU; otherwise the named device (checked). Raises HarnessError naming
    ``setting`` for a name torch does not know or a CUDA device on a machine without CUDA."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise HarnessError(f"{setting}={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HarnessError(f"{setting}={name}: CUDA is not available on this machine (use auto or cpu)")
    return device


@dataclass
class Precision:
    """How the networks run: bf16 autocast or fp32; channels_last or NCHW; fused Adam; compiled G."""

    device: torch.device
    amp: bool = False
    channels_last: bool = False
    fused_adam: bool = False
    compile: bool = False

    @classmethod
    def from_config(cls, cfg: Config, device: torch.device) -> "Precision":
        cuda = device.type == "cuda"
        amp = cfg.train.amp == "bf16" or (cfg.train.amp == "auto" and cuda)
        # fused Adam: one pass per tensor on CUDA and on the CPU (≈3× faster than the CPU's default
        # per-tensor loop on AttnGAN's 98M discriminator parameters); same update rule
        return cls(device=device, amp=amp, channels_last=bool(cfg.train.channels_last and cuda), fused_adam=True,
                   compile=bool(cfg.train.compile))

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for the networks (the loss hooks cast their losses to fp32)."""
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def images(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def batch_loader(dataset: TextImageDataset, batches: list[list[int]], num_workers: int = 0,
                 pin_memory: bool = False) -> DataLoader:
    """Batches of the given item indices, collated by ``dataset.collate``, loaded by ``num_workers`` processes
    (in page-locked memory with ``pin_memory``, for a GPU). Item randomness comes from the data set's (seed,
    epoch, index) generators; creating the iterator draws nothing from the global torch generator (an explicit
    one is given)."""
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_sampler=batches, collate_fn=dataset.collate, num_workers=num_workers,
                      generator=torch.Generator(), pin_memory=pin_memory)
