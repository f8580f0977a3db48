"""JSON schemas for structured outputs (``response_format``), one per request shape.

They only ask the endpoint to constrain its reply; :mod:`rgsd.judges.parse` still decides what was said,
so an endpoint that ignores the schema (or refuses it, see ``OpenAIJudge(structured=...)``) is read the
same way.
"""

from __future__ import annotations

from typing import Any

_VERDICT: dict[str, Any] = {
    "type": "object",
    "properties": {"explanation": {"type": "string"}, "criteria_met": {"type": "boolean"}},
    "required": ["explanation", "criteria_met"],
    "additionalProperties": False,
}


def _wrap(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


def verdict_format() -> dict[str, Any]:
    """One rubric item: ``{"explanation": str, "criteria_met": bool}``."""
    return _wrap("rubric_item_verdict", _VERDICT)


def batched_format(numbers: list[int]) -> dict[str, Any]:
    """Several items: one verdict object per item number (as a string key)."""
    keys = [str(n) for n in numbers]
    schema = {
        "type": "object",
        "properties": {k: _VERDICT for k in keys},
        "required": keys,
        "additionalProperties": False,
    }
    return _wrap("rubric_verdicts", schema)


def holistic_format() -> dict[str, Any]:
    """One overall rating: ``{"explanation": str, "rating": 1..10}``."""
    schema = {
        "type": "object",
        "properties": {
            "explanation": {"type": "string"},
            "rating": {"type": "integer", "minimum": 1, "maximum": 10},
        },
        "required": ["explanation", "rating"],
        "additionalProperties": False,
    }
    return _wrap("rubric_rating", schema)
