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


def test_sign_flip_exact_matches_scipy_and_enumeration():
    from itertools import product

    from rgsd.stats import sign_flip_p

    rng = np.random.default_rng(4)
    for n in (2, 5, 12, 16):
        d = rng.normal(0.05, 0.2, size=n)
        ref = sps.permutation_test((d,), np.mean, permutation_type="samples", alternative="greater",
                                   n_resamples=np.inf).pvalue
        assert sign_flip_p(d) == pytest.approx(ref, rel=1e-12)
    # by hand: every sign pattern of three differences
    d3 = [0.3, -0.1, 0.2]
    obs = sum(d3) / 3
    hand = sum(sum(s * x for s, x in zip(signs, d3)) / 3 >= obs - 1e-12
               for signs in product((1, -1), repeat=3)) / 8
    assert sign_flip_p(d3) == hand == 2 / 8
    assert sign_flip_p([0.4]) == 0.5  # one unit: its sign or the flipped one


def test_sign_flip_sampled_beyond_exact_limit_and_ties():
    from rgsd.stats import EXACT_SIGN_FLIP_MAX, sign_flip_p

    rng = np.random.default_rng(5)
    d = rng.normal(0.03, 0.15, size=32)
    assert d.size > EXACT_SIGN_FLIP_MAX
    ref = sps.permutation_test((d,), np.mean, permutation_type="samples", alternative="greater",
                               n_resamples=200_000, random_state=1).pvalue
    got = sign_flip_p(d, samples=10_000, seed=0)
    assert got == pytest.approx(ref, abs=0.015) and 0 < got <= 1
    assert sign_flip_p([0.0] * 40) == 1.0  # no change at all: every pattern ties, no evidence
    assert sign_flip_p([0.1] * 40, samples=999) == pytest.approx(1 / 1000)  # only the observed pattern is as large
    assert sign_flip_p([]) is None


def test_paired_summary_reports_t_interval_and_p():
    d = [0.1, 0.2, -0.05, 0.15, 0.3, 0.0, 0.12, 0.08]
    s = paired_summary(d)
    ref = sps.t.interval(0.95, len(d) - 1, loc=np.mean(d), scale=sps.sem(d))
    assert s["t_ci95"] == pytest.approx(list(ref), rel=1e-12)
    assert s["p_value"] == pytest.approx(sps.permutation_test((np.array(d),), np.mean, permutation_type="samples",
                                                              alternative="greater", n_resamples=np.inf).pvalue)


def test_pooled_summary_resamples_seeds_and_prompts():
    from rgsd.stats import pooled_summary

    rng = np.random.default_rng(6)
    m = rng.normal(0.05, 0.1, size=(3, 20)) + rng.normal(0, 0.05, size=(3, 1))  # a per-seed shift
    got = pooled_summary(m, samples=20_000, seed=2)
    assert got["mean"] == pytest.approx(m.mean()) and got["n"] == 20 and got["n_seeds"] == 3
    assert got["seed_means"] == pytest.approx(list(m.mean(axis=1)))
    # independent two-stage resampler (pure Python): seeds, then prompts
    r = random.Random(9)
    rows = m.tolist()
    seeds_cols = []
    for _ in range(20_000):
        ss = [r.randrange(3) for _ in range(3)]
        cc = [r.randrange(20) for _ in range(20)]
        seeds_cols.append(sum(rows[s][c] for s in ss for c in cc) / 60)
    seeds_cols.sort()
    lo, hi = seeds_cols[500], seeds_cols[19_500]
    assert got["ci95"][0] == pytest.approx(lo, abs=0.006) and got["ci95"][1] == pytest.approx(hi, abs=0.006)
    # seed variance is inside: wider than the interval over per-prompt means alone
    one = paired_summary(m.mean(axis=0), samples=20_000, seed=2)
    assert got["ci95"][1] - got["ci95"][0] > one["ci95"][1] - one["ci95"][0]
    assert got["p_value"] == one["p_value"] and got["t_ci95"] == one["t_ci95"]
    single = pooled_summary(m[:1])
    assert single["ci95"] == paired_summary(m[0])["ci95"]
    with pytest.raises(ValueError):
        pooled_summary([1.0, 2.0])


def test_prompt_means_skips_failures_and_keeps_first_seen_order():
    from rgsd.stats import prompt_means

    recs = [{"id": "b", "score_normalized": 0.5}, {"id": "a", "score_normalized": 0.2},
            {"id": "b", "score_normalized": 1.0}, {"id": "a", "score_normalized": None},
            {"id": "a", "score_normalized": float("nan")}, {"id": "c", "score_normalized": True},
            {"id": "a", "other": 0.9}]
    got = prompt_means(recs)
    assert list(got) == ["b", "a"] and got["b"] == pytest.approx(0.75) and got["a"] == pytest.approx(0.2)
    assert prompt_means(recs, "other") == {"a": 0.9}
