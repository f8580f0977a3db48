"""Scores against hand-computed values and a float64 brute-force re-implementation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rgsd.data import load_examples
from rgsd.scoring import (
    ScoredResponse,
    aggregate,
    bootstrap_std,
    healthbench_score,
    normalized_score,
    rar_explicit_score,
    strict_completion,
)

HB = Path(__file__).resolve().parents[2] / "shared/data/healthbench"
T, F = True, False


def test_hand_computed_scores_with_a_penalty():
    points = [10, 5, -8]
    assert healthbench_score(points, [T, F, T]) == pytest.approx(2 / 15)
    assert normalized_score(points, [T, F, T]) == pytest.approx(10 / 23)
    assert rar_explicit_score(points, [T, F, T]) == pytest.approx(2 / 7)
    assert strict_completion(points, [T, F, T]) == 0.0
    # The perfect response: HealthBench and normalized give 1, RaR explicit exceeds 1 (net denominator).
    assert healthbench_score(points, [T, T, F]) == 1.0
    assert normalized_score(points, [T, T, F]) == 1.0
    assert rar_explicit_score(points, [T, T, F]) == pytest.approx(15 / 7)
    assert strict_completion(points, [T, T, F]) == 1.0
    # Meeting only the penalty: HealthBench goes below zero, normalized stays at 0.
    assert healthbench_score(points, [F, F, T]) == pytest.approx(-8 / 15)
    assert normalized_score(points, [F, F, T]) == 0.0


def test_failures_are_excluded_from_numerator_and_denominator():
    points = [10, 5, -8]
    assert healthbench_score(points, [None, T, F]) == 1.0  # 5 / 5
    assert healthbench_score(points, [T, None, T]) == pytest.approx(0.2)  # (10 - 8) / 10
    assert normalized_score(points, [T, None, T]) == pytest.approx(10 / 18)
    assert rar_explicit_score(points, [T, None, F]) == pytest.approx(10 / 2)
    assert strict_completion(points, [T, None, F]) is None  # undecidable
    assert strict_completion(points, [F, None, F]) == 0.0  # one required item is known unmet
    with pytest.raises(ValueError, match="no positive points"):
        healthbench_score([5, -2], [None, T])


def test_errors():
    with pytest.raises(ValueError, match="no positive points"):
        healthbench_score([-3, -2], [F, T])
    assert normalized_score([-3, -2], [F, T]) == pytest.approx(3 / 5)  # defined without positive items
    with pytest.raises(ValueError, match="net weight"):
        rar_explicit_score([2, -3], [T, F])
    for fn in (healthbench_score, normalized_score, rar_explicit_score):
        with pytest.raises(ValueError, match="empty"):
            fn([], [])
        with pytest.raises(ValueError, match="differ in length"):
            fn([1, 2], [T])
    with pytest.raises(ValueError, match="finite"):
        healthbench_score([float("nan"), 1], [T, T])
    with pytest.raises(ValueError, match="no required criteria"):
        strict_completion([-1, -2], [F, F])


def test_strict_completion_required_mask():
    points, met = [5, 3, 1, -2], [T, T, F, F]
    assert strict_completion(points, met) == 0.0  # the optional 1-point item is unmet
    assert strict_completion(points, met, required=[T, T, F, F]) == 1.0


def test_clipping_after_averaging():
    low = ScoredResponse("a", [10, -5], [F, T])  # -0.5
    high = ScoredResponse("b", [9, 1], [T, F])  # 0.9
    rep = aggregate([low, high])
    assert rep["score"] == pytest.approx(0.2)  # clip(mean) = 0.2, not mean(clip) = 0.45
    assert rep["mean_unclipped"] == pytest.approx(0.2)
    neg = aggregate([low, ScoredResponse("c", [10, -3], [F, T])])
    assert neg["score"] == 0.0 and neg["mean_unclipped"] == pytest.approx(-0.4)


def test_per_tag_scores_and_counts():
    r1 = ScoredResponse(
        "1", [4, 6, -2], [T, F, T], [["axis:a"], ["axis:b"], ["axis:a"]], example_tags=["theme:x"]
    )
    r2 = ScoredResponse("2", [5, -3], [T, F], [["axis:b"], ["axis:a"]])
    r3 = ScoredResponse("3", [-4], [T], [["axis:a"]])  # no positive points: skipped
    r4 = ScoredResponse("4", [2, 2], [None, T], [["axis:a"], ["axis:b"]])
    rep = aggregate([r1, r2, r3, r4], bootstrap_samples=50)
    assert rep["n"] == 3 and rep["n_skipped"] == 1 and rep["n_failures"] == 1
    assert rep["score"] == pytest.approx((0.2 + 1.0 + 1.0) / 3)
    tags = rep["tags"]
    assert (
        tags["axis:a"]["score"] == pytest.approx(0.5) and tags["axis:a"]["n"] == 1
    )  # r2's a-items: no positives
    assert tags["axis:b"]["score"] == pytest.approx((0 + 1 + 1) / 3) and tags["axis:b"]["n"] == 3
    assert tags["theme:x"]["score"] == pytest.approx(0.2) and tags["theme:x"]["n"] == 1
    assert rep["normalized"] == pytest.approx(np.mean([4 / 12, 8 / 8, 2 / 2]))
    assert rep["rar_explicit"] == pytest.approx(np.mean([2 / 8, 5 / 2, 2 / 2]))
    assert (
        rep["strict_completion"] == 0.5 and rep["n_strict"] == 2
    )  # r4 is undecidable (failure on a required item)


def test_strict_completion_essential():
    r = ScoredResponse("e", [5, 3, -1], [T, F, F], categories=["essential", "important", "pitfall"])
    assert aggregate([r], strict_required="positive")["strict_completion"] == 0.0
    assert aggregate([r], strict_required="essential")["strict_completion"] == 1.0
    with pytest.raises(ValueError):
        aggregate([r], strict_required="most")


def test_bootstrap_matches_brute_force():
    values = [-0.4, 0.1, 0.35, 0.9, 1.0, 0.55, -0.05]
    got = aggregate([ScoredResponse(str(i), [1, -2], [v >= 0, v < 0]) for i, v in enumerate(values)], seed=3)
    # Brute force: one resample at a time with the same seeded generator, clip each mean, population std.
    vals = [healthbench_score([1, -2], [v >= 0, v < 0]) for v in values]
    rng = np.random.default_rng(3)
    means = []
    for _ in range(1000):
        idx = rng.integers(0, len(vals), size=len(vals))
        means.append(min(1.0, max(0.0, sum(vals[i] for i in idx) / len(vals))))
    mu = sum(means) / len(means)
    expected = math.sqrt(sum((m - mu) ** 2 for m in means) / len(means))
    assert got["bootstrap_std"] == pytest.approx(expected, rel=1e-12)
    assert bootstrap_std(vals, seed=3) == got["bootstrap_std"]
    assert bootstrap_std(vals, seed=4) != got["bootstrap_std"]
    assert bootstrap_std([0.5]) == 0.0


def test_bootstrap_std_is_sane():
    rng = np.random.default_rng(0)
    values = rng.uniform(0.2, 0.8, size=400)
    std = bootstrap_std(values)
    assert std == pytest.approx(values.std() / math.sqrt(len(values)), rel=0.15)
    with pytest.raises(ValueError):
        bootstrap_std([])
    with pytest.raises(ValueError, match="no responses"):
        aggregate([])


def test_from_example_and_healthbench_brute_force():
    path = HB / "healthbench_sample30.jsonl"
    if not path.exists():
        pytest.skip(f"HealthBench data not found at {path}")
    examples = load_examples(path).examples
    rng = np.random.default_rng(7)
    responses, by_id = [], []
    for ex in examples:
        met = [bool(x) for x in rng.random(len(ex.rubric)) < 0.5]
        met[0] = None  # one judge failure per response
        responses.append(ScoredResponse.from_example(ex, met))
        by_id.append(ScoredResponse.from_example(ex, {c.id: m for c, m in zip(ex.rubric, met)}))
    rep = aggregate(responses)
    assert rep == aggregate(by_id)
    # Independent float64 computation with numpy masks.
    scores = []
    for ex, r in zip(examples, responses):
        pts = np.array(ex.points, dtype=np.float64)[1:]
        met = np.array(r.met[1:], dtype=bool)
        if (pts > 0).any():  # else HealthBench skips the response
            scores.append((pts * met).sum() / pts[pts > 0].sum())
    assert rep["n"] == len(scores) and rep["n_skipped"] == 30 - len(scores) and rep["n_failures"] == 30
    assert rep["mean_unclipped"] == pytest.approx(float(np.mean(scores)), abs=1e-12)
    assert rep["score"] == pytest.approx(min(1.0, max(0.0, float(np.mean(scores)))), abs=1e-12)
    theme = {t for ex in examples for t in ex.metadata["example_tags"]}
    assert theme <= set(rep["tags"])
    with pytest.raises(ValueError, match="no verdict"):
        ScoredResponse.from_example(examples[0], {})
    with pytest.raises(ValueError, match="verdicts for"):
        ScoredResponse.from_example(examples[0], [True])


# ---- any finite weights: the exact ratio (fractions), or refused -------------------------------------------
from fractions import Fraction  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def exact_scores(points: list[float], met: list[bool | None]) -> dict[str, Fraction | None]:
    """The three scores in exact rational arithmetic (None: undefined)."""
    judged = [(Fraction(p), m) for p, m in zip(points, met) if m is not None]
    pos = sum((p for p, _ in judged if p > 0), Fraction(0))
    absolute = sum((abs(p) for p, _ in judged), Fraction(0))
    net = sum((p for p, _ in judged), Fraction(0))
    got = sum((p for p, m in judged if m), Fraction(0))
    earned = sum((p for p, m in judged if p > 0 and m), Fraction(0)) + sum(
        (-p for p, m in judged if p < 0 and not m), Fraction(0))
    return {
        "healthbench": got / pos if pos > 0 else None,
        "normalized": earned / absolute if absolute > 0 else None,
        "rar": got / net if net > 0 else None,
    }


def test_huge_finite_weights_do_not_overflow():
    # the repro: the positive total overflowed to inf and the score read 0.0
    assert healthbench_score([1e308, 1e308, 1], [F, T, F]) == 0.5
    assert normalized_score([1e308, -1e308], [T, F]) == 1.0
    assert rar_explicit_score([1e308, 1e308], [T, F]) == 0.5


WEIGHTS = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(WEIGHTS, st.sampled_from([True, False, None])), min_size=1, max_size=8))
def test_any_finite_weights_score_as_the_exact_ratio_or_are_refused(items):
    points, met = [p for p, _ in items], [m for _, m in items]
    exact = exact_scores(points, met)
    largest = max((abs(Fraction(p)) for p, m in items if m is not None), default=Fraction(0))
    for name, fn in (("healthbench", healthbench_score), ("normalized", normalized_score),
                     ("rar", rar_explicit_score)):
        want = exact[name]
        try:
            got = fn(points, met)
        except ValueError:
            # refused: undefined; beyond float range; or (RaR) a net weight below the resolution of the largest
            assert want is None or abs(want) > Fraction(2) ** 1000 or (
                name == "rar" and sum(Fraction(p) for p, m in items if m is not None) < largest * Fraction(2) ** -1000)
            continue
        assert want is not None and math.isfinite(got)
        assert got == pytest.approx(float(want), rel=1e-12, abs=1e-300), (name, points, met)
