"""Import of the released DM-GAN generator (``bird_DMGAN.pth``, ``coco_DMGAN.pth``: the reference
``G_NET.state_dict()``, keys listed in ``reference_keys.txt``).

The layouts agree except for the dynamic memory: the reference keeps its parameters directly in the stage
(``h_net2.A.weight``), this port in a ``memory`` submodule (``h_net2.memory.A.weight``). Every other key is
the same, BatchNorm ``num_batches_tracked`` included (files without it load too: the harness tolerates its
absence). Shapes are checked by the harness's strict loader, which names the first offending key.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Mapping

from torch import Tensor

REFERENCE_KEYS_FILE = Path(__file__).with_name("reference_keys.txt")

# parameters of the reference NEXT_STAGE_G that belong to the dynamic memory
MEMORY_PARTS = ("A", "B", "M_r", "M_w", "key", "value", "response_gate")
_MEMORY_KEY = re.compile(r"^(h_net\d+)\.(" + "|".join(MEMORY_PARTS) + r")\.")


def reference_to_harness_key(key: str) -> str:
    """``h_net2.M_w.0.weight`` → ``h_net2.memory.M_w.0.weight``; every other key is unchanged."""
    return _MEMORY_KEY.sub(r"\1.memory.\2.", key)


def import_reference_generator_state(state: Mapping[str, Tensor]) -> "OrderedDict[str, Tensor]":
    """A reference ``G_NET`` state dict with its keys renamed for ``DMGANGenerator`` (order kept)."""
    return OrderedDict((reference_to_harness_key(k), v) for k, v in state.items())


def reference_keys() -> "OrderedDict[str, list[int]]":
    """The manifest ``reference_keys.txt``: reference key → shape, in state-dict order."""
    out: OrderedDict[str, list[int]] = OrderedDict()
    for line in REFERENCE_KEYS_FILE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, shape = line.partition(" ")
        out[key] = [int(s) for s in shape.strip("[] ").split(",") if s.strip()]
    return out
