"""The pre-flight that separates the rubric from its context: the base model answers every prompt under four
contexts (arms: ``none``, ``neutral``, ``shuffled``, ``rubric``) in one batched generation pass, every arm graded
against the prompt's own criteria (``rgsd gap --arms``, ``rgsd demo``'s stage 1).

The arms, the lifts (format, list, rubric, total), the verdict and its thresholds and the per-criterion
intervals are :mod:`rgsd.method.lift`'s (the trainer's pre-flight uses them too), re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from rgsd.data.schema import Example
from rgsd.judges.base import Judge
from rgsd.method.lift import (  # noqa: F401  # re-exported: the pre-flight's names in one place
    ARM_LABELS,
    ARMS,
    LIFTS,
    MIN_RUBRIC_LIFT,
    P_MAX,
    arm_chats,
    arms_summary,
    criteria_rows,
    lifts,
    newcombe,
    parse_arms,
    prompt_means,
    taught,
    verdict,
    wilson,
)

ARM_DIRS = {"none": "without_rubric", "neutral": "neutral", "shuffled": "shuffled", "rubric": "with_rubric"}


@dataclass
class ArmsResult:
    """Per arm: the chats (one per prompt) and the graded responses (an ``EvalResult``; record
    ``i * samples + k`` is sample k of prompt i)."""

    arms: tuple[str, ...]
    examples: list[Example]
    chats: dict[str, list[list[dict[str, str]]]]
    results: dict[str, Any]  # arm -> EvalResult
    samples: int
    temperature: float
    seed: int = 0

    @property
    def complete(self) -> bool:
        return all(r.complete for r in self.results.values())

    def records(self) -> dict[str, list[dict[str, Any]]]:
        return {arm: self.results[arm].records for arm in self.arms}

    def summary(self) -> dict[str, Any]:
        """``conditioning_arms``, ``conditioning_lift``, ``preflight`` and ``preflight_verdict``."""
        return arms_summary(self.records(), self.samples, self.temperature, self.seed)

    def criteria(self) -> list[dict[str, Any]]:
        return criteria_rows(self.examples, self.records())


def sample_arms(model: Any, tok: Any, examples: list[Example], judge: Judge, arms: tuple[str, ...] = ARMS,
                samples: int = 1, temperature: float = 0.0, max_new_tokens: int = 256, batch_size: int = 8,
                seed: int = 0, placement: str = "user_suffix", style: str = "full", *,
                default_system: str | None = None, show_weights: bool = False, progress: bool = False
                ) -> ArmsResult:
    """Answer every prompt under every arm in one batched generation pass, grade each arm by its own criteria.

    ``default_system``: the template's default system message for ``placement="system_keep"`` (default: found
    from ``tok`` with :func:`rgsd.method.teacher_prompt.default_system_prompt`).
    """
    from rgsd.evaluate.run import evaluate
    from rgsd.evaluate.sampling import repeat, sample_responses, sample_summary
    from rgsd.method.teacher_prompt import default_system_prompt

    arms = parse_arms(",".join(arms))
    if placement == "system_keep" and default_system is None:
        default_system = default_system_prompt(tok)
    chats = {arm: arm_chats(examples, arm, placement, style, seed, default_system, show_weights) for arm in arms}
    # one wrapper item per (arm, prompt): its prompt *is* the arm's chat, so one pass generates every arm
    items = [replace(ex, prompt=chat) for arm in arms for ex, chat in zip(examples, chats[arm])]
    label = " + ".join(ARM_LABELS[a] for a in arms)
    _, rollouts = sample_responses(model, tok, items, samples, temperature=temperature,
                                   max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
                                   progress=progress and f"generate {label}")
    graded = repeat(examples, samples)  # the prompt's own criteria and its plain prompt, in every arm
    per_arm, results = len(graded), {}
    for a, arm in enumerate(arms):
        part = rollouts[a * per_arm:(a + 1) * per_arm]
        res = evaluate(graded, part, judge, response_tokens=[len(r.response_ids) for r in part], seed=seed,
                       progress=progress and f"judge {ARM_LABELS[arm]}")
        if samples > 1:
            res.summary.update(sample_summary(res.records, samples, temperature))
        for rec in res.records:
            rec["arm"] = arm
        results[arm] = res
    return ArmsResult(arms, list(examples), chats, results, samples, temperature, seed)
