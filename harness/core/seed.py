"""Seeding and random-number state for training (resume continues bit for bit on CPU).

Three sources of randomness, each reproducible on its own:

* the **data order**: one permutation per epoch, a pure function of (seed, epoch), so a resumed run needs only
  the epoch and its position in that permutation;
* the **noise z** fed to the generator: each row drawn from a generator seeded by (seed, global step, item
  index), so it depends neither on what ran before, nor on the item's position in the batch, nor on the number
  of ranks (``sample_noise``);
* draws inside the generator (conditioning augmentation ε): per item as well, from (seed, global step, item
  index) through ``harness.nn.item_noise.per_item_draws``, which the engine wraps around the generator forward;
* everything else (dropout, data augmentation that uses the global generators): the global python / numpy /
  torch (CPU and CUDA) states, saved in every checkpoint by ``rng_state`` as plain tensors (so
  ``torch.load(..., weights_only=True)`` reads them) and restored by ``set_rng_state``.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch

# Mixing constants keep the streams (epoch order, step noise, per-item noise, per-rank globals) apart.
_EPOCH_STREAM = 0x5EED_0E90C
_NOISE_STREAM = 0x5EED_2015E
_SAMPLE_STREAM = 0x5EED_5A3B1
_RANK_STREAM = 0x5EED_4A4C


def mix_seed(seed: int, index: int, stream: int) -> int:
    """A 63-bit seed from (seed, index) for one stream (splitmix64 finaliser)."""
    x = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + stream) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_permutation(seed: int, epoch: int, n: int) -> list[int]:
    """The order in which epoch ``epoch`` visits the ``n`` training items (a pure function of its arguments)."""
    g = torch.Generator().manual_seed(mix_seed(seed, epoch, _EPOCH_STREAM))
    return torch.randperm(n, generator=g).tolist()


def epoch_batches(seed: int, epoch: int, n: int, batch_size: int) -> list[list[int]]:
    """The epoch's batches of item indices; the last incomplete batch is dropped (as the reference loader)."""
    perm = epoch_permutation(seed, epoch, n)
    return [perm[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def step_noise(seed: int, step: int, batch_size: int, z_dim: int) -> torch.Tensor:
    """z ~ N(0, I) for global step ``step`` (CPU float32, ``batch_size × z_dim``); a rank takes its rows."""
    g = torch.Generator().manual_seed(mix_seed(seed, step, _NOISE_STREAM))
    return torch.randn(batch_size, z_dim, generator=g)


def fixed_noise(seed: int, n: int, z_dim: int) -> torch.Tensor:
    """The fixed noise of the sample sheets (the same at every sheet of a run)."""
    return step_noise(seed, -1, n, z_dim)


def item_rows(base: int, indices: "torch.Tensor | Sequence[int]", shape: Sequence[int], stream: int) -> torch.Tensor:
    """N(0, I) rows, row i of ``shape`` drawn from a generator seeded by (``base``, ``indices[i]``) in ``stream``:
    an item's row depends neither on its position nor on the other items (CPU float32)."""
    ids = indices.tolist() if isinstance(indices, torch.Tensor) else [int(i) for i in indices]
    return torch.stack([torch.randn(tuple(shape), generator=torch.Generator().manual_seed(mix_seed(base, i, stream)))
                        for i in ids])


def sample_noise(seed: int, step: int, indices: "torch.Tensor | Sequence[int]", z_dim: int) -> torch.Tensor:
    """z ~ N(0, I) per item of global step ``step``, row i from (seed, step, item index ``indices[i]``): the same
    row whichever rank or batch position draws the item (CPU float32, ``len(indices) × z_dim``)."""
    return item_rows(mix_seed(seed, step, _NOISE_STREAM), indices, (z_dim,), _SAMPLE_STREAM)


TRUNCATION_BOUND = 2.0


def truncated(z: torch.Tensor, truncation: float) -> torch.Tensor:
    """The truncation trick on standard normal draws: ``truncation`` · TN(0, 1; ±2), each element mapped by the
    inverse CDF (Φ⁻¹(Φ(−2) + Φ(z)·(Φ(2) − Φ(−2)))), so an item's row stays a function of its own draw; float64
    inside, returned in ``z``'s dtype."""
    lo, hi = (torch.special.ndtr(torch.tensor(s * TRUNCATION_BOUND, dtype=torch.float64)) for s in (-1, 1))
    u = lo + torch.special.ndtr(z.double()) * (hi - lo)
    return (truncation * torch.special.ndtri(u)).to(z.dtype)


def rank_stream_seed(seed: int, step: int, rank: int) -> int:
    """The seed of rank ``rank``'s global generators at step ``step`` of a distributed run (``rank=-1``: the
    evaluation's per-batch stream)."""
    return mix_seed(mix_seed(seed, step, _RANK_STREAM), rank + 1, _RANK_STREAM)


# ------------------------------------------------------------------------------------------------------
# Global RNG state, as plain tensors and lists (loadable with weights_only=True)
# ------------------------------------------------------------------------------------------------------
def rng_state() -> dict:
    """Every global random state: python, numpy, torch CPU and each CUDA device."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` saved (CUDA states only when the same number of devices is present)."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (sample sheets, evaluation) without disturbing the training run's random streams."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
