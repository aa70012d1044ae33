"""When a metric value rests on too few images to mean much ("underpowered").

A value is still computed and recorded; its record gets ``"underpowered": "<reason>"`` and the results table
marks the cell with a footnote and never marks it best. The rules:

* FID-type (``fid``, ``fid_tv``, ``probe_fid``): N ≤ the feature dimension d, for either side. The covariance of
  N ≤ d vectors has rank < d, so tr √(Σ₁Σ₂) and the value are dominated by sample size (Chong & Forsyth 2020:
  FID is biased, strongly so at small N).
* KID: fewer images than the configured subset size (``eval.kid_subset_size``): the subsets are then shrunk to
  what exists (torch-fidelity refuses instead).
* IS-type (``is``, ``is_ft``, ``probe_is``): fewer than 50 images per split; a split's marginal p(y) is then
  estimated from a handful of images (IS of 16-41 images prints 1.00 ± 0.00).
* R-precision (``rp``, ``rp_real``, ``rp_ext``, ``clip_rp``): fewer than 100 images per fold; a fold's
  percentage then moves in steps of more than 1 %.
"""
from __future__ import annotations

from typing import Optional

IS_MIN_PER_SPLIT = 50
RP_MIN_PER_FOLD = 100


def frechet_power(n_generated: int, n_real: Optional[int], dim: int) -> Optional[str]:
    """The reason a Fréchet distance of ``dim``-d features is underpowered, or None. ``n_real`` None or < 0:
    unknown (statistics from a file without a count), only the generated side is checked."""
    sides = [("generated", n_generated)] + ([("real", n_real)] if n_real is not None and n_real >= 0 else [])
    small = [f"{n} {what}" for what, n in sides if n <= dim]
    if not small:
        return None
    return f"{' and '.join(small)} images ≤ {dim} feature dimensions: the covariance is singular"


def kid_power(n_generated: int, n_real: int, subset_size: int) -> Optional[str]:
    """The reason a KID is underpowered (fewer images than the configured subset size), or None."""
    n = min(n_generated, n_real)
    if n >= subset_size:
        return None
    return f"{n} images < the KID subset size {subset_size}: subsets shrunk to {n}"


def is_power(n: int, splits: int) -> Optional[str]:
    """The reason an Inception Score over ``splits`` splits of ``n`` images is underpowered, or None."""
    per = n // max(splits, 1)
    if per >= IS_MIN_PER_SPLIT:
        return None
    return f"{n} images in {splits} splits: {per} per split < {IS_MIN_PER_SPLIT}"


def rp_power(n: int, folds: int) -> Optional[str]:
    """The reason an R-precision over ``folds`` folds of ``n`` images is underpowered, or None."""
    per = n // max(folds, 1)
    if per >= RP_MIN_PER_FOLD:
        return None
    return f"{n} images in {folds} folds: {per} per fold < {RP_MIN_PER_FOLD}"
