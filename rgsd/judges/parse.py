"""Strict parsing of judge replies. Only the judge's reply text is parsed, never the prompt.

How the one JSON object of a reply is found (:func:`extract_json_object`):

1. the whole reply (whitespace stripped) is a JSON object -> that object;
2. otherwise, if the reply contains fenced code blocks: the single block tagged ``json`` (or, when none is
   tagged, the single untagged/other block) must be a JSON object; two or more candidate blocks are
   ambiguous and rejected;
3. otherwise the span from the first ``{`` to the last ``}`` must be exactly one JSON object. Prose around
   it is tolerated; a reply holding two objects (say, one quoted from the candidate response and then the
   judge's own) does not parse as one object and is rejected, so a quoted ``"criteria_met": true`` can
   never be picked up by accident.

Types are checked: ``criteria_met`` must be a JSON boolean (the strings ``"true"``/``"false"`` and the
numbers 0/1 are rejected); ``explanation`` may be absent (read as ``""``) but must be a string if present;
a holistic ``rating`` must be a number (not a boolean) in [1, 10]. Every rejection raises
:class:`ParseError` with the reason, which the judge uses when it re-asks.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n(.*?)```", re.DOTALL)


class ParseError(ValueError):
    """A judge reply that cannot be used."""


def _load_object(text: str, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise ParseError(f"{where} is not valid JSON ({err.msg} at char {err.pos})") from None
    if not isinstance(obj, dict):
        raise ParseError(f"{where} is JSON but not an object (got {type(obj).__name__})")
    return obj


def extract_json_object(reply: str) -> dict[str, Any]:
    """The one JSON object of a judge reply, by the rules in the module docstring."""
    text = reply.strip()
    if not text:
        raise ParseError("empty reply")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        pass
    else:
        if isinstance(obj, dict):
            return obj
        raise ParseError(f"reply is JSON but not an object (got {type(obj).__name__})")
    fences = _FENCE.findall(text)
    if fences:
        tagged = [body for tag, body in fences if tag.lower() == "json"]
        candidates = tagged or [body for _, body in fences]
        if len(candidates) != 1:
            raise ParseError(f"{len(candidates)} fenced code blocks; expected exactly one")
        return _load_object(candidates[0].strip(), "the fenced block")
    first, last = text.find("{"), text.rfind("}")
    if first < 0 or last < first:
        raise ParseError("no JSON object in reply")
    return _load_object(text[first : last + 1], "the text between the first '{' and the last '}'")


def _explanation(obj: dict[str, Any], where: str) -> str:
    expl = obj.get("explanation", "")
    if not isinstance(expl, str):
        raise ParseError(f"{where}'explanation' must be a string, got {type(expl).__name__}")
    return expl


def verdict_from_object(obj: Any, where: str = "") -> tuple[bool, str]:
    """``(criteria_met, explanation)`` from a ``{"explanation": str, "criteria_met": bool}`` object."""
    if not isinstance(obj, dict):
        raise ParseError(f"{where}expected an object, got {type(obj).__name__}")
    if "criteria_met" not in obj:
        raise ParseError(f"{where}missing 'criteria_met'")
    met = obj["criteria_met"]
    if not isinstance(met, bool):  # rejects "true", 1, null
        raise ParseError(f"{where}'criteria_met' must be true or false, got {json.dumps(met)}")
    return met, _explanation(obj, where)


def parse_verdict(reply: str) -> tuple[bool, str]:
    """Parse a per-criterion reply."""
    return verdict_from_object(extract_json_object(reply))


def parse_batched(reply: str, expected: list[int]) -> tuple[dict[int, tuple[bool, str]], dict[int, str]]:
    """Parse a batched reply keyed by item number.

    Returns ``(found, problems)``: the valid verdicts by item number, and for every expected item that is
    missing or malformed, the reason. Keys that are not expected item numbers are ignored. Raises
    :class:`ParseError` when the reply holds no usable JSON object at all.
    """
    obj = extract_json_object(reply)
    by_number: dict[int, Any] = {}
    for key, value in obj.items():
        k = key.strip()
        if k.isdigit():
            by_number[int(k)] = value
    found: dict[int, tuple[bool, str]] = {}
    problems: dict[int, str] = {}
    for n in expected:
        if n not in by_number:
            problems[n] = "missing"
            continue
        try:
            found[n] = verdict_from_object(by_number[n], f"item {n}: ")
        except ParseError as err:
            problems[n] = str(err)
    return found, problems


def parse_holistic(reply: str) -> tuple[float, str]:
    """Parse a holistic reply: ``(rating in [1, 10], explanation)``."""
    obj = extract_json_object(reply)
    if "rating" not in obj:
        raise ParseError("missing 'rating'")
    rating = obj["rating"]
    if isinstance(rating, bool) or not isinstance(rating, (int, float)):
        raise ParseError(f"'rating' must be a number from 1 to 10, got {json.dumps(rating)}")
    if not 1 <= rating <= 10:
        raise ParseError(f"'rating' must be from 1 to 10, got {rating}")
    return float(rating), _explanation(obj, "")
