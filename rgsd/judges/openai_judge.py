"""An LLM judge on any OpenAI-compatible chat-completions endpoint: rubric verdicts in three modes.

Modes: ``per-criterion`` (one request per rubric item), ``batched`` (all items in one request, missing or
malformed items re-asked alone), ``holistic`` (one 1-10 rating mapped to ``(r - 1) / 9``).

Requests go through :class:`rgsd.judges.transport.JudgeTransport` (retries, cache, budget, structured
outputs with their one fallback) and re-asks through :mod:`rgsd.judges.asking`. An unreadable, ambiguous or
cut-off (``finish_reason == "length"``) reply is re-asked (``max_reasks`` times) and then recorded as a failure
(``met=None``): failures are counted, never scored. A verdict is cached under the key of the *first* request of
its conversation, so a rerun makes no call whatever it took the first time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Literal

from rgsd.data.schema import Criterion, Example
from rgsd.judges import schemas
from rgsd.judges.asking import ask, ask_json
from rgsd.judges.base import Grade, Verdict
from rgsd.judges.parse import ParseError, parse_batched, parse_holistic, parse_verdict
from rgsd.judges.prompts import batched_messages, holistic_messages, per_criterion_messages
from rgsd.judges.transport import JudgeConfigError, JudgeTransport, JudgeUnavailable
from rgsd.judges.usage import WallClock

# The errors are the transport's; importable from here as before.
__all__ = ["MODES", "JudgeConfigError", "JudgeUnavailable", "OpenAIJudge"]

log = logging.getLogger(__name__)

Mode = Literal["per-criterion", "batched", "holistic"]
MODES: tuple[str, ...] = ("per-criterion", "batched", "holistic")


class _NoItems(ParseError):
    """A batched reply with no usable item; ``problems`` says what was wrong with each."""

    def __init__(self, problems: dict[int, str]) -> None:
        super().__init__("; ".join(f"item {n}: {p}" for n, p in problems.items()))
        self.problems = problems


class OpenAIJudge(JudgeTransport):
    """Grade responses with a chat model behind an OpenAI-compatible API.

    ``mode`` picks the request shape; every other option is :class:`JudgeTransport`'s (endpoint, key,
    concurrency, timeout, retries, re-asks, sampling, cache, budget, ``structured``).
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        mode: Mode = "per-criterion",
        **options: Any,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"judge mode must be one of {MODES}, got {mode!r}")
        super().__init__(model, base_url, api_key_env, **options)
        self.mode: Mode = mode
        self._clock = WallClock(self.usage)

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIJudge(model={self.model!r}, base_url={self.base_url!r}, mode={self.mode!r})"

    # ---- modes -----------------------------------------------------------------------------------------
    async def _one_criterion(self, example: Example, response: str, crit: Criterion) -> Verdict:
        messages = per_criterion_messages(example, response, crit)
        answer = await ask_json(self, messages, parse_verdict, schema=schemas.verdict_format())
        if answer.value is None:
            return Verdict(crit.id, None, f"judge failure: {answer.error}")
        met, explanation = answer.value
        return Verdict(crit.id, met, explanation)

    async def _per_criterion(self, example: Example, response: str) -> Grade:
        results = await asyncio.gather(
            *(self._one_criterion(example, response, c) for c in example.rubric), return_exceptions=True
        )
        # Wait for every sibling before re-raising, so no request is left running behind a budget stop.
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return Grade(verdicts=list(results))  # type: ignore[arg-type]

    async def _batched(self, example: Example, response: str) -> Grade:
        asked: list[str] = []  # the first question of every round (each may hold a cache lease)
        try:
            return await self._batched_rounds(example, response, asked)
        finally:  # whatever was stored, the leases end: another process waiting may ask now
            self.release(*asked)

    async def _batched_rounds(self, example: Example, response: str, asked: list[str]) -> Grade:
        pending: dict[int, Criterion] = dict(enumerate(example.rubric, 1))
        done: dict[int, tuple[bool, str]] = {}
        problems: dict[int, str] = {}
        first_key = self.key(batched_messages(example, response, list(pending.items())))
        left = self.max_reasks + 1  # requests this grading may send, re-asks included
        paid = False  # some verdict came from a request sent in this call (not the cache)
        while pending and left > 0:
            numbers = list(pending)

            def some(text: str, numbers: list[int] = numbers) -> tuple[dict[int, tuple[bool, str]], dict[int, str]]:
                found, missing = parse_batched(text, numbers)
                if not found:  # nothing usable: re-ask showing the judge its reply and what was wrong
                    raise _NoItems(missing)
                return found, missing

            # A round asks afresh for the pending items (under their original numbers), then re-asks.
            messages = batched_messages(example, response, list(pending.items()))
            asked.append(self.key(messages))
            answer = await ask(self, messages, some, schema=schemas.batched_format(numbers), max_reasks=left - 1)
            left -= answer.tries
            if answer.value is None:
                err = answer.exception
                if answer.unavailable:
                    problems = {n: f"judge failure: {err}" for n in pending}
                else:
                    problems = err.problems if isinstance(err, _NoItems) else {n: str(err) for n in pending}
                break
            found, problems = answer.value
            paid |= not answer.cached
            done.update(found)
            for n in found:
                pending.pop(n)
            if pending and left > 0:
                self.usage.reasks += 1
        if paid:
            # Every verdict obtained so far, stored under the first request's key: a rerun reads them back
            # with no call and asks only for the items that never got one.
            merged = {str(n): {"explanation": e, "criteria_met": m} for n, (m, e) in sorted(done.items())}
            self.put(first_key, json.dumps(merged, ensure_ascii=False))
        verdicts = []
        for n, c in enumerate(example.rubric, 1):
            if n in done:
                verdicts.append(Verdict(c.id, done[n][0], done[n][1]))
            else:
                why = problems.get(n, "missing")
                verdicts.append(Verdict(c.id, None, f"judge failure: no valid verdict for item {n}: {why}"))
        self.usage.failures += sum(v.met is None for v in verdicts)
        return Grade(verdicts=verdicts)

    async def _holistic(self, example: Example, response: str) -> Grade:
        messages = holistic_messages(example, response)
        answer = await ask_json(self, messages, parse_holistic, schema=schemas.holistic_format())
        if answer.value is None:
            if answer.unavailable:
                log.warning("holistic judge failure for %s: %s", example.id, answer.error)
            return Grade(failed=True)
        rating, _ = answer.value
        return Grade(holistic=(rating - 1.0) / 9.0)

    async def _grade(self, example: Example, response: str) -> Grade:
        with self._clock:
            if self.mode == "per-criterion":
                return await self._per_criterion(example, response)
            if self.mode == "batched":
                return await self._batched(example, response)
            return await self._holistic(example, response)

    async def grade(self, example: Example, response: str) -> Grade:
        """Grade one response. Raises :class:`BudgetExhausted` when the budget stops it."""
        return await self.run(self._grade(example, response))

    def grade_sync(self, example: Example, response: str) -> Grade:
        """Blocking :meth:`grade`, for code that has no event loop."""
        return self.run_sync(self._grade(example, response))

    def __enter__(self) -> "OpenAIJudge":
        return self
