"""What a score gain is made of (``rgsd compare-evals A B --explain``; the demo report's decomposition).

A paired gain says *that* the trained model scores higher, not *why*. An audit of the demo found a gain that
looked generic: more answers opening with "To/If/When", far fewer first-person "I", the same length; and the
teacher's system message replaces SmolLM2's default persona prompt, so a student can learn to drop a persona
rather than follow the rubric. This module puts those numbers next to each other, per model: met rate per
criterion (and per ``type:`` category) with the gain over the base model, the opening words, persona phrases,
length and end-of-turn rate, and the mean score. Plain shares and counts (no bootstrap): they describe, the
paired CI of ``compare-evals`` tests.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rgsd.evaluate.paired import read_records, split_dirs
from rgsd.stats import prompt_means

__all__ = ["CONDITIONAL_WORDS", "EMPTY", "OTHER", "PERSONA_PATTERNS", "explain", "explain_dirs", "explain_markdown",
           "opening_word", "render_explain"]

Record = Mapping[str, Any]
EMPTY = "(empty)"  # the opening word of a response with no word in it
OTHER = "(other)"  # the opening words outside the top ones (in parentheses: never a word, so never a clash)
CONDITIONAL_WORDS = frozenset({"to", "if", "when"})
# Whole words, case-insensitive. "smollm" has no end boundary so that "SmolLM2" counts; "i" is not "i.e.".
PERSONA_PATTERNS: dict[str, re.Pattern[str]] = {
    "first person (I, I'm, I'll, I've, I'd, me, my)":
        re.compile(r"\b(?:i(?:['’](?:m|ll|ve|d))?|me|my)\b(?!\.\w)", re.IGNORECASE),
    "as an ai": re.compile(r"\bas an ai\b", re.IGNORECASE),
    "smollm": re.compile(r"\bsmollm", re.IGNORECASE),
    "hugging face": re.compile(r"\bhugging\s*face\b", re.IGNORECASE),
    "assistant": re.compile(r"\bassistant\b", re.IGNORECASE),
}
_LEAD = re.compile(r"^(?:[\s#*>_`~|+\-]|\d+[.)](?=\s|$))+")  # markdown headings, bullets, quotes, "1." / "2)"
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")  # a word, apostrophes inside kept ("i'm", "don't")


def opening_word(text: str) -> str:
    """The first word of a response, lowercased, past any markdown and list numbering (:data:`EMPTY` if none)."""
    m = _WORD.search(_LEAD.sub("", text if isinstance(text, str) else ""))
    return m.group(0).lower() if m else EMPTY


def _mean(vals: Sequence[float]) -> float | None:
    return float(np.mean(vals)) if len(vals) else None


def _share(hits: Iterable[bool]) -> float | None:
    return _mean([float(h) for h in hits])


def _diff(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None else x - y


def _met_rates(models: Mapping[str, Sequence[Record]], key_of: Any) -> dict[str, dict[str, list[bool]]]:
    """key -> model -> met values of that key's verdicts (judge failures, ``met`` None, left out)."""
    out: dict[str, dict[str, list[bool]]] = {}
    for name, recs in models.items():
        for rec in recs:
            for v in rec.get("verdicts") or []:
                if v.get("met") is None:
                    continue
                for key in key_of(v):
                    out.setdefault(key, {}).setdefault(name, []).append(bool(v["met"]))
    return out


def _rows(acc: dict[str, dict[str, list[bool]]], names: list[str], label: dict[str, str]) -> list[dict[str, Any]]:
    """Met rate and count per model, gain of each model over the first, sorted by the second model's gain."""
    base, rows = names[0], []
    for key, per in acc.items():
        rate = {m: _mean(per.get(m, [])) for m in names}
        rows.append({"id": key, "text": label.get(key, ""), "rate": rate, "n": {m: len(per.get(m, [])) for m in names},
                     "gain": {m: _diff(rate[m], rate[base]) for m in names[1:]}})
    lead = names[1] if len(names) > 1 else base
    rows.sort(key=lambda r: (r["gain"].get(lead) is None, -(r["gain"].get(lead) or 0.0), r["id"]))
    return rows


def explain(models: Mapping[str, Sequence[Record]], crit_tags: Mapping[str, Sequence[str]] | None = None,
            top_words: int = 10) -> dict[str, Any]:
    """The decomposition of named record lists (``{"base": ..., "trained": ..., "teacher": ...}``), JSON-able.

    The first name is the reference of every gain; rows sort by the second's gain. ``crit_tags`` (criterion id
    -> tags, :func:`rgsd.evaluate.paired.criterion_tags`) adds the rows per ``type:<category>`` tag.
    """
    names = list(models)
    if not names:
        raise ValueError("explain: needs at least one named list of records")
    texts = {m: [r.get("response") if isinstance(r.get("response"), str) else "" for r in recs]
             for m, recs in models.items()}
    words = {m: [opening_word(t) for t in ts] for m, ts in texts.items()}
    common = [w for w, _ in Counter(w for ws in words.values() for w in ws).most_common(top_words)]

    opening = {m: {**{w: _share(x == w for x in words[m]) for w in common},
                   OTHER: _share(x not in common for x in words[m])} for m in names}
    labels = {v["criterion_id"]: v.get("criterion", "") for recs in models.values() for r in recs
              for v in r.get("verdicts") or []}
    res: dict[str, Any] = {
        "models": names, "base": names[0], "n_responses": {m: len(models[m]) for m in names},
        "score": {m: _mean(list(prompt_means(list(models[m])).values())) for m in names},
        "length": {
            "mean_response_tokens": {m: _mean([float(r["response_tokens"]) for r in models[m]
                                               if isinstance(r.get("response_tokens"), (int, float))]) for m in names},
            "end_of_turn_rate": {m: _mean([float(bool(r["finished"])) for r in models[m]
                                           if r.get("finished") is not None]) for m in names},
        },
        "opening_words": {
            "words": common, "share": opening,
            "conditional_share": {m: _share(x in CONDITIONAL_WORDS for x in words[m]) for m in names},
        },
        "persona": [{"phrase": p, "share": {m: _share(bool(rx.search(t)) for t in texts[m]) for m in names}}
                    for p, rx in PERSONA_PATTERNS.items()],
        "criteria": _rows(_met_rates(models, lambda v: [v["criterion_id"]]), names, labels),
        "categories": [],
    }
    if crit_tags:
        cats = _met_rates(models, lambda v: sorted({t for t in crit_tags.get(v["criterion_id"], [])
                                                    if t.startswith("type:")}))
        res["categories"] = _rows(cats, names, {})
    return res


def _f(x: float | None, signed: bool = False) -> str:
    return "n/a" if x is None else (f"{x:+.2f}" if signed else f"{x:.2f}")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")  # one line, no column break


def _table(head: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head), *("| " + " | ".join(r) + " |" for r in body)]


def _rate_table(rows: list[dict[str, Any]], names: list[str], first: str) -> list[str]:
    base = names[0]
    head = [first, *names, *(f"{m} - {base}" for m in names[1:]), "n (" + " / ".join(names) + ")"]
    body = [[_cell(f"{r['id']}" + (f": {r['text'][:60]}" if r["text"] else "")),
             *(_f(r["rate"][m]) for m in names), *(_f(r["gain"][m], True) for m in names[1:]),
             " / ".join(str(r["n"][m]) for m in names)] for r in rows]
    return _table(head, body)


def render_explain(res: dict[str, Any], top: int = 10) -> str:
    """Markdown of an :func:`explain` result: the top and bottom ``top`` criteria by gain, every other table whole."""
    names, base = res["models"], res["base"]
    share_rows = lambda d: [*(_f(d[m]) for m in names)]  # noqa: E731
    lines = [f"What the gain is made of ({', '.join(names)}; gains are minus {base}; shares of responses):", "",
             "Score and length:", ""]
    lines += _table(["", *names], [
        ["mean normalized score (per-prompt means)", *share_rows(res["score"])],
        ["mean response tokens", *(_f(res["length"]["mean_response_tokens"][m]) for m in names)],
        ["end-of-turn rate", *share_rows(res["length"]["end_of_turn_rate"])],
        ["responses", *(str(res["n_responses"][m]) for m in names)]])
    ow = res["opening_words"]
    lines += ["", "Opening word:", ""]
    lines += _table(["first word", *names], [[_cell(w), *(_f(ow["share"][m][w]) for m in names)]
                                             for w in [*ow["words"], OTHER]]
                    + [["to / if / when", *share_rows(ow["conditional_share"])]])
    lines += ["", "Persona phrases (share of responses containing one):", ""]
    lines += _table(["phrase", *names], [[p["phrase"], *share_rows(p["share"])] for p in res["persona"]])
    crit = res["criteria"]
    if crit:
        cut = crit if len(crit) <= 2 * top else crit[:top] + crit[-top:]
        what = "all" if cut is crit else f"top and bottom {top} of {len(crit)}"
        lines += ["", f"Met rate per criterion ({what}, by {names[1] if len(names) > 1 else base} gain; "
                  "judge failures left out):", ""]
        lines += _rate_table(cut, names, "criterion")
    if res["categories"]:
        lines += ["", "Met rate per criterion category:", ""]
        lines += _rate_table(res["categories"], names, "category")
    return "\n".join(lines)


def explain_markdown(models: Mapping[str, Sequence[Record]],
                     crit_tags: Mapping[str, Sequence[str]] | None = None) -> str:
    """:func:`render_explain` of :func:`explain`, for a report that only needs the Markdown."""
    return render_explain(explain(models, crit_tags))


def explain_dirs(base_dir: str | Path, trained_dir: str | Path, teacher_dir: str | Path | None = None,
                 data: str | None = None) -> dict[str, Any]:
    """:func:`explain` of ``rgsd eval`` folders named base / trained / teacher (each one folder, or several
    comma-separated, e.g. training seeds, whose responses are pooled); ``data`` adds the category rows."""
    tags = None
    if data:
        from rgsd.data.loaders import load_examples
        from rgsd.evaluate.paired import criterion_tags

        tags = criterion_tags(load_examples(data).examples)
    def records(dirs: str | Path) -> list[dict[str, Any]]:
        return [rec for d in split_dirs(dirs) for rec in read_records(d)]

    models = {"base": records(base_dir), "trained": records(trained_dir)}
    if teacher_dir is not None:
        models["teacher"] = records(teacher_dir)
    return explain(models, tags)
