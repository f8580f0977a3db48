"""The two gaps that tell whether RGSD can help, and how far it got.

* Conditioning gap (pre-flight check): the same judge grades the base model's answers generated without
  and with the rubric in context; the paired per-example difference (with - without) of the normalized and
  HealthBench scores, with a 95% confidence interval (bootstrap percentile and Student t).
* Self-internalization gap (judge-free): lives with the method, :mod:`rgsd.method.probe`, and is imported
  here for the evaluators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rgsd.data.schema import Example
from rgsd.judges.base import Judge

# the probe's home is the method; re-exported for the evaluators (rgsd eval --gap, diagnose) and the API
from rgsd.method.probe import InternalizationGap, self_internalization_gap, sequence_logprobs  # noqa: F401
from rgsd.stats import bootstrap_means, percentile_ci, t_interval


# ---- paired differences -----------------------------------------------------------------------------------
def paired_difference(
    before: list[float], after: list[float], n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Mean of ``after - before`` with 95% CIs: bootstrap percentile over pairs, and Student t."""
    if len(before) != len(after):
        raise ValueError(f"unpaired: {len(before)} vs {len(after)} values")
    d = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    if d.size == 0:
        return {"n": 0, "mean": None, "ci95_bootstrap": None, "ci95_t": None, "std": None}
    mean = float(d.mean())
    out: dict[str, Any] = {
        "n": int(d.size),
        "mean": mean,
        "mean_before": float(np.mean(before)),
        "mean_after": float(np.mean(after)),
    }
    out["ci95_bootstrap"] = percentile_ci(bootstrap_means(d, n_boot, seed))
    out["std"], out["ci95_t"] = t_interval(d)
    return out


# ---- conditioning gap ---------------------------------------------------------------------------------------
@dataclass
class ConditioningGap:
    """Paired (with rubric - without rubric) score differences and both evaluations."""

    normalized: dict[str, Any]
    healthbench: dict[str, Any]
    without_rubric: Any  # EvalResult
    with_rubric: Any  # EvalResult
    n_unpaired: int = 0  # examples left out because one side had no score
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.without_rubric.complete and self.with_rubric.complete

    def to_dict(self) -> dict[str, Any]:
        return {
            "normalized": self.normalized,
            "healthbench": self.healthbench,
            "n_unpaired": self.n_unpaired,
            "without_rubric": {
                k: self.without_rubric.summary.get(k)
                for k in ("n", "score", "score_normalized", "mean_response_tokens")
            },
            "with_rubric": {
                k: self.with_rubric.summary.get(k)
                for k in ("n", "score", "score_normalized", "mean_response_tokens")
            },
            "complete": self.complete,
            **self.extra,
        }


def paired_scores(a: Any, b: Any, key: str) -> tuple[list[float], list[float]]:
    """Per-example ``key`` scores of two EvalResults over the same examples, where both are defined."""
    before, after = [], []
    for ra, rb in zip(a.records, b.records):
        if ra["id"] != rb["id"]:
            raise ValueError(f"evaluations are not over the same examples ({ra['id']} vs {rb['id']})")
        if ra.get(key) is not None and rb.get(key) is not None:
            before.append(ra[key])
            after.append(rb[key])
    return before, after


def conditioning_gap(
    model: Any,
    tokenizer: Any,
    examples: list[Example],
    judge: Judge,
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    placement: str = "user_suffix",
    style: str = "full",
    batch_size: int = 8,
    seed: int = 0,
    n_boot: int = 1000,
    progress: bool = False,
) -> ConditioningGap:
    """Generate with and without the rubric (greedy by default), grade both with ``judge``, pair them.

    ``progress``: a bar on stderr for each phase (generate and judge, each side).
    """
    from rgsd.evaluate.run import evaluate, generate_responses
    from rgsd.method.teacher_prompt import default_system_prompt, student_messages, teacher_messages

    sides = {}
    default = default_system_prompt(tokenizer) if placement == "system_keep" else None

    def with_rubric(ex: Example) -> list[dict[str, str]]:
        return teacher_messages(ex, placement, style=style, default_system=default)  # type: ignore[arg-type]

    for name, build in (("without", student_messages), ("with", with_rubric)):
        rollouts = generate_responses(
            model,
            tokenizer,
            examples,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            batch_size=batch_size,
            seed=seed,
            messages_fn=build,
            progress=progress and f"generate {name} rubric",
        )
        sides[name] = evaluate(
            examples,
            [r.text for r in rollouts],
            judge,
            response_tokens=[len(r.response_ids) for r in rollouts],
            seed=seed,
            progress=progress and f"judge {name} rubric",
        )
    without, with_ = sides["without"], sides["with"]
    nb, na = paired_scores(without, with_, "score_normalized")
    hb_b, hb_a = paired_scores(without, with_, "score")
    return ConditioningGap(
        normalized=paired_difference(nb, na, n_boot, seed),
        healthbench=paired_difference(hb_b, hb_a, n_boot, seed),
        without_rubric=without,
        with_rubric=with_,
        n_unpaired=len(examples) - len(nb),
    )


def conditioning_gap_from_arms(arms: Any, n_boot: int = 1000, seed: int = 0) -> ConditioningGap:
    """The conditioning gap (``rubric`` - ``none``) of an :class:`rgsd.evaluate.arms.ArmsResult`, paired over
    prompts on per-prompt means (with one sample per prompt: :func:`conditioning_gap` on the same responses)."""
    from rgsd.evaluate.arms import prompt_means

    without, with_ = arms.results["none"], arms.results["rubric"]
    out = {}
    for key in ("score_normalized", "score"):
        a, b = prompt_means(without.records, key), prompt_means(with_.records, key)
        ids = [i for i in a if i in b]
        out[key] = paired_difference([a[i] for i in ids], [b[i] for i in ids], n_boot, seed)
    return ConditioningGap(normalized=out["score_normalized"], healthbench=out["score"], without_rubric=without,
                           with_rubric=with_, n_unpaired=len(arms.examples) - out["score_normalized"]["n"])
