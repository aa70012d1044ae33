"""CAE-GAN's config sections: the model section gains the encoder / bank sizes and the ablation switch, the
pretrain section gains the encoder's pretraining stage (``MethodInfo.config_sections``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

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
    encoder_heads: int = 4
    encoder_dropout: float = 0.1
    bank_entries: int = 512
    bank_pool: int = 8
    retrieval_topk: int = 4
    retrieval_gamma: float = 10.0


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

    epochs: int = 30
    max_steps: Optional[int] = None
    batch_size: int = 48
    lr: float = 2e-4
    gamma3: float = 10.0
    bank_images: Optional[int] = None
    kmeans_iterations: int = 25
    seed: int = 0


@dataclass
class CAEGANPretrainConfig(PretrainConfig):
    caegan_encoder: EncoderPretrainConfig = field(default_factory=EncoderPretrainConfig)
