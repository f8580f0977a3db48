"""Exact rubric scores: HealthBench, normalized, RaR explicit, strict completion, and their aggregation.

All functions are pure. ``points`` are signed (HealthBench convention: a negative value is a penalty criterion,
``Criterion.points``); ``met`` holds the judge's verdicts, where ``None`` is a judge failure: such an item is
left out of the numerator *and* the denominator of every score, and counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rgsd.data.schema import Example
from rgsd.stats import BOOTSTRAP_SAMPLES, bootstrap_means


def _pairs(points: Sequence[float], met: Sequence[bool | None]) -> list[tuple[float, bool]]:
    """Validate and drop judge failures; returns (points, met) of the judged items."""
    if len(points) != len(met):
        raise ValueError(f"points and met differ in length ({len(points)} vs {len(met)})")
    if not points:
        raise ValueError("empty rubric: nothing to score")
    out = []
    for p, m in zip(points, met):
        p = float(p)
        if not math.isfinite(p):
            raise ValueError(f"points must be finite numbers, got {p}")
        if m is not None:
            out.append((p, bool(m)))
    return out


def _ratio(num: list[float], den: list[float], undefined: str) -> float:
    """``sum(num) / sum(den)``, each sum rounded once (``math.fsum``), for any finite weights.

    Finite weights near 1e308 overflow a plain sum (the score then read 0.0): such sums are taken over the
    weights divided by a power of two (exact), which leaves the ratio unchanged. ValueError(``undefined``)
    when the denominator is <= 0; ValueError when the ratio itself is beyond the float range.
    """
    scale = 0
    while True:
        try:
            top = math.fsum(math.ldexp(x, -scale) for x in num)
            bottom = math.fsum(math.ldexp(x, -scale) for x in den)
        except OverflowError:
            top = bottom = math.inf
        if math.isfinite(top) and math.isfinite(bottom):
            break
        scale += 8  # 2**8 more items than any rubric has: one step suffices in practice
    if bottom <= 0:
        raise ValueError(undefined)
    try:
        out = top / bottom
    except OverflowError:
        out = math.inf
    if not math.isfinite(out):
        raise ValueError(f"the score is beyond the float range (weights about 1e308 apart): {top!r} / {bottom!r}")
    return out


def healthbench_score(points: Sequence[float], met: Sequence[bool | None]) -> float:
    """HealthBench score of one response: points of met items / sum of positive points (can be < 0).

    Raises ValueError on an empty rubric or when no judged item has positive points (HealthBench skips such
    examples).
    """
    pairs = _pairs(points, met)
    return _ratio([p for p, m in pairs if m], [p for p, _ in pairs if p > 0],
                  "no positive points among the judged criteria: the HealthBench score is undefined")


def normalized_score(points: Sequence[float], met: Sequence[bool | None]) -> float:
    """``(sum_{w>0} w*met + sum_{w<0} |w|*(1-met)) / sum |w|``, in [0, 1] (companion paper, RGSD eval)."""
    pairs = _pairs(points, met)
    earned = [p for p, m in pairs if p > 0 and m] + [-p for p, m in pairs if p < 0 and not m]
    return _ratio(earned, [abs(p) for p, _ in pairs],
                  "all judged criteria have zero weight (or all verdicts failed): score undefined")


def rar_explicit_score(points: Sequence[float], met: Sequence[bool | None]) -> float:
    """RaR explicit aggregation ``sum w*met / sum w`` with signed weights, as the RaR paper writes it.

    With negative (pitfall) weights the denominator is the *net* weight: a met pitfall subtracts ``|w|`` from
    the numerator, and a response that meets every positive item and no pitfall scores
    ``sum_{w>0} w / (sum_{w>0} w - sum_{w<0} |w|) > 1``; the score is not bounded to [0, 1]. Use
    :func:`normalized_score` for a bounded score. Raises ValueError when the net judged weight is <= 0.
    """
    pairs = _pairs(points, met)
    return _ratio([p for p, m in pairs if m], [p for p, _ in pairs],
                  "net weight of the judged criteria is <= 0: the RaR explicit score is undefined")


def strict_completion(
    points: Sequence[float], met: Sequence[bool | None], required: Sequence[bool] | None = None
) -> float | None:
    """1.0 when every required criterion is met, 0.0 when one is not, None when undecidable.

    ``required`` is a mask over the items; default: every positive-points item. Undecidable means no required
    item is known to be unmet but at least one has a judge failure (``met`` None). Raises ValueError when no
    item is required.
    """
    if len(points) != len(met):
        raise ValueError(f"points and met differ in length ({len(points)} vs {len(met)})")
    mask = [p > 0 for p in points] if required is None else [bool(x) for x in required]
    if len(mask) != len(met):
        raise ValueError(f"required and met differ in length ({len(mask)} vs {len(met)})")
    verdicts = [m for m, r in zip(met, mask) if r]
    if not verdicts:
        raise ValueError("no required criteria: strict completion is undefined")
    if any(m is not None and not m for m in verdicts):
        return 0.0
    return None if any(m is None for m in verdicts) else 1.0


@dataclass
class ScoredResponse:
    """One graded response: the item points, verdicts and what per-tag/strict scores need."""

    example_id: str
    points: list[float]
    met: list[bool | None]
    item_tags: list[list[str]] = field(default_factory=list)  # per item; empty = no item tags
    categories: list[str | None] = field(default_factory=list)  # per item (RaR: essential, ...)
    example_tags: list[str] = field(default_factory=list)  # e.g. HealthBench theme:...

    @classmethod
    def from_example(
        cls, example: Example, met: Sequence[bool | None] | Mapping[str, bool | None]
    ) -> ScoredResponse:
        """Pair an example's rubric with verdicts, given in rubric order or keyed by criterion id."""
        if isinstance(met, Mapping):
            missing = [c.id for c in example.rubric if c.id not in met]
            if missing:
                raise ValueError(f"example {example.id}: no verdict for criteria {', '.join(missing)}")
            verdicts = [met[c.id] for c in example.rubric]
        else:
            verdicts = list(met)
            if len(verdicts) != len(example.rubric):
                raise ValueError(
                    f"example {example.id}: {len(verdicts)} verdicts for {len(example.rubric)} criteria"
                )
        return cls(
            example_id=example.id,
            points=example.points,
            met=verdicts,
            item_tags=[list(c.tags) for c in example.rubric],
            categories=[c.category for c in example.rubric],
            example_tags=list(example.metadata.get("example_tags") or []),
        )


def bootstrap_std(values: Sequence[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> float:
    """Std of the clipped mean over ``samples`` resamples with replacement (HealthBench's error bar)."""
    return float(np.clip(bootstrap_means(values, samples, seed), 0.0, 1.0).std())


def _clipped_stats(values: list[float], samples: int, seed: int) -> dict[str, float]:
    mean = float(np.mean(values))
    return {
        "score": min(1.0, max(0.0, mean)),
        "mean_unclipped": mean,
        "bootstrap_std": bootstrap_std(values, samples, seed),
        "n": len(values),
    }


def _tag_subsets(r: ScoredResponse) -> dict[str, list[int]]:
    """Item indexes per tag: an item tag selects its items, an example tag all items of the example."""
    subsets: dict[str, list[int]] = {}
    for i, tags in enumerate(r.item_tags):
        for t in tags:
            subsets.setdefault(t, []).append(i)
    for t in r.example_tags:
        subsets[t] = list(range(len(r.points)))
    return subsets


def aggregate(
    responses: Sequence[ScoredResponse],
    *,
    bootstrap_samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    strict_required: str = "positive",
) -> dict[str, Any]:
    """HealthBench-style report over graded responses.

    ``score`` is the mean HealthBench score clipped to [0, 1] *after* averaging, with the bootstrap std of the
    clipped mean; ``tags`` maps each item or example tag to the same statistics computed with only that
    tag's items (responses whose subset has no positive points are skipped for that tag). Also: mean
    normalized score, mean RaR explicit score, strict completion rate (``strict_required``: ``"positive"`` =
    every positive item, ``"essential"`` = items of category essential, falling back to the positive items for
    a response without any), ``n`` (responses scored), ``n_skipped`` (no positive points left), ``n_failures``
    (judge failures, excluded everywhere).
    """
    if not responses:
        raise ValueError("no responses to aggregate")
    if strict_required not in ("positive", "essential"):
        raise ValueError(f"strict_required must be 'positive' or 'essential', got {strict_required!r}")
    hb, norm, rar, strict = [], [], [], []
    per_tag: dict[str, list[float]] = {}
    n_failures = n_skipped = 0
    for r in responses:
        n_failures += sum(m is None for m in r.met)
        try:
            hb.append(healthbench_score(r.points, r.met))
        except ValueError:
            n_skipped += 1
            continue
        norm.append(normalized_score(r.points, r.met))
        try:
            rar.append(rar_explicit_score(r.points, r.met))
        except ValueError:
            pass  # net weight <= 0: RaR explicit undefined for this response
        required = None
        if strict_required == "essential" and "essential" in r.categories:
            required = [c == "essential" for c in r.categories]
        value = strict_completion(r.points, r.met, required)
        if value is not None:
            strict.append(value)
        for tag, idx in _tag_subsets(r).items():
            try:
                s = healthbench_score([r.points[i] for i in idx], [r.met[i] for i in idx])
            except ValueError:
                continue
            per_tag.setdefault(tag, []).append(s)
    if not hb:
        raise ValueError(f"none of the {len(responses)} responses has positive points to score")
    report: dict[str, Any] = _clipped_stats(hb, bootstrap_samples, seed)
    report.update(
        n_skipped=n_skipped,
        n_failures=n_failures,
        normalized=float(np.mean(norm)),
        rar_explicit=float(np.mean(rar)) if rar else None,
        strict_completion=float(np.mean(strict)) if strict else None,
        n_strict=len(strict),
        tags={t: _clipped_stats(v, bootstrap_samples, seed) for t, v in sorted(per_tag.items())},
    )
    return report
