"""The statistics every command shares: one bootstrap over prompts, its percentile interval, Student's t, and
the sign-flip permutation test of a paired difference.

One resampling definition (``resample_rows``: B x n indices drawn with replacement from one seeded numpy
generator) serves the HealthBench error bar, paired differences, diagnose's intervals and its slope. It is
written out rather than taken from ``scipy.stats.bootstrap`` because that function draws its resamples in
another order, so every published interval (the demo's table among them) would move; scipy gives the t
quantile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

BOOTSTRAP_SAMPLES = 1000  # error bars and single-sample intervals
PAIRED_SAMPLES = 10_000  # paired differences over prompts (compare-evals, compare, demo)
EXACT_SIGN_FLIP_MAX = 16  # up to 2**16 sign patterns are enumerated; beyond, PAIRED_SAMPLES random ones


def prompt_means(records: Sequence[dict[str, Any]], key: str = "score_normalized") -> dict[str, float]:
    """Each prompt id's mean ``key`` over its samples, the paired unit of every comparison (prompts in first-seen
    order); a record whose value is missing, not a number or nan (a judge failure) is left out."""
    acc: dict[str, list[float]] = {}
    for rec in records:
        val = rec.get(key)
        if isinstance(val, (int, float)) and not isinstance(val, bool) and not np.isnan(val):
            acc.setdefault(rec["id"], []).append(float(val))
    return {k: float(np.mean(v)) for k, v in acc.items()}


def resample_rows(n: int, samples: int, seed: int) -> np.ndarray:
    """``samples`` x ``n`` indices drawn with replacement: row b is bootstrap resample b."""
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def bootstrap_means(values: Sequence[float] | np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
                    ) -> np.ndarray:
    """The mean of each bootstrap resample of ``values`` (``ValueError`` when there are none)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no values to bootstrap")
    return arr[resample_rows(arr.size, samples, seed)].mean(axis=1)


def bootstrap_statistic(n: int, statistic: Callable[[np.ndarray], float], samples: int = BOOTSTRAP_SAMPLES,
                        seed: int = 0) -> np.ndarray:
    """``statistic(indices)`` for each bootstrap resample of ``n`` units (e.g. a slope refit on resampled prompts)."""
    return np.array([statistic(idx) for idx in resample_rows(n, samples, seed)], dtype=np.float64)


def percentile_ci(draws: Sequence[float] | np.ndarray, level: float = 0.95) -> list[float]:
    """The percentile interval of bootstrap draws: ``[lo, hi]`` at ``level``."""
    tail = 100.0 * (1.0 - level) / 2.0
    return [float(np.percentile(draws, tail)), float(np.percentile(draws, 100.0 - tail))]


def student_t_quantile(q: float, df: int) -> float:
    """Quantile of Student's t with ``df`` degrees of freedom (``0.5 < q < 1``), from scipy."""
    from scipy.stats import t as student_t

    if not 0.5 < q < 1 or df < 1:
        raise ValueError(f"need 0.5 < q < 1 and df >= 1, got q={q}, df={df}")
    return float(student_t.ppf(q, df))


def t_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float | None, list[float] | None]:
    """``(std, [lo, hi])`` of the mean of ``values`` by Student's t; ``(None, None)`` below two values."""
    d = np.asarray(values, dtype=np.float64)
    if d.size < 2:
        return None, None
    sd = float(d.std(ddof=1))
    half = student_t_quantile(0.5 + level / 2.0, d.size - 1) * sd / float(np.sqrt(d.size))
    mean = float(d.mean())
    return sd, [mean - half, mean + half]


def sign_flip_p(diffs: Sequence[float] | np.ndarray, samples: int = PAIRED_SAMPLES, seed: int = 0) -> float | None:
    """One-sided sign-flip permutation p-value of ``mean(diffs) > 0`` (paired units, e.g. prompts).

    Under no effect each paired difference is as likely to be negative as positive, so its sign is
    exchangeable: p is the share of sign patterns whose mean is at least the observed one. It is exact up to
    ``EXACT_SIGN_FLIP_MAX`` units (every pattern); beyond, ``samples`` random patterns with the observed one
    counted (``(1 + k) / (1 + samples)``, never 0). Valid at any n, unlike a bootstrap interval at n = 16.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0:
        return None
    observed = d.mean()
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))  # equal means computed in another order still count as ties
    if d.size <= EXACT_SIGN_FLIP_MAX:
        bits = (np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1
        means = ((1 - 2 * bits) * d).mean(axis=1)
        return float((means >= observed - tol).mean())
    signs = np.random.default_rng(seed).choice((-1.0, 1.0), size=(samples, d.size))
    k = int(((signs * d).mean(axis=1) >= observed - tol).sum())
    return (1 + k) / (1 + samples)


def paired_summary(diffs: Sequence[float] | np.ndarray, samples: int = PAIRED_SAMPLES, seed: int = 0
                   ) -> dict[str, Any]:
    """Mean of paired differences over units: percentile-bootstrap and Student-t 95% CIs, the one-sided
    sign-flip p-value of a rise, and how many units rose or fell."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0:
        return {"mean": None, "ci95": [None, None], "t_ci95": None, "p_value": None, "n": 0}
    return {"mean": float(d.mean()), "ci95": percentile_ci(bootstrap_means(d, samples, seed)),
            "t_ci95": t_interval(d)[1], "p_value": sign_flip_p(d, samples, seed), "n": int(d.size),
            "better": int((d > 0).sum()), "worse": int((d < 0).sum())}


def pooled_summary(diffs: Sequence[Sequence[float]] | np.ndarray, samples: int = PAIRED_SAMPLES, seed: int = 0
                   ) -> dict[str, Any]:
    """Paired differences from several training seeds (rows) on the same prompts (columns), pooled.

    The mean is over seeds and prompts. ``ci95`` resamples seeds, then prompts (both with replacement), so
    run-to-run variance is inside the interval; the t interval and the sign-flip p treat each prompt's mean
    over seeds as one paired unit (prompts are what the seeds share). With one seed it is ``paired_summary``.
    """
    m = np.asarray(diffs, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"need a seeds x prompts matrix, got shape {m.shape}")
    per_prompt = m.mean(axis=0)
    out = paired_summary(per_prompt, samples, seed)
    if m.shape[0] > 1:
        rng = np.random.default_rng(seed)
        rows = rng.integers(0, m.shape[0], size=(samples, m.shape[0]))
        cols = rng.integers(0, m.shape[1], size=(samples, m.shape[1]))
        draws = np.array([m[r][:, c].mean() for r, c in zip(rows, cols)])
        out["ci95"] = percentile_ci(draws)
    out.update(n_seeds=int(m.shape[0]), seed_means=[float(x) for x in m.mean(axis=1)])
    return out
