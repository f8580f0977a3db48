"""A panel of judges: every member grades, each verdict is decided by majority (or unanimity).

A member's failure on an item (``met=None``) is counted for that member and leaves it out of the vote, and
the panel's verdict stands only if a majority of the *whole panel* answered: with three judges, two answers
are needed. Under ``majority`` a tie among the answers is a failure (never a coin toss); under ``unanimous``
every member must answer and agree, otherwise the item is a failure. Holistic ratings: the median of the
answered ratings, when a majority answered. :meth:`PanelJudge.panel_summary` reports, per member, how often
its verdict agreed with the panel's.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from rgsd.data.schema import Example
from rgsd.judges.base import Grade, Verdict
from rgsd.judges.usage import Usage

RULES: tuple[str, ...] = ("majority", "unanimous")
RULE_ALIASES = {"all": "unanimous"}  # diagnose's older name for the same rule


class PanelJudge:
    """Combine the grades of several judges (each with ``grade``, ``name`` and optionally ``usage``).

    ``rule``: one of :data:`RULES` (``"all"`` is read as ``"unanimous"``). Built by
    :func:`rgsd.judges.make_judge`, the members share one budget; ``members`` may also be graded one by one.
    """

    def __init__(self, members: list[Any], rule: str = "majority") -> None:
        rule = RULE_ALIASES.get(rule, rule)
        if len(members) < 2:
            raise ValueError("a judge panel needs at least two judges")
        if rule not in RULES:
            raise ValueError(f"panel rule must be one of {RULES}, got {rule!r}")
        self.members = list(members)
        self.rule = rule
        self.name = "panel(" + ",".join(m.name for m in members) + f";{rule})"
        modes = {getattr(m, "mode", None) for m in members}
        if len(modes) != 1:
            raise ValueError(f"all panel judges must use the same mode, got {sorted(map(str, modes))}")
        self.mode = modes.pop()
        n = len(members)
        # per member: verdicts answered, answered where the panel decided, agreeing with the panel
        self._answered = [0] * n
        self._decided = [0] * n
        self._agreed = [0] * n
        self.decided = 0
        self.undecided = 0  # items (or ratings) the panel could not decide: recorded as failures

    @property
    def usage(self) -> Usage:
        """The members' usage added up (a fresh object each time)."""
        total = Usage()
        for m in self.members:
            if isinstance(getattr(m, "usage", None), Usage):
                total = total + m.usage
        return total

    def _vote(self, answers: list[bool | None]) -> bool | None:
        given = [a for a in answers if a is not None]
        if 2 * len(given) <= len(answers):  # a majority of the panel must have answered
            return None
        yes = sum(given)
        if self.rule == "unanimous":
            return given[0] if len(given) == len(answers) and yes in (0, len(given)) else None
        no = len(given) - yes
        return None if yes == no else yes > no

    def _tally(self, answers: list[Any], decided: Any, same: Any) -> None:
        for i, a in enumerate(answers):
            if a is None:
                continue
            self._answered[i] += 1
            if decided is not None:
                self._decided[i] += 1
                self._agreed[i] += int(same(a, decided))
        if decided is None:
            self.undecided += 1
        else:
            self.decided += 1

    async def grade(self, example: Example, response: str) -> Grade:
        grades = await asyncio.gather(*(m.grade(example, response) for m in self.members), return_exceptions=True)
        for g in grades:  # a budget stop or a dead judge stops the panel too (after every member finished)
            if isinstance(g, BaseException):
                raise g
        if any(g.holistic is not None or g.failed for g in grades):
            ratings = [None if g.failed else g.holistic for g in grades]
            given = [r for r in ratings if r is not None]
            value = statistics.median(given) if 2 * len(given) > len(ratings) else None
            if value is not None and self.rule == "unanimous" and (len(given) < len(ratings) or len(set(given)) > 1):
                value = None
            self._tally(ratings, value, lambda a, b: abs(a - b) <= 1 / 9 + 1e-9)  # within one rating point
            return Grade(holistic=value, failed=value is None)
        verdicts = []
        for crit in example.rubric:
            answers: list[bool | None] = []
            for g in grades:
                v = next((v for v in g.verdicts if v.criterion_id == crit.id), None)
                answers.append(None if v is None else v.met)
            met = self._vote(answers)
            self._tally(answers, met, lambda a, b: a == b)
            shown = ", ".join(f"{m.name}={'-' if a is None else str(a).lower()}" for m, a in zip(self.members, answers))
            why = f"panel ({self.rule}): {shown}"
            verdicts.append(Verdict(crit.id, met, why if met is not None else f"judge failure: no {self.rule} verdict: {shown}"))
        return Grade(verdicts=verdicts)

    def panel_summary(self) -> dict[str, Any]:
        """Rule, decided/undecided counts and per-member agreement with the panel's verdicts."""
        members = []
        for i, m in enumerate(self.members):
            usage = getattr(m, "usage", None)
            members.append(
                {
                    "name": m.name,
                    "model": getattr(m, "model", None),
                    "base_url": getattr(m, "base_url", None),
                    "answered": self._answered[i],
                    "agreement": self._agreed[i] / self._decided[i] if self._decided[i] else None,
                    "usage": usage.to_dict() if isinstance(usage, Usage) else None,
                }
            )
        return {"rule": self.rule, "decided": self.decided, "undecided": self.undecided, "members": members}

    def close(self) -> None:
        for m in self.members:
            if hasattr(m, "close"):
                m.close()
