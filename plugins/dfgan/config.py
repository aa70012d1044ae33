"""DF-GAN's loss section: the common one plus the matching-aware gradient penalty's weight k and power p."""
from __future__ import annotations

from dataclasses import dataclass

from harness.config import LossConfig
from harness.config.rules import above, at_least, value


@dataclass
class DFGANLossConfig(LossConfig):
    gp_weight: float = value(2.0, at_least(0))  # k of MA-GP (0 turns the penalty off)
    gp_power: float = value(6.0, above(0))  # p of MA-GP: k·mean(‖∇‖^p)
