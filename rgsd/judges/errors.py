"""The two ways a judge request ends without a reply (importable from :mod:`rgsd.judges.transport` as well)."""

from __future__ import annotations


class JudgeConfigError(RuntimeError):
    """The judge cannot work at all (missing or malformed key, wrong URL, unknown model): fix the configuration."""


class JudgeUnavailable(RuntimeError):
    """One request failed for good (retries exhausted, a non-retryable error, or the judge is marked down)."""
