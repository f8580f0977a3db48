"""The one request path to an OpenAI-compatible chat-completions endpoint (async, bounded, retried, cached).

:class:`JudgeTransport` owns the client, its private event loop, the SQLite reply cache, the budget and the
usage counters; every question any command asks a judge (verdicts, rubric generation, diagnose's pairwise and
taxonomy questions) is sent by :meth:`JudgeTransport.request`.

Retries are done here (the SDK's own are disabled) so they can be counted: 408/409/429/5xx, timeouts,
connection errors and a 200 reply that is not a chat completion (an HTML page from a proxy, a JSON list,
``content`` null or a number) back off exponentially with jitter. 401/403/404 mean a wrong key, URL or model
and raise :class:`JudgeConfigError` at once (and for every later request of this judge, so a run stops
quickly and keeps what it has).

Structured outputs (``structured``): ``"auto"`` sends the caller's JSON schema as ``response_format``; an
endpoint that refuses it (HTTP 400/422 before any schema request succeeded) is asked the same question again
without it, once, and the judge remembers it (:attr:`JudgeTransport.structured_supported`) and sends plain
requests from then on. ``"on"`` always sends the schema and never falls back (a refusal is a failed request);
``"off"`` never sends one. The caller's parser stays the only judge of the reply either way.

A hung or dead endpoint fails fast: a probe that times out lets the other requests go in parallel, and a
circuit breaker (:mod:`rgsd.judges.resilience`, ``max_consecutive_failures``) marks the judge down after that
many requests in a row failed for good. Redirects are never followed (a 3xx is a :class:`JudgeConfigError`
naming its Location: the cache key names the configured URL, so the user must fix it). Replies without
usable token counts are counted with an estimate (:mod:`rgsd.judges.completion`); the cache is shared with
other processes through leases and turned off, not fatal, when it fails mid-run (:mod:`rgsd.judges.lease`).

The API key is read from an environment variable, refused when it has whitespace or control characters,
never written anywhere, and redacted wherever it could be quoted (:mod:`rgsd.judges.keys`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import openai

from rgsd.judges import keys
from rgsd.judges.cache import CachedReply, JudgeCache, cache_key
from rgsd.judges.completion import BadCompletion, Completion, read_completion
from rgsd.judges.errors import JudgeConfigError, JudgeUnavailable
from rgsd.judges.lease import SharedCache
from rgsd.judges.resilience import Breaker, retry_after
from rgsd.judges.usage import Budget, Usage

__all__ = ["STRUCTURED", "BadCompletion", "JudgeConfigError", "JudgeTransport", "JudgeUnavailable", "Messages", "Reply",
           "read_completion"]

log = logging.getLogger(__name__)

STRUCTURED: tuple[str, ...] = ("auto", "on", "off")
Messages = list[dict[str, str]]
_RETRY_STATUS = {408, 409, 429}
_REFUSED_SCHEMA = {400, 422}
T = TypeVar("T")


@dataclass
class Reply:
    """One reply: its text (key redacted), the cache key of the request, tokens, and where it came from."""

    text: str
    key: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    truncated: bool = False  # finish_reason == "length": the answer may be cut off


def _positive(name: str, value: float, allow_zero: bool) -> None:
    bad_type = isinstance(value, bool) or not isinstance(value, (int, float))
    if bad_type or not (value > 0 or (allow_zero and value == 0)):  # NaN too
        need = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"judge option {name} must be {need}, got {value!r}")


def _check_structured(value: str) -> None:
    if value not in STRUCTURED:
        raise ValueError(f"judge structured must be one of {STRUCTURED}, got {value!r}")


class JudgeTransport:
    """Requests to a chat model behind an OpenAI-compatible API.

    ``concurrency`` bounds requests in flight (per event loop); ``timeout`` is per request in seconds;
    ``backoff_base``/``backoff_max`` (seconds) and ``jitter`` (fraction) shape the retry delays.
    ``temperature`` or ``max_tokens`` set to ``None`` are not sent. ``extra_params`` are passed to the
    request as-is (and are part of the cache key, with the model and the base URL). ``max_reasks`` is how
    often :func:`rgsd.judges.asking.ask_json` re-asks an unreadable reply; ``structured``: see the module doc.
    ``max_consecutive_failures``: requests in a row failing for good that mark the judge down (0 = never).
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
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
        max_consecutive_failures: int = 3,
    ) -> None:
        _check_structured(structured)
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
        self.breaker = Breaker(max_consecutive_failures)
        self._api_key = keys.read_key(api_key_env, base_url)  # '' = none needed (a loopback server)
        self.model = model
        self.base_url = base_url
        self.name = f"openai:{model}"
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.usage = Usage()
        self.cache = cache
        # A lease outlives one request's worst case; the holder renews it while its conversation lasts.
        lease_ttl = timeout * (max_retries + 1) + backoff_max * max_retries + 10.0
        self._shared = SharedCache(cache, self.usage, lease_ttl) if cache is not None else None
        self.budget = budget
        self.max_reasks = max_reasks
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.extra_params = dict(extra_params or {})
        self.structured = structured
        self.structured_supported: bool | None = None  # learnt from the endpoint (None = not yet known)
        self._probe_open = False  # a probe failed without an answer: schema requests go in parallel
        self._warned_usage = False
        self._fatal: str | None = None  # set by a 401/403/404: later requests fail at once
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._loop_lock = threading.Lock()
        self._client: openai.AsyncOpenAI | None = None
        self._sem: asyncio.Semaphore | None = None
        self._probe = asyncio.Lock()  # replaced per event loop in ensure_loop

    def __repr__(self) -> str:  # never shows the key
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    def redact(self, text: str) -> str:
        """``text`` with the API key and any echoed prefix of >= 8 of its characters replaced (see :mod:`keys`)."""
        return keys.redact(text, self._api_key)

    # ---- the private event loop --------------------------------------------------------------------------
    def ensure_loop(self) -> asyncio.AbstractEventLoop:
        """The judge's event loop (started on first use); :meth:`run` submits work to it."""
        # All HTTP, cache and accounting work runs on one private event loop in a daemon thread: the httpx
        # pool, the semaphore and the SQLite connection then belong to one loop and one thread, and callers
        # may await from any loop (trainers often call asyncio.run once per step).
        with self._loop_lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="rgsd-judge-loop", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                # Redirects are not followed: the cache key and the key's recipient must be the configured URL.
                http = openai.DefaultAsyncHttpxClient(follow_redirects=False)
                self._client = openai.AsyncOpenAI(api_key=self._api_key or "rgsd-loopback-no-key",
                                                  base_url=self.base_url, max_retries=0, timeout=self.timeout,
                                                  http_client=http)
                self._sem = asyncio.Semaphore(self.concurrency)
                self._probe = asyncio.Lock()
                if self._shared is not None:
                    self._shared.flights.clear()  # futures of a closed loop: nobody will resolve them
            return self._loop

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the judge's loop, from any event loop (directly when already on it)."""
        loop = self.ensure_loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the judge's loop and wait for it (for code that has no event loop)."""
        return asyncio.run_coroutine_threadsafe(coro, self.ensure_loop()).result()

    # ---- requests --------------------------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = dict(self.extra_params)
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        return params

    def key(self, messages: Messages) -> str:
        """The cache key of one request (model, endpoint, messages, sampling parameters; not the schema)."""
        return cache_key(self.model, messages, self._params(), base_url=self.base_url)

    def _delay(self, attempt: int, err: Exception) -> float:
        delay = min(self.backoff_max, self.backoff_base * 2**attempt) * (1 + self.jitter * random.random())
        response = getattr(err, "response", None)
        asked = retry_after(response.headers.get("retry-after"), self.backoff_max) if response is not None else None
        return max(delay, asked or 0.0)

    async def request(
        self,
        messages: Messages,
        response_format: dict[str, Any] | None = None,
        use_cache: bool = True,
        structured: str | None = None,
    ) -> Reply:
        """One logical request, on the judge's loop: cache lookup (``use_cache``), then ``1 + max_retries`` tries.

        ``response_format``: the JSON schema, sent as the structured mode allows; ``structured`` overrides the
        judge's mode for this request. The caller parses the reply and calls :meth:`store` only for what it
        accepted, so a malformed reply is never replayed. A cacheable request (``use_cache`` and a cache) is
        sent once however many ask it at once (in this process: one shared answer; in others: a lease, see
        :mod:`rgsd.judges.lease`); the caller :meth:`release` s its key if it stores nothing. Raises
        :class:`JudgeUnavailable` after the retries or while the judge is marked down,
        :class:`JudgeConfigError` (key/URL/model rejected, a redirect), :class:`~rgsd.judges.usage.BudgetExhausted`.
        """
        mode = self.structured if structured is None else structured
        _check_structured(mode)
        schema = response_format if mode != "off" else None
        key = self.key(messages)
        if not use_cache or self._shared is None:
            return await self._send(messages, key, schema, mode)
        return await self._shared.once(key, lambda: self._send(messages, key, schema, mode), self._hit)

    def _hit(self, got: Reply | CachedReply) -> Reply:
        """A reply that cost nothing: shared with an identical request in flight, or read from the cache."""
        self.usage.cache_hits += 1
        if isinstance(got, Reply):
            return replace(got, cached=True)
        return Reply(got.reply, got.key, got.prompt_tokens, got.completion_tokens, cached=True)

    def _stop_if_down(self) -> None:
        if self._fatal is not None:  # e.g. a 401 seen while this request waited
            raise JudgeConfigError(self._fatal)
        self.breaker.check()

    async def _send(self, messages: Messages, key: str, schema: dict[str, Any] | None, mode: str) -> Reply:
        client, sem = self._client, self._sem
        assert client is not None and sem is not None, "request() runs on the judge's loop: use run()"
        params = self._params()
        attempt = 0
        while True:
            self._stop_if_down()
            auto = schema is not None and mode == "auto"
            sent_schema = refused = False
            # Until the endpoint has answered one schema request, auto-mode schema requests go one attempt at
            # a time, so a refusing endpoint costs one refused call, not one per request in flight. A probe
            # that got no answer at all (timeout, 5xx) opens the gate: a hung judge must not be asked serially.
            held = auto and self.structured_supported is None and not self._probe_open
            if held:
                await self._probe.acquire()
                if self.structured_supported is not None or self._probe_open:  # answered while this one waited
                    self._probe.release()
                    held = False
            try:
                try:
                    async with sem:
                        self._stop_if_down()
                        send = dict(params)
                        sent_schema = schema is not None and (mode == "on" or self.structured_supported is not False)
                        if sent_schema:
                            send["response_format"] = schema
                        # Checked inside the slot so that queued requests cannot all pass a nearly spent budget.
                        if self.budget is not None:
                            self.budget.check(self.usage)
                        self.usage.calls += 1
                        try:
                            raw = await client.chat.completions.with_raw_response.create(
                                model=self.model, messages=messages, timeout=self.timeout, **send
                            )
                        except openai.APIStatusError as err:
                            # In auto mode, before any schema request succeeded, a 400/422 is read as "no
                            # structured outputs here"; once one succeeded, it is a real error.
                            if auto and sent_schema and self.structured_supported is not True and (
                                err.status_code in _REFUSED_SCHEMA
                            ):
                                self.structured_supported, refused = False, True
                            raise
                        if sent_schema:
                            self.structured_supported = True
                        body = raw.content  # the body is read already (non-streaming)
                finally:
                    if held:
                        self._probe_open = self._probe_open or self.structured_supported is None
                        self._probe.release()
                done = read_completion(body)
            except (openai.APITimeoutError, openai.APIConnectionError, BadCompletion) as err:
                problem: Exception = err
            except openai.APIStatusError as err:
                if refused:  # the one fallback: ask again plainly (not a retry)
                    log.info("judge endpoint refused response_format (HTTP %d); using plain requests", err.status_code)
                    continue
                self._refuse(err)
                problem = err
            except openai.OpenAIError as err:  # anything else the SDK raises: retry, then a counted failure
                problem = err
            else:
                self.breaker.success()
                return self._reply(messages, key, done)
            if attempt >= self.max_retries:
                why = self.redact(f"gave up after {attempt + 1} attempts: {type(problem).__name__}: {problem}")
                self.breaker.failure(why)
                raise JudgeUnavailable(why)
            self.usage.retries += 1
            delay = self._delay(attempt, problem)
            log.debug("judge request failed (%s); retry %d in %.3fs", type(problem).__name__, attempt + 1, delay)
            attempt += 1
            await asyncio.sleep(delay)

    def _refuse(self, err: openai.APIStatusError) -> None:
        """Raise for an HTTP status no retry can fix; return for one worth retrying (408/409/429/5xx)."""
        status, message = err.status_code, self.redact(str(err.message))
        if 300 <= status < 400:  # never followed: the cache key and the API key's recipient are the configured URL
            where = self.redact(err.response.headers.get("location") or "(no Location header)")
            self._fatal = (f"judge endpoint {self.base_url!r} redirects (HTTP {status}) to {where}; redirects are "
                           "not followed: set the judge's base URL to the endpoint itself")
            raise JudgeConfigError(self._fatal) from None
        if status in (401, 403, 404):
            self._fatal = (
                f"judge request rejected with HTTP {status} (check the key in the "
                f"environment, the base URL {self.base_url!r} and the model {self.model!r}): {message}"
            )
            raise JudgeConfigError(self._fatal) from None
        if status not in _RETRY_STATUS and status < 500:
            raise JudgeUnavailable(f"HTTP {status}: {message}") from None

    def _reply(self, messages: Messages, key: str, done: Completion) -> Reply:
        pt, ct, estimated = done.tokens(messages)
        if estimated:  # no believable usage: an estimate was counted, so budgets and costs hold
            self.usage.estimated_usage += 1
            if not self._warned_usage:
                self._warned_usage = True
                log.warning("judge %s reports no usable token usage; counting ceil(characters / 4) per message "
                            "and reply toward its token budget and cost (usage.estimated_usage)", self.name)
        self.usage.prompt_tokens += pt
        self.usage.completion_tokens += ct
        return Reply(self.redact(done.text), key, pt, ct, truncated=done.finish_reason == "length")

    def put(self, key: str, text: str, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        """Cache ``text`` under ``key`` (no-op without a cache); this also ends this judge's lease on it."""
        if self._shared is not None:
            self._shared.put(key, self.model, text, prompt_tokens, completion_tokens)

    def store(self, reply: Reply, key: str | None = None) -> None:
        """Cache a reply the caller parsed and accepted, under ``key`` (default: its own); no-op for a hit."""
        if not reply.cached:
            self.put(key or reply.key, reply.text, reply.prompt_tokens, reply.completion_tokens)

    def release(self, *keys: str) -> None:
        """End this judge's leases on ``keys`` (a question that stored nothing: others may ask it now)."""
        if self._shared is not None:
            self._shared.release(*keys)

    async def _shutdown(self, client: openai.AsyncOpenAI | None) -> None:
        if self._shared is not None:
            await self._shared.stop()
        if client is not None:
            await client.close()

    def close(self) -> None:
        """Close the HTTP client and stop the private loop (a later request starts a new one)."""
        with self._loop_lock:
            loop, thread, client = self._loop, self._thread, self._client
            self._loop = self._thread = self._client = None
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(client), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        loop.close()

    def __enter__(self) -> "JudgeTransport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
