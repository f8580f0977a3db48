"""The GRPO reward: every completion graded by the judge against its prompt's rubric, scored, returned to TRL.

:class:`RubricReward` is an async callable, so TRL 1.16 awaits it on its own event loop; the judge overlaps
requests up to its concurrency. Scoring is :mod:`rgsd.scoring` (never re-implemented here): a failed verdict
is excluded from the score by the scorer; a completion with no usable verdict at all (or a holistic rating
that never parsed) gets reward ``None``. TRL 1.16 turns ``None`` into NaN and, for a completion where every
reward function returned NaN, leaves it out of the group's nan-mean/nan-std baseline and sets its advantage
to 0, so a judge failure neither rewards nor punishes (TRL internals: `rgsd.grpo.trl_shim` checks this still holds).

Optional dynamic criterion weights (POW3R-style; an approximation, the paper's exact formula was not
available): within the group of rollouts of one prompt, criterion ``j``'s pass rate ``p_j`` (share of
rollouts earning its credit) gives a contrast
``c_j = sqrt(p_j (1 - p_j))`` and a factor ``alpha_j = (c_j + eps) / mean_{k in category(j)} (c_k + eps)``;
the training reward uses weight ``w_j * alpha_j``. Criteria that every rollout passes (saturated) or fails
(unreachable) carry no contrast and lose weight to those that separate the rollouts. Evaluation always uses
the static weights.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rgsd.data.schema import Criterion, Example
from rgsd.judges.base import Grade, Judge
from rgsd.judges.usage import BudgetExhausted

REWARD_KINDS = ("normalized", "healthbench", "rar-implicit")


def category_key(c: Criterion) -> tuple[str, str]:
    """The category a criterion's dynamic weight is normalized within.

    ``(polarity, category)``: RaR categories (Essential, Important, Optional, Pitfall) when the data has
    them; otherwise all positive criteria of a prompt form one category and all negative ones another, so
    that penalties never trade weight with rewards.
    """
    return (c.polarity, c.category or "")


def pass_rates(rubric: list[Criterion], grades: list[Grade]) -> dict[str, float | None]:
    """Per criterion: share of the group's judged rollouts that earned its credit (``None`` if all failed).

    Earning the credit means meeting a positive criterion, or *not* meeting a negative (penalty) one; so a
    pass rate of 1 is a saturated criterion and 0 an unreachable one whatever the polarity.
    """
    passed: dict[str, list[bool]] = {c.id: [] for c in rubric}
    negative = {c.id for c in rubric if c.polarity == "negative"}
    for g in grades:
        for v in g.verdicts:
            if v.met is not None and v.criterion_id in passed:
                passed[v.criterion_id].append(bool(v.met) != (v.criterion_id in negative))
    return {cid: (sum(m) / len(m) if m else None) for cid, m in passed.items()}


def dynamic_alphas(rubric: list[Criterion], rates: dict[str, float | None], eps: float) -> dict[str, float]:
    """``alpha_j = (c_j + eps) / mean_{k in category(j)} (c_k + eps)`` with ``c_j = sqrt(p_j (1 - p_j))``.

    A criterion without any valid verdict in the group keeps ``alpha = 1`` and is left out of its
    category's mean (there is nothing to measure its contrast with).
    """
    contrast = {
        c.id: math.sqrt(rates[c.id] * (1.0 - rates[c.id])) + eps
        for c in rubric
        if rates.get(c.id) is not None
    }
    by_cat: dict[tuple[str, str], list[float]] = defaultdict(list)
    for c in rubric:
        if c.id in contrast:
            by_cat[category_key(c)].append(contrast[c.id])
    alphas = {}
    for c in rubric:
        if c.id not in contrast:
            alphas[c.id] = 1.0
        else:
            vals = by_cat[category_key(c)]
            alphas[c.id] = contrast[c.id] / (sum(vals) / len(vals))
    return alphas


def reweighted(example: Example, alphas: dict[str, float]) -> Example:
    """A copy of ``example`` whose criteria weigh ``w_j * alpha_j`` (polarity unchanged)."""
    return replace(
        example, rubric=[replace(c, weight=c.weight * alphas.get(c.id, 1.0)) for c in example.rubric]
    )


def verdicts_in_rubric_order(example: Example, grade: Grade) -> list[bool | None]:
    """The grade's verdicts in ``example.rubric`` order (a criterion without a verdict = a failure)."""
    by_id = {v.criterion_id: v.met for v in grade.verdicts}
    return [by_id.get(c.id) for c in example.rubric]


def score_grade(kind: str, example: Example, grade: Grade) -> float | None:
    """The reward of one graded completion, or ``None`` when the grade carries no usable judgement.

    ``normalized`` and ``healthbench`` are :func:`rgsd.scoring.normalized_score` /
    :func:`rgsd.scoring.healthbench_score` of the example's (signed) points; a score the scorer calls
    undefined (every verdict failed, no positive points judged) is ``None``.
    """
    if grade.failed:
        return None
    if kind == "rar-implicit":
        return None if grade.holistic is None else float(grade.holistic)
    from rgsd import scoring

    met = verdicts_in_rubric_order(example, grade)
    if all(m is None for m in met):
        return None
    if kind == "normalized":
        fn = scoring.normalized_score
    elif kind == "healthbench":
        fn = scoring.healthbench_score
    else:
        raise ValueError(f"unknown reward {kind!r}: expected one of {REWARD_KINDS}")
    try:
        return float(fn(example.points, met))
    except ValueError:
        return None


@dataclass
class RewardStats:
    """Running totals kept by the reward function (local to this process)."""

    completions: int = 0
    groups: int = 0
    generated_tokens: int = 0
    unscored: int = 0  # completions whose reward was None (whole grade failed)
    time_scoring: float = 0.0
    budget_exhausted: bool = False
    last_step_metrics: dict[str, float] = field(default_factory=dict)


def _completion_text(completion: Any) -> str:
    """TRL passes conversational completions as ``[{"role": "assistant", "content": ...}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(
            str(m.get("content") or "") for m in completion if m.get("role", "assistant") == "assistant"
        )
    raise TypeError(f"unexpected completion type {type(completion).__name__}")


class RubricReward:
    """Async TRL reward function over a judge.

    ``examples`` maps the dataset's ``example_id`` column to the :class:`Example` whose rubric grades it.
    ``criteria_log`` (optional) gets one JSON line per group: step, example id, per-criterion pass rates and,
    with dynamic weights, the factors ``alpha``.
    """

    __name__ = "rubric"  # TRL names the reward column after this

    def __init__(
        self,
        examples: dict[str, Example],
        judge: Judge,
        reward: str = "normalized",
        dynamic_weights: bool = False,
        eps: float = 0.1,
        criteria_log: str | Path | None = None,
    ) -> None:
        if reward not in REWARD_KINDS:
            raise ValueError(f"unknown reward {reward!r}: expected one of {REWARD_KINDS}")
        if dynamic_weights and reward == "rar-implicit":
            raise ValueError("dynamic weights need per-criterion verdicts; rar-implicit has none")
        self.examples = examples
        self.judge = judge
        self.reward = reward
        self.dynamic_weights = dynamic_weights
        self.eps = eps
        self.criteria_log = Path(criteria_log) if criteria_log else None
        self.stats = RewardStats()

    async def _grade(self, example: Example, text: str) -> Grade:
        try:
            return await self.judge.grade(example, text)
        except BudgetExhausted:
            # The trainer sees the flag at the end of the step and stops cleanly (saving what it has).
            self.stats.budget_exhausted = True
            return Grade(failed=True)

    async def score(
        self, example_ids: list[str], texts: list[str]
    ) -> tuple[list[float | None], dict[str, float]]:
        """Grade and score completions; return the rewards and this batch's group metrics."""
        missing = sorted({i for i in example_ids if i not in self.examples})
        if missing:
            raise KeyError(f"reward function: no rubric for example ids {missing[:5]}")
        start = time.perf_counter()
        grades = list(
            await asyncio.gather(*(self._grade(self.examples[i], t) for i, t in zip(example_ids, texts)))
        )
        self.stats.time_scoring += time.perf_counter() - start

        groups: dict[str, list[int]] = defaultdict(list)
        for n, eid in enumerate(example_ids):
            groups[eid].append(n)
        rewards: list[float | None] = [None] * len(texts)
        saturated, unreachable, mean_rates, log_lines = [], [], [], []
        for eid, rows in groups.items():
            example = self.examples[eid]
            group_grades = [grades[n] for n in rows]
            rates = pass_rates(example.rubric, group_grades) if self.reward != "rar-implicit" else {}
            valid = [p for p in rates.values() if p is not None]
            if valid:
                saturated.append(sum(p == 1.0 for p in valid) / len(valid))
                unreachable.append(sum(p == 0.0 for p in valid) / len(valid))
                mean_rates.append(sum(valid) / len(valid))
            alphas = dynamic_alphas(example.rubric, rates, self.eps) if self.dynamic_weights else None
            train_example = reweighted(example, alphas) if alphas else example
            for n in rows:
                rewards[n] = score_grade(self.reward, train_example, grades[n])
            if self.criteria_log is not None and rates:
                line: dict[str, Any] = {"example_id": eid, "rollouts": len(rows), "pass_rate": rates}
                if alphas:
                    line["alpha"] = {k: round(v, 6) for k, v in alphas.items()}
                log_lines.append(line)

        unscored = sum(r is None for r in rewards)
        self.stats.completions += len(texts)
        self.stats.groups += len(groups)
        self.stats.unscored += unscored
        metrics = {"rubric/unscored_completions": float(unscored)}
        if mean_rates:
            metrics["rubric/pass_rate"] = sum(mean_rates) / len(mean_rates)
            metrics["rubric/saturated_share"] = sum(saturated) / len(saturated)
            metrics["rubric/unreachable_share"] = sum(unreachable) / len(unreachable)
        self.stats.last_step_metrics = metrics
        self._log_lines = log_lines
        return rewards, metrics

    async def __call__(
        self,
        prompts: list[Any],
        completions: list[Any],
        completion_ids: list[list[int]] | None = None,
        example_id: list[str] | None = None,
        trainer_state: Any = None,
        log_metric: Any = None,
        **_: Any,
    ) -> list[float | None]:
        if example_id is None:
            raise KeyError("reward function: the dataset needs an 'example_id' column to find each rubric")
        rewards, metrics = await self.score(list(example_id), [_completion_text(c) for c in completions])
        if completion_ids is not None:
            self.stats.generated_tokens += sum(len(c) for c in completion_ids)
        if log_metric is not None:
            for name, value in metrics.items():
                log_metric(name, value)
        if self.criteria_log is not None and self._log_lines:
            step = int(getattr(trainer_state, "global_step", 0) or 0) + 1  # the step these rollouts train
            with self.criteria_log.open("a") as fh:
                for line in self._log_lines:
                    fh.write(json.dumps({"step": step, **line}) + "\n")
        return rewards
