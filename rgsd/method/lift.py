"""The statistics of the teacher-context arms: the pre-flight of :mod:`rgsd.evaluate.arms` and of ``rgsd train
--preflight`` (which has no evaluator). They read graded records, one per response: ``{"id": prompt id,
"score_normalized": float | None, "verdicts": [{"criterion_id", "met"}, ...]}``.

The arms: the base model answers every prompt under four contexts, all graded against the prompt's **own**
criteria by the same judge:

* ``none``: the student's chat (the plain prompt);
* ``neutral``: the teacher template with no criteria (:func:`rgsd.method.teacher_prompt.neutral_messages`);
* ``shuffled``: the template with another prompt's criteria (a fixed-seed, count-keeping derangement);
* ``rubric``: the teacher (the prompt's own criteria).

The lifts are paired over prompts on per-prompt mean normalized scores (``samples`` responses per prompt and
arm) with :func:`rgsd.stats.paired_summary`: ``format`` = neutral - none (the template), ``list`` = shuffled -
neutral (*a* criteria list), ``rubric`` = rubric - shuffled (*these* criteria: what RGSD can specifically
teach), ``total`` = rubric - none (the conditioning gap). Per criterion, the met rate under ``rubric`` minus
under ``shuffled`` and under ``none``, each with a Newcombe hybrid-score 95% interval (method 10, from two
Wilson intervals; the samples of different arms are independent draws).

The verdict (thresholds :data:`P_MAX`, :data:`MIN_RUBRIC_LIFT`):

* rubric lift with one-sided p < 0.05 and mean >= +0.02: RGSD can teach these criteria;
* else the generic lift (shuffled - none = format + list) with p < 0.05: it will mostly teach the generic
  effect of a criteria list or template, not these criteria;
* else: nothing to teach (the context does not move the graded answers measurably).

The p-values are exact sign-flip tests over prompts, so they cannot go below 2^-n: with 4 prompts or fewer no
lift can pass p < 0.05 (the verdict says so); 20 or more prompts are needed for a lift of a few hundredths.
"""

from __future__ import annotations

import math
from typing import Any

from rgsd.data.schema import Example
from rgsd.stats import paired_summary, prompt_means

ARMS: tuple[str, ...] = ("none", "neutral", "shuffled", "rubric")
LIFTS: dict[str, tuple[str, str]] = {  # name: (from arm, to arm); the lift is to - from
    "format": ("none", "neutral"), "list": ("neutral", "shuffled"), "rubric": ("shuffled", "rubric"),
    "total": ("none", "rubric")}
ARM_LABELS = {"none": "without rubric", "neutral": "neutral", "shuffled": "shuffled", "rubric": "with rubric"}
P_MAX = 0.05  # one-sided sign-flip p below which a lift counts as shown
MIN_RUBRIC_LIFT = 0.02  # smallest rubric-specific lift (normalized score) worth distilling
Z95 = 1.959963984540054


def parse_arms(text: str) -> tuple[str, ...]:
    """``"none,rubric"`` -> ``("none", "rubric")`` in :data:`ARMS` order; ``ValueError`` on an unknown or no arm."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in ARMS]
    if bad or not names:
        raise ValueError(f"--arms: {', '.join(bad) or 'none given'}; choose from {', '.join(ARMS)}")
    return tuple(a for a in ARMS if a in names)


def arm_chats(examples: list[Example], arm: str, placement: str = "user_suffix", style: str = "full",
              seed: int = 0, default_system: str | None = None, show_weights: bool = False
              ) -> list[list[dict[str, str]]]:
    """The chat each example is answered from under ``arm``."""
    from rgsd.method.teacher_prompt import context_messages, student_messages

    if arm == "none":
        return [student_messages(ex) for ex in examples]
    return context_messages(examples, arm, placement, show_weights, style, seed,  # type: ignore[arg-type]
                            default_system=default_system)


def _paired(means: dict[str, dict[str, float]], a: str, b: str, seed: int) -> dict[str, Any] | None:
    if a not in means or b not in means:
        return None
    ids = [i for i in means[a] if i in means[b]]
    return paired_summary([means[b][i] - means[a][i] for i in ids], seed=seed)


def lifts(records_by_arm: dict[str, list[dict[str, Any]]], seed: int = 0) -> dict[str, dict[str, Any]]:
    """The lifts of :data:`LIFTS` whose two arms are present, paired over prompts on per-prompt means
    (``paired_summary``: mean, ci95, t_ci95, p_value, n, better, worse)."""
    means = {arm: prompt_means(r) for arm, r in records_by_arm.items()}
    out = {}
    for name, (a, b) in LIFTS.items():
        s = _paired(means, a, b, seed)
        if s is not None:
            out[name] = s
    return out


def arms_summary(records_by_arm: dict[str, list[dict[str, Any]]], samples: int, temperature: float, seed: int = 0
                 ) -> dict[str, Any]:
    """``conditioning_arms`` (per arm, the mean over prompts of per-prompt means), ``conditioning_lift``
    (:func:`lifts`), ``preflight_verdict`` (:func:`verdict`) and ``preflight`` (generic lift, thresholds)."""
    means = {arm: prompt_means(r) for arm, r in records_by_arm.items()}
    arm_mean = {arm: (sum(m.values()) / len(m) if m else None) for arm, m in means.items()}
    lift = lifts(records_by_arm, seed)
    generic = _paired(means, "none", "shuffled", seed)
    return {"conditioning_arms": arm_mean, "conditioning_lift": lift, "samples_per_prompt": samples,
            "sample_temperature": temperature, "preflight_verdict": verdict(lift.get("rubric"), generic),
            "preflight": {"generic_lift": generic, "p_max": P_MAX, "min_rubric_lift": MIN_RUBRIC_LIFT}}


def _fmt(s: dict[str, Any]) -> str:
    return f"{s['mean']:+.3f} (p {s['p_value']:.2g})"


def verdict(rubric: dict[str, Any] | None, generic: dict[str, Any] | None) -> str:
    """The pre-flight verdict from the rubric lift (rubric - shuffled) and the generic lift (shuffled - none)."""
    if not rubric or rubric.get("mean") is None or not generic or generic.get("mean") is None:
        return "no verdict: it needs the none, shuffled and rubric arms on at least one scored prompt"
    head = f"rubric-specific lift {_fmt(rubric)}"
    n = rubric.get("n")
    if n is not None and 2.0 ** -n >= P_MAX:  # the sign-flip p of n prompts is at least 2^-n
        head += f" (only {n} prompts: p cannot go below {2.0 ** -n:.3g}; use 5 or more)"
    if rubric["p_value"] < P_MAX and rubric["mean"] >= MIN_RUBRIC_LIFT:
        return f"{head}: on this model and template RGSD can teach these criteria"
    tail = f", criteria-list/template lift {_fmt(generic)}"
    if generic["p_value"] < P_MAX:
        return (f"{head}{tail}: on this model and template RGSD will mostly teach the generic effect of a "
                "criteria list, not these criteria")
    return f"{head}{tail}: nothing to teach (no context moves the graded answers measurably)"


# ---- per criterion ------------------------------------------------------------------------------------------
def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (``n >= 1``)."""
    p, zz = k / n, z * z
    centre = (p + zz / (2 * n)) / (1 + zz / n)
    half = z * math.sqrt(p * (1 - p) / n + zz / (4 * n * n)) / (1 + zz / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> list[float] | None:
    """Newcombe's hybrid score interval (method 10) of ``k1/n1 - k2/n2``; ``None`` when a side has no samples."""
    if n1 < 1 or n2 < 1:
        return None
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1, z), wilson(k2, n2, z)
    d = p1 - p2
    return [d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)]


def _lift(counts: dict[str, list[int]], to: str, frm: str) -> dict[str, Any] | None:
    if to not in counts or frm not in counts or not counts[to][1] or not counts[frm][1]:
        return None
    (k1, n1), (k2, n2) = counts[to], counts[frm]
    return {"mean": k1 / n1 - k2 / n2, "ci95": newcombe(k1, n1, k2, n2)}


def taught(row: dict[str, Any]) -> str:
    """``taught`` when the rubric - shuffled interval excludes 0 on the good side (up for a positive criterion,
    down for a pitfall), ``hurt`` on the other side, else ``indistinguishable`` (or ``unknown``: no interval)."""
    lift = row.get("lift_vs_shuffled")
    if not lift or not lift.get("ci95"):
        return "unknown"
    lo, hi = lift["ci95"]
    good_up = row.get("polarity", "positive") == "positive"
    if lo > 0:
        return "taught" if good_up else "hurt"
    if hi < 0:
        return "hurt" if good_up else "taught"
    return "indistinguishable"


def criteria_rows(examples: list[Example], records_by_arm: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per criterion of every prompt: met rate per arm (judge failures left out), the rubric - shuffled
    and rubric - none lifts with Newcombe 95% intervals, ``n`` (graded samples per arm) and :func:`taught`."""
    counts: dict[tuple[str, str], dict[str, list[int]]] = {}
    for arm, recs in records_by_arm.items():
        for rec in recs:
            for v in rec.get("verdicts", []):
                if v["met"] is None:
                    continue
                c = counts.setdefault((rec["id"], v["criterion_id"]), {}).setdefault(arm, [0, 0])
                c[0] += bool(v["met"])
                c[1] += 1
    rows = []
    for ex in examples:
        for crit in ex.rubric:
            cnt = counts.get((ex.id, crit.id), {})
            row = {"id": crit.id, "prompt_id": ex.id, "text": crit.text, "polarity": crit.polarity,
                   "met_rate": {a: (cnt[a][0] / cnt[a][1] if a in cnt else None) for a in records_by_arm},
                   "n": {a: (cnt[a][1] if a in cnt else 0) for a in records_by_arm},
                   "lift_vs_shuffled": _lift(cnt, "rubric", "shuffled"), "lift_vs_none": _lift(cnt, "rubric", "none"),
                   "interval": "newcombe-wilson 95%"}
            row["taught"] = taught(row)
            rows.append(row)
    return rows
