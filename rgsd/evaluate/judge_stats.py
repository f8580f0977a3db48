"""What an evaluation's judge did: tokens spent, verdicts that failed, dollars (summary fields of :func:`evaluate`)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from rgsd.judges.base import Grade
from rgsd.judges.usage import Usage


def usage_delta(before: Usage, after: Usage) -> Usage:
    """What a judge consumed between two snapshots (a judge object may be reused across evaluations)."""
    return Usage(**{f.name: getattr(after, f.name) - getattr(before, f.name) for f in fields(Usage)})


def failure_stats(grades: list[Grade | None]) -> dict[str, Any]:
    """Judge failures among the graded verdicts (holistic: among the graded responses)."""
    total = failed = 0
    first: str | None = None
    for g in grades:
        if g is None:
            continue
        if g.holistic is not None or g.failed:
            total += 1
            failed += int(g.failed)
            continue
        total += len(g.verdicts)
        for v in g.verdicts:
            if v.met is None:
                failed += 1
                first = first or v.explanation
    out: dict[str, Any] = {"n_verdicts": total, "n_judge_failures": failed}
    out["failure_rate"] = failed / total if total else 0.0
    if first:
        out["first_failure"] = first
    return out


def judge_cost_usd(judge: Any, spent: Usage | None, summary: dict[str, Any], prices: Any) -> float | None:
    """Dollars this evaluation's judge tokens cost (panel: each member at its own model's price)."""
    members = getattr(judge, "members", None)
    if members:
        total, known = 0.0, True
        for m, entry in zip(members, summary.get("panel", {}).get("members", [])):
            u = entry.get("usage") or {}
            usd = prices.usd(getattr(m, "model", None), u.get("prompt_tokens", 0), u.get("completion_tokens", 0))
            entry["cost_usd"] = usd
            known &= usd is not None
            total += usd or 0.0
        return round(total, 6) if known else None
    if spent is None:
        return None
    return prices.usd(getattr(judge, "model", None), spent.prompt_tokens, spent.completion_tokens)
