"""Write a rubric for every prompt of a dataset, resumably, into canonical JSONL.

Resuming: examples already in ``out`` (matched by id) are kept and not asked again, and every validated reply
is in the SQLite cache, so a rerun after a crash or a budget stop pays nothing twice. Prompts whose rubric
could not be made (every try malformed, or rejected by the checks of :mod:`rgsd.rubrics.clean`) are listed
in ``<out>.failures.jsonl`` with the reason and are asked again by the next run.

Every rubric is asked with :func:`rgsd.judges.asking.ask_json`: the rubric's JSON schema goes out as the
judge's structured-output mode allows, an unusable reply is re-asked with the reason, and the strict checks of
:mod:`rgsd.rubrics.parse` and :mod:`rgsd.rubrics.clean` judge every reply.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rgsd.data.loaders import DataError, load_examples
from rgsd.data.schema import Example
from rgsd.judges.asking import Answer, ask_json
from rgsd.judges.transport import STRUCTURED, JudgeTransport
from rgsd.judges.usage import BudgetExhausted
from rgsd.progress import bar as progress_bar
from rgsd.rubrics.clean import build_rubric
from rgsd.rubrics.inputs import Task
from rgsd.rubrics.parse import DEFAULT_WEIGHTS, WeightMap, parse_rubric_reply
from rgsd.rubrics.prompts import generation_messages, reask_messages, response_schema


@dataclass
class Settings:
    """How rubrics are written and checked (see :mod:`rgsd.rubrics.clean` for the checks)."""

    min_criteria: int = 7
    max_criteria: int = 20
    weights: WeightMap = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    copy_words: int = 10  # a run of this many reference words inside a criterion flags it as a copy
    drop_copies: bool = False  # drop flagged copies instead of tagging them
    # The generator's re-asks and structured-output mode; None = the judge's own (its max_reasks, structured).
    max_reasks: int | None = None
    structured: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.min_criteria <= self.max_criteria:
            raise ValueError(f"need 1 <= min_criteria <= max_criteria, got {self.min_criteria} and {self.max_criteria}")
        if self.max_reasks is not None and self.max_reasks < 0:
            raise ValueError(f"max_reasks must be >= 0, got {self.max_reasks}")
        if self.structured is not None and self.structured not in STRUCTURED:
            raise ValueError(f"structured must be one of {STRUCTURED}, got {self.structured!r}")


@dataclass
class Report:
    """What one run did. ``failed`` holds ``{"id", "where", "error"}`` rows; ``usage`` the judge's totals."""

    kept: int = 0  # already in the output file: not asked again
    generated: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    merged: int = 0
    copies: int = 0
    dropped_copies: int = 0
    budget_stop: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    written: int = 0


def failures_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".failures.jsonl")


def _existing(out: Path) -> list[Example]:
    if not out.exists() or out.stat().st_size == 0:
        return []
    try:
        return load_examples(out, format="canonical").examples
    except DataError as err:
        raise DataError(f"cannot resume from the existing output (fix or remove it): {err}", err.issues) from None


async def _one(judge: JudgeTransport, task: Task, s: Settings) -> tuple[Task, Answer[Any]]:
    def validate(text: str) -> Any:
        items = parse_rubric_reply(text, s.weights)
        crits, counts = build_rubric(items, task.reference, s.min_criteria, s.max_criteria, s.copy_words, s.drop_copies)
        return crits, dict(counts)

    messages = generation_messages(task.prompt, task.reference, s.weights, s.min_criteria, s.max_criteria)
    answer = await ask_json(judge, messages, validate, schema=response_schema(), max_reasks=s.max_reasks,
                            reask=reask_messages, structured=s.structured)
    return task, answer


async def _run_all(judge: JudgeTransport, tasks: list[Task], s: Settings, pbar: Any) -> list[Any]:
    async def counted(task: Task) -> tuple[Task, Answer[Any]]:
        try:
            return await _one(judge, task, s)
        finally:
            if pbar is not None:
                pbar.update(1)

    return await asyncio.gather(*(counted(t) for t in tasks), return_exceptions=True)


def generate_rubrics(tasks: list[Task], out: str | Path, judge: JudgeTransport, settings: Settings | None = None,
                     progress: bool = False) -> Report:
    """Write ``out`` (canonical JSONL, input order) with a generated rubric for every task; see the module doc.

    Blocking; safe to call from a thread that runs an event loop (the work runs on the judge's own loop).
    ``progress``: a bar on stderr counting the prompts done.
    """
    s = settings or Settings()
    out = Path(out)
    report = Report()
    existing = {ex.id: ex for ex in _existing(out)}
    todo = [t for t in tasks if t.id not in existing]
    report.kept = len(tasks) - len(todo)
    made: dict[str, Example] = {}
    if todo:
        pbar = progress_bar(progress, len(todo), "rubrics", "prompt")
        try:
            results = judge.run_sync(_run_all(judge, todo, s, pbar))
        finally:
            if pbar is not None:
                pbar.close()
        for r in results:
            if isinstance(r, BudgetExhausted):
                report.budget_stop = str(r)
                continue
            if isinstance(r, BaseException):
                raise r
            task, ans = r
            if ans.value is None:
                error = f"request failed: {ans.error}" if ans.unavailable else ans.error
                report.failed.append({"id": task.id, "where": task.where, "error": error or "unknown"})
                continue
            crits, counts = ans.value
            report.merged += counts["merged"]
            report.copies += counts["copies"]
            report.dropped_copies += counts["dropped_copies"]
            meta = dict(task.metadata)
            meta["rubric_generator"] = {"model": judge.model, **counts}
            made[task.id] = Example(task.id, task.prompt, crits, task.reference, meta)
        report.generated = len(made)
    # Input order; examples of the old output that are no longer in the input are kept at the end.
    ids = [t.id for t in tasks]
    rows = [existing.get(i) or made.get(i) for i in ids]
    rows += [ex for i, ex in existing.items() if i not in set(ids)]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:  # written aside, then renamed: no half-written file
        for ex in rows:
            if ex is not None:
                fh.write(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n")
                report.written += 1
    os.replace(tmp, out)
    fails = failures_path(out)
    if report.failed:
        fails.write_text("".join(json.dumps(f, ensure_ascii=False) + "\n" for f in report.failed), encoding="utf-8")
    elif fails.exists():
        fails.unlink()
    report.usage = judge.usage.to_dict()
    return report
