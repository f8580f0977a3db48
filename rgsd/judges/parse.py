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

A batched reply maps key ``"k"`` to item k and nothing else: every key must be the decimal number (ASCII
digits, no sign, no leading zero) of an item that was asked for. A reply with any other key (``"0"`` from a
0-based list, an item that was not asked, ``"03"``, ``"¹"``, ``"note"``) is refused whole, because a judge
that numbers differently has put every verdict on the wrong item.

Reasoning models: the text up to the last ``</think>`` is the model's reasoning, not its answer, and is never
searched for JSON (a reply that opens ``<think>`` and never closes it has no answer). Any string gives a
result or a :class:`ParseError`, never another exception: nesting too deep for the decoder, integers longer
than Python converts, and answers longer than :data:`MAX_ANSWER_CHARS` are refused. The search is one pass
over the reply plus one decode per ``{``; the answer cap and :data:`MAX_FAILED_STARTS` bound its worst case
(``bench/bench_parse.py``).
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

# A judge answers in well under a few thousand characters (max_tokens defaults to 1024); a longer answer
# (after its reasoning) is refused unread, which bounds the worst case of the object search.
MAX_ANSWER_CHARS = 32_768
MAX_FAILED_STARTS = 100
_ITEM_KEY = re.compile(r"[1-9][0-9]{0,8}")
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_OBJECT_START = re.compile(r'\{\s*["}]')  # where a JSON object can start: "{" then a key or "}"


class ParseError(ValueError):
    """A judge reply that cannot be used."""


class _DuplicateKey(Exception):
    pass


class _Unreadable(Exception):
    """No JSON value at a position (cheap: ``json.JSONDecodeError`` counts lines up to its position)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def _decode(text: str, pos: int) -> tuple[Any, int]:
    """The JSON value at ``pos``; ``json.JSONDecodeError`` when there is none (too deep or too long too)."""
    try:
        return _DECODER.raw_decode(text, pos)
    except _DuplicateKey as err:
        raise ParseError(f"ambiguous: the key {str(err)!r} appears twice in one object") from None
    except json.JSONDecodeError:
        raise
    except (RecursionError, ValueError):  # nesting deeper than the decoder goes; a 5,000-digit integer
        raise _Unreadable from None


def answer_text(reply: str) -> str:
    """The part of a reply that is the answer: after the last ``</think>``, stripped; checked for size."""
    if not isinstance(reply, str):
        raise ParseError(f"reply is not text (got {type(reply).__name__})")
    close = reply.rfind(_THINK_CLOSE)
    if close >= 0:
        reply = reply[close + len(_THINK_CLOSE):]
    elif reply.lstrip().startswith(_THINK_OPEN):
        raise ParseError("the reply is reasoning (<think>) with no answer after it")
    text = reply.strip()
    if len(text) > MAX_ANSWER_CHARS:
        raise ParseError(f"the answer has {len(text)} characters, over the cap of {MAX_ANSWER_CHARS}; answer briefly")
    return text


def _all_objects(text: str) -> list[dict[str, Any]]:
    """Every outermost JSON object in ``text`` (objects nested in another are not listed again).

    Each failed start costs up to the length of the text, so a reply with more than
    :data:`MAX_FAILED_STARTS` object starts that are not JSON is refused (no judge answers like that).
    """
    found: list[dict[str, Any]] = []
    failed = 0
    start = _OBJECT_START.search(text)
    while start:
        try:
            obj, end = _decode(text, start.start())
        except (json.JSONDecodeError, _Unreadable):
            failed += 1
            if failed > MAX_FAILED_STARTS:
                raise ParseError(f"more than {MAX_FAILED_STARTS} places where a JSON object starts and breaks off; "
                                 "answer with the one JSON object") from None
            start = _OBJECT_START.search(text, start.start() + 1)
            continue
        if isinstance(obj, dict):
            found.append(obj)
        start = _OBJECT_START.search(text, end)
    return found


def has_verdict(obj: dict[str, Any]) -> bool:
    return "criteria_met" in obj


def has_rating(obj: dict[str, Any]) -> bool:
    return "rating" in obj


def has_items(obj: dict[str, Any]) -> bool:
    return any(_ITEM_KEY.fullmatch(str(k).strip()) for k in obj)


def extract_json_object(
    reply: str, is_candidate: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, Any]:
    """The one JSON object of a judge reply, by the rules in the module docstring.

    ``is_candidate`` says which objects have the shape the request asked for (default: every object).
    """
    text = answer_text(reply)
    if not text:
        raise ParseError("empty reply")
    try:
        obj, end = _decode(text, 0)
    except (json.JSONDecodeError, _Unreadable):
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
    missing or malformed, the reason. Raises :class:`ParseError` when the reply holds no usable JSON object,
    or when any key is not the number of an expected item (the whole reply is refused: see the module doc).
    """
    obj = extract_json_object(reply, has_items)
    wanted = set(expected)
    by_number: dict[int, Any] = {}
    stray: list[str] = []
    for key, value in obj.items():
        k = key.strip()
        if _ITEM_KEY.fullmatch(k) and int(k) in wanted:
            if int(k) in by_number:  # " 3" and "3": both name item 3
                raise ParseError(f"ambiguous: item {k} is answered twice")
            by_number[int(k)] = value
        else:
            stray.append(key)
    if stray:
        shown = ", ".join(json.dumps(k) for k in stray[:5]) + (" ..." if len(stray) > 5 else "")
        asked = ", ".join(str(n) for n in expected)
        raise ParseError(f"keys that are not the numbers of the items asked ({asked}): {shown}")
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
    obj = extract_json_object(reply, has_rating)
    if "rating" not in obj:
        raise ParseError("missing 'rating'")
    rating = obj["rating"]
    if isinstance(rating, bool) or not isinstance(rating, (int, float)):
        raise ParseError(f"'rating' must be a number from 1 to 10, got {json.dumps(rating)}")
    if not 1 <= rating <= 10:
        raise ParseError(f"'rating' must be from 1 to 10, got {rating}")
    return float(rating), _explanation(obj, "")
