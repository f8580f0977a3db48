"""The measurement protocol shared by ``rgsd demo`` and ``bench/ablate_demo.py``.

A fixed evaluation set (the first ``train_prompts`` demo training prompts, which are also the prompts RGSD
trains on, and the held-out prompts), ``samples`` sampled responses per prompt at ``temperature`` (the base
model, which every other model is compared with, gets ``base_samples``), graded by the offline regex judge;
a model's effect is the paired difference over prompts with a bootstrap 95% CI (:mod:`rgsd.evaluate.paired`).
Every sampling call is seeded from the protocol seed and the set's name, so the same model gives the same
responses whatever ran before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rgsd.data.schema import Example


@dataclass
class Protocol:
    """How models are evaluated: prompts, samples per prompt, temperature, length, seed, batch size.

    The base model is sampled more (``base_samples``) because it is the reference of every paired difference:
    with as few base samples as trained ones, one lucky or unlucky base draw shifts every row of a study the
    same way (measured: the held-out base mean over 2 samples ranged 0.083-0.140 across 5 sampling seeds).
    A trained model's samples cannot share the base's randomness anyway: any weight change re-rolls them.
    """

    train_prompts: int = 16
    samples: int = 2
    base_samples: int = 6
    temperature: float = 0.7
    max_new_tokens: int = 64
    seed: int = 0
    batch_size: int = 32
    first_train_prompt: int = 1  # 1-based: the training set is demo training prompts first..first+train_prompts-1
    heldout_prompts: str = "heldout"  # the held-out file, or "A-B": demo training prompts A..B (1-based) not trained on


@dataclass
class SetEval:
    """One model on one prompt set: per-response records, mean length and end-of-turn rate."""

    records: list[dict[str, Any]]
    mean_tokens: float
    eos_rate: float
    score: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"score_normalized": self.score, "mean_response_tokens": self.mean_tokens,
                "eos_rate": self.eos_rate, "n_responses": len(self.records)}


def prompt_range(text: str) -> tuple[int, int]:
    """``"A-B"`` -> ``(A, B)``, 1-based and inclusive (``ValueError`` naming the value otherwise)."""
    try:
        a, b = (int(x) for x in text.split("-"))
    except ValueError:
        raise ValueError(f"heldout_prompts: expected 'heldout' or a range A-B of demo training prompts, "
                         f"got {text!r}") from None
    if not 1 <= a <= b:
        raise ValueError(f"heldout_prompts: {text!r} is not a range 1 <= A <= B")
    return a, b


def eval_sets(p: Protocol) -> dict[str, list[Example]]:
    """The evaluation prompt sets: ``train`` (the demo training prompts RGSD trains on) and ``heldout`` (the
    held-out file, or a range of demo training prompts that no run trains on)."""
    from rgsd.data.loaders import load_examples

    pool = load_examples("demo:train").examples
    start = p.first_train_prompt - 1
    train = pool[start: start + p.train_prompts]
    if start < 0 or len(train) < p.train_prompts:
        raise ValueError(f"train prompts {p.first_train_prompt}-{start + p.train_prompts}: the demo has "
                         f"{len(pool)} training prompts")
    if p.heldout_prompts == "heldout":
        return {"train": train, "heldout": load_examples("demo:heldout").examples}
    a, b = prompt_range(p.heldout_prompts)
    if b > len(pool) or not (b < p.first_train_prompt or a > start + p.train_prompts):
        raise ValueError(f"heldout_prompts {p.heldout_prompts}: must lie within the {len(pool)} demo training "
                         f"prompts and outside the trained ones ({p.first_train_prompt}-{start + p.train_prompts})")
    return {"train": train, "heldout": pool[a - 1: b]}


def evaluate_set(
    model: Any, tok: Any, examples: list[Example], judge: Any, p: Protocol, name: str,
    messages_fn: Callable[[Example], list[dict[str, str]]] | None = None, samples: int | None = None,
) -> SetEval:
    """``samples`` (default ``p.samples``) responses per prompt, graded; seeded from ``p.seed`` and ``name``."""
    import zlib

    from rgsd.evaluate.run import evaluate
    from rgsd.evaluate.sampling import sample_responses

    seed = p.seed * 1000 + zlib.crc32(name.encode()) % 997
    reps, rollouts = sample_responses(model, tok, examples, samples or p.samples, temperature=p.temperature,
                                      max_new_tokens=p.max_new_tokens, batch_size=p.batch_size, seed=seed,
                                      messages_fn=messages_fn)
    res = evaluate(reps, [r.text for r in rollouts], judge, response_tokens=[len(r.response_ids) for r in rollouts],
                   seed=p.seed)
    for rec, r in zip(res.records, rollouts):
        rec["finished"] = r.finished
    n = max(len(rollouts), 1)
    return SetEval(res.records, sum(len(r.response_ids) for r in rollouts) / n,
                   sum(r.finished for r in rollouts) / n, res.summary.get("score_normalized"))


def paired(base: SetEval, other: SetEval, seed: int = 0) -> dict[str, Any]:
    """``other - base`` over prompts: ``{"mean", "ci95", "t_ci95", "p_value", "n", "better", "worse"}``."""
    from rgsd.evaluate.paired import paired_compare

    return paired_compare(base.records, other.records, seed=seed)["diff"]


def pooled(pairs: list[tuple[SetEval, SetEval]], seed: int = 0) -> dict[str, Any]:
    """``b - a`` over prompts, one ``(a, b)`` pair per training seed, pooled (:func:`rgsd.stats.pooled_summary`):
    the mean over seeds and prompts, an interval resampling both, the sign-flip p and t interval over prompts."""
    from rgsd.evaluate.paired import prompt_means
    from rgsd.stats import pooled_summary

    means = [(prompt_means(a.records), prompt_means(b.records)) for a, b in pairs]
    ids = sorted(set.intersection(*(set(ma) & set(mb) for ma, mb in means)))
    if not ids:
        return {"mean": None, "ci95": [None, None], "t_ci95": None, "p_value": None, "n": 0}
    return pooled_summary([[mb[i] - ma[i] for i in ids] for ma, mb in means], seed=seed)


def joined(*evals: SetEval) -> SetEval:
    """Several evaluations as one (seeds of one arm, or both splits): records concatenated, means weighted."""
    n = [len(e.records) for e in evals]
    total = max(sum(n), 1)
    scores = [r.get("score_normalized") for e in evals for r in e.records]
    scored = [x for x in scores if isinstance(x, (int, float))]
    return SetEval([r for e in evals for r in e.records], sum(e.mean_tokens * k for e, k in zip(evals, n)) / total,
                   sum(e.eos_rate * k for e, k in zip(evals, n)) / total,
                   sum(scored) / len(scored) if scored else None)


def shuffled_rubric_data(examples: list[Example], out: Path) -> Path:
    """A control dataset: prompt i keeps its question but carries prompt i+1's rubric (a cyclic shift)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for i, ex in enumerate(examples):
            d = ex.to_dict()
            d["rubric"] = examples[(i + 1) % len(examples)].to_dict()["rubric"]
            fh.write(json.dumps(d) + "\n")
    return out


def subset_data(examples: list[Example], out: Path) -> Path:
    """The training prompts as a canonical JSONL file (so a run trains on exactly the evaluated prompts)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(ex.to_dict()) + "\n" for ex in examples), encoding="utf-8")
    return out


def run_summary(run_dir: Path) -> dict[str, Any]:
    """Means over steps of the clip diagnostics, the first step's divergence by position, the last SI gap."""
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]

    def mean(key: str) -> float | None:
        vals = [m[key] for m in metrics if m.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    gaps = [(m["step"], m["self_internalization_gap"]) for m in metrics if "self_internalization_gap" in m]
    return {
        "steps": len(metrics),
        "loss_mean": mean("loss"),
        "clipped_entry_fraction": mean("clipped_entry_fraction"),
        "clipped_position_share": mean("signal_clipped_position_share"),
        "clip_removed_share": mean("signal_clip_removed_share"),
        "sampled_token_logratio": mean("signal_sampled_token_logratio"),
        "divergence_by_position_step1": metrics[0].get("signal_divergence_by_position") if metrics else None,
        "top_raised_tokens_step1": metrics[0].get("signal_top_raised_tokens") if metrics else None,
        "train_eos_rate": mean("eos_rate"),
        "si_gap": gaps,
    }
