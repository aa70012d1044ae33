"""DAMSM encoders (AttnGAN's Deep Attentional Multimodal Similarity Model), shared by every method.

* ``RNNTextEncoder``: embedding (300) → dropout 0.5 → 1-layer bidirectional LSTM (128 per direction) over each
  caption's own length, as the reference's packed sequences → words B×256×T (zero at padding) and sentence
  B×256 (final h_n, [forward | backward]).
  Submodule names as the reference ``RNN_ENCODER`` (``encoder``, ``drop``, ``rnn``): the released
  ``text_encoder200.pth`` loads as it is.
* ``InceptionImageEncoder``: the torchvision Inception-v3 trunk (frozen) with the reference ``CNN_ENCODER``
  names; regions = ``emb_features`` (1×1 conv, no bias) of Mixed_6e (768×17×17) → B×256×17×17; global code =
  ``emb_cnn_code`` (Linear 2048→256) of Mixed_7c after an 8×8 average pool. Input in [−1, 1], resized bilinearly
  to 299 with align_corners=True, no ImageNet normalisation (as the released encoders were trained).
* ``SmallCNNImageEncoder``: a small CNN trained from scratch at the last stage's resolution (CPU presets).
"""
from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.util.errors import HarnessError
from harness.core.state_dicts import load_state_strict, load_weights_file, tensor_state
from harness.contract.types import DamsmEncoders, TextFeatures

if TYPE_CHECKING:  # pragma: no cover
    from harness.config import Config


class RNNTextEncoder(nn.Module):
    """captions B×T (long, 0 = padding), lengths B → TextFeatures(words B×H×T_max, sent B×H, mask, lengths)."""

    def __init__(self, vocab_size: int, word_dim: int = 300, hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        if hidden % 2:
            raise ValueError(f"hidden size {hidden} must be even (two directions)")
        self.hidden = hidden
        self.encoder = nn.Embedding(vocab_size, word_dim)
        self.drop = nn.Dropout(dropout)
        # The reference passes dropout=0.5 to a 1-layer LSTM, where it does nothing; it is left out here.
        self.rnn = nn.LSTM(word_dim, hidden // 2, num_layers=1, batch_first=True, bidirectional=True)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)  # reference init_weights

    def forward(self, captions: Tensor, lengths: Tensor) -> TextFeatures:
        """The packed bidirectional LSTM of the reference, computed on the padded batch without packing (packing
        needs the lengths on the host: a device → host synchronisation in every training step on a GPU). The
        backward direction reads each caption reversed within its own length, so padding never enters a
        caption's states; outputs at padding are zero, as ``pad_packed_sequence`` leaves them."""
        emb = self.drop(self.encoder(captions))  # B×T×E
        batch, t = captions.shape
        lengths_d = lengths.to(captions.device)
        steps = torch.arange(t, device=captions.device)
        valid = steps[None, :] < lengths_d[:, None]  # B×T
        reverse = torch.where(valid, lengths_d[:, None] - 1 - steps[None, :], steps[None, :])  # an involution
        fwd = self._direction(emb, "")  # B×T×H/2
        bwd_reversed = self._direction(_take_steps(emb, reverse), "_reverse")
        output = torch.cat([fwd, _take_steps(bwd_reversed, reverse)], dim=2) * valid[..., None]
        last = (lengths_d - 1).clamp(min=0)[:, None, None].expand(-1, 1, self.hidden // 2)
        # h_n: the forward state after the last word, the backward state after the first word
        sent = torch.cat([fwd.gather(1, last), bwd_reversed.gather(1, last)], dim=2).reshape(batch, self.hidden)
        words = output.transpose(1, 2)  # B×H×T
        return TextFeatures(words=words, sent=sent, mask=captions == 0, lengths=lengths)

    def _direction(self, x: Tensor, suffix: str) -> Tensor:
        """One direction of ``self.rnn`` (its ``…_l0`` or ``…_l0_reverse`` weights) run forward over x.

        x: B×T×E → B×T×H/2 (zero initial state, as the packed LSTM)."""
        r = self.rnn
        params = [getattr(r, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        # On the CPU the LSTM stays fp32 under bf16 autocast: oneDNN has no bf16 LSTM on CPUs without native bf16
        # (no avx512_bf16 / amx_bf16), and fp32 everywhere keeps one CPU's numbers equal to another's.
        cpu = x.device.type == "cpu"
        with torch.autocast("cpu", enabled=False) if cpu else contextlib.nullcontext():
            x = x.float() if cpu else x
            zeros = x.new_zeros(1, x.shape[0], self.hidden // 2)
            with warnings.catch_warnings():  # cuDNN copies one direction's weights out of the module's flat buffer
                warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
                output, _, _ = torch.lstm(x, (zeros, zeros), params, True, 1, 0.0, self.training, False, True)
        return output


def _take_steps(x: Tensor, index: Tensor) -> Tensor:
    """x[b, index[b, t]] for x B×T×C and index B×T."""
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[2]))


INCEPTION_TRUNK = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                   "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                   "Mixed_7a", "Mixed_7b", "Mixed_7c")


class InceptionImageEncoder(nn.Module):
    """images B×3×H×W in [−1, 1] → (regions B×D×17×17, code B×D). The Inception trunk is frozen."""

    input_size = 299

    def __init__(self, embedding_dim: int = 256):
        super().__init__()
        from torchvision.models import inception_v3

        trunk = inception_v3(weights=None, aux_logits=False, init_weights=False)
        for name in INCEPTION_TRUNK:
            self.add_module(name, getattr(trunk, name))
        for p in self.parameters():
            p.requires_grad_(False)
        self.emb_features = nn.Conv2d(768, embedding_dim, kernel_size=1, bias=False)
        self.emb_cnn_code = nn.Linear(2048, embedding_dim)
        nn.init.uniform_(self.emb_features.weight, -0.1, 0.1)  # reference init_trainable_weights
        nn.init.uniform_(self.emb_cnn_code.weight, -0.1, 0.1)

    def trunk(self) -> nn.ModuleDict:
        """The Inception modules under their torchvision names (a view: same module objects)."""
        return nn.ModuleDict({name: getattr(self, name) for name in INCEPTION_TRUNK})

    def load_imagenet_trunk(self, path: str | Path) -> None:
        """Load torchvision's ImageNet ``inception_v3_google-*.pth`` into the trunk (AuxLogits and fc ignored)."""
        state = tensor_state(load_weights_file(path, what="Inception-v3 weight file"), path)
        trunk_state = {k: v for k, v in state.items() if k.split(".", 1)[0] in INCEPTION_TRUNK}
        load_state_strict(self.trunk(), trunk_state, source=str(path))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear", align_corners=True)
        x = self.Conv2d_1a_3x3(x)
        x = self.Conv2d_2a_3x3(x)
        x = self.Conv2d_2b_3x3(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_3b_1x1(x)
        x = self.Conv2d_4a_3x3(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in INCEPTION_TRUNK[5:13]:  # Mixed_5b … Mixed_6e
            x = getattr(self, name)(x)
        regions = self.emb_features(x)  # 768×17×17 → D×17×17
        for name in INCEPTION_TRUNK[13:]:  # Mixed_7a … Mixed_7c
            x = getattr(self, name)(x)
        x = F.avg_pool2d(x, kernel_size=8).flatten(1)
        return regions, self.emb_cnn_code(x)


def _down(in_ch: int, out_ch: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class SmallCNNImageEncoder(nn.Module):
    """A small CNN trained from scratch (CPU presets): images → (regions B×D×r×r, code B×D).

    r = 8 for images of 64² and more, image_size / 4 below. Inputs of another size are resized bilinearly
    (align_corners=True) to ``image_size``.
    """

    def __init__(self, embedding_dim: int = 256, image_size: int = 64, base_channels: int = 32):
        super().__init__()
        self.image_size = image_size
        region = 8 if image_size >= 64 else max(1, image_size // 4)
        n_down = (image_size // region).bit_length() - 1
        if region * 2 ** n_down != image_size:
            raise ValueError(f"small_cnn image size must be a power of two ≥ 8, got {image_size}")
        layers: list[nn.Module] = []
        ch_in, ch = 3, base_channels
        for i in range(n_down):
            layers += _down(ch_in, ch, batch_norm=i > 0)
            ch_in, ch = ch, min(ch * 2, 256)
        self.features = nn.Sequential(*layers)
        self.code_net = nn.Sequential(*_down(ch_in, ch, batch_norm=True)) if region >= 2 else nn.Identity()
        code_ch = ch if region >= 2 else ch_in
        self.emb_features = nn.Conv2d(ch_in, embedding_dim, kernel_size=1, bias=False)
        self.emb_cnn_code = nn.Linear(code_ch, embedding_dim)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   align_corners=True)
        x = self.features(images)
        regions = self.emb_features(x)
        code = self.emb_cnn_code(self.code_net(x).mean(dim=(2, 3)))
        return regions, code


def build_damsm(cfg: "Config", vocab_size: int) -> DamsmEncoders:
    """Freshly initialised DAMSM encoders for ``cfg`` (``pretrain.damsm.image_encoder`` picks the image side;
    small_cnn works at the last stage's resolution). No weight file is read here."""
    from harness.config import stage_sizes

    damsm_cfg = cfg.pretrain.damsm
    dim = cfg.model.embedding_dim
    text = RNNTextEncoder(vocab_size, damsm_cfg.word_embedding_dim, dim)
    if damsm_cfg.image_encoder == "inception_v3":
        image: nn.Module = InceptionImageEncoder(dim)
    elif damsm_cfg.image_encoder == "small_cnn":
        image = SmallCNNImageEncoder(dim, stage_sizes(cfg)[-1])
    else:  # the config's Literal type prevents this
        raise HarnessError(f"unknown DAMSM image encoder {damsm_cfg.image_encoder!r}")
    return DamsmEncoders(text=text, image=image)


def load_text_encoder_file(encoder: nn.Module, path: str | Path) -> None:
    """Load a text encoder file (e.g. the released ``text_encoder200.pth``: reference RNN_ENCODER keys)."""
    state = tensor_state(load_weights_file(path, what="DAMSM text encoder file"), path)
    load_state_strict(encoder, state, source=str(path))


def load_image_encoder_file(encoder: nn.Module, path: str | Path) -> None:
    """Load an image encoder file (e.g. the released ``image_encoder200.pth``: reference CNN_ENCODER keys,
    possibly without BatchNorm ``num_batches_tracked``)."""
    state = tensor_state(load_weights_file(path, what="DAMSM image encoder file"), path)
    load_state_strict(encoder, state, source=str(path))


# DAMSM cache entries (trained here by harness.train.pretrain, or released files imported as they are)
TEXT_FILE, IMAGE_FILE, INFO_FILE = "text_encoder.pth", "image_encoder.pth", "info.json"


def load_damsm(damsm: DamsmEncoders, path: Path) -> None:
    """Load a DAMSM cache entry (trained here, or released files imported as they are) into freshly built
    encoders, strictly (``weights_only=True``)."""
    load_text_encoder_file(damsm.text, Path(path) / TEXT_FILE)
    load_image_encoder_file(damsm.image, Path(path) / IMAGE_FILE)


def damsm_info(path: Path) -> dict:
    """The ``info.json`` of a DAMSM cache entry ("trained here" or "imported", steps, Inception file)."""
    f = Path(path) / INFO_FILE
    return json.loads(f.read_text()) if f.is_file() else {}
