"""Rubric-free pairwise preference of a checkpoint against the base model, asked in both orders.

The judge sees the conversation and two replies (A, B) and no rubric; it names the better one (or a tie) and
rates each reply 1-7 on conciseness, accuracy and helpfulness. Every pair is asked twice, once with the
checkpoint as A and once with the base as A, so that a judge preferring a position shows up as a flip.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rgsd.data.schema import Example
from rgsd.diagnose.asking import AnswerError, Messages, ask_many

SCALES = ("conciseness", "accuracy", "helpfulness")
CONVERSATION_OPEN, CONVERSATION_CLOSE = "<<conversation>>", "<</conversation>>"
REPLY_OPEN, REPLY_CLOSE = "<<reply {}>>", "<</reply {}>>"

_SYSTEM = (
    "You compare two replies to the same conversation. There is no checklist or answer key: judge them as "
    "a careful expert reading on behalf of the person who asked."
)
_INSTRUCTIONS = """Which reply serves the person better overall? Weigh whether it is correct, whether it actually helps, and whether it respects their time; a longer reply is not better for being longer. The labels A and B are arbitrary and say nothing about quality.

Then rate each reply from 1 (very poor) to 7 (excellent) on three scales: conciseness, accuracy, helpfulness.

Reply with a single JSON object and nothing else, shaped like this:
{"better": "A", "conciseness": {"A": 4, "B": 6}, "accuracy": {"A": 5, "B": 5}, "helpfulness": {"A": 6, "B": 3}, "reason": "one short sentence"}
"better" is "A", "B" or "tie"; every rating is a whole number from 1 to 7."""


def _conversation(example: Example) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in example.prompt)


def pairwise_messages(example: Example, reply_a: str, reply_b: str) -> Messages:
    """The request for one ordered pair."""
    user = "\n".join(
        [
            "Here is a conversation and two candidate replies from the assistant.",
            "",
            CONVERSATION_OPEN,
            _conversation(example),
            CONVERSATION_CLOSE,
            "",
            REPLY_OPEN.format("A"),
            reply_a,
            REPLY_CLOSE.format("A"),
            "",
            REPLY_OPEN.format("B"),
            reply_b,
            REPLY_CLOSE.format("B"),
            "",
            _INSTRUCTIONS,
        ]
    )
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_json_object(text: str) -> dict[str, Any]:
    """Exactly one JSON object (optionally inside one code fence); anything else is an :class:`AnswerError`."""
    body = text.strip()
    m = _FENCE.match(body)
    if m:
        body = m.group(1)
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as err:
        raise AnswerError(f"not a single JSON object: {err.msg}") from None
    if not isinstance(obj, dict):
        raise AnswerError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


@dataclass
class PairVerdict:
    """One ordered comparison: ``better`` in {"A", "B", "tie"}; ratings per scale and label."""

    better: str
    ratings: dict[str, dict[str, int]]


def parse_pairwise(text: str) -> PairVerdict:
    """Strict reader of a pairwise reply (unknown winner, missing or out-of-range ratings are errors)."""
    obj = parse_json_object(text)
    better = obj.get("better")
    if not isinstance(better, str) or better.strip().lower() not in ("a", "b", "tie"):
        raise AnswerError(f'"better" must be "A", "B" or "tie", got {better!r}')
    b = better.strip().lower()
    ratings: dict[str, dict[str, int]] = {}
    for scale in SCALES:
        pair = obj.get(scale)
        if not isinstance(pair, dict):
            raise AnswerError(f'"{scale}" must be an object with ratings for "A" and "B"')
        ratings[scale] = {}
        for label in ("A", "B"):
            v = pair.get(label)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 7:
                raise AnswerError(f'"{scale}"."{label}" must be a whole number from 1 to 7, got {v!r}')
            ratings[scale][label] = v
    return PairVerdict("tie" if b == "tie" else b.upper(), ratings)


def _winner(verdict: PairVerdict | None, checkpoint_label: str) -> str | None:
    if verdict is None:
        return None
    if verdict.better == "tie":
        return "tie"
    return "checkpoint" if verdict.better == checkpoint_label else "base"


def compare_to_base(
    judge: Any,
    examples: dict[str, Example],
    keys: Sequence[tuple[str, int]],
    checkpoint_texts: Sequence[str],
    base_texts: Sequence[str],
    progress: bool | str = False,
) -> dict[str, Any]:
    """Both orders for every (prompt, sample) pair; returns outcomes and mean rating differences.

    ``outcomes[key] = (winner with the checkpoint as A, winner with the base as A)``; ``scale_deltas`` are
    mean (checkpoint - base) ratings over both orders of the pairs both orders answered.
    """
    questions: list[Messages] = []
    for (pid, _), c, b in zip(keys, checkpoint_texts, base_texts):
        ex = examples[pid]
        questions.append(pairwise_messages(ex, c, b))  # checkpoint as A
        questions.append(pairwise_messages(ex, b, c))  # base as A
    answers = ask_many(judge, questions, parse_pairwise, progress)
    outcomes: dict[tuple[str, int], tuple[str | None, str | None]] = {}
    deltas: dict[str, list[float]] = {s: [] for s in SCALES}
    failures: list[str] = []
    for i, key in enumerate(keys):
        (first, e1), (second, e2) = answers[2 * i], answers[2 * i + 1]
        outcomes[key] = (_winner(first, "A"), _winner(second, "B"))
        failures += [e for e in (e1, e2) if e]
        if first is not None and second is not None:
            for s in SCALES:
                d1 = first.ratings[s]["A"] - first.ratings[s]["B"]
                d2 = second.ratings[s]["B"] - second.ratings[s]["A"]
                deltas[s].append((d1 + d2) / 2)
    return {
        "outcomes": outcomes,
        "scale_deltas": {s: (sum(v) / len(v) if v else None) for s, v in deltas.items()},
        "failures": failures,
    }
