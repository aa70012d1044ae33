"""The statistics behind IS, FID and KID, on feature arrays (numpy, float64).

The formulas follow torch-fidelity 0.4.0 (``metric_fid.py``, ``metric_kid.py``, ``metric_isc.py``) so that a
number computed here equals the number torch-fidelity computes from the same features:

* FID  = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^{1/2}, tr (Σ₁Σ₂)^{1/2} = Σ √λᵢ(Σ₁Σ₂);
* KID  = mean over subsets of the unbiased MMD² with the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³;
* IS   = exp(E_x KL(p(y|x) ‖ p(y))) per split, mean ± std (population) over splits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.util.atomic import write_file


def _require_finite(x: np.ndarray, what: str) -> np.ndarray:
    """``x`` unchanged; ValueError naming the first non-finite row (a NaN must never enter a statistic)."""
    bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1)) if x.size else []
    if len(bad):
        raise ValueError(f"{what}: {len(bad)} row(s) hold NaN or inf (first: row {int(bad[0])})")
    return x


@dataclass
class GaussianStats:
    """Mean and covariance of a feature set (what FID compares; what a pytorch-fid .npz holds)."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int

    def save(self, path) -> None:
        write_file(path, lambda f: np.savez(f, mu=self.mu, sigma=self.sigma, count=np.int64(self.count)))

    @classmethod
    def load(cls, path) -> "GaussianStats":
        with np.load(path) as z:
            if "mu" not in z or "sigma" not in z:
                raise ValueError(f"{path}: expected arrays 'mu' and 'sigma' (pytorch-fid format), found {list(z)}")
            count = int(z["count"]) if "count" in z else -1
            return cls(np.asarray(z["mu"], np.float64), np.asarray(z["sigma"], np.float64), count)


def gaussian_stats(features: np.ndarray) -> GaussianStats:
    """μ and the unbiased covariance Σ (N − 1 in the denominator, as np.cov) of N×d features."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors (N×d), got shape {f.shape}")
    _require_finite(f, "features")
    return GaussianStats(f.mean(axis=0), np.cov(f, rowvar=False), f.shape[0])


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """FID between two Gaussians (torch-fidelity's eigenvalue form of tr √(Σ₁Σ₂))."""
    if a.mu.shape != b.mu.shape or a.sigma.shape != b.sigma.shape:
        raise ValueError(f"feature dimensions differ: {a.mu.shape} vs {b.mu.shape}")
    diff = a.mu - b.mu
    return float(diff.dot(diff) + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * trace_sqrt_product(a.sigma, b.sigma))


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr (Σ₁Σ₂)^{1/2} = Σ √λᵢ(Σ₁Σ₂), the eigenvalues taken from the similar symmetric PSD matrix
    Σ₁^{1/2} Σ₂ Σ₁^{1/2} (two symmetric eigendecompositions: several times faster than torch-fidelity's general
    ``eigvals(Σ₁Σ₂)`` at 2048-d, the same value to rounding; tiny negative eigenvalues count as 0, as the real
    part of their complex square root does there)."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())


def polynomial_mmd2(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> float:
    """Unbiased MMD² of two equal-size samples with k(x, y) = (xᵀy / d + coef0)^degree."""
    m, d = x.shape
    if y.shape != (m, d):
        raise ValueError(f"MMD subsets must have the same shape, got {x.shape} and {y.shape}")
    k_xx = (x @ x.T / d + coef0) ** degree
    k_yy = (y @ y.T / d + coef0) ** degree
    k_xy = (x @ y.T / d + coef0) ** degree
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kernel_distance(real: np.ndarray, fake: np.ndarray, *, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 2020) -> tuple[float, float, int]:
    """KID: mean and std (population) of the MMD² over ``subsets`` random subsets drawn without replacement.

    The subset size is capped at the size of the smaller set (torch-fidelity refuses instead), and the size used
    is returned so the record can say so.
    """
    real = _require_finite(np.asarray(real, dtype=np.float64), "KID real features")
    fake = _require_finite(np.asarray(fake, dtype=np.float64), "KID generated features")
    size = int(min(subset_size, len(real), len(fake)))
    if size < 2:
        raise ValueError(f"KID needs at least 2 images on each side, got {len(real)} real and {len(fake)} generated")
    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        a = real[rng.choice(len(real), size, replace=False)]
        b = fake[rng.choice(len(fake), size, replace=False)]
        mmds[i] = polynomial_mmd2(a, b)
    return float(mmds.mean()), float(mmds.std()), size


def inception_score(logits: np.ndarray, *, splits: int = 10, shuffle: bool = True, seed: int = 2020,
                    temperature: float = 1.0) -> tuple[float, float]:
    """IS = exp(mean_x KL(p(y|x) ‖ p̂(y))) per split (p̂ = the split's mean prediction); mean ± std over splits.

    ``temperature`` divides the logits before the softmax (TISE's IS*). Splits are the contiguous slices
    ``[i·N/s, (i+1)·N/s)`` after an optional seeded shuffle, as torch-fidelity.
    """
    z = _require_finite(np.asarray(logits, dtype=np.float64), "IS logits") / float(temperature)
    n = len(z)
    if n < splits:
        raise ValueError(f"IS with {splits} splits needs at least {splits} images, got {n}")
    if shuffle:
        z = z[np.random.RandomState(seed).permutation(n)]
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        p_c, log_p_c = p[lo:hi], log_p[lo:hi]
        log_q = np.log(p_c.mean(axis=0, keepdims=True))
        kl = (p_c * (log_p_c - log_q)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))
