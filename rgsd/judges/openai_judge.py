"""An LLM judge on any OpenAI-compatible chat-completions endpoint (async, bounded, retried, cached).

Modes: ``per-criterion`` (one request per rubric item), ``batched`` (all items in one request, missing or
malformed items re-asked alone), ``holistic`` (one 1-10 rating mapped to ``(r - 1) / 9``).

Retries are done here (the SDK's own are disabled) so they can be counted: 408/409/429/5xx, timeouts,
connection errors and a 200 reply that is not a chat completion (an HTML page from a proxy, a JSON list,
``content`` null or a number) back off exponentially with jitter. 401/403/404 mean a wrong key, URL or model
and raise :class:`JudgeConfigError` at once (and for every later request of this judge, so a run stops
quickly and keeps what it has). An unreadable, ambiguous or cut-off (``finish_reason == "length"``) reply is
re-asked (``max_reasks`` times) and then recorded as a failure (``met=None``): failures are counted, never
scored. A verdict is cached under the key of the *first* request of its conversation, so a rerun makes no
call whatever it took the first time. With ``structured="auto"`` the request carries a JSON schema
(``response_format``); an endpoint that refuses it (HTTP 400/422) is asked again without it, and the parser
stays the only judge of the reply. The API key is read from an environment variable, never written
anywhere, and redacted from every message that could quote it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
from dataclasses import dataclass
from typing import Any, Callable, Literal, TypeVar
from urllib.parse import urlparse

import openai

from rgsd.data.schema import Criterion, Example
from rgsd.judges import schemas
from rgsd.judges.base import Grade, Verdict
from rgsd.judges.cache import JudgeCache, cache_key
from rgsd.judges.parse import ParseError, parse_batched, parse_holistic, parse_verdict
from rgsd.judges.prompts import batched_messages, holistic_messages, per_criterion_messages, reask_messages
from rgsd.judges.usage import Budget, Usage, _WallClock

log = logging.getLogger(__name__)

Mode = Literal["per-criterion", "batched", "holistic"]
MODES: tuple[str, ...] = ("per-criterion", "batched", "holistic")
STRUCTURED: tuple[str, ...] = ("auto", "off")
_RETRY_STATUS = {408, 409, 429}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_REDACTED = "[redacted]"
T = TypeVar("T")


class JudgeConfigError(RuntimeError):
    """The judge cannot work at all (missing key, wrong URL, unknown model): fix the configuration."""


class JudgeUnavailable(RuntimeError):
    """One request failed for good (retries exhausted or a non-retryable error)."""


class _BadCompletion(Exception):
    """An HTTP 200 whose body is not a usable chat completion (retryable)."""


@dataclass
class _Reply:
    text: str
    key: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    truncated: bool = False  # finish_reason == "length": the verdict may be cut off


def _is_loopback(url: str | None) -> bool:
    host = urlparse(url).hostname if url else None
    return bool(host) and (host in _LOOPBACK or host.startswith("127."))


def _tokens(usage: Any, name: str) -> int:
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def read_completion(body: bytes) -> tuple[str, str | None, int, int]:
    """``(content, finish_reason, prompt_tokens, completion_tokens)`` of a chat-completion body.

    Raises :class:`_BadCompletion` naming what is wrong, for anything else a 200 may carry.
    """
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        head = body[:60].decode("utf-8", "replace").strip().replace("\n", " ")
        raise _BadCompletion(f"the 200 reply is not JSON (starts {head!r})") from None
    if not isinstance(obj, dict):
        raise _BadCompletion(f"the 200 reply is a JSON {type(obj).__name__}, not a chat completion")
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _BadCompletion("the 200 reply has no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise _BadCompletion("the 200 reply has no message")
    content = message.get("content")
    if not isinstance(content, str):
        got = "null" if content is None else type(content).__name__
        raise _BadCompletion(f"the reply's message content is {got}, not text")
    finish = choices[0].get("finish_reason")
    usage = obj.get("usage")
    return content, finish if isinstance(finish, str) else None, _tokens(usage, "prompt_tokens"), _tokens(
        usage, "completion_tokens"
    )


def _positive(name: str, value: float, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"judge option {name} must be {need}, got {value!r}")


class OpenAIJudge:
    """Grade responses with a chat model behind an OpenAI-compatible API.

    ``concurrency`` bounds requests in flight (per event loop); ``timeout`` is per request in seconds;
    ``backoff_base``/``backoff_max`` (seconds) and ``jitter`` (fraction) shape the retry delays.
    ``temperature`` or ``max_tokens`` set to ``None`` are not sent. ``extra_params`` are passed to the
    request as-is (and are part of the cache key, with the model and the base URL). ``structured``:
    ``"auto"`` sends a JSON schema and falls back to plain requests when the endpoint refuses it; ``"off"``
    never sends one.
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
        structured: str = "auto",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"judge mode must be one of {MODES}, got {mode!r}")
        if structured not in STRUCTURED:
            raise ValueError(f"judge structured must be one of {STRUCTURED}, got {structured!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"judge concurrency must be >= 1, got {concurrency}")
        for name, value in (("max_retries", max_retries), ("max_reasks", max_reasks)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"judge option {name} must be an integer >= 0, got {value!r}")
        _positive("timeout", timeout, allow_zero=False)
        for name, value in (("backoff_base", backoff_base), ("backoff_max", backoff_max), ("jitter", jitter)):
            _positive(name, value, allow_zero=True)
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise ValueError(f"judge option max_tokens must be >= 1, got {max_tokens!r}")
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
        self.structured = structured
        self.structured_supported: bool | None = None  # learnt from the endpoint (None = not yet known)
        self.usage = Usage()
        self._fatal: str | None = None  # set by a 401/403/404: later requests fail at once
        self._clock = _WallClock(self.usage)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._loop_lock = threading.Lock()
        self._client: openai.AsyncOpenAI | None = None
        self._sem: asyncio.Semaphore | None = None
        self._probe = asyncio.Lock()  # replaced per event loop in ensure_loop

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIJudge(model={self.model!r}, base_url={self.base_url!r}, mode={self.mode!r})"

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced (servers and proxies sometimes echo it in errors)."""
        key = self._api_key
        if not isinstance(text, str) or not key or len(key) < 4:
            return text
        text = text.replace(key, _REDACTED)
        return text.replace(key[:-4], _REDACTED) if len(key) >= 16 else text  # also a truncated echo

    # ---- transport -------------------------------------------------------------------------------------
    def ensure_loop(self) -> asyncio.AbstractEventLoop:
        """The judge's event loop (started on first use); submit coroutines that await :meth:`request` to it."""
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
                self._probe = asyncio.Lock()
            return self._loop

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = dict(self.extra_params)
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        return params

    def key(self, messages: list[dict[str, str]]) -> str:
        """The cache key of one logical request (model, endpoint, messages, sampling parameters)."""
        return cache_key(self.model, messages, self._params(), base_url=self.base_url)

    def _delay(self, attempt: int, err: Exception) -> float:
        delay = min(self.backoff_max, self.backoff_base * 2**attempt) * (1 + self.jitter * random.random())
        response = getattr(err, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            try:
                delay = max(delay, min(self.backoff_max, float(retry_after)))
            except ValueError:
                pass
        return max(0.0, delay) if delay == delay else self.backoff_max  # NaN from an odd header

    async def request(
        self,
        messages: list[dict[str, str]],
        response_format: dict[str, Any] | None = None,
        use_cache: bool = True,
    ) -> _Reply:
        """One logical request: cache lookup (``use_cache``), then up to ``1 + max_retries`` attempts.

        The transport for any question with a JSON answer (:mod:`rgsd.diagnose.asking`, :mod:`rgsd.rubrics.ask`
        ask their own): the caller parses the reply and calls :meth:`store` only for replies it accepted, so a
        malformed reply is never replayed from the cache. Raises ``JudgeUnavailable`` after the retries.
        """
        params = self._params()
        key = self.key(messages)
        if use_cache and self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.usage.cache_hits += 1
                return _Reply(hit.reply, key, hit.prompt_tokens, hit.completion_tokens, cached=True)
        client, sem = self._client, self._sem
        assert client is not None and sem is not None
        attempt = 0
        while True:
            if self._fatal is not None:
                raise JudgeConfigError(self._fatal)
            structured = refused = False
            # Until the endpoint has answered one schema request, schema requests go one at a time, so a
            # refusing endpoint costs one refused call, not one per request in flight.
            held = False
            if response_format is not None and self.structured == "auto" and self.structured_supported is None:
                await self._probe.acquire()
                held = True
                if self.structured_supported is not None:  # answered while this one waited: go in parallel
                    self._probe.release()
                    held = False
            try:
                try:
                    async with sem:
                        if self._fatal is not None:  # a 401 seen while this request waited for its slot
                            raise JudgeConfigError(self._fatal)
                        send = dict(params)
                        structured = (
                            response_format is not None
                            and self.structured == "auto"
                            and self.structured_supported is not False
                        )
                        if structured:
                            send["response_format"] = response_format
                        # Checked inside the slot so that queued requests cannot all pass a nearly spent budget.
                        if self.budget is not None:
                            self.budget.check(self.usage)
                        self.usage.calls += 1
                        try:
                            raw = await client.chat.completions.with_raw_response.create(
                                model=self.model, messages=messages, timeout=self.timeout, **send
                            )
                        except openai.APIStatusError as err:
                            # Before any schema request succeeded, a 400/422 is read as "no structured outputs
                            # here" (set before the probe slot opens); once one succeeded, it is a real error.
                            if structured and self.structured_supported is not True and err.status_code in (400, 422):
                                self.structured_supported, refused = False, True
                            raise
                        if structured:
                            self.structured_supported = True
                        body = raw.content  # the body is read already (non-streaming)
                finally:
                    if held:
                        self._probe.release()
                text, finish, pt, ct = read_completion(body)
            except (openai.APITimeoutError, openai.APIConnectionError, _BadCompletion) as err:
                problem: Exception = err
            except openai.APIStatusError as err:
                message = self.redact(str(err.message))
                if refused:  # ask again plainly (not a retry)
                    log.info("judge endpoint refused response_format (HTTP %d); using plain requests", err.status_code)
                    continue
                if err.status_code in (401, 403, 404):
                    self._fatal = (
                        f"judge request rejected with HTTP {err.status_code} (check the key in the "
                        f"environment, the base URL {self.base_url!r} and the model {self.model!r}): {message}"
                    )
                    raise JudgeConfigError(self._fatal) from None
                if err.status_code not in _RETRY_STATUS and err.status_code < 500:
                    raise JudgeUnavailable(f"HTTP {err.status_code}: {message}") from None
                problem = err
            except openai.OpenAIError as err:  # anything else the SDK raises: retry, then a counted failure
                problem = err
            else:
                self.usage.prompt_tokens += pt
                self.usage.completion_tokens += ct
                return _Reply(self.redact(text), key, pt, ct, truncated=finish == "length")
            if attempt >= self.max_retries:
                raise JudgeUnavailable(
                    self.redact(f"gave up after {attempt + 1} attempts: {type(problem).__name__}: {problem}")
                )
            self.usage.retries += 1
            delay = self._delay(attempt, problem)
            log.debug("judge request failed (%s); retry %d in %.3fs", type(problem).__name__, attempt + 1, delay)
            attempt += 1
            await asyncio.sleep(delay)

    def _put(self, key: str, text: str, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        if self.cache is not None:
            self.cache.put(key, self.model, text, prompt_tokens, completion_tokens)

    def store(self, reply: _Reply) -> None:
        """Cache a reply the caller parsed and accepted, under its own key (no-op for a cache hit)."""
        if not reply.cached:
            self._put(reply.key, reply.text, reply.prompt_tokens, reply.completion_tokens)

    @staticmethod
    def _parse(reply: _Reply, parser: Callable[[str], T]) -> T:
        if reply.truncated:
            raise ParseError("the reply was cut off at the token limit (finish_reason 'length'); answer briefly")
        return parser(reply.text)

    # ---- modes -----------------------------------------------------------------------------------------
    async def _one_criterion(self, example: Example, response: str, crit: Criterion) -> Verdict:
        base = per_criterion_messages(example, response, crit)
        base_key = self.key(base)
        messages = base
        for attempt in range(self.max_reasks + 1):
            try:
                reply = await self.request(messages, schemas.verdict_format(), use_cache=attempt == 0)
            except JudgeUnavailable as err:
                self.usage.failures += 1
                return Verdict(crit.id, None, f"judge failure: {err}")
            try:
                met, explanation = self._parse(reply, parse_verdict)
            except ParseError as err:
                if attempt == self.max_reasks:
                    self.usage.failures += 1
                    return Verdict(
                        crit.id, None, f"judge failure: unusable reply after {attempt + 1} tries: {err}"
                    )
                self.usage.reasks += 1
                messages = reask_messages(base, reply.text, str(err))
                continue
            if not reply.cached:  # under the first request's key: a rerun asks that and is answered here
                self._put(base_key, reply.text, reply.prompt_tokens, reply.completion_tokens)
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
        first_key = self.key(base)
        messages, fresh = base, True
        paid = False  # some verdict came from a request sent in this call (not the cache)
        for attempt in range(self.max_reasks + 1):
            try:
                reply = await self.request(messages, schemas.batched_format(list(pending)), use_cache=fresh)
            except JudgeUnavailable as err:
                problems = {n: f"judge failure: {err}" for n in pending}
                break
            try:
                found, problems = self._parse(reply, lambda t: parse_batched(t, list(pending)))
                reason = "; ".join(f"item {n}: {p}" for n, p in problems.items())
            except ParseError as err:
                found, problems, reason = {}, {n: str(err) for n in pending}, str(err)
            paid |= bool(found) and not reply.cached
            done.update(found)
            for n in found:
                pending.pop(n)
            if not pending or attempt == self.max_reasks:
                break
            self.usage.reasks += 1
            if found:  # ask again for the missing items only, under their original numbers
                base = batched_messages(example, response, list(pending.items()))
                messages, fresh = base, True
            else:  # nothing usable: show the judge its reply and what was wrong with it
                messages, fresh = reask_messages(base, reply.text, reason), False
        if paid:
            # Every verdict obtained so far, stored under the first request's key: a rerun reads them back
            # with no call and asks only for the items that never got one.
            merged = {str(n): {"explanation": e, "criteria_met": m} for n, (m, e) in sorted(done.items())}
            self._put(first_key, json.dumps(merged, ensure_ascii=False))
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
        base_key = self.key(base)
        messages = base
        for attempt in range(self.max_reasks + 1):
            try:
                reply = await self.request(messages, schemas.holistic_format(), use_cache=attempt == 0)
            except JudgeUnavailable as err:
                log.warning("holistic judge failure for %s: %s", example.id, err)
                break
            try:
                rating, _ = self._parse(reply, parse_holistic)
            except ParseError as err:
                if attempt == self.max_reasks:
                    break
                self.usage.reasks += 1
                messages = reask_messages(base, reply.text, str(err))
                continue
            if not reply.cached:
                self._put(base_key, reply.text, reply.prompt_tokens, reply.completion_tokens)
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
        future = asyncio.run_coroutine_threadsafe(self._grade(example, response), self.ensure_loop())
        return await asyncio.wrap_future(future)

    def grade_sync(self, example: Example, response: str) -> Grade:
        """Blocking :meth:`grade`, for code that has no event loop."""
        return asyncio.run_coroutine_threadsafe(self._grade(example, response), self.ensure_loop()).result()

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
