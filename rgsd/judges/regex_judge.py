"""An offline stand-in judge: a criterion is met when its regular expression matches the response.

This is a pattern match, not an LLM judge; it exists so that tests, demos and smoke runs work without a
judge server. Every summary or report produced with it says so (see :data:`REGEX_JUDGE_NOTE`).
"""

from __future__ import annotations

import re

from rgsd.data.schema import Example
from rgsd.judges.base import Grade, Verdict
from rgsd.judges.usage import Usage

REGEX_JUDGE_NOTE = (
    "Graded by the regex judge: each criterion's regular expression is searched in the response. This is "
    "a keyword/pattern stand-in, not an LLM judge; its scores are not comparable to LLM-judged scores."
)


class RegexJudge:
    """``met = re.search(criterion.pattern, response, IGNORECASE) is not None``.

    A criterion without a ``pattern`` (or with an invalid one) is a failure (``met=None``) with an
    explanation, so it is excluded from scores and counted, never silently scored.
    """

    name = "regex"
    note = REGEX_JUDGE_NOTE

    def __init__(self) -> None:
        self.usage = Usage()
        self._compiled: dict[str, re.Pattern[str] | str] = {}

    def _pattern(self, pattern: str) -> re.Pattern[str] | str:
        if pattern not in self._compiled:
            try:
                self._compiled[pattern] = re.compile(pattern, re.IGNORECASE)
            except re.error as err:
                self._compiled[pattern] = f"invalid regular expression {pattern!r}: {err}"
        return self._compiled[pattern]

    def grade_sync(self, example: Example, response: str) -> Grade:
        """Synchronous grading (the regex judge never waits on anything)."""
        verdicts = []
        for c in example.rubric:
            if not c.pattern:
                verdicts.append(
                    Verdict(c.id, None, "no pattern for this criterion (regex judge cannot grade it)")
                )
                continue
            pat = self._pattern(c.pattern)
            if isinstance(pat, str):
                verdicts.append(Verdict(c.id, None, pat))
                continue
            m = pat.search(response)
            expl = f"pattern matched {m.group(0)!r}" if m else "pattern not found"
            verdicts.append(Verdict(c.id, m is not None, expl))
        self.usage.failures += sum(v.met is None for v in verdicts)
        return Grade(verdicts=verdicts)

    async def grade(self, example: Example, response: str) -> Grade:
        return self.grade_sync(example, response)
