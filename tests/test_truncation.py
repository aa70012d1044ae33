"""eval.truncation: z = t·(N(0, 1) truncated to [−2, 2]), each standard normal draw mapped through the inverse CDF
(``harness.core.seed.truncated``), checked against scipy's truncated normal (bad values: tests/test_config_rules.py)."""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from harness.core.seed import truncated


def test_each_draw_maps_to_the_truncated_normal_quantile_of_its_own_probability():
    z = torch.randn(64, 100, generator=torch.Generator().manual_seed(0))
    expected = 0.88 * stats.truncnorm.ppf(stats.norm.cdf(z.double().numpy()), -2, 2)
    out = truncated(z, 0.88)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-6)
    assert out.abs().max() <= 0.88 * 2


def test_the_draws_follow_scipys_truncated_normal():
    z = torch.randn(20000, generator=torch.Generator().manual_seed(1))
    result = stats.kstest(truncated(z, 0.5).double().numpy(), stats.truncnorm(-2, 2, scale=0.5).cdf)
    assert result.pvalue > 1e-3, result
