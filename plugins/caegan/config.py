"""CAE-GAN's config sections: the model section gains the encoder / bank sizes and the ablation switch, the
pretrain section gains the encoder's pretraining stage (``MethodInfo.config_sections``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from harness.config.rules import above, at_least, between, value
from harness.config import ModelConfig, PretrainConfig


@dataclass
class CAEGANModelConfig(ModelConfig):
    """DM-GAN's model keys plus the cross-attention encoder and its region bank.

    text_encoder:    cross_attention = CAE-GAN (G0 conditioned on CA(f_c)); damsm = DM-GAN's plain conditioning
                     (CA(sentence)), the ablation
    encoder_heads:   attention heads of C_E (width embedding_dim / heads each)
    encoder_dropout: dropout on both attention maps (pretraining only; C_E is frozen in eval() inside G)
    bank_entries:    K prototypes in the region bank
    bank_pool:       P: bank regions are average-pooled to P×P (N = P² region tokens)
    retrieval_topk:  entries mixed per caption
    retrieval_gamma: softmax temperature of the mix, weights = softmax(γ·cos)
    """

    text_encoder: Literal["cross_attention", "damsm"] = "cross_attention"
    encoder_heads: int = value(4, at_least(1))
    encoder_dropout: float = value(0.1, between(0, 1, hi_open=True))
    bank_entries: int = value(512, at_least(1))
    bank_pool: int = value(8, at_least(1))
    retrieval_topk: int = value(4, at_least(1))
    retrieval_gamma: float = value(10.0, above(0))


@dataclass
class EncoderPretrainConfig:
    """The ``caegan_encoder`` pretraining stage (README "Pretraining objective").

    epochs / max_steps: passes over the training split / a cap on iterations (CPU presets)
    batch_size, lr:     Adam (β 0.5, 0.999 as DAMSM) on C_E's parameters
    gamma3:             logit scale of the contrastive loss (DAMSM's γ3)
    bank_images:        encode at most this many training images for the bank (None = all)
    kmeans_iterations:  spherical k-means iterations for the bank
    seed:               bank clustering and encoder initialisation (the stage is shared by every run seed)
    """

    epochs: int = value(30, at_least(1))
    max_steps: Optional[int] = value(None, at_least(1))
    batch_size: int = value(48, at_least(2))
    lr: float = value(2e-4, above(0))
    gamma3: float = value(10.0, above(0))
    bank_images: Optional[int] = value(None, at_least(1))
    kmeans_iterations: int = value(25, at_least(1))
    seed: int = value(0, at_least(0))


@dataclass
class CAEGANPretrainConfig(PretrainConfig):
    caegan_encoder: EncoderPretrainConfig = field(default_factory=EncoderPretrainConfig)
