"""IS / FID / KID math against independent numpy/scipy computations (and torch-fidelity's own functions)."""
import numpy as np
import pytest
import scipy.linalg
import scipy.special
import torch

from harness.evaluation.metrics.frechet import (
    GaussianStats,
    frechet_distance,
    gaussian_stats,
    inception_score,
    kernel_distance,
    polynomial_mmd2,
)


def _features(seed: int, n: int = 4000, d: int = 64, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = np.eye(d) + 0.3 * rng.standard_normal((d, d)) / np.sqrt(d)  # well conditioned
    return rng.standard_normal((n, d)) @ mix + shift + 0.1 * rng.standard_normal(d)


def test_fid_matches_scipy_sqrtm():
    a, b = _features(0), _features(1, shift=0.2)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    got = frechet_distance(gaussian_stats(a), gaussian_stats(b))
    assert got == pytest.approx(expected, rel=1e-5)
    assert frechet_distance(gaussian_stats(a), gaussian_stats(a)) == pytest.approx(0.0, abs=1e-6)


def test_fid_equals_torch_fidelity():
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    a, b = _features(2).astype(np.float32), _features(3, shift=0.1).astype(np.float32)
    tf = fid_statistics_to_metric(fid_features_to_statistics(torch.from_numpy(a)),
                                  fid_features_to_statistics(torch.from_numpy(b)), verbose=False)
    assert frechet_distance(gaussian_stats(a), gaussian_stats(b)) == pytest.approx(
        tf["frechet_inception_distance"], rel=1e-6)


def test_gaussian_stats_roundtrip_npz(tmp_path):
    s = gaussian_stats(_features(4, n=100, d=8))
    s.save(tmp_path / "s.npz")
    t = GaussianStats.load(tmp_path / "s.npz")
    np.testing.assert_allclose(t.mu, s.mu)
    np.testing.assert_allclose(t.sigma, s.sigma)
    np.savez(tmp_path / "bad.npz", m=s.mu)
    with pytest.raises(ValueError, match="mu"):
        GaussianStats.load(tmp_path / "bad.npz")


def _naive_mmd2(x, y):
    """Unbiased MMD² written out with explicit off-diagonal masks (independent of the implementation)."""
    d = x.shape[1]
    k = lambda p, q: (p @ q.T / d + 1.0) ** 3  # noqa: E731
    m = len(x)
    off = ~np.eye(m, dtype=bool)
    return k(x, x)[off].mean() + k(y, y)[off].mean() - 2 * k(x, y).mean()


def test_kid_matches_independent_computation():
    a, b = _features(5), _features(6, shift=0.05)
    mean, std, size = kernel_distance(a, b, subsets=8, subset_size=1000, seed=2020)
    rng = np.random.RandomState(2020)
    vals = []
    for _ in range(8):
        x = a[rng.choice(len(a), 1000, replace=False)]
        y = b[rng.choice(len(b), 1000, replace=False)]
        vals.append(_naive_mmd2(x, y))
    assert size == 1000
    assert mean == pytest.approx(np.mean(vals), rel=1e-5)
    assert std == pytest.approx(np.std(vals), rel=1e-5)


def test_kid_equals_torch_fidelity_and_caps_subset_size():
    from torch_fidelity.metric_kid import kid_features_to_metric

    a, b = _features(7, n=600, d=32), _features(8, n=600, d=32, shift=0.1)
    tf = kid_features_to_metric(torch.from_numpy(a), torch.from_numpy(b), kid_subsets=5, kid_subset_size=500,
                                verbose=False)
    mean, std, _ = kernel_distance(a, b, subsets=5, subset_size=500)
    assert mean == pytest.approx(tf["kernel_inception_distance_mean"], rel=1e-6)
    assert std == pytest.approx(tf["kernel_inception_distance_std"], rel=1e-6)
    _, _, size = kernel_distance(a[:50], b, subsets=3, subset_size=1000)
    assert size == 50  # never above the number of images
    assert polynomial_mmd2(a[:40], a[:40]) < 0  # unbiased: an identical sample gives a slightly negative value


def test_inception_score_matches_formula():
    rng = np.random.default_rng(9)
    logits = rng.standard_normal((1000, 20)) * 3
    got, got_std = inception_score(logits, splits=10, shuffle=False)
    scores = []
    for part in np.split(logits, 10):
        p = scipy.special.softmax(part, axis=1)
        py = p.mean(0)
        kl = (p * (np.log(p) - np.log(py))).sum(1).mean()
        scores.append(np.exp(kl))
    assert got == pytest.approx(np.mean(scores), rel=1e-10)
    assert got_std == pytest.approx(np.std(scores), rel=1e-8)
    # confident, uniformly spread predictions → IS = number of classes; constant predictions → 1
    onehot = np.eye(20)[np.arange(1000) % 20] * 100
    assert inception_score(onehot, splits=10, shuffle=False)[0] == pytest.approx(20, rel=1e-6)
    assert inception_score(np.zeros((100, 5)), splits=10)[0] == pytest.approx(1.0)


def test_inception_score_equals_torch_fidelity_and_temperature():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = np.random.default_rng(10).standard_normal((500, 30)) * 2
    tf = isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=True, rng_seed=2020)
    mean, std = inception_score(logits, splits=10, seed=2020)
    assert mean == pytest.approx(tf["inception_score_mean"], rel=1e-9)
    assert std == pytest.approx(tf["inception_score_std"], rel=1e-7)
    # temperature T divides the logits (TISE's IS*)
    assert inception_score(logits, temperature=0.5)[0] == pytest.approx(inception_score(logits * 2)[0], rel=1e-12)
