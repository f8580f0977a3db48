"""rgsd.stats: the one bootstrap, checked against independent references (pure-Python resampling, scipy)."""

import random

import numpy as np
import pytest
from scipy import stats as sps

from rgsd.stats import (
    bootstrap_means,
    bootstrap_statistic,
    paired_summary,
    percentile_ci,
    resample_rows,
    t_interval,
)


def test_paired_summary_constant_and_against_independent_resampler():
    d = paired_summary([0.25] * 7)
    assert d["mean"] == 0.25 and d["ci95"] == [0.25, 0.25] and d["better"] == 7

    rng = random.Random(3)
    diffs = [rng.gauss(0.1, 0.3) for _ in range(40)]
    got = paired_summary(diffs, samples=20_000, seed=1)
    # independent resampler (pure Python) gives the same percentile interval up to Monte Carlo error
    r2 = random.Random(7)
    means = sorted(sum(r2.choice(diffs) for _ in diffs) / len(diffs) for _ in range(20_000))
    lo, hi = means[int(0.025 * len(means))], means[int(0.975 * len(means))]
    assert got["mean"] == pytest.approx(float(np.mean(diffs)))
    assert got["ci95"][0] == pytest.approx(lo, abs=0.01) and got["ci95"][1] == pytest.approx(hi, abs=0.01)
    assert got["ci95"][0] < got["mean"] < got["ci95"][1]


def test_t_interval_matches_scipy():
    rng = np.random.default_rng(0)
    d = rng.normal(0.05, 0.2, size=16)
    sd, (lo, hi) = t_interval(d)
    ref = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    assert sd == pytest.approx(d.std(ddof=1)) and (lo, hi) == pytest.approx(ref, rel=1e-12)
    assert t_interval([0.3]) == (None, None)


def test_one_resampling_definition():
    idx = resample_rows(5, 4, seed=2)
    assert idx.shape == (4, 5) and idx.min() >= 0 and idx.max() <= 4
    vals = np.array([0.1, 0.5, 0.2, 0.9, 0.4])
    assert np.allclose(bootstrap_means(vals, 4, seed=2), vals[idx].mean(axis=1))
    assert np.allclose(bootstrap_statistic(5, lambda i: float(vals[i].max()), 4, seed=2), vals[idx].max(axis=1))
    assert percentile_ci([1.0, 2.0, 3.0]) == [pytest.approx(1.05), pytest.approx(2.95)]
    with pytest.raises(ValueError):
        bootstrap_means([])
