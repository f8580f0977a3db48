"""An LLM judge on any OpenAI-compatible chat-completions endpoint (async, bounded, retried, cached).

Modes: ``per-criterion`` (one request per rubric item), ``batched`` (all items in one request, missing or
malformed items re-asked alone), ``holistic`` (one 1-10 rating mapped to ``(r - 1) / 9``).

Retries are done here (the SDK's own are disabled) so they can be counted: 408/409/429/5xx, timeouts and
connection errors back off exponentially with jitter. 401/403/404 mean a wrong key, URL or model and raise
:class:`JudgeConfigError` at once. An unreadable reply is re-asked (``max_reasks`` times) and then recorded
as a failure (``met=None``): failures are counted, never scored. The API key is read from an environment
variable and is never written anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlparse

import openai

from rgsd.data.schema import Criterion, Example
from rgsd.judges.base import Grade, Verdict
from rgsd.judges.cache import JudgeCache, cache_key
from rgsd.judges.parse import ParseError, parse_batched, parse_holistic, parse_verdict
from rgsd.judges.prompts import batched_messages, holistic_messages, per_criterion_messages, reask_messages
from rgsd.judges.usage import Budget, Usage, _WallClock

log = logging.getLogger(__name__)

Mode = Literal["per-criterion", "batched", "holistic"]
MODES: tuple[str, ...] = ("per-criterion", "batched", "holistic")
_RETRY_STATUS = {408, 409, 429}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class JudgeConfigError(RuntimeError):
    """The judge cannot work at all (missing key, wrong URL, unknown model): fix the configuration."""


class JudgeUnavailable(RuntimeError):
    """One request failed for good (retries exhausted or a non-retryable error)."""


@dataclass
class _Reply:
    text: str
    key: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


def _is_loopback(url: str | None) -> bool:
    host = urlparse(url).hostname if url else None
    return bool(host) and (host in _LOOPBACK or host.startswith("127."))


class OpenAIJudge:
    """Grade responses with a chat model behind an OpenAI-compatible API.

    ``concurrency`` bounds requests in flight (per event loop); ``timeout`` is per request in seconds;
    ``backoff_base``/``backoff_max`` (seconds) and ``jitter`` (fraction) shape the retry delays.
    ``temperature`` or ``max_tokens`` set to ``None`` are not sent. ``extra_params`` are passed to the
    request as-is (and are part of the cache key).
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        mode: Mode = "per-criterion",
        concurrency: int = 8,
        max_retries: int = 5,
        timeout: float = 60.0,
        temperature: float | None = 0.0,
        max_tokens: int | None = 1024,
        cache: JudgeCache | None = None,
        budget: Budget | None = None,
        max_reasks: int = 2,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        jitter: float = 0.25,
        extra_params: dict[str, Any] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"judge mode must be one of {MODES}, got {mode!r}")
        if concurrency < 1:
            raise ValueError(f"judge concurrency must be >= 1, got {concurrency}")
        key = os.environ.get(api_key_env)
        if not key:
            if not _is_loopback(base_url):
                raise JudgeConfigError(
                    f"The judge needs an API key in the environment variable {api_key_env} "
                    f"(base URL: {base_url or 'the OpenAI default'})."
                )
            key = "rgsd-loopback-no-key"  # local test servers accept anything
        self._api_key = key
        self.model = model
        self.base_url = base_url
        self.mode: Mode = mode
        self.name = f"openai:{model}"
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.cache = cache
        self.budget = budget
        self.max_reasks = max_reasks
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.extra_params = dict(extra_params or {})
        self.usage = Usage()
        self._clock = _WallClock(self.usage)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._loop_lock = threading.Lock()
        self._client: openai.AsyncOpenAI | None = None
        self._sem: asyncio.Semaphore | None = None

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIJudge(model={self.model!r}, base_url={self.base_url!r}, mode={self.mode!r})"

    # ---- transport -------------------------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        # All HTTP, cache and accounting work runs on one private event loop in a daemon thread: the httpx
        # pool, the semaphore and the SQLite connection then belong to one loop and one thread, and callers
        # may await grade() from any loop (trainers often call asyncio.run once per step).
        with self._loop_lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="rgsd-judge-loop", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                self._client = openai.AsyncOpenAI(
                    api_key=self._api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout
                )
                self._sem = asyncio.Semaphore(self.concurrency)
            return self._loop

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = dict(self.extra_params)
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        return params

    def _delay(self, attempt: int, err: Exception) -> float:
        delay = min(self.backoff_max, self.backoff_base * 2**attempt) * (1 + self.jitter * random.random())
        response = getattr(err, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            try:
                delay = max(delay, min(self.backoff_max, float(retry_after)))
            except ValueError:
                pass
        return delay

    async def _request(self, messages: list[dict[str, str]]) -> _Reply:
        """One logical request: cache lookup, then up to ``1 + max_retries`` HTTP attempts."""
        params = self._params()
        key = cache_key(self.model, messages, params)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.usage.cache_hits += 1
                return _Reply(hit.reply, key, hit.prompt_tokens, hit.completion_tokens, cached=True)
        client, sem = self._client, self._sem
        assert client is not None and sem is not None
        for attempt in range(self.max_retries + 1):
            try:
                async with sem:
                    # Checked inside the slot so that queued requests cannot all pass a nearly spent budget.
                    if self.budget is not None:
                        self.budget.check(self.usage)
                    self.usage.calls += 1
                    resp = await client.chat.completions.create(
                        model=self.model, messages=messages, timeout=self.timeout, **params
                    )
            except (openai.APITimeoutError, openai.APIConnectionError) as err:
                problem: Exception = err
            except openai.APIStatusError as err:
                if err.status_code in (401, 403, 404):
                    raise JudgeConfigError(
                        f"judge request rejected with HTTP {err.status_code} (check the key in the "
                        f"environment, the base URL {self.base_url!r} and the model {self.model!r}): {err.message}"
                    ) from None
                if err.status_code not in _RETRY_STATUS and err.status_code < 500:
                    raise JudgeUnavailable(f"HTTP {err.status_code}: {err.message}") from None
                problem = err
            else:
                text = resp.choices[0].message.content if resp.choices else None
                if resp.usage is not None:
                    self.usage.prompt_tokens += resp.usage.prompt_tokens or 0
                    self.usage.completion_tokens += resp.usage.completion_tokens or 0
                pt = resp.usage.prompt_tokens if resp.usage else 0
                ct = resp.usage.completion_tokens if resp.usage else 0
                return _Reply(text or "", key, pt or 0, ct or 0)
            if attempt == self.max_retries:
                raise JudgeUnavailable(
                    f"gave up after {attempt + 1} attempts: {type(problem).__name__}: {problem}"
                )
            self.usage.retries += 1
            delay = self._delay(attempt, problem)
            log.debug(
                "judge request failed (%s); retry %d in %.3fs", type(problem).__name__, attempt + 1, delay
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _store(self, reply: _Reply) -> None:
        if self.cache is not None and not reply.cached:
            self.cache.put(reply.key, self.model, reply.text, reply.prompt_tokens, reply.completion_tokens)

    # ---- modes -----------------------------------------------------------------------------------------
    async def _one_criterion(self, example: Example, response: str, crit: Criterion) -> Verdict:
        base = per_criterion_messages(example, response, crit)
        messages = base
        for attempt in range(self.max_reasks + 1):
            try:
                reply = await self._request(messages)
            except JudgeUnavailable as err:
                self.usage.failures += 1
                return Verdict(crit.id, None, f"judge failure: {err}")
            try:
                met, explanation = parse_verdict(reply.text)
            except ParseError as err:
                if attempt == self.max_reasks:
                    self.usage.failures += 1
                    return Verdict(
                        crit.id, None, f"judge failure: unusable reply after {attempt + 1} tries: {err}"
                    )
                self.usage.reasks += 1
                messages = reask_messages(base, reply.text, str(err))
                continue
            self._store(reply)
            return Verdict(crit.id, met, explanation)
        raise AssertionError("unreachable")

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
        pending: dict[int, Criterion] = dict(enumerate(example.rubric, 1))
        done: dict[int, tuple[bool, str]] = {}
        problems: dict[int, str] = {}
        base = batched_messages(example, response, list(pending.items()))
        messages = base
        for attempt in range(self.max_reasks + 1):
            try:
                reply = await self._request(messages)
            except JudgeUnavailable as err:
                problems = {n: f"judge failure: {err}" for n in pending}
                break
            try:
                found, problems = parse_batched(reply.text, list(pending))
                reason = "; ".join(f"item {n}: {p}" for n, p in problems.items())
            except ParseError as err:
                found, problems, reason = {}, {n: str(err) for n in pending}, str(err)
            if found:
                self._store(reply)  # partial replies are kept: their items are paid for
            done.update(found)
            for n in found:
                pending.pop(n)
            if not pending or attempt == self.max_reasks:
                break
            self.usage.reasks += 1
            if found:  # ask again for the missing items only, under their original numbers
                base = batched_messages(example, response, list(pending.items()))
                messages = base
            else:  # nothing usable: show the judge its reply and what was wrong with it
                messages = reask_messages(base, reply.text, reason)
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
        base = holistic_messages(example, response)
        messages = base
        for attempt in range(self.max_reasks + 1):
            try:
                reply = await self._request(messages)
            except JudgeUnavailable as err:
                log.warning("holistic judge failure for %s: %s", example.id, err)
                break
            try:
                rating, _ = parse_holistic(reply.text)
            except ParseError as err:
                if attempt == self.max_reasks:
                    break
                self.usage.reasks += 1
                messages = reask_messages(base, reply.text, str(err))
                continue
            self._store(reply)
            return Grade(holistic=(rating - 1.0) / 9.0)
        self.usage.failures += 1
        return Grade(failed=True)

    async def _grade(self, example: Example, response: str) -> Grade:
        with self._clock:
            if self.mode == "per-criterion":
                return await self._per_criterion(example, response)
            if self.mode == "batched":
                return await self._batched(example, response)
            return await self._holistic(example, response)

    async def grade(self, example: Example, response: str) -> Grade:
        """Grade one response. Raises :class:`BudgetExhausted` when the budget stops it."""
        future = asyncio.run_coroutine_threadsafe(self._grade(example, response), self._ensure_loop())
        return await asyncio.wrap_future(future)

    def grade_sync(self, example: Example, response: str) -> Grade:
        """Blocking :meth:`grade`, for code that has no event loop."""
        return asyncio.run_coroutine_threadsafe(self._grade(example, response), self._ensure_loop()).result()

    def close(self) -> None:
        """Close the HTTP client and stop the private loop (a later grade() starts a new one)."""
        with self._loop_lock:
            loop, thread, client = self._loop, self._thread, self._client
            self._loop = self._thread = self._client = None
        if loop is None:
            return
        if client is not None:
            asyncio.run_coroutine_threadsafe(client.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        loop.close()

    def __enter__(self) -> "OpenAIJudge":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
