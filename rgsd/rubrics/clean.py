"""What happens to parsed criteria before they become a rubric: duplicates merged, copies flagged, checks.

* Near duplicates: two criteria whose normalized text (case, punctuation, articles and whitespace dropped)
  is the same are one criterion; the merged one keeps the first wording and the larger weight magnitude.
  The same text once as a reward and once as a Pitfall is a contradiction: the reply is rejected.
* Verbatim copies: a criterion that contains a run of ``copy_words`` consecutive words of the reference
  answer (normalized the same way) is flagged with the tag :data:`COPY_TAG`: such an item tends to reward
  parroting the reference's wording rather than its content.
* A rubric needs at least one positive criterion (otherwise no answer can score above zero) and, after
  merging, between ``min_criteria`` and ``max_criteria`` items.
"""

from __future__ import annotations

import re

from rgsd.data.schema import Criterion
from rgsd.judges.parse import ParseError
from rgsd.rubrics.parse import Item

COPY_TAG = "copies-reference"
_ARTICLES = {"a", "an", "the"}


def words(text: str) -> list[str]:
    """Lower-case word tokens without punctuation or articles (the normal form for comparisons)."""
    return [w for w in re.findall(r"[\w']+", text.lower()) if w not in _ARTICLES]


def merge_duplicates(items: list[Item]) -> tuple[list[Item], int]:
    """Merge items with the same normalized text; returns the kept items (first order) and how many merged."""
    kept: dict[str, Item] = {}
    for it in items:
        key = " ".join(words(it.text))
        first = kept.get(key)
        if first is None:
            kept[key] = Item(it.text, it.category, it.weight)
            continue
        if (first.weight < 0) != (it.weight < 0):
            raise ParseError(f"the criterion {it.text!r} appears both as a reward and as a Pitfall")
        if abs(it.weight) > abs(first.weight):
            first.weight, first.category = it.weight, it.category
    return list(kept.values()), len(items) - len(kept)


def copies_reference(text: str, reference: str | None, copy_words: int) -> bool:
    """True when ``text`` holds ``copy_words`` consecutive (normalized) words of ``reference``."""
    if not reference or copy_words < 1:
        return False
    crit, ref = words(text), words(reference)
    if len(crit) < copy_words:
        return False
    grams = {tuple(ref[i : i + copy_words]) for i in range(len(ref) - copy_words + 1)}
    return any(tuple(crit[i : i + copy_words]) in grams for i in range(len(crit) - copy_words + 1))


def build_rubric(
    items: list[Item],
    reference: str | None,
    min_criteria: int,
    max_criteria: int,
    copy_words: int = 10,
    drop_copies: bool = False,
) -> tuple[list[Criterion], dict[str, int]]:
    """Canonical criteria ``c0, c1, ...`` and counts ``{"merged", "copies", "dropped_copies"}``.

    Raises :class:`ParseError` (the generator is re-asked) for a contradiction, a rubric without a positive
    criterion, or a count outside ``[min_criteria, max_criteria]`` after merging.
    """
    merged_items, merged = merge_duplicates(items)
    crits: list[Criterion] = []
    copies = dropped = 0
    for it in merged_items:
        tags = []
        if copies_reference(it.text, reference, copy_words):
            copies += 1
            if drop_copies:
                dropped += 1
                continue
            tags.append(COPY_TAG)
        polarity = "negative" if it.weight < 0 else "positive"
        crits.append(Criterion(f"c{len(crits)}", it.text, abs(it.weight), polarity, it.category.lower(), tags))
    if not any(c.polarity == "positive" for c in crits):
        raise ParseError("the rubric has no positive criterion (every item is a Pitfall), so no answer can score")
    n = len(crits)
    if n < min_criteria:
        note = f" ({merged} duplicates merged, {dropped} copies of the reference dropped)" if merged or dropped else ""
        raise ParseError(f"only {n} distinct criteria{note}; write at least {min_criteria}")
    if n > max_criteria:
        raise ParseError(f"{n} criteria; write at most {max_criteria}")
    return crits, {"merged": merged, "copies": copies, "dropped_copies": dropped}
