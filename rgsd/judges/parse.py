"""Strict parsing of judge replies. Only the judge's reply text is parsed, never the prompt.

How the one JSON object of a reply is found (:func:`extract_json_object`):

1. the whole reply (whitespace stripped) is a JSON object -> that object;
2. otherwise every JSON object written anywhere in the reply is collected (inside code fences or not, each
   outermost object once). The objects that have the shape asked for (a ``criteria_met`` key, a ``rating``
   key, or item-number keys, depending on the request) are the candidates: exactly one candidate -> that
   object; two or more -> the reply is **ambiguous** and rejected (a judge that quotes the candidate's fenced
   ``{"criteria_met": true}`` and then writes its own verdict holds two verdicts; neither is picked). With no
   candidate, a reply holding exactly one object yields it (so the error names the missing key).

A key written twice in one object (``{"criteria_met": true, "criteria_met": false}``) makes the reply
ambiguous too, and so do two batched keys naming the same item (``"3"`` and ``"03"``): that item is
re-asked. Types are checked: ``criteria_met`` must be a JSON boolean (the strings ``"true"``/``"false"`` and
the numbers 0/1 are rejected); ``explanation`` may be absent (read as ``""``) but must be a string if
present; a holistic ``rating`` must be a number (not a boolean) in [1, 10]. Every rejection raises
:class:`ParseError` with the reason, which the judge uses when it re-asks.
"""

from __future__ import annotations

import json
from typing import Any, Callable


class ParseError(ValueError):
    """A judge reply that cannot be used."""


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def _decode(text: str, pos: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, pos)
    except _DuplicateKey as err:
        raise ParseError(f"ambiguous: the key {str(err)!r} appears twice in one object") from None


def _all_objects(text: str) -> list[dict[str, Any]]:
    """Every outermost JSON object in ``text`` (objects nested in another are not listed again)."""
    found: list[dict[str, Any]] = []
    pos = text.find("{")
    while pos >= 0:
        try:
            obj, end = _decode(text, pos)
        except json.JSONDecodeError:
            pos = text.find("{", pos + 1)
            continue
        if isinstance(obj, dict):
            found.append(obj)
        pos = text.find("{", end)
    return found


def has_verdict(obj: dict[str, Any]) -> bool:
    return "criteria_met" in obj


def has_rating(obj: dict[str, Any]) -> bool:
    return "rating" in obj


def has_items(obj: dict[str, Any]) -> bool:
    return any(str(k).strip().isdigit() for k in obj)


def extract_json_object(
    reply: str, is_candidate: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, Any]:
    """The one JSON object of a judge reply, by the rules in the module docstring.

    ``is_candidate`` says which objects have the shape the request asked for (default: every object).
    """
    if not isinstance(reply, str):
        raise ParseError(f"reply is not text (got {type(reply).__name__})")
    text = reply.strip()
    if not text:
        raise ParseError("empty reply")
    try:
        obj, end = _decode(text, 0)
    except json.JSONDecodeError:
        pass
    else:
        if end == len(text):
            if isinstance(obj, dict):
                return obj
            raise ParseError(f"reply is JSON but not an object (got {type(obj).__name__})")
    objects = _all_objects(text)
    if not objects:
        raise ParseError("no JSON object in reply")
    candidates = [o for o in objects if is_candidate(o)] if is_candidate else objects
    if len(candidates) > 1:
        raise ParseError(
            f"ambiguous: the reply holds {len(candidates)} answer objects (for example one quoted from the "
            "graded response and one of your own); give exactly one"
        )
    if candidates:
        return candidates[0]
    if len(objects) == 1:
        return objects[0]
    raise ParseError(f"ambiguous: {len(objects)} JSON objects and none in the requested shape")


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
    return verdict_from_object(extract_json_object(reply, has_verdict))


def parse_batched(reply: str, expected: list[int]) -> tuple[dict[int, tuple[bool, str]], dict[int, str]]:
    """Parse a batched reply keyed by item number.

    Returns ``(found, problems)``: the valid verdicts by item number, and for every expected item that is
    missing, malformed or named by two keys (``"3"`` and ``"03"``), the reason. Keys that are not expected
    item numbers are ignored. Raises :class:`ParseError` when the reply holds no usable JSON object at all.
    """
    obj = extract_json_object(reply, has_items)
    by_number: dict[int, list[tuple[str, Any]]] = {}
    for key, value in obj.items():
        k = key.strip()
        if k.isdigit():
            by_number.setdefault(int(k), []).append((key, value))
    found: dict[int, tuple[bool, str]] = {}
    problems: dict[int, str] = {}
    for n in expected:
        entries = by_number.get(n)
        if not entries:
            problems[n] = "missing"
            continue
        if len(entries) > 1:
            keys = " and ".join(repr(k) for k, _ in entries)
            problems[n] = f"ambiguous: item {n} is answered twice (keys {keys})"
            continue
        try:
            found[n] = verdict_from_object(entries[0][1], f"item {n}: ")
        except ParseError as err:
            problems[n] = str(err)
    return found, problems


def parse_holistic(reply: str) -> tuple[float, str]:
    """Parse a holistic reply: ``(rating in [1, 10], explanation)``."""
    obj = extract_json_object(reply, has_rating)
    if "rating" not in obj:
        raise ParseError("missing 'rating'")
    rating = obj["rating"]
    if isinstance(rating, bool) or not isinstance(rating, (int, float)):
        raise ParseError(f"'rating' must be a number from 1 to 10, got {json.dumps(rating)}")
    if not 1 <= rating <= 10:
        raise ParseError(f"'rating' must be from 1 to 10, got {rating}")
    return float(rating), _explanation(obj, "")
