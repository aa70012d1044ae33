"""Feature streams: one feature extractor run once per generated batch, shared by every metric that reads it,
plus the real images' features, computed once per (data set, split, resolution, extractor, weights) and cached
under ``<root>/.cache/real-features/<key>/`` (README "Run layout and records")."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from harness.core.cache import cached
from harness.util.atomic import write_file
from harness.evaluation.metrics.interface import EvalContext, GeneratedBatch, check_finite, real_to_uint8

# uint8 B×3×H×W images (on the evaluation device) → {layer name: B×d features}
Extract = Callable[[Tensor], dict[str, Tensor]]


class FeatureStream:
    """Features of the generated images under one extractor, and of the real evaluation images.

    name:     the extractor's name (part of the real-feature cache key and of every variant label)
    weights:  {file name: sha256} of the extractor's weights (part of the cache key and of the records)
    """

    distributed_state = ("_generated",)  # per-batch features, gathered across ranks (harness.core.distributed)

    def __init__(self, ctx: EvalContext, name: str, extract: Extract, layers: list[str], weights: dict[str, str],
                 batch_size: int = 64):
        self.ctx, self.name, self.extract, self.layers = ctx, name, extract, list(layers)
        self.weights, self.batch_size = dict(weights), batch_size
        self._seen: set[int] = set()
        self._generated: dict[str, list[np.ndarray]] = {k: [] for k in self.layers}
        self._real: dict[str, np.ndarray] | None = None

    def _run(self, images_uint8: Tensor, describe: Callable[[int], str]) -> dict[str, np.ndarray]:
        """Features of a batch; ``describe(row)`` names an image whose feature is not finite (NonFiniteError)."""
        out: dict[str, list[np.ndarray]] = {k: [] for k in self.layers}
        with torch.no_grad():
            for lo in range(0, len(images_uint8), self.batch_size):
                feats = self.extract(images_uint8[lo: lo + self.batch_size])
                for k in self.layers:
                    v = feats[k].detach().float().cpu().numpy()
                    check_finite(v, f"{self.name} feature {k!r}", lambda r, lo=lo: describe(lo + r))
                    out[k].append(v)
        return {k: np.concatenate(v) for k, v in out.items()}

    def process(self, batch: GeneratedBatch) -> None:
        """Extract the batch's features (once, however many metrics call this for the same batch)."""
        if batch.index in self._seen:
            return
        self._seen.add(batch.index)
        describe = lambda r: self.ctx.describe_caption(batch.caption_ids[r])  # noqa: E731
        for k, v in self._run(batch.images_uint8, describe).items():
            self._generated[k].append(v)

    def generated(self, layer: str) -> np.ndarray:
        return np.concatenate(self._generated[layer])

    def real(self, layer: str) -> np.ndarray:
        """The real evaluation images' features (cached on disk)."""
        if self._real is None:
            key = dict(self.ctx.dataset_key(), extractor=self.name, weights=self.weights, layers=self.layers)

            def build(tmp) -> None:
                chunks: dict[str, list[np.ndarray]] = {k: [] for k in self.layers}
                for real in self.ctx.real_batches():
                    describe = lambda r, idx=real.indices: self.ctx.describe_real(int(idx[r]))  # noqa: E731
                    for k, v in self._run(real_to_uint8(real.images[-1]).to(self.ctx.device), describe).items():
                        chunks[k].append(v)
                arrays = {k: np.concatenate(v) for k, v in chunks.items()}
                write_file(tmp / "features.npz", lambda f: np.savez(f, **arrays))

            path = cached(self.ctx.root, "real-features", key, build)
            with np.load(path / "features.npz") as z:
                self._real = {k: z[k] for k in self.layers}
        return self._real[layer]
