"""Strict reading of a generator reply ``{"criteria": [{"text", "category", "weight"}, ...]}``.

The one JSON object is found by :func:`rgsd.judges.parse.extract_json_object` (the judge layer's rules: whole
reply, the single fenced block, or the single object between the first ``{`` and the last ``}``). Then every
item is checked: ``text`` a non-empty string, ``category`` one of :data:`CATEGORIES` (exact spelling), ``weight``
a number (not a boolean) inside the category's range of the weight map; no other keys. A negative weight is
allowed only for Pitfall, and a Pitfall must not be phrased as good behaviour ("Avoids ...") because its
polarity would then be ambiguous. Any problem raises :class:`~rgsd.judges.parse.ParseError` naming the item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rgsd.data.rar import describes_good_behaviour
from rgsd.judges.parse import ParseError, extract_json_object

CATEGORIES: tuple[str, ...] = ("Essential", "Important", "Optional", "Pitfall")
WeightMap = dict[str, tuple[float, float]]
# RaR's convention: Essential 5, Important 3-4, Optional 1-2, Pitfall -1 or -2 (inclusive ranges).
DEFAULT_WEIGHTS: WeightMap = {
    "Essential": (5.0, 5.0),
    "Important": (3.0, 4.0),
    "Optional": (1.0, 2.0),
    "Pitfall": (-2.0, -1.0),
}
_ITEM_KEYS = {"text", "category", "weight"}


@dataclass
class Item:
    """One criterion as the generator wrote it (``weight`` signed: negative for Pitfall)."""

    text: str
    category: str
    weight: float


def parse_weight_map(spec: str) -> WeightMap:
    """Read ``"Essential=5,Important=3:4,Optional=1:2,Pitfall=-2:-1"`` (missing categories keep the default).

    Raises ``ValueError`` naming the bad part. Positive categories need ranges > 0, Pitfall a range < 0.
    """
    out = dict(DEFAULT_WEIGHTS)
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, rng = part.partition("=")
        name = name.strip().capitalize()
        if not sep or name not in CATEGORIES:
            raise ValueError(f"weights: {part!r}: expected CATEGORY=LOW[:HIGH] with CATEGORY in {', '.join(CATEGORIES)}")
        try:
            bounds = [float(x) for x in rng.split(":")]
        except ValueError:
            raise ValueError(f"weights: {part!r}: the range must be numbers, e.g. 3:4") from None
        if len(bounds) not in (1, 2) or not all(math.isfinite(b) for b in bounds):
            raise ValueError(f"weights: {part!r}: expected LOW or LOW:HIGH")
        lo, hi = min(bounds), max(bounds)
        if (name == "Pitfall") != (hi < 0) or (name != "Pitfall" and lo <= 0):
            sign = "negative" if name == "Pitfall" else "positive"
            raise ValueError(f"weights: {part!r}: {name} weights must be {sign}")
        out[name] = (lo, hi)
    return out


def parse_rubric_reply(reply: str, weights: WeightMap = DEFAULT_WEIGHTS) -> list[Item]:
    """The criteria of one generator reply, or :class:`ParseError` with the first problem found."""
    obj = extract_json_object(reply)
    extra = set(obj) - {"criteria"}
    if extra:
        raise ParseError(f"unexpected keys {sorted(extra)} (the object holds only \"criteria\")")
    items = obj.get("criteria")
    if not isinstance(items, list):
        raise ParseError('"criteria" must be a list' if "criteria" in obj else 'no "criteria" key')
    if not items:
        raise ParseError('"criteria" is empty')
    out: list[Item] = []
    for i, it in enumerate(items):
        where = f"criteria[{i}]"
        if not isinstance(it, dict):
            raise ParseError(f"{where} is not an object")
        missing, unknown = _ITEM_KEYS - set(it), set(it) - _ITEM_KEYS
        if missing or unknown:
            what = ", ".join([*(f"missing {k!r}" for k in sorted(missing)), *(f"unknown key {k!r}" for k in sorted(unknown))])
            raise ParseError(f"{where}: {what}")
        text, cat, w = it["text"], it["category"], it["weight"]
        if not isinstance(text, str) or not text.strip():
            raise ParseError(f"{where}.text must be a non-empty string")
        if cat not in CATEGORIES:
            raise ParseError(f"{where}.category {cat!r} is not one of {', '.join(CATEGORIES)}")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise ParseError(f"{where}.weight must be a number, got {w!r}")
        lo, hi = weights[cat]
        if not lo <= w <= hi:
            span = f"{lo:g}" if lo == hi else f"{lo:g} to {hi:g}"
            raise ParseError(f"{where}.weight {w:g} is outside the {cat} range ({span})")
        if cat == "Pitfall" and describes_good_behaviour(text):
            raise ParseError(
                f"{where}: a Pitfall must describe the mistake itself (met = the answer made it), "
                f"not good behaviour ({text.split()[0]!r} ...)"
            )
        out.append(Item(" ".join(text.split()), cat, float(w)))
    return out
