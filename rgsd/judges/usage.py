"""What a judge consumed, and the caps that stop it cleanly.

:class:`Usage` counts every request sent to a judge server (retries included), cache hits, tokens, failed
verdicts, retries and re-asks. :class:`Budget` caps calls and tokens; a judge checks it before every
request it would send and raises :class:`BudgetExhausted` instead, so an evaluation can write what it has
and be resumed later (already paid verdicts come back from the cache).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields


class BudgetExhausted(RuntimeError):
    """Raised before a judge request that would exceed the call or token budget."""


@dataclass
class Usage:
    """Running totals for one judge (all fields add up across ``grade`` calls)."""

    calls: int = 0  # HTTP requests sent to the server, retries and re-asks included
    cache_hits: int = 0  # replies served from the cache (no request sent)
    prompt_tokens: int = 0  # as reported by the server's ``usage`` (or estimated); cache hits add nothing
    completion_tokens: int = 0
    failures: int = 0  # verdicts (or holistic ratings) recorded as failures (met=None)
    retries: int = 0  # requests repeated after 429 / 5xx / timeout / connection error
    reasks: int = 0  # requests repeated because a reply could not be parsed or missed items
    estimated_usage: int = 0  # replies without usable token counts: ceil(chars / 4) was counted instead
    cache_errors: int = 0  # 1 once the cache failed mid-run (it is then off for the rest of the run)
    wall_time: float = 0.0  # seconds during which at least one grade() was running

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(Usage)})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total_tokens"] = self.total_tokens
        d["wall_time"] = round(self.wall_time, 4)
        return d


class WallClock:
    """Adds to ``usage.wall_time`` only while at least one grading is active (overlaps counted once)."""

    def __init__(self, usage: Usage) -> None:
        self.usage = usage
        self.active = 0
        self.started = 0.0

    def __enter__(self) -> "WallClock":
        if self.active == 0:
            self.started = time.perf_counter()
        self.active += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.active -= 1
        if self.active == 0:
            self.usage.wall_time += time.perf_counter() - self.started


@dataclass
class Budget:
    """Caps on what a judge may spend. ``None`` = unlimited.

    ``max_calls`` counts requests sent (retries and re-asks included); ``max_tokens`` counts prompt plus
    completion tokens reported by the server (estimated when it reports none: see
    :mod:`rgsd.judges.completion`). Both are checked before each request, so requests already
    in flight may overshoot ``max_tokens`` by their own size.
    """

    max_calls: int | None = None
    max_tokens: int | None = None
    # A judge panel shares one budget: the caps then apply to the sum over all its members' usage.
    pool: list[Usage] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"judge budget {name} must be an integer >= 0, got {value!r}")

    def check(self, usage: Usage) -> None:
        """Raise :class:`BudgetExhausted` if one more request would break a cap."""
        if self.pool:
            total = Usage()
            for u in self.pool:
                total = total + u
            usage = total
        if self.max_calls is not None and usage.calls >= self.max_calls:
            raise BudgetExhausted(
                f"judge call budget exhausted ({usage.calls} of max {self.max_calls} calls)"
            )
        if self.max_tokens is not None and usage.total_tokens >= self.max_tokens:
            raise BudgetExhausted(
                f"judge token budget exhausted ({usage.total_tokens} of max {self.max_tokens} tokens)"
            )
