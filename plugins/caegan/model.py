"""CAE-GAN's generator (Tan et al., Computer Science 2022, 49(2):107-115): DM-GAN whose first stage is
conditioned on the cross-attention feature f_c instead of the sentence feature.

    s, sentence, mask  = DAMSM text features (TextFeatures)
    F_R                = RegionBank.retrieve(sentence)            training split prototypes, never the caption's image
    f_c, W             = C_E(s, F_R)                               ``encoder`` (frozen, pretrained; W = s)
    c, μ, logvar       = CA(f_c)                                   ``ca_net`` (KL term = L_CA)
    F_0                = G_0(cat(c, z))                            DM-GAN's first stage: condition first, noise second
    F_1                = G_1(DM(F_0, W)),  F_2 = G_2(DM(F_1, W))   DM-GAN's dynamic-memory stages (imported)
    I_i                = tanh(conv3×3(F_i))

The seed text writes "G0(f_c + z)"; DM-GAN (and AttnGAN) feed the first stage cat(c, z) with c drawn by
conditioning augmentation, and L_CA in CAE-GAN's loss is that augmentation's KL term, so "+" is read as
DM-GAN's concatenation of the augmented condition and the noise.

Everything except the encoder comes from ``plugins.dmgan.model.DMGANGenerator`` (subclassed through its
constructor and its ``condition_input`` method, not copied; the encoder is a constructor argument). With
``model.text_encoder = damsm`` there is no encoder and the generator is DM-GAN's exactly (the ablation).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from harness.nn.init import reference_init
from harness.contract.types import TextFeatures
from plugins.caegan.cross_attention_encoder import CrossAttentionEncoder, EncoderOutput
from plugins.dmgan.model import DMGANGenerator


class CAEGANGenerator(DMGANGenerator):
    """DM-GAN's generator with CA reading f_c = C_E(s, F_R).

    encoder: the pretrained cross-attention encoder C_E (with its region bank), or None for the ``damsm``
             ablation (CA then reads the sentence feature: DM-GAN's generator exactly). Every other keyword goes
             to ``DMGANGenerator``.

    The encoder is a frozen submodule: its parameters and the bank's buffers are in this generator's state dict
    (so in every checkpoint), it stays in eval() when the generator trains, and no gradient flows into it.
    ``initialise`` applies DM-GAN's reference initialisation to every other submodule, so the pretrained encoder
    is never re-initialised.
    """

    def __init__(self, *, encoder: Optional[CrossAttentionEncoder] = None, **dmgan_kwargs):
        super().__init__(**dmgan_kwargs)
        self.encoder = encoder.requires_grad_(False).eval() if encoder is not None else None

    def initialise(self) -> "CAEGANGenerator":
        """DM-GAN's reference init of every submodule but the encoder (in module order, so the draws for a
        seed are those of ``reference_init`` on DM-GAN's generator)."""
        for child in self.children():
            if child is not self.encoder:
                reference_init(child)
        return self

    def train(self, mode: bool = True) -> "CAEGANGenerator":
        super().train(mode)
        if self.encoder is not None:
            self.encoder.eval()  # frozen: no attention dropout while G trains
        return self

    def encode(self, text: TextFeatures) -> EncoderOutput:
        """C_E on the retrieval path (for the generator and for inspection)."""
        if self.encoder is None:
            raise RuntimeError("this CAE-GAN generator has no cross-attention encoder (model.text_encoder=damsm)")
        with torch.no_grad():
            return self.encoder.encode(text.words.float(), text.mask, text.sent.float())

    def condition_input(self, text: TextFeatures) -> Tensor:
        """f_c (B×D); the sentence feature in the ``damsm`` ablation."""
        if self.encoder is None:
            return text.sent
        return self.encode(text).f_c.to(text.sent.dtype)
