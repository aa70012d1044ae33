"""CLIP-R-precision (``clip_rp``) and CLIPScore (``clip_score``) with openai-clip, from a local file
(PyPI ``openai-clip``; default ViT-B/32, ``ViT-B-32.pt`` checked by its sha256).

* ``clip_rp``: the R-precision protocol of ``r_precision.py`` (1 true + 99 other-class captions, R = 1, folds)
  with CLIP's image and text embeddings instead of DAMSM's (zero-shot CLIP, not the fine-tuned RN101 of Park
  et al.; TISE's COCO RP uses this one).
* ``clip_score``: mean over generated images of 100 · max(cos(image, caption), 0) (torchmetrics' scale).

Images: the uint8 image, bicubic (antialiased) resize to the model's input resolution (the images are square, so
CLIP's centre crop is the identity), /255, CLIP's mean/std. Captions: the caption's words (lower-cased tokens
as the data set stores them), truncated to CLIP's 77 tokens.
"""
from __future__ import annotations

import sys
import types
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.evaluation.metrics.interface import (EvalContext, GeneratedBatch, MetricResult, check_finite,
                                                  quantize_like_png)
from harness.evaluation.metrics.r_precision import RPrecision
from harness.core.state_dicts import load_weights_file
from harness.core.weights import find_weight, weight_sha256

CLIP_WEIGHTS = "clip_vit_b32"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def import_clip() -> types.ModuleType:
    """``import clip`` (PyPI ``openai-clip``), which does ``from pkg_resources import packaging``: that fails on
    setuptools ≥ 70 and without setuptools, so a stand-in ``pkg_resources`` exposing ``packaging`` is put into
    ``sys.modules`` first when the real one cannot be imported (openai/CLIP#446)."""
    if "clip" in sys.modules:
        return sys.modules["clip"]
    try:
        from pkg_resources import packaging  # noqa: F401
    except ImportError:
        import packaging
        import packaging.version

        shim = types.ModuleType("pkg_resources")
        shim.packaging = packaging  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
    import clip

    return clip


def load_clip(path: Path, device: torch.device) -> nn.Module:
    """A CLIP model (float32, eval) from an OpenAI ``.pt`` (TorchScript) or a plain state dict."""
    clip = import_clip()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
    except RuntimeError:
        state = load_weights_file(path, what="CLIP weight file")
    return clip.model.build_model(state).float().eval().requires_grad_(False).to(device)


class ClipEncoders:
    """CLIP's image and text embeddings as the metrics need them."""

    def __init__(self, model: nn.Module, device: torch.device, name: str, weights: dict[str, str]):
        self.model, self.device, self.name, self.weights = model, device, name, weights
        self.resolution = int(model.visual.input_resolution)
        self.mean = torch.tensor(CLIP_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(CLIP_STD, device=device).view(1, 3, 1, 1)
        self._last: tuple[int, Tensor] | None = None

    def batch_images(self, batch: GeneratedBatch, describe: Callable[[int], str]) -> Tensor:
        """Image embeddings of a generated batch, computed once however many metrics ask (keyed on its index);
        ``describe(caption_id)`` names the caption of an embedding that is not finite (NonFiniteError)."""
        if self._last is None or self._last[0] != batch.index:
            emb = self.images(batch.images_uint8)
            check_finite(emb, "CLIP image embedding", lambda r: describe(batch.caption_ids[r]))
            self._last = (batch.index, emb)
        return self._last[1]

    def images(self, images_uint8: Tensor) -> Tensor:
        x = images_uint8.to(self.device).float() / 255.0
        x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bicubic", align_corners=False,
                          antialias=True).clamp_(0, 1)
        with torch.no_grad():
            return self.model.encode_image((x - self.mean) / self.std).float()

    def texts(self, texts: list[str], batch_size: int = 256) -> Tensor:
        clip = import_clip()
        out = []
        with torch.no_grad():
            for lo in range(0, len(texts), batch_size):
                tokens = clip.tokenize(texts[lo: lo + batch_size], truncate=True).to(self.device)
                out.append(self.model.encode_text(tokens).float().cpu())
        return torch.cat(out)


def clip_encoders(ctx: EvalContext) -> ClipEncoders:
    """The CLIP model of this evaluation: ``--clip-model FILE`` (unverified) or the registered ViT-B/32."""
    given = ctx.options.value("clip_model")
    path = Path(given) if given else find_weight(ctx.plugins, CLIP_WEIGHTS)
    if not path.is_file():
        from harness.util.errors import HarnessError

        raise HarnessError(f"--clip-model {path}: no such file")

    def build() -> ClipEncoders:
        name = f"openai-clip {path.name}" + (" (user-given, unverified)" if given else "")
        return ClipEncoders(load_clip(path, ctx.device), ctx.device, name, {path.name: weight_sha256(path)})

    return ctx.share(f"clip:{path}", build)


def bank_texts(ctx: EvalContext) -> list[str]:
    """Every caption of the caption bank as text (all its words, not the subsampled ones)."""
    vocab = ctx.dataset.vocab
    return [vocab.decode(t) for t in ctx.bank.raw]


def _bank_embeddings(ctx: EvalContext, enc: ClipEncoders) -> Tensor:
    def build() -> Tensor:
        emb = enc.texts(bank_texts(ctx))
        check_finite(emb, "CLIP text embedding", ctx.describe_caption)
        return emb

    return ctx.share(f"clip-text:{enc.name}", build)


def make_clip_rp(ctx: EvalContext) -> RPrecision:
    enc = clip_encoders(ctx)
    cfg = ctx.cfg.eval
    variant = (f"{enc.name}, zero-shot; 1 true + {cfg.rp_candidates - 1} other-class captions, cosine, R=1, "
               f"{cfg.rp_folds} folds")
    return RPrecision(ctx, "clip_rp", lambda images: enc.images(quantize_like_png(images)),
                      _bank_embeddings(ctx, enc), variant=variant, weights=enc.weights,
                      encode_batch=lambda batch: enc.batch_images(batch, ctx.describe_caption))


class ClipScore:
    """Mean of 100 · max(cos(image, its caption), 0) over the generated images."""

    distributed_state = ("scores",)  # (harness.core.distributed)

    def __init__(self, ctx: EvalContext):
        self.ctx, self.enc = ctx, clip_encoders(ctx)
        self.text = _bank_embeddings(ctx, self.enc)
        self.scores: list[np.ndarray] = []

    def update(self, batch: GeneratedBatch) -> None:
        img = self.enc.batch_images(batch, self.ctx.describe_caption).cpu()
        txt = self.text[torch.as_tensor(batch.caption_ids, dtype=torch.long)]
        self.scores.append((100.0 * F.cosine_similarity(img, txt, dim=-1).clamp(min=0)).numpy())

    def finish(self) -> list[MetricResult]:
        s = np.concatenate(self.scores)
        return [MetricResult("clip_score", float(s.mean()), variant=f"{self.enc.name}, 100·max(cos, 0), mean over "
                             f"images", weights=self.enc.weights)]


def make_clip_score(ctx: EvalContext) -> ClipScore:
    return ClipScore(ctx)
