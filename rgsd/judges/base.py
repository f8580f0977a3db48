"""What every judge returns, and the interface trainers and evaluation use.

A judge grades one response against one example's rubric. A verdict whose ``met`` is ``None`` is a judge
failure (the judge could not be reached or its reply could not be parsed after the allowed retries): it is
never counted as met or unmet; scoring excludes it and reports how many there were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from rgsd.data.schema import Example


@dataclass
class Verdict:
    """The judge's decision on one criterion of one response."""

    criterion_id: str
    met: bool | None  # None = judge failure (excluded from scores, counted)
    explanation: str = ""


@dataclass
class Grade:
    """All verdicts for one response, or one holistic rating in [0, 1] (RaR implicit)."""

    verdicts: list[Verdict] = field(default_factory=list)
    holistic: float | None = None
    failed: bool = False  # True when the whole grading failed (e.g. holistic reply never parsed)

    @property
    def failures(self) -> int:
        return sum(v.met is None for v in self.verdicts) + int(self.failed)


class Judge(Protocol):
    """Anything that grades a response against an example's rubric (async, so calls can overlap)."""

    name: str

    async def grade(self, example: Example, response: str) -> Grade: ...
