"""Ask an LLM judge a question that is not a rubric verdict (pairwise preference, failure category).

The request goes through the judge layer's own machinery of :class:`rgsd.judges.openai_judge.OpenAIJudge`:
its OpenAI client and event loop, the SQLite reply cache, retries with backoff, the call/token budget and
its ``usage`` counters, through its public transport calls (``ensure_loop``, ``request``, ``store``). Only
the prompt and the parser are ours. A reply the parser rejects is re-asked (``judge.max_reasks`` times, shown
its reply and the problem) and then counted as a failure; only parsed replies are cached.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any, Callable, TypeVar

T = TypeVar("T")
Messages = list[dict[str, str]]


class AnswerError(ValueError):
    """The judge's reply does not answer the question unambiguously."""


def require_llm_judge(judge: Any, role: str) -> None:
    """Pairwise and classifier roles need a chat model, not the regex stand-in."""
    if not hasattr(judge, "request"):
        raise ValueError(f"--{role}-judge must be an LLM judge ('openai'), not {getattr(judge, 'name', judge)!r}")


def _reask(base: Messages, reply: str, problem: str) -> Messages:
    return base + [
        {"role": "assistant", "content": reply},
        {
            "role": "user",
            "content": f"That reply could not be used ({problem}). Answer again with exactly one JSON "
            "object in the format asked for, and nothing else.",
        },
    ]


async def _ask(judge: Any, messages: Messages, parse: Callable[[str], T]) -> tuple[T | None, str]:
    from rgsd.judges.openai_judge import JudgeUnavailable

    current = messages
    first_key = None
    for attempt in range(judge.max_reasks + 1):
        try:
            reply = await judge.request(current)
        except JudgeUnavailable as err:
            judge.usage.failures += 1
            return None, f"judge failure: {err}"
        first_key = first_key or reply.key
        try:
            value = parse(reply.text)
        except AnswerError as err:
            if attempt == judge.max_reasks:
                judge.usage.failures += 1
                return None, f"judge failure: unusable reply after {attempt + 1} tries: {err}"
            judge.usage.reasks += 1
            current = _reask(messages, reply.text, str(err))
            continue
        judge.store(reply)
        if reply.key != first_key:  # answered on a re-ask: file it under the question too, so a rerun is free
            judge.store(dataclasses.replace(reply, key=first_key, cached=False))
        return value, ""
    raise AssertionError("unreachable")


def ask_many(judge: Any, questions: Sequence[Messages], parse: Callable[[str], T]) -> list[tuple[T | None, str]]:
    """Ask every question concurrently (the judge bounds requests in flight); ``(answer | None, error)``.

    Raises :class:`rgsd.judges.usage.BudgetExhausted` when the budget stops it (after every sibling ended).
    """

    async def run_all() -> list[Any]:
        return await asyncio.gather(*(_ask(judge, q, parse) for q in questions), return_exceptions=True)

    results = asyncio.run_coroutine_threadsafe(run_all(), judge.ensure_loop()).result()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results
