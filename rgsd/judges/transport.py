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

The API key is read from an environment variable, never written anywhere, and redacted wherever it could
be quoted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

import openai

from rgsd.judges.cache import JudgeCache, cache_key
from rgsd.judges.usage import Budget, Usage

log = logging.getLogger(__name__)

STRUCTURED: tuple[str, ...] = ("auto", "on", "off")
Messages = list[dict[str, str]]
_RETRY_STATUS = {408, 409, 429}
_REFUSED_SCHEMA = {400, 422}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_REDACTED = "[redacted]"
T = TypeVar("T")


class JudgeConfigError(RuntimeError):
    """The judge cannot work at all (missing key, wrong URL, unknown model): fix the configuration."""


class JudgeUnavailable(RuntimeError):
    """One request failed for good (retries exhausted or a non-retryable error)."""


class BadCompletion(Exception):
    """An HTTP 200 whose body is not a usable chat completion (retried)."""


@dataclass
class Reply:
    """One reply: its text (key redacted), the cache key of the request, tokens, and where it came from."""

    text: str
    key: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    truncated: bool = False  # finish_reason == "length": the answer may be cut off


def _is_loopback(url: str | None) -> bool:
    host = urlparse(url).hostname if url else None
    return bool(host) and (host in _LOOPBACK or host.startswith("127."))


def _tokens(usage: Any, name: str) -> int:
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def read_completion(body: bytes) -> tuple[str, str | None, int, int]:
    """``(content, finish_reason, prompt_tokens, completion_tokens)`` of a chat-completion body.

    Raises :class:`BadCompletion` naming what is wrong, for anything else a 200 may carry.
    """
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        head = body[:60].decode("utf-8", "replace").strip().replace("\n", " ")
        raise BadCompletion(f"the 200 reply is not JSON (starts {head!r})") from None
    if not isinstance(obj, dict):
        raise BadCompletion(f"the 200 reply is a JSON {type(obj).__name__}, not a chat completion")
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise BadCompletion("the 200 reply has no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise BadCompletion("the 200 reply has no message")
    content = message.get("content")
    if not isinstance(content, str):
        got = "null" if content is None else type(content).__name__
        raise BadCompletion(f"the reply's message content is {got}, not text")
    finish = choices[0].get("finish_reason")
    usage = obj.get("usage")
    return content, finish if isinstance(finish, str) else None, _tokens(usage, "prompt_tokens"), _tokens(
        usage, "completion_tokens"
    )


def _positive(name: str, value: float, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._loop_lock = threading.Lock()
        self._client: openai.AsyncOpenAI | None = None
        self._sem: asyncio.Semaphore | None = None
        self._probe = asyncio.Lock()  # replaced per event loop in ensure_loop

    def __repr__(self) -> str:  # never shows the key
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced (servers and proxies sometimes echo it in errors)."""
        key = self._api_key
        if not isinstance(text, str) or not key or len(key) < 4:
            return text
        text = text.replace(key, _REDACTED)
        return text.replace(key[:-4], _REDACTED) if len(key) >= 16 else text  # also a truncated echo

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
                self._client = openai.AsyncOpenAI(
                    api_key=self._api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout
                )
                self._sem = asyncio.Semaphore(self.concurrency)
                self._probe = asyncio.Lock()
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
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            try:
                delay = max(delay, min(self.backoff_max, float(retry_after)))
            except ValueError:
                pass
        return max(0.0, delay) if delay == delay else self.backoff_max  # NaN from an odd header

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
        accepted, so a malformed reply is never replayed. Raises :class:`JudgeUnavailable` after the retries,
        :class:`JudgeConfigError` (key/URL/model rejected), :class:`~rgsd.judges.usage.BudgetExhausted`.
        """
        mode = self.structured if structured is None else structured
        _check_structured(mode)
        schema = response_format if mode != "off" else None
        params = self._params()
        key = self.key(messages)
        if use_cache and self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.usage.cache_hits += 1
                return Reply(hit.reply, key, hit.prompt_tokens, hit.completion_tokens, cached=True)
        client, sem = self._client, self._sem
        assert client is not None and sem is not None, "request() runs on the judge's loop: use run()"
        attempt = 0
        while True:
            if self._fatal is not None:
                raise JudgeConfigError(self._fatal)
            auto = schema is not None and mode == "auto"
            sent_schema = refused = False
            # Until the endpoint has answered one schema request, auto-mode schema requests go one at a time,
            # so a refusing endpoint costs one refused call, not one per request in flight.
            held = False
            if auto and self.structured_supported is None:
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
                            # structured outputs here" (set before the probe slot opens); once one succeeded,
                            # it is a real error.
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
                        self._probe.release()
                text, finish, pt, ct = read_completion(body)
            except (openai.APITimeoutError, openai.APIConnectionError, BadCompletion) as err:
                problem: Exception = err
            except openai.APIStatusError as err:
                message = self.redact(str(err.message))
                if refused:  # the one fallback: ask again plainly (not a retry)
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
                return Reply(self.redact(text), key, pt, ct, truncated=finish == "length")
            if attempt >= self.max_retries:
                raise JudgeUnavailable(
                    self.redact(f"gave up after {attempt + 1} attempts: {type(problem).__name__}: {problem}")
                )
            self.usage.retries += 1
            delay = self._delay(attempt, problem)
            log.debug("judge request failed (%s); retry %d in %.3fs", type(problem).__name__, attempt + 1, delay)
            attempt += 1
            await asyncio.sleep(delay)

    def put(self, key: str, text: str, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        """Cache ``text`` under ``key`` (no-op without a cache)."""
        if self.cache is not None:
            self.cache.put(key, self.model, text, prompt_tokens, completion_tokens)

    def store(self, reply: Reply, key: str | None = None) -> None:
        """Cache a reply the caller parsed and accepted, under ``key`` (default: its own); no-op for a hit."""
        if not reply.cached:
            self.put(key or reply.key, reply.text, reply.prompt_tokens, reply.completion_tokens)

    def close(self) -> None:
        """Close the HTTP client and stop the private loop (a later request starts a new one)."""
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

    def __enter__(self) -> "JudgeTransport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
