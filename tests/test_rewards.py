"""GRPO reward function: hand-computed rewards (normalized, HealthBench, dynamic weights), failures excluded.

Grading goes through the real offline RegexJudge (criterion = a word pattern), so every verdict below is
known by construction and expected values are exact fractions worked out by hand; then through the real
OpenAIJudge against the loopback judge server (judge calls per mode, cache hits, holistic rewards).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from fractions import Fraction
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judge_server import JudgeServer, hash_rule, judging_policy  # noqa: E402

from rgsd.data.schema import Criterion, Example  # noqa: E402
from rgsd.grpo.rewards import RubricReward, dynamic_alphas, pass_rates, score_grade  # noqa: E402
from rgsd.judges.base import Grade, Verdict  # noqa: E402
from rgsd.judges.cache import JudgeCache  # noqa: E402
from rgsd.judges.openai_judge import OpenAIJudge  # noqa: E402
from rgsd.judges.regex_judge import RegexJudge  # noqa: E402


def example(
    ex_id: str = "q1", categories: tuple = ("content", "content", "pitfall"), gamma_pattern="gamma"
) -> Example:
    rubric = [
        Criterion("c1", "Mentions alpha", 3.0, "positive", categories[0], pattern=r"\balpha\b"),
        Criterion("c2", "Mentions beta", 2.0, "positive", categories[1], pattern=r"\bbeta\b"),
        Criterion(
            "c3", "Mentions gamma (undesirable)", 1.0, "negative", categories[2], pattern=gamma_pattern
        ),
    ]
    return Example(ex_id, [{"role": "user", "content": "Say something."}], rubric)


def rewards_for(reward: RubricReward, ids: list[str], texts: list[str]) -> tuple[list, dict]:
    return asyncio.run(reward.score(ids, texts))


def test_normalized_and_healthbench_rewards_match_hand_computation():
    ex = example()
    texts = ["alpha", "alpha gamma", "beta", "nothing here", "alpha beta"]
    # normalized = (sum_{w>0} w*met + sum_{w<0} |w|*(1-met)) / sum|w|, sum|w| = 6
    want_norm = [Fraction(3 + 1, 6), Fraction(3, 6), Fraction(2 + 1, 6), Fraction(1, 6), Fraction(6, 6)]
    # healthbench = sum(points of met) / sum(positive points) = .../5
    want_hb = [Fraction(3, 5), Fraction(3 - 1, 5), Fraction(2, 5), Fraction(0, 5), Fraction(5, 5)]
    for kind, want in (("normalized", want_norm), ("healthbench", want_hb)):
        got, metrics = rewards_for(RubricReward({"q1": ex}, RegexJudge(), reward=kind), ["q1"] * 5, texts)
        assert got == pytest.approx([float(w) for w in want], abs=1e-12), kind
    # pass rates over the group (credit earned): c1 3/5, c2 2/5, c3 (not met) 4/5
    assert metrics["rubric/pass_rate"] == pytest.approx((3 / 5 + 2 / 5 + 4 / 5) / 3)
    assert metrics["rubric/saturated_share"] == 0 and metrics["rubric/unreachable_share"] == 0


def test_failed_verdicts_are_excluded_and_fully_failed_completions_get_none():
    # c3 has an invalid pattern: the regex judge records a failure (met=None) for it on every response.
    ex = example(gamma_pattern="gam(ma")
    reward = RubricReward({"q1": ex}, RegexJudge(), reward="normalized")
    got, metrics = rewards_for(reward, ["q1", "q1"], ["alpha", "beta"])
    assert got == pytest.approx([3 / 5, 2 / 5])  # c3 dropped from numerator and denominator
    assert metrics["rubric/unscored_completions"] == 0
    assert reward.judge.usage.failures == 2

    # Whole-grade failure and all-verdicts-failed both give None (TRL turns it into NaN and excludes it).
    assert score_grade("normalized", ex, Grade(failed=True)) is None
    all_failed = Grade([Verdict("c1", None), Verdict("c2", None), Verdict("c3", None)])
    assert score_grade("normalized", ex, all_failed) is None
    assert score_grade("healthbench", ex, all_failed) is None
    # HealthBench is undefined when no positive item was judged: None, not 0.
    only_negative = Grade([Verdict("c1", None), Verdict("c2", None), Verdict("c3", True)])
    assert score_grade("healthbench", ex, only_negative) is None
    assert score_grade("normalized", ex, only_negative) == 0.0
    assert score_grade("rar-implicit", ex, Grade(holistic=7 / 9)) == pytest.approx(7 / 9)


def test_counts_unscored_completions_in_metrics():
    ex = Example("q2", [{"role": "user", "content": "x"}], [Criterion("d1", "no pattern", 1.0)])
    reward = RubricReward({"q2": ex}, RegexJudge())
    got, metrics = rewards_for(reward, ["q2", "q2", "q2"], ["a", "b", "c"])
    assert got == [None, None, None]
    assert metrics["rubric/unscored_completions"] == 3 and reward.stats.unscored == 3


def test_dynamic_weights_match_hand_computed_alpha_and_rewards(tmp_path):
    ex = example()
    # Group of 4 rollouts. Credit earned: c1 in 2/4 (p=1/2), c2 in 4/4 (p=1, saturated), c3 not met in 3/4
    # (p=3/4). eps = 0.1. Category (positive, content) = {c1, c2}: c = 1/2 and 0 -> (0.6, 0.1), mean 0.35,
    # alpha1 = 12/7, alpha2 = 2/7. c3 is alone in (negative, pitfall): alpha3 = 1.
    texts = ["alpha beta", "beta gamma", "alpha beta", "beta"]
    log_file = tmp_path / "criteria.jsonl"
    reward = RubricReward({"q1": ex}, RegexJudge(), dynamic_weights=True, eps=0.1, criteria_log=log_file)

    rates = pass_rates(ex.rubric, [asyncio.run(RegexJudge().grade(ex, t)) for t in texts])
    assert rates == {"c1": 0.5, "c2": 1.0, "c3": 0.75}
    alphas = dynamic_alphas(ex.rubric, rates, 0.1)
    assert alphas["c1"] == pytest.approx(12 / 7) and alphas["c2"] == pytest.approx(2 / 7)
    assert alphas["c3"] == pytest.approx(1.0)
    # the category's alphas average to 1
    assert (alphas["c1"] + alphas["c2"]) / 2 == pytest.approx(1.0)

    # Training weights 36/7, 4/7, 1 (sum 47/7).
    w = [Fraction(36, 7), Fraction(4, 7), Fraction(1)]
    total = sum(w)
    want = [(w[0] + w[1] + w[2]) / total, (w[1]) / total, (w[0] + w[1] + w[2]) / total, (w[1] + w[2]) / total]
    got, metrics = asyncio.run(reward.score(["q1"] * 4, texts))
    assert got == pytest.approx([float(x) for x in want], abs=1e-12)
    assert metrics["rubric/saturated_share"] == pytest.approx(1 / 3)
    assert metrics["rubric/unreachable_share"] == 0

    # Through the TRL-facing call: the per-group line lands in the criteria log with the factors.
    out = asyncio.run(
        reward(
            prompts=[None] * 4,
            completions=[[{"role": "assistant", "content": t}] for t in texts],
            completion_ids=[[1, 2, 3]] * 4,
            example_id=["q1"] * 4,
        )
    )
    assert out == pytest.approx([float(x) for x in want])
    line = json.loads(log_file.read_text().splitlines()[-1])
    assert line["example_id"] == "q1" and line["pass_rate"]["c2"] == 1.0
    assert line["alpha"]["c1"] == pytest.approx(12 / 7, abs=1e-6)
    assert reward.stats.generated_tokens == 12


def test_dynamic_weights_groups_by_prompt_and_category_and_skip_unjudged():
    # Two prompts in one call: each group's alphas come from its own rollouts only.
    a = example("qa")
    b = example("qb", categories=("content", "style", "pitfall"))
    reward = RubricReward({"qa": a, "qb": b}, RegexJudge(), dynamic_weights=True, eps=0.1)
    texts_a = ["alpha", "beta"]  # c1 p=1/2, c2 p=1/2: equal contrasts -> alpha 1 each -> static weights
    texts_b = ["alpha beta", "beta"]  # c1 p=1/2 and c2 p=1 but in different categories -> alpha 1 each
    got, _ = asyncio.run(reward.score(["qa", "qa", "qb", "qb"], texts_a + texts_b))
    static = RubricReward({"qa": a, "qb": b}, RegexJudge())
    want, _ = asyncio.run(static.score(["qa", "qa", "qb", "qb"], texts_a + texts_b))
    assert got == pytest.approx(want)

    # A criterion with no valid verdict keeps alpha 1 and stays out of its category's mean.
    rates = {"c1": 0.5, "c2": None, "c3": 0.0}
    alphas = dynamic_alphas(a.rubric, rates, 0.1)
    assert alphas == {"c1": pytest.approx(1.0), "c2": 1.0, "c3": pytest.approx(1.0)}


def test_unknown_example_id_and_bad_options_are_clear_errors():
    reward = RubricReward({"q1": example()}, RegexJudge())
    with pytest.raises(KeyError, match="no rubric for example ids"):
        asyncio.run(reward.score(["missing"], ["x"]))
    with pytest.raises(ValueError, match="unknown reward"):
        RubricReward({}, RegexJudge(), reward="nope")
    with pytest.raises(ValueError, match="dynamic weights"):
        RubricReward({}, RegexJudge(), reward="rar-implicit", dynamic_weights=True)
    assert math.isclose(score_grade("normalized", example(), Grade([Verdict("c1", True)])), 1.0)


# ---- against the loopback HTTP judge: judge calls per mode, cache hits, holistic rewards -------------------
def _http_examples() -> dict[str, Example]:
    a = Example(
        "A",
        [{"role": "user", "content": "Name fruit."}],
        [
            Criterion("a1", "Mentions apple", 3.0),
            Criterion("a2", "Mentions banana", 2.0),
            Criterion("a3", "Insults the user", 1.0, "negative"),
        ],
    )
    b = Example(
        "B",
        [{"role": "user", "content": "Name colours."}],
        [Criterion("b1", "Mentions red", 1.0), Criterion("b2", "Mentions blue", 4.0)],
    )
    return {"A": a, "B": b}


def _expected(examples: dict[str, Example], ids: list[str], texts: list[str], kind: str) -> list[float]:
    """Float64 reference from the server's rule (hash of criterion text and response)."""
    out = []
    for eid, text in zip(ids, texts):
        rubric = examples[eid].rubric
        met = [hash_rule(c.text, c.points, text) for c in rubric]
        good = sum(c.weight for c, m in zip(rubric, met) if m == (c.polarity == "positive"))
        total = sum(c.weight for c in rubric)
        if kind == "normalized":
            out.append(good / total)
        else:  # holistic: rating 1 + round(9 * good/total) mapped back by (r - 1) / 9
            out.append(round(9 * good / total) / 9)
    return out


@pytest.mark.parametrize("mode,per_completion", [("per-criterion", None), ("batched", 1), ("holistic", 1)])
def test_judge_calls_per_mode_and_cache_hits_over_http(tmp_path, mode, per_completion):
    examples = _http_examples()
    G = 3
    ids = ["A"] * G + ["B"] * G
    texts = [f"answer {i} apple banana red" if i % 2 else f"reply {i}" for i in range(2 * G)]
    kind = "rar-implicit" if mode == "holistic" else "normalized"
    with JudgeServer(judging_policy(hash_rule)) as server:
        judge = OpenAIJudge(
            "test-judge", base_url=server.url, mode=mode, cache=JudgeCache(tmp_path / "c.sqlite")
        )
        reward = RubricReward(examples, judge, reward=kind)
        got, _ = asyncio.run(reward.score(ids, texts))
        # calls = prompts x G x (criteria in per-criterion mode, else 1); nothing cached yet
        want_calls = G * 3 + G * 2 if per_completion is None else 2 * G * per_completion
        assert judge.usage.calls == server.count == want_calls and judge.usage.cache_hits == 0
        assert got == pytest.approx(_expected(examples, ids, texts, kind), abs=1e-12)
        # the same completions again: every request is a cache hit, none reaches the server
        again, _ = asyncio.run(reward.score(ids, texts))
        assert again == got
        assert server.count == want_calls and judge.usage.cache_hits == want_calls


def test_judge_budget_stop_gives_none_rewards_and_raises_the_flag():
    from rgsd.judges.usage import Budget

    examples = _http_examples()
    with JudgeServer(judging_policy(hash_rule)) as server:
        judge = OpenAIJudge(
            "test-judge", base_url=server.url, mode="batched", concurrency=1, budget=Budget(max_calls=2)
        )
        reward = RubricReward(examples, judge)
        got, metrics = asyncio.run(reward.score(["A"] * 4, ["a", "b", "c", "d"]))
    assert server.count == 2 and sum(r is not None for r in got) == 2
    assert reward.stats.budget_exhausted and metrics["rubric/unscored_completions"] == 2
