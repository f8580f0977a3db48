"""How the transport treats an endpoint that keeps failing: Retry-After read safely, and a circuit breaker.

A hung or dead endpoint used to cost every verdict its full retries (352 verdicts x 60 s x 5 retries: about
35 hours at one arrival per timeout). :class:`Breaker` marks the judge down once ``limit`` requests in a row
failed for good with no reply in between; every later request then fails at once with
:class:`~rgsd.judges.errors.JudgeUnavailable` naming why, so a run finishes, writes its files and reports
every verdict as a counted failure.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from rgsd.judges.errors import JudgeUnavailable


def retry_after(value: str | None, cap: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for, at most ``cap``; ``None`` when absent or unusable.

    Delta-seconds and HTTP dates are read; ``nan``, ``inf``, a negative number, a date in the past or
    anything unreadable is ignored (the caller's computed backoff stands), never an error.
    """
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(cap, seconds)


class Breaker:
    """Marks a judge down after ``limit`` requests in a row failed for good (``0`` = never).

    Only failures after the retries count (timeouts, connection errors, 429/5xx, 200s that are no
    completion): an HTTP 400 is about one request, not the endpoint. Any reply resets the count. A judge
    marked down stays down for its lifetime (a run's judge; build a new one to try again).
    """

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"judge option max_consecutive_failures must be an integer >= 0, got {limit!r}")
        self.limit = limit
        self.streak = 0
        self.down: str | None = None

    def success(self) -> None:
        self.streak = 0

    def failure(self, why: str) -> None:
        self.streak += 1
        if self.limit and self.streak >= self.limit and self.down is None:
            self.down = (
                f"judge marked down: {self.streak} requests in a row failed after their retries "
                f"(--judge-max-consecutive-failures {self.limit}); the last: {why}"
            )

    def check(self) -> None:
        """Raise :class:`JudgeUnavailable` at once when the judge is down."""
        if self.down is not None:
            raise JudgeUnavailable(self.down)
