"""Ask an OpenAI-compatible model for JSON, validate the reply, re-ask with the reason, and count.

This reuses :class:`rgsd.judges.openai_judge.OpenAIJudge` for transport (its public ``request`` and
``store``): its private event loop, the SQLite cache, retries with backoff, the call/token budget and the
usage counters. The helper is generic (any ``validate`` function).

Structured outputs: with ``structured="auto"`` the request carries ``response_format`` (a JSON schema); an
endpoint that rejects it with HTTP 400 is asked again without it, and the rest of the run goes without it.
The strict validator checks every reply either way, so a schema-following endpoint cannot slip a bad rubric
through. Only replies that validate are cached: a malformed reply is asked again on a rerun, never replayed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rgsd.judges.openai_judge import JudgeUnavailable, OpenAIJudge
from rgsd.judges.parse import ParseError

log = logging.getLogger(__name__)
T = TypeVar("T")
Messages = list[dict[str, str]]


@dataclass
class Answer(Generic[T]):
    """``value`` when a reply validated, else ``error`` (why the last try failed); ``tries`` requests made."""

    value: T | None
    error: str | None
    tries: int
    cached: bool = False


async def _send(judge: OpenAIJudge, messages: Messages) -> Any:
    return await judge.request(messages)  # cache lookup, budget check, retried HTTP, usage


def _keep(judge: OpenAIJudge, reply: Any) -> None:
    judge.store(reply)  # cache only validated replies


async def _ask(
    judge: OpenAIJudge,
    messages: Messages,
    validate: Callable[[str], T],
    reask: Callable[[Messages, str, str], Messages],
    max_reasks: int,
    structured: str,
) -> Answer[T]:
    current = messages
    for attempt in range(max_reasks + 1):
        try:
            reply = await _send(judge, current)
        except JudgeUnavailable as err:
            # An endpoint without structured outputs answers 400 to response_format: drop it once for all.
            if structured == "auto" and "response_format" in judge.extra_params and str(err).startswith("HTTP 400"):
                log.warning("the endpoint rejected response_format (%s); continuing without it", err)
                judge.extra_params.pop("response_format", None)
                return await _ask(judge, messages, validate, reask, max_reasks, "off")
            judge.usage.failures += 1
            return Answer(None, f"request failed: {err}", attempt + 1)
        try:
            value = validate(reply.text)
        except ParseError as err:
            if attempt == max_reasks:
                judge.usage.failures += 1
                return Answer(None, f"unusable reply after {attempt + 1} tries: {err}", attempt + 1)
            judge.usage.reasks += 1
            current = reask(messages, reply.text, str(err))
            continue
        _keep(judge, reply)
        return Answer(value, None, attempt + 1, cached=bool(getattr(reply, "cached", False)))
    raise AssertionError("unreachable")


async def ask_json(
    judge: OpenAIJudge,
    messages: Messages,
    validate: Callable[[str], T],
    reask: Callable[[Messages, str, str], Messages],
    max_reasks: int = 2,
    structured: str = "auto",
) -> Answer[T]:
    """Ask until ``validate(reply_text)`` returns (it raises :class:`ParseError` to reject), at most
    ``1 + max_reasks`` times; a failure is counted in ``judge.usage.failures`` and returned, never raised.

    :class:`~rgsd.judges.usage.BudgetExhausted` and :class:`~rgsd.judges.openai_judge.JudgeConfigError`
    propagate. Runs on the judge's own loop, so it can be awaited from any event loop (or from Jupyter).
    """
    coro = _ask(judge, messages, validate, reask, max_reasks, structured)
    future = asyncio.run_coroutine_threadsafe(coro, judge.ensure_loop())
    return await asyncio.wrap_future(future)
