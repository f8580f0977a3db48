"""Ask a judge for a JSON answer: the one re-ask loop, for verdicts and for every other question.

:func:`ask_json` is what diagnose (pairwise preference, failure taxonomy) and rubric generation use, and what
the per-criterion and holistic verdicts use: it sends the question through
:meth:`rgsd.judges.transport.JudgeTransport.request` (cache, budget, retries, structured outputs), hands
the reply text to ``parse`` (which raises :class:`~rgsd.judges.parse.ParseError` to reject it), re-asks a
rejected or cut-off reply up to ``max_reasks`` times, showing the judge its reply and the problem, and then
returns the parsed value or a counted failure (``judge.usage.failures``). An accepted reply is cached under
the key of the *first* question, so a rerun asks that question and is answered from the cache whatever it
took the first time; a rejected reply is never cached. :func:`ask` is the loop alone (no failure count, no
caching), for a caller that merges several answers itself (the batched verdicts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rgsd.judges.parse import ParseError
from rgsd.judges.prompts import reask_messages
from rgsd.judges.transport import JudgeTransport, JudgeUnavailable, Messages, Reply
from rgsd.progress import bar as progress_bar

T = TypeVar("T")
Reask = Callable[[Messages, str, str], Messages]
TRUNCATED = "the reply was cut off at the token limit (finish_reason 'length'); answer briefly"


@dataclass
class Answer(Generic[T]):
    """``value`` when a reply was accepted (``error`` None), else ``error``: why the last try failed.

    ``tries``: requests made (re-asks included; a cache hit counts as one). ``exception``: the last
    :class:`ParseError` or :class:`JudgeUnavailable`, for callers that need more than the text.
    """

    value: T | None
    error: str | None
    tries: int
    cached: bool = False
    exception: Exception | None = None
    reply: Reply | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def unavailable(self) -> bool:
        """The request itself failed (retries exhausted, or an error the endpoint will repeat)."""
        return isinstance(self.exception, JudgeUnavailable)


async def ask(
    judge: JudgeTransport,
    messages: Messages,
    parse: Callable[[str], T],
    *,
    schema: dict[str, Any] | None = None,
    max_reasks: int | None = None,
    reask: Reask = reask_messages,
    structured: str | None = None,
) -> Answer[T]:
    """The re-ask loop alone, on the judge's loop: counts re-asks, neither failures nor cache writes.

    ``schema``: a ``response_format`` JSON schema, sent as the judge's structured mode allows (``structured``
    overrides the mode for this question). ``max_reasks``: default the judge's. ``reask(messages, bad_reply,
    problem)`` builds a re-ask. Only the first question may be answered from the cache (a re-ask is never
    cached under its own key). :class:`~rgsd.judges.usage.BudgetExhausted` and :class:`~rgsd.judges.transport.JudgeConfigError` propagate.
    """
    limit = judge.max_reasks if max_reasks is None else max_reasks
    current = messages
    for attempt in range(limit + 1):
        try:
            reply = await judge.request(current, schema, use_cache=attempt == 0, structured=structured)
        except JudgeUnavailable as err:
            return Answer(None, str(err), attempt + 1, exception=err)
        try:
            if reply.truncated:
                raise ParseError(TRUNCATED)
            value = parse(reply.text)
        except ParseError as err:
            if attempt == limit:
                why = f"unusable reply after {attempt + 1} tries: {err}"
                return Answer(None, why, attempt + 1, exception=err, reply=reply)
            judge.usage.reasks += 1
            current = reask(messages, reply.text, str(err))
            continue
        return Answer(value, None, attempt + 1, cached=reply.cached, reply=reply)
    raise AssertionError("unreachable")


async def ask_json(
    judge: JudgeTransport, messages: Messages, parse: Callable[[str], T], **options: Any
) -> Answer[T]:
    """Ask until ``parse(reply_text)`` returns, at most ``1 + max_reasks`` times (default: the judge's).

    ``options``: :func:`ask`'s keywords (``schema``, ``max_reasks``, ``reask``, ``structured``). A failure
    is counted in ``judge.usage.failures`` and returned, never raised; an accepted reply is cached under the
    first question's key. Awaitable from any event loop (the work runs on the judge's own loop).
    """

    async def one() -> Answer[T]:
        try:
            answer = await ask(judge, messages, parse, **options)
            if not answer.ok:
                judge.usage.failures += 1
            elif answer.reply is not None:
                judge.store(answer.reply, judge.key(messages))
        finally:  # stored or failed: another process waiting on this question may ask it now
            judge.release(judge.key(messages))
        return answer

    return await judge.run(one())


def ask_all(
    judge: JudgeTransport,
    questions: Sequence[Messages],
    parse: Callable[[str], T],
    progress: bool | str = False,
    **options: Any,
) -> list[Answer[T]]:
    """:func:`ask_json` for every question, concurrently (the judge bounds requests in flight); blocking.

    Raises the first exception (a budget stop, a rejected key) after every sibling ended, so no request is
    left running. ``progress``: a bar on stderr counting answered questions (a string labels it).
    """
    pbar = progress_bar(progress, len(questions), "ask", "question")

    async def counted(q: Messages) -> Answer[T]:
        try:
            return await ask_json(judge, q, parse, **options)
        finally:
            if pbar is not None:
                pbar.update(1)

    async def run_all() -> list[Any]:
        return await asyncio.gather(*(counted(q) for q in questions), return_exceptions=True)

    try:
        results = judge.run_sync(run_all())
    finally:
        if pbar is not None:
            pbar.close()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results
