"""Record-level parsing of every supported rubric format into :class:`Example` (used by :mod:`loaders`).

Each parser validates as it goes and collects ``(field, message)`` problems with precise field paths such as
``rubrics[3].points``; a record with any problem raises :class:`RecordError` carrying all of them.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from typing import Any

from rgsd.data.rar import decide_polarity, parse_category
from rgsd.data.schema import POLARITIES, Criterion, Example

ROLES = frozenset({"system", "user", "assistant", "developer"})
_HB_KEYS = ("prompt_id", "example_tags", "ideal_completions_data")


class RecordError(Exception):
    """All problems of one record, as ``(field, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_number(value: Any) -> str | None:
    """Why ``value`` is not a usable weight, or None when it is a finite real number (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return f"wrong type: expected a number, got {type(value).__name__} {_show(value)}"
    if not math.isfinite(float(value)):
        return f"not a finite number ({value})"
    return None


def _first_item(value: Any) -> dict:
    return value[0] if isinstance(value, list) and value and isinstance(value[0], dict) else {}


def detect_format(rec: dict) -> str | None:
    """Name the format a record looks like, or None."""
    rubric, rubrics = rec.get("rubric"), rec.get("rubrics")
    item = _first_item(rubric)
    if "question" in rec and "description" in item:
        return "rar"
    if "polarity" in item and "text" in item:
        return "canonical"
    hb_item = _first_item(rubrics)
    hb_record = isinstance(rec.get("prompt"), list) or any(k in rec for k in _HB_KEYS)
    if "criterion" in hb_item and "points" in hb_item and hb_record:
        return "healthbench"
    if "criterion" in item and "points" in item:
        return "rubrichub"
    any_item = item or hb_item
    if "prompt" in rec and any(k in any_item for k in ("criterion", "text")):
        return "generic"
    return None


def unicode_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent or written as UTF-8 (a lone surrogate from a ``\\ud800`` escape), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"not valid Unicode: a lone surrogate \\u{ord(text[err.start]):04x} at character {err.start + 1}"
    return None


class Record:
    """Validation helpers bound to one record; problems accumulate in ``self.problems``."""

    def __init__(self, rec: dict):
        self.rec = rec
        self.problems: list[tuple[str, str]] = []

    def bad(self, field: str, message: str) -> None:
        self.problems.append((field, message))

    def text(self, value: Any, field: str, what: str = "text") -> str | None:
        if value is None:
            self.bad(field, "missing")
        elif not isinstance(value, str):
            self.bad(field, f"wrong type: expected a string, got {type(value).__name__} {_show(value)}")
        elif not value.strip():
            self.bad(field, f"empty {what}")
        elif (why := unicode_problem(value)) is not None:
            self.bad(field, why)
        else:
            return value
        return None

    def optional_str(self, value: Any, field: str) -> str | None:
        if value is not None and not isinstance(value, str):
            self.bad(field, f"wrong type: expected a string, got {type(value).__name__} {_show(value)}")
            return None
        return value

    def tags(self, value: Any, field: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            self.bad(field, f"wrong type: expected a list of strings, got {_show(value)}")
            return []
        return list(value)

    def number(self, value: Any, field: str) -> float | None:
        if value is None:
            self.bad(field, "missing")
            return None
        why = check_number(value)
        if why:
            self.bad(field, why)
            return None
        return float(value)

    def prompt(self, key: str) -> list[dict[str, str]]:
        value = self.rec.get(key)
        if value is None:
            self.bad(key, "missing")
            return []
        if isinstance(value, str):
            if not value.strip():
                self.bad(key, "empty prompt")
                return []
            return [{"role": "user", "content": value}]
        if not isinstance(value, list):
            self.bad(key, f"wrong type: expected a string or a list of messages, got {type(value).__name__}")
            return []
        if not value:
            self.bad(key, "empty prompt (no messages)")
            return []
        messages: list[dict[str, str]] = []
        for i, m in enumerate(value):
            f = f"{key}[{i}]"
            if not isinstance(m, dict):
                self.bad(f, f"wrong type: expected a message object, got {type(m).__name__}")
                continue
            role, content = m.get("role"), m.get("content")
            if role not in ROLES:
                why = "missing" if role is None else f"unknown role {_show(role)}"
                self.bad(f"{f}.role", f"{why} (expected one of {', '.join(sorted(ROLES))})")
                continue
            if not isinstance(content, str):
                why = (
                    "missing"
                    if content is None
                    else f"wrong type: expected a string, got {type(content).__name__}"
                )
                self.bad(f"{f}.content", why)
                continue
            messages.append({"role": role, "content": content})
        if len(messages) == len(value):
            last = len(value) - 1
            if messages[-1]["role"] != "user":
                self.bad(
                    f"{key}[{last}].role",
                    f"the last message must be a user turn, got {messages[-1]['role']!r}",
                )
            elif not messages[-1]["content"].strip():
                self.bad(f"{key}[{last}].content", "empty user message")
        return messages

    def items(self, key: str) -> list[tuple[str, dict]]:
        value = self.rec.get(key)
        if value is None:
            self.bad(key, "missing")
            return []
        if not isinstance(value, list):
            self.bad(key, f"wrong type: expected a list of criteria, got {type(value).__name__}")
            return []
        if not value:
            self.bad(key, "empty rubric")
        out = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                out.append((f"{key}[{i}]", item))
            else:
                self.bad(f"{key}[{i}]", f"wrong type: expected a criterion object, got {type(item).__name__}")
        return out

    def example_id(self, keys: tuple[str, ...], default: str) -> str:
        for k in keys:
            v = self.rec.get(k)
            if isinstance(v, str) and v.strip():
                return v
            if isinstance(v, int) and not isinstance(v, bool):
                return str(v)
            if v not in (None, ""):
                self.bad(k, f"wrong type: expected a string id, got {type(v).__name__}")
        return default


def _pick(d: dict, keys: tuple[str, ...]) -> str:
    return next((k for k in keys if k in d), keys[0])


def _criteria(r: Record, fmt: str, rkey: str, policy: str) -> tuple[list[Criterion], dict[str, str]]:
    crits: list[Criterion] = []
    names = {"text": "", "weight": ""}
    for i, (f, item) in enumerate(r.items(rkey)):
        before = len(r.problems)
        if fmt == "rar":
            tkey, wkey = "description", "weight"
        elif fmt == "canonical":
            tkey, wkey = "text", "weight"
        elif fmt == "generic":
            tkey, wkey = _pick(item, ("criterion", "text")), _pick(item, ("weight", "points"))
        else:
            tkey, wkey = "criterion", _pick(item, ("points", "weight"))
        names = {"text": tkey, "weight": wkey}
        text = r.text(item.get(tkey), f"{f}.{tkey}")
        w = r.number(item.get(wkey), f"{f}.{wkey}")
        tags = r.tags(item.get("tags"), f"{f}.tags")
        cid = item.get("id")
        if cid is None or cid == "":
            cid = f"c{i}"
        elif isinstance(cid, bool) or not isinstance(cid, (str, int)):
            r.bad(f"{f}.id", f"wrong type: expected a string id, got {type(cid).__name__}")
        category = r.optional_str(item.get("category"), f"{f}.category")
        pattern = r.optional_str(item.get("pattern"), f"{f}.pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as err:
                r.bad(f"{f}.pattern", f"invalid regular expression: {err}")
        if fmt == "rar" and text is not None:
            category, text = parse_category(text)
            if not text:
                r.bad(f"{f}.{tkey}", "empty text after the category prefix")
        if fmt == "canonical":
            polarity = item.get("polarity")
            if polarity not in POLARITIES:
                why = "missing" if polarity is None else f"unknown polarity {_show(polarity)}"
                r.bad(f"{f}.polarity", f"{why} (expected 'positive' or 'negative')")
            if w is not None and w < 0:
                r.bad(
                    f"{f}.{wkey}", "negative weight in the canonical format (the polarity carries the sign)"
                )
        if len(r.problems) > before:
            continue
        assert text is not None and w is not None
        if fmt == "canonical":
            weight = w
        else:
            weight, polarity = decide_polarity(w, text, policy)
        crits.append(Criterion(str(cid), text, weight, polarity, category, tags, pattern))
    seen: dict[str, int] = {}
    for i, c in enumerate(crits if not r.problems else []):  # indexes match the raw items only then
        if c.id in seen:
            r.bad(f"{rkey}[{i}].id", f"duplicate criterion id {c.id!r} (also item {seen[c.id]})")
        seen.setdefault(c.id, i)
    return crits, names


def parse_record(rec: Any, fmt: str, default_id: str, policy: str) -> tuple[Example, dict[str, str]]:
    """Parse one record of format ``fmt``; returns the example and the field names its format uses.

    Raises :class:`RecordError` with every problem found.
    """
    if not isinstance(rec, dict):
        raise RecordError([("record", f"wrong type: expected a JSON object, got {type(rec).__name__}")])
    r = Record(rec)
    metadata: dict[str, Any] = {}
    reference: str | None = None
    if fmt == "rar":
        pkey, rkey = "question", "rubric"
        ex_id = r.example_id(("id",), default_id)
        reference = r.optional_str(rec.get("reference_answer"), "reference_answer")
        if rec.get("question_source") is not None:
            metadata["question_source"] = rec["question_source"]
    elif fmt == "healthbench":
        pkey, rkey = "prompt", "rubrics"
        ex_id = r.example_id(("prompt_id",), default_id)
        ideal = rec.get("ideal_completions_data")
        if isinstance(ideal, dict):
            reference = r.optional_str(
                ideal.get("ideal_completion"), "ideal_completions_data.ideal_completion"
            )
        elif ideal is not None:
            r.bad(
                "ideal_completions_data",
                f"wrong type: expected an object or null, got {type(ideal).__name__}",
            )
        if "example_tags" in rec:
            metadata["example_tags"] = r.tags(rec.get("example_tags"), "example_tags")
    else:
        pkey = "prompt"
        rkey = "rubric" if fmt in ("rubrichub", "canonical") else _pick(rec, ("rubric", "rubrics"))
        ex_id = r.example_id(("id", "prompt_id"), default_id)
        reference = r.optional_str(rec.get("reference"), "reference")
        meta = rec.get("metadata")
        if isinstance(meta, dict):
            metadata.update(meta)
        elif meta is not None:
            r.bad("metadata", f"wrong type: expected an object, got {type(meta).__name__}")
        if fmt == "rubrichub" and rec.get("tags") is not None:
            metadata["example_tags"] = r.tags(rec.get("tags"), "tags")
    prompt = r.prompt(pkey)
    rubric, names = _criteria(r, fmt, rkey, policy)
    if r.problems:
        raise RecordError(r.problems)
    if fmt == "rar":
        titles = [item.get("title") for item in rec[rkey]]
        if any(isinstance(t, str) for t in titles):
            metadata["rubric_titles"] = titles
    example = Example(ex_id, prompt, rubric, reference, metadata)
    id_key = "prompt_id" if fmt == "healthbench" else "id"
    return example, {"prompt": pkey, "rubric": rkey, "id": id_key, **names}
