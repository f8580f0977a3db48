"""The statistics of ``rgsd diagnose``, as pure functions over plain Python values.

Vocabulary. A *response* is keyed by ``(prompt_id, sample)``; an *item* by ``(prompt_id, sample,
criterion_id)``. A criterion is *credited* when the response earns its weight: a positive criterion that is
met, or a negative (penalty) criterion that is not met. ``None`` is a judge failure: never counted as
credited or rejected, always counted. Confidence intervals are 95% bootstrap percentile intervals that
resample *prompts* (the samples of one prompt move together), seeded, so every number is reproducible.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rgsd.stats import bootstrap_means, bootstrap_statistic, percentile_ci

Key = tuple[str, int]  # (prompt_id, sample)
ItemKey = tuple[str, int, str]  # (prompt_id, sample, criterion_id)
PANEL_RULES = ("all", "majority")
N_BOOT = 1000


def credited(polarity: str, met: bool | None) -> bool | None:
    """Whether a verdict earns the criterion's weight (``None`` stays a failure)."""
    if met is None:
        return None
    return bool(met) if polarity == "positive" else not met


# ---- means with CIs over prompts ------------------------------------------------------------------------
def per_prompt_means(values: Mapping[Key, float | None]) -> dict[str, float]:
    """Mean over each prompt's samples, skipping ``None``; prompts with no value are left out."""
    acc: dict[str, list[float]] = {}
    for (pid, _), v in values.items():
        if v is not None:
            acc.setdefault(pid, []).append(float(v))
    return {pid: float(np.mean(v)) for pid, v in acc.items()}


def bootstrap_mean_ci(
    per_prompt: Sequence[float], n_boot: int = N_BOOT, seed: int = 0, clip: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Mean over prompts and its 95% bootstrap percentile CI (``clip`` bounds mean and CI, e.g. (0, 1))."""
    arr = np.asarray(per_prompt, dtype=np.float64)
    if arr.size == 0:
        return {"mean": None, "ci95": None, "n_prompts": 0}
    (lo, hi), mean = percentile_ci(bootstrap_means(arr, n_boot, seed)), float(arr.mean())
    if clip is not None:
        lo, hi, mean = (min(clip[1], max(clip[0], x)) for x in (lo, hi, mean))
    return {"mean": mean, "ci95": [lo, hi], "n_prompts": int(arr.size)}


# ---- slope of the proxy-reference gap over steps -------------------------------------------------------
def ols_slope(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Least-squares slope of ``y`` on ``x`` (``None`` with fewer than two distinct ``x``)."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xa.size < 2 or np.ptp(xa) == 0:
        return None
    xc = xa - xa.mean()
    return float((xc * (ya - ya.mean())).sum() / (xc * xc).sum())


def slope_per_100_steps(
    steps: Sequence[int], per_prompt: Sequence[Mapping[str, float]], n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, Any]:
    """Slope per 100 steps of the mean of ``per_prompt[i]`` (prompt -> value at checkpoint ``i``).

    The point estimate fits the checkpoint means (over the prompts every checkpoint has); the CI resamples
    those prompts jointly across checkpoints and refits.
    """
    if len(steps) != len(per_prompt):
        raise ValueError(f"{len(steps)} steps but {len(per_prompt)} checkpoints of values")
    common = sorted(set.intersection(*(set(p) for p in per_prompt))) if per_prompt else []
    out: dict[str, Any] = {"steps": list(steps), "n_prompts": len(common), "per_100_steps": None, "ci95": None}
    if len(common) == 0 or len(set(steps)) < 2:
        return out
    mat = np.array([[p[k] for k in common] for p in per_prompt], dtype=np.float64)  # [checkpoint, prompt]
    slope = ols_slope(steps, mat.mean(axis=1))
    out["per_100_steps"] = None if slope is None else 100.0 * slope
    boots = bootstrap_statistic(len(common), lambda idx: 100.0 * ols_slope(steps, mat[:, idx].mean(axis=1)),  # type: ignore[operator]
                                n_boot, seed)
    out["ci95"] = percentile_ci(boots)
    return out


# ---- exploitation rate ---------------------------------------------------------------------------------
@dataclass
class Exploitation:
    """Newly credited proxy items between two checkpoints, and the share the reference rejects."""

    rate: float | None  # None when nothing was newly credited
    new_weight: float
    exploited_weight: float
    n_new: int
    n_exploited: int
    n_undecided: int  # items left out because a proxy or reference verdict needed for them failed
    exploited: list[ItemKey] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "new_weight": self.new_weight,
            "exploited_weight": self.exploited_weight,
            "n_new": self.n_new,
            "n_exploited": self.n_exploited,
            "n_undecided": self.n_undecided,
        }


def rejected_by_panel(credits: Sequence[bool | None], rule: str = "all") -> bool | None:
    """Whether the reference panel rejects an item: every judge (``all``) or more than half (``majority``).

    ``None`` when a panel member failed on the item (the decision would depend on the missing verdict).
    """
    if rule not in PANEL_RULES:
        raise ValueError(f"panel rule must be one of {PANEL_RULES}, got {rule!r}")
    if not credits or any(c is None for c in credits):
        return None
    rejections = sum(1 for c in credits if c is False)
    return rejections == len(credits) if rule == "all" else rejections * 2 > len(credits)


def exploitation_rate(
    previous: Mapping[ItemKey, bool | None],
    current: Mapping[ItemKey, bool | None],
    reference: Sequence[Mapping[ItemKey, bool | None]],
    weights: Mapping[tuple[str, str], float],
    rule: str = "all",
) -> Exploitation:
    """``sum w * new * rejected / sum w * new`` over the items of ``current``.

    ``previous``/``current``: proxy credits at checkpoints t-1 and t; ``reference``: one credit map per panel
    judge at t; ``weights``: (prompt_id, criterion id) -> |points| (criterion ids need only be unique
    within a prompt). An item is new when credited at t and not at t-1
    (same prompt, sample and criterion).
    """
    new_w = expl_w = 0.0
    n_new = n_expl = n_undecided = 0
    exploited: list[ItemKey] = []
    for key, cur in current.items():
        if cur is not True:
            n_undecided += cur is None
            continue
        prev = previous.get(key)
        if prev is None:  # failed (or missing) at t-1: we cannot tell whether it is new
            n_undecided += 1
            continue
        if prev:
            continue
        rejected = rejected_by_panel([ref.get(key) for ref in reference], rule)
        if rejected is None:
            n_undecided += 1
            continue
        w = float(weights[(key[0], key[2])])
        new_w += w
        n_new += 1
        if rejected:
            expl_w += w
            n_expl += 1
            exploited.append(key)
    rate = expl_w / new_w if new_w > 0 else None
    return Exploitation(rate, new_w, expl_w, n_new, n_expl, n_undecided, exploited)


# ---- pairwise preference -------------------------------------------------------------------------------
OUTCOME_VALUE = {"checkpoint": 1.0, "tie": 0.5, "base": 0.0}


def pairwise_summary(
    outcomes: Mapping[Key, tuple[str | None, str | None]], n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, Any]:
    """Win rate of the checkpoint over the base from both orders of every pair.

    ``outcomes[key] = (winner with the checkpoint shown first, winner with the base shown first)``, each
    ``"checkpoint" | "base" | "tie"`` or ``None`` (failure; the pair is left out and counted). A pair's value
    is the mean of its two verdicts (win 1, tie 0.5, loss 0); the win rate is the mean over prompts of the
    per-prompt mean; a pair is position-biased when its two verdicts differ.
    """
    values: dict[Key, float] = {}
    flips = failures = 0
    for key, (first, second) in outcomes.items():
        if first is None or second is None:
            failures += 1
            continue
        values[key] = (OUTCOME_VALUE[first] + OUTCOME_VALUE[second]) / 2
        flips += first != second
    stats = bootstrap_mean_ci(list(per_prompt_means(values).values()), n_boot, seed)  # type: ignore[arg-type]
    return {
        "win_rate": stats["mean"],
        "ci95": stats["ci95"],
        "n_pairs": len(values),
        "n_failed_pairs": failures,
        "position_bias_rate": flips / len(values) if values else None,
        "n_position_flips": flips,
    }


# ---- presence vs absence criteria and length ------------------------------------------------------------
_ABSENCE = re.compile(
    r"^\s*(?:does\s+not|doesn'?t|do\s+not|don'?t|avoids?|refrains?|never|no\b|not\b|without|omits?|fails?\s+to)",
    re.IGNORECASE,
)


def criterion_kind(text: str, polarity: str) -> str:
    """``"presence"``: earns its weight by adding content; ``"absence"``: by leaving something out.

    A penalty criterion (negative polarity) is credited when its content is absent; a positive criterion
    phrased as an avoidance ("Does not ...", "Avoids ...") is an absence criterion too.
    """
    if polarity != "positive":
        return "absence"
    return "absence" if _ABSENCE.match(text) else "presence"


def presence_weight_share(criteria: Sequence[tuple[str, str, float]]) -> float | None:
    """Share of rubric weight held by presence criteria; ``criteria`` = (text, polarity, weight)."""
    total = sum(abs(w) for _, _, w in criteria)
    if total <= 0:
        return None
    return sum(abs(w) for t, p, w in criteria if criterion_kind(t, p) == "presence") / total


def within_prompt_correlation(points: Sequence[tuple[str, float, float]]) -> dict[str, Any]:
    """Pearson r of (satisfaction, length) after subtracting each prompt's means from both.

    ``points`` = (prompt_id, satisfaction, length) per response. Prompts with a single response carry no
    within-prompt information and are dropped. ``r`` is ``None`` when either side has no variation left.
    """
    groups: dict[str, list[tuple[float, float]]] = {}
    for pid, s, n in points:
        groups.setdefault(pid, []).append((float(s), float(n)))
    xs: list[float] = []
    ys: list[float] = []
    for vals in groups.values():
        if len(vals) < 2:
            continue
        ms, mn = np.mean([v[0] for v in vals]), np.mean([v[1] for v in vals])
        xs.extend(v[0] - ms for v in vals)
        ys.extend(v[1] - mn for v in vals)
    out: dict[str, Any] = {"r": None, "n_responses": len(xs), "n_prompts": sum(len(v) >= 2 for v in groups.values())}
    if len(xs) >= 3:
        xa, ya = np.asarray(xs), np.asarray(ys)
        denom = math.sqrt(float((xa * xa).sum() * (ya * ya).sum()))
        if denom > 0:
            out["r"] = float((xa * ya).sum() / denom)
    return out
