"""ECAGAN networks (Zhang, Yi, Tang, Wang, "Text-to-Image Synthesis Method Based on Channel Attention
Mechanism", Computer Engineering 2022, 48(4):206-212), top to bottom. DM-GAN's generator with two changes:

    s, w  = sentence / word features, mask = padding
    c, μ, logvar = CA(s)                                  ``ca_net``   (DM-GAN's, unchanged)
    R_0 = F_0(z, c)       FC → (16·GF, 4, 4) → 4 CAUPBlocks → (GF, 64, 64)
                          ``h_net1``: DM-GAN's InitStageG whose upBlocks (nearest ×2 → conv → BN → GLU) are
                          replaced by CAUPBlocks (CARAFE ×2 → conv → BN → GLU)        [model.upsample: carafe]
    R_k = F_k(R_{k-1}, w) dynamic memory → ResBlocks → upBlock     ``h_net2``, ``h_net3`` (DM-GAN's, unchanged)
    I_k = tanh(conv3×3(ECA(R_k)))                         ``img_net1..3``: the channel attention convolution
                          module, ECA then DM-GAN's image head                        [model.channel_attention: eca]

With ``model.upsample: nearest`` and ``model.channel_attention: none`` the generator is DM-GAN's exactly.
Discriminators are DM-GAN's (``build_dmgan_discriminators``).
"""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from harness.nn.generator_blocks import ImageHead
from harness.nn.init import reference_init
from plugins.dmgan.model import DMGANGenerator, build_dmgan_discriminators
from plugins.ecagan.channel_attention import ChannelAttentionConv
from plugins.ecagan.content_aware_upsample import CAUPBlock, KernelPredictor

if TYPE_CHECKING:  # pragma: no cover
    from harness.config import Config

__all__ = ["ECAGANGenerator", "build_ecagan_generator",
           "build_dmgan_discriminators"]


class ECAGANGenerator(DMGANGenerator):
    """ECAGAN's generator: ``forward(noise B×z, text) -> GenOutput``, as DM-GAN's (inherited), composed through
    DM-GAN's constructor: CAUPBlocks as F_0's ``up_block`` and ECA-then-head as ``image_head``.

    upsample:          "carafe" (CAUPBlocks in F_0) or "nearest" (DM-GAN's upBlocks)
    channel_attention: "eca" (ECA before every image head) or "none"
    k_up, k_enc, compressed_channels: CARAFE's sizes; eca_gamma, eca_b: ECA's kernel rule
    Every other keyword goes to ``DMGANGenerator``.
    """

    def __init__(self, *, upsample: str = "carafe", channel_attention: str = "eca", k_up: int = 5, k_enc: int = 3,
                 compressed_channels: int = 64, eca_gamma: int = 2, eca_b: int = 1, **dmgan_kwargs):
        if upsample not in ("carafe", "nearest"):
            raise ValueError(f"upsample must be carafe or nearest, got {upsample!r}")
        if channel_attention not in ("eca", "none"):
            raise ValueError(f"channel_attention must be eca or none, got {channel_attention!r}")
        if upsample == "carafe":  # F_0's doubling blocks: CARAFE ×2 → conv → BN → GLU
            dmgan_kwargs["up_block"] = partial(CAUPBlock, k_up=k_up, k_enc=k_enc,
                                               compressed_channels=compressed_channels)
        if channel_attention == "eca":  # I_k = head(ECA(R_k))
            dmgan_kwargs["image_head"] = lambda channels: ChannelAttentionConv(channels, ImageHead(channels),
                                                                               eca_gamma, eca_b)
        super().__init__(**dmgan_kwargs)
        self.upsample, self.channel_attention = upsample, channel_attention

    @classmethod
    def from_config(cls, cfg: "Config", **kwargs) -> "ECAGANGenerator":
        m = cfg.model
        return super().from_config(cfg, upsample=m.upsample, channel_attention=m.channel_attention,
                                   k_up=m.carafe.k_up, k_enc=m.carafe.k_enc,
                                   compressed_channels=m.carafe.compressed_channels,
                                   eca_gamma=m.eca.gamma, eca_b=m.eca.b, **kwargs)

    def initialise(self) -> "ECAGANGenerator":
        """DM-GAN's reference initialisation for every layer, except CARAFE's kernel predictors, which keep
        CARAFE's own (near-uniform kernels at the start)."""
        reference_init(self)
        for module in self.modules():
            if isinstance(module, KernelPredictor):
                module.reset_parameters()
        return self


def build_ecagan_generator(cfg: "Config") -> ECAGANGenerator:
    """The initialised generator of a resolved ECAGAN config."""
    return ECAGANGenerator.from_config(cfg).initialise()
