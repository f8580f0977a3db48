"""Generate responses, grade them with a judge, score them: the evaluation every command reuses.

:func:`evaluate` grades given responses (the in-process API behind ``rgsd eval``, ``gap``, ``compare``,
``diagnose`` and the demo); :func:`generate_responses` makes them with a model (greedy by default). Scores come from
:mod:`rgsd.scoring`: HealthBench score (clipped mean, bootstrap std) and the normalized score, per tag too.
A judge failure (``met=None``) is excluded from every score and counted (``n_failures``, ``failure_rate``).
When the judge's budget runs out, the examples graded so far are scored, the rest are listed as pending, and
``EvalResult.complete`` is False; when the judge rejects its configuration mid-run (a 401),
:class:`JudgeRejected` carries that partial result.
``results.jsonl`` and ``summary.json`` are written atomically (aside, then renamed).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import os
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np

from rgsd import scoring
from rgsd.data.schema import Example
from rgsd.evaluate.judge_stats import failure_stats, judge_cost_usd, usage_delta
from rgsd.judges.base import Grade, Judge
from rgsd.judges.openai_judge import JudgeConfigError
from rgsd.judges.usage import BudgetExhausted, Usage
from rgsd.progress import bar as progress_bar

if TYPE_CHECKING:  # the rollout module imports torch; evaluating strings must not
    from rgsd.method.rollout import Rollout

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")


class JudgeRejected(JudgeConfigError):
    """The judge rejected its configuration (a 401/403/404) mid-run; ``result`` holds what was graded."""

    def __init__(self, message: str, result: "EvalResult") -> None:
        super().__init__(message)
        self.result = result


@dataclass
class EvalResult:
    """Per-example records (``results.jsonl``) and the summary (``summary.json``)."""

    records: list[dict[str, Any]]
    summary: dict[str, Any]
    grades: list[Grade | None]  # None = not graded (budget stop)

    @property
    def complete(self) -> bool:
        return bool(self.summary.get("complete", True))

    @property
    def score(self) -> float | None:
        return self.summary.get("score")

    @property
    def score_normalized(self) -> float | None:
        return self.summary.get("score_normalized")

    def write(self, out_dir: str | Path, report: bool = True) -> Path:
        """Write ``results.jsonl``, ``summary.json`` and (optionally) ``report.md`` + chart to ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in self.records)
        write_atomic(out / "results.jsonl", lines)
        write_atomic(out / "summary.json", json.dumps(self.summary, indent=2, ensure_ascii=False) + "\n")
        if report:
            from rgsd.evaluate.report import write_report

            write_report(self.records, self.summary, out)
        return out


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader (or a crash) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def generate_responses(
    model: Any,
    tokenizer: Any,
    examples: list[Example],
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 8,
    seed: int | None = None,
    messages_fn: Callable[[Example], list[dict[str, str]]] | None = None,
    progress: bool | str = False,
) -> list[Rollout]:
    """One response per example (a :class:`rgsd.method.rollout.Rollout` each; :func:`evaluate` takes them as
    they are). ``temperature=0`` is greedy.

    ``messages_fn`` builds the chat (default: the plain student prompt; pass ``teacher_messages`` for the
    rubric-conditioned model).
    """
    from rgsd.method.rollout import chat_prompt_ids, generate
    from rgsd.method.teacher_prompt import student_messages

    build = messages_fn or student_messages
    prompts = [chat_prompt_ids(tokenizer, build(ex)) for ex in examples]
    return generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        temperature=temperature if temperature > 0 else 1.0,
        top_p=top_p,
        do_sample=temperature > 0,
        batch_size=batch_size,
        generator_seed=seed,
        progress=progress,
    )


async def grade_responses(
    judge: Judge, examples: list[Example], responses: list[str], progress: bool | str = False
) -> tuple[list[Grade | None], str | None]:
    """Grade every response concurrently (the judge bounds its own requests).

    Returns the grades (``None`` where a :class:`BudgetExhausted` or a :class:`JudgeConfigError` stopped
    the grading) and the first stop message, if any (prefixed ``judge error:`` for the latter).
    """
    stop: list[str] = []
    bar = progress_bar(progress, len(examples), "judge", "response")

    async def one(ex: Example, resp: str) -> Grade | None:
        try:
            return await judge.grade(ex, resp)
        except BudgetExhausted as err:
            stop.append(str(err))
            return None
        except JudgeConfigError as err:  # e.g. a 401 mid-run: keep what was graded, stop the rest
            stop.append(f"judge error: {err}")
            return None
        finally:
            if bar is not None:
                bar.update(1)

    try:
        grades = await asyncio.gather(*(one(ex, r) for ex, r in zip(examples, responses)))
    finally:
        if bar is not None:
            bar.close()
    return list(grades), (stop[0] if stop else None)


def _count_tokens(responses: list[str], tokenizer: Any) -> tuple[list[int], str]:
    if tokenizer is None:
        return [len(r.split()) for r in responses], "whitespace-separated words"
    return [len(tokenizer.encode(r, add_special_tokens=False)) for r in responses], "tokenizer tokens"


def _safe(fn: Callable[..., float], *args: Any) -> float | None:
    try:
        return float(fn(*args))
    except ValueError:
        return None


def _record(ex: Example, response: str, n_tokens: int, grade: Grade | None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": ex.id,
        "response": response,
        "response_tokens": n_tokens,
        "graded": grade is not None,
    }
    if grade is None:
        return rec
    if grade.holistic is not None or grade.failed:
        rec.update(
            holistic=grade.holistic,
            failed=grade.failed,
            score=grade.holistic,
            score_normalized=grade.holistic,
        )
        return rec
    by_id = {v.criterion_id: v for v in grade.verdicts}
    met = [by_id[c.id].met if c.id in by_id else None for c in ex.rubric]
    rec["verdicts"] = [
        {
            "criterion_id": c.id,
            "criterion": c.text,
            "points": c.points,
            "met": m,
            "explanation": by_id[c.id].explanation if c.id in by_id else "judge gave no verdict",
        }
        for c, m in zip(ex.rubric, met)
    ]
    rec["failures"] = sum(m is None for m in met)
    rec["score"] = _safe(scoring.healthbench_score, ex.points, met)
    rec["score_normalized"] = _safe(scoring.normalized_score, ex.points, met)
    return rec


def _criteria_summary(examples: list[Example], grades: list[Grade | None], bootstrap: int, seed: int) -> dict:
    scored = []
    for ex, g in zip(examples, grades):
        if g is None:
            continue
        by_id = {v.criterion_id: v.met for v in g.verdicts}
        scored.append(scoring.ScoredResponse.from_example(ex, [by_id.get(c.id) for c in ex.rubric]))
    empty = {"n": 0, "score": None, "score_std": None, "score_normalized": None, "tags": {}}
    if not scored:
        return empty
    failures = sum(m is None for r in scored for m in r.met)
    if failures == sum(len(r.met) for r in scored):  # the judge failed: say that, not "no positive points"
        return {**empty, "n_failures": failures}
    try:
        agg = scoring.aggregate(scored, bootstrap_samples=bootstrap, seed=seed)
    except ValueError as err:  # e.g. every verdict failed
        log.warning("nothing to score: %s", err)
        return {**empty, "n_failures": failures}
    norm = [v for r in scored if (v := _safe(scoring.normalized_score, r.points, r.met)) is not None]
    return {
        "n": agg["n"],
        "score": agg["score"],
        "score_std": agg["bootstrap_std"],
        "score_unclipped": agg["mean_unclipped"],
        "score_normalized": agg["normalized"],
        "score_normalized_std": scoring.bootstrap_std(norm, bootstrap, seed) if norm else None,
        "rar_explicit": agg["rar_explicit"],
        "strict_completion": agg["strict_completion"],
        "n_no_positive_points": agg["n_skipped"],
        "n_failures": agg["n_failures"],
        "tags": {
            t: {"score": s["score"], "std": s["bootstrap_std"], "n": s["n"]} for t, s in agg["tags"].items()
        },
    }


def _holistic_summary(grades: list[Grade | None], bootstrap: int, seed: int) -> dict:
    ratings = [g.holistic for g in grades if g is not None and g.holistic is not None]
    failed = sum(1 for g in grades if g is not None and g.failed)
    if not ratings:
        return {
            "n": 0,
            "score": None,
            "score_std": None,
            "score_normalized": None,
            "tags": {},
            "n_failures": failed,
        }
    mean = float(np.mean(ratings))
    std = scoring.bootstrap_std(ratings, bootstrap, seed)
    return {
        "n": len(ratings),
        "score": min(1.0, max(0.0, mean)),
        "score_std": std,
        "score_normalized": mean,
        "score_normalized_std": std,
        "n_failures": failed,
        "tags": {},
        "scoring": "holistic: one 1-10 rating per response mapped to (r - 1) / 9 (RaR implicit)",
    }


def response_texts(
    responses: Sequence[str | Rollout], response_tokens: list[int] | None
) -> tuple[list[str], list[int] | None]:
    """The texts of ``responses`` (strings, or rollouts as :func:`generate_responses` returns them) and the token
    counts: ``response_tokens`` when given, else the rollouts' own when every response is one."""
    texts = []
    for i, r in enumerate(responses):
        text = r if isinstance(r, str) else getattr(r, "text", None)
        if not isinstance(text, str):
            raise TypeError(f"responses[{i}] is a {type(r).__name__}: expected a str or a Rollout")
        texts.append(text)
    if response_tokens is None and responses and not any(isinstance(r, str) for r in responses):
        response_tokens = [len(r.response_ids) for r in responses]  # type: ignore[union-attr]
    return texts, response_tokens


async def evaluate_async(
    examples: list[Example],
    responses: Sequence[str | Rollout],
    judge: Judge,
    *,
    response_tokens: list[int] | None = None,
    tokenizer: Any = None,
    bootstrap: int = scoring.BOOTSTRAP_SAMPLES,
    seed: int = 0,
    progress: bool | str = False,
    extra_summary: dict[str, Any] | None = None,
    prices: Any = None,
) -> EvalResult:
    """Async :func:`evaluate` (use it from inside a running event loop); the parameters are documented there."""
    if len(examples) != len(responses):
        raise ValueError(f"{len(examples)} examples but {len(responses)} responses")
    texts, response_tokens = response_texts(responses, response_tokens)
    if response_tokens is not None and len(response_tokens) != len(texts):
        raise ValueError(f"{len(texts)} responses but {len(response_tokens)} token counts")
    usage = getattr(judge, "usage", None)
    before = replace(usage) if isinstance(usage, Usage) else None
    grades, stop = await grade_responses(judge, examples, texts, progress)
    if response_tokens is not None:
        counts, unit = list(response_tokens), "model tokens (generated ids, end-of-turn included)"
    else:
        counts, unit = _count_tokens(texts, tokenizer)
    records = [_record(ex, r, n, g) for ex, r, n, g in zip(examples, texts, counts, grades)]
    holistic = any(g is not None and (g.holistic is not None or g.failed) for g in grades)
    summary: dict[str, Any] = {"n_examples": len(examples), "n_graded": sum(g is not None for g in grades)}
    summary.update(
        _holistic_summary(grades, bootstrap, seed)
        if holistic
        else _criteria_summary(examples, grades, bootstrap, seed)
    )
    summary["mean_response_tokens"] = float(np.mean(counts)) if counts else None
    summary["response_length_unit"] = unit
    summary["judge_name"] = getattr(judge, "name", type(judge).__name__)
    if getattr(judge, "mode", None):
        summary["judge_mode"] = judge.mode  # type: ignore[attr-defined]
    spent = usage_delta(before, judge.usage) if before is not None else None  # type: ignore[attr-defined]
    if spent is not None:
        summary["judge"] = spent.to_dict()
    if hasattr(judge, "panel_summary"):
        summary["panel"] = judge.panel_summary()  # type: ignore[attr-defined]
    if prices:
        summary["judge_cost_usd"] = judge_cost_usd(judge, spent, summary, prices)
    if getattr(judge, "note", None):
        summary["note"] = judge.note  # type: ignore[attr-defined]
    summary.update(failure_stats(grades))
    summary["complete"] = stop is None
    if stop is not None:
        pending = [ex.id for ex, g in zip(examples, grades) if g is None]
        summary["judge_error" if stop.startswith("judge error:") else "budget_stop"] = stop
        summary["pending_ids"] = pending
    if extra_summary:
        summary.update(extra_summary)
    for key in ("score", "score_std", "score_normalized"):
        if isinstance(summary.get(key), float) and math.isnan(summary[key]):
            summary[key] = None
    result = EvalResult(records=records, summary=summary, grades=grades)
    if "judge_error" in summary:
        raise JudgeRejected(summary["judge_error"], result)
    return result


def _signature_of(
    async_fn: Callable[_P, Coroutine[Any, Any, _R]],
) -> Callable[[Callable[..., _R]], Callable[_P, _R]]:
    """Give the decorated forwarder ``async_fn``'s parameters: to type checkers (``_P``) and to ``help`` and
    ``inspect.signature`` (``__wrapped__``); the forwarder keeps its own name and docstring."""

    def decorate(forwarder: Callable[..., _R]) -> Callable[_P, _R]:
        return functools.wraps(async_fn, assigned=())(forwarder)

    return decorate


@_signature_of(evaluate_async)
def evaluate(*args: Any, **kwargs: Any) -> EvalResult:
    """Grade ``responses[i]`` for ``examples[i]`` with ``judge`` and score them.

    ``responses`` are strings or what :func:`generate_responses` returns (rollouts: their text is graded and
    their generated ids are the length statistic). ``response_tokens`` gives the length statistic for
    strings; without it they are counted with ``tokenizer`` or, without one, in whitespace-separated words
    (the summary names the unit). ``bootstrap``/``seed`` drive the bootstrap std. ``prices`` (a
    :class:`rgsd.costs.PriceTable`) adds ``judge_cost_usd``. Never raises on a budget stop: check
    ``result.complete``. A judge that rejects its key, URL or model raises :class:`JudgeRejected`, whose
    ``result`` holds the examples graded before it (the rest pending), so a caller can still write them.
    Inside a running event loop (a notebook) it runs on a worker thread; ``await evaluate_async(...)``
    avoids the thread. The parameters are :func:`evaluate_async`'s (one signature for both).
    """
    evaluation = evaluate_async(*args, **kwargs)  # binds the arguments here: a bad call raises in the caller
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(evaluation)
    # Inside a running loop (Jupyter): asyncio.run cannot nest, so run the evaluation on a worker thread
    # with its own loop. The OpenAI judge already does its HTTP work on a loop of its own.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, evaluation).result()
