"""The statistics every command shares: one bootstrap over prompts, its percentile interval, Student's t.

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


def paired_summary(diffs: Sequence[float] | np.ndarray, samples: int = PAIRED_SAMPLES, seed: int = 0
                   ) -> dict[str, Any]:
    """Mean of paired differences, its percentile-bootstrap 95% CI over pairs, and how many rose or fell."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0:
        return {"mean": None, "ci95": [None, None], "n": 0}
    return {"mean": float(d.mean()), "ci95": percentile_ci(bootstrap_means(d, samples, seed)), "n": int(d.size),
            "better": int((d > 0).sum()), "worse": int((d < 0).sum())}
