"""The judge's use of its reply cache: failures that turn it off, and leases so nobody pays twice.

Two ``rgsd eval`` runs on one ``--judge-cache`` used to pay every verdict twice (704 calls for 352): both
missed the cache, both sent. Before sending a request whose key is not cached, a judge takes a *lease* on
the key in the cache file (owner = process id + a random nonce, so two judges in one process are two
owners); a judge that finds a live lease of another owner waits (``asyncio.sleep`` with backoff, never
blocking the loop) until the reply is stored (a cache hit) or the lease is released or expires (then it
takes the lease and sends). The holder keeps the lease until the reply it accepted is stored or its
question failed (then it releases it); while it holds leases it renews them, so they outlive long
conversations but die within ``ttl`` seconds of a crashed holder.

A cache that fails mid-run (``sqlite3.Error``: a damaged file, a full disk) is logged once and turned off
for the rest of the run: verdicts are still graded and written, and ``usage.cache_errors`` counts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rgsd.judges.cache import CachedReply, JudgeCache
from rgsd.judges.usage import Usage

log = logging.getLogger(__name__)

T = TypeVar("T")
POLL_FIRST, POLL_MAX = 0.05, 1.0  # seconds between looks at a lease held by another owner


class SharedCache:
    """``cache`` as one judge uses it; ``ttl``: seconds a lease lives without renewal."""

    def __init__(self, cache: JudgeCache, usage: Usage, ttl: float) -> None:
        self.cache = cache
        self.usage = usage
        self.ttl = ttl
        self.owner = f"{os.getpid()}-{secrets.token_hex(6)}"
        self.off: str | None = None  # why the cache was turned off, once it failed
        self.held: set[str] = set()
        self._renewer: asyncio.Task[None] | None = None
        self.flights: dict[str, asyncio.Future[Any]] = {}  # first asks in flight in this process, by key

    def _failed(self, err: Exception) -> None:
        self.usage.cache_errors += 1
        if self.off is None:
            self.off = f"{type(err).__name__}: {err}"
            log.warning("judge cache %s failed (%s); continuing without it for the rest of this run",
                        self.cache.path, self.off)
        self.held.clear()

    def _do(self, method: str, *args: Any) -> Any:
        if self.off is not None:
            return None
        try:
            return getattr(self.cache, method)(*args)
        except sqlite3.Error as err:  # a damaged file, a full disk, a dropped table: never worth a crashed run
            self._failed(err)
            return None

    def get(self, key: str) -> CachedReply | None:
        return self._do("get", key)

    def put(self, key: str, model: str, text: str, prompt_tokens: int, completion_tokens: int) -> None:
        self._do("put", key, model, text, prompt_tokens, completion_tokens)
        self.held.discard(key)  # put() also deleted the lease row

    async def once(self, key: str, send: Callable[[], Awaitable[T]], as_hit: Callable[[Any], T]) -> T:
        """``send()``'s answer to the question ``key``, sent at most once across this process and others.

        A question already in flight here shares that answer (single flight); a question whose lease another
        owner holds waits for that owner's reply (:meth:`claim`). ``as_hit`` turns a shared answer or a :class:`CachedReply`
        into the caller's answer. A failure releases the lease (and is every sharer's failure).
        """
        while (flight := self.flights.get(key)) is not None:
            await asyncio.wait([flight])
            if not flight.cancelled():
                return as_hit(flight.result())
        flight = asyncio.get_running_loop().create_future()
        self.flights[key] = flight
        try:
            hit = await self.claim(key)
            answer = as_hit(hit) if hit is not None else await send()
        except Exception as err:
            self.release(key)
            flight.set_exception(err)
            flight.exception()  # marks it retrieved: no "never retrieved" log when nobody shared it
            raise
        except BaseException:
            self.release(key)
            flight.cancel()  # those sharing it ask for themselves
            raise
        finally:
            self.flights.pop(key, None)
        flight.set_result(answer)
        return answer

    async def claim(self, key: str) -> CachedReply | None:
        """The cached reply of ``key``, waited for while another owner holds its lease; ``None``: send it.

        ``None`` means this judge now holds the lease (or the cache is off): it must send the request and
        then :meth:`put` the accepted reply or :meth:`release` the key.
        """
        delay = POLL_FIRST
        while True:
            hit = self.get(key)
            if hit is not None or self.off is not None:
                return hit
            if self._do("take_lease", key, self.owner, self.ttl):
                self.held.add(key)
                self._renew_soon()
                hit = self.get(key)  # stored by its last holder between our look and our lease
                if hit is not None:
                    self.release(key)
                return hit
            await asyncio.sleep(delay)
            delay = min(POLL_MAX, delay * 2)

    def release(self, *keys: str) -> None:
        """Give up this judge's leases on ``keys`` (those it does not hold are skipped)."""
        mine = [k for k in keys if k in self.held]
        if mine:
            self.held.difference_update(mine)
            self._do("release_leases", mine, self.owner)

    def _renew_soon(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        while self.held and self.off is None:
            await asyncio.sleep(self.ttl / 3)
            if self.held:
                self._do("renew_leases", self.owner, self.ttl)

    async def stop(self) -> None:
        """End the lease renewal (the judge is closing; leases it still holds then expire)."""
        task, self._renewer = self._renewer, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
