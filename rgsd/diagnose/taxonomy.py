"""Why did the proxy judge credit what the reference rejected? An LLM classifier over exploited credits.

Each exploited credit (a criterion the proxy newly credited and the reference rejected) is shown to the
classifier with the conversation, the response and the criterion, and gets exactly one category.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rgsd.data.schema import Criterion, Example
from rgsd.diagnose.asking import AnswerError, Messages, ask_many
from rgsd.diagnose.pairwise import parse_json_object

CATEGORIES = ("partial_compound", "implicit_as_explicit", "imprecise_verification", "other")
RESPONSE_OPEN, RESPONSE_CLOSE = "<<response>>", "<</response>>"
CRITERION_OPEN, CRITERION_CLOSE = "<<criterion>>", "<</criterion>>"

_SYSTEM = (
    "You audit grading mistakes. A grader said a response satisfies a rubric criterion; a stricter grader "
    "disagreed. You decide what kind of mistake the first grader most likely made."
)
_INSTRUCTIONS = """The first grader credited the response with the criterion above; a stricter grader found it not satisfied. Pick the one category that best explains the gap:

- "partial_compound": the criterion asks for several things at once and the response delivers only some of them.
- "implicit_as_explicit": the response only hints at or implies what the criterion requires to be stated, or a supporting element the criterion needs is missing.
- "imprecise_verification": the response touches the right topic or a related idea but not the specific thing the criterion names.
- "other": none of these fits (for example, the stricter grader looks wrong).

Reply with a single JSON object and nothing else: {"category": "<one of the four names>", "reason": "one short sentence"}"""


@dataclass
class ExploitedCredit:
    """One criterion newly credited by the proxy and rejected by the reference."""

    checkpoint: str
    prompt_id: str
    sample: int
    criterion: Criterion
    response: str


def taxonomy_messages(example: Example, credit: ExploitedCredit) -> Messages:
    """The request for one exploited credit."""
    conv = "\n".join(f"{m['role']}: {m['content']}" for m in example.prompt)
    kind = "a pitfall the response must avoid" if credit.criterion.polarity != "positive" else "a requirement"
    user = "\n".join(
        [
            "Conversation:",
            conv,
            "",
            RESPONSE_OPEN,
            credit.response,
            RESPONSE_CLOSE,
            "",
            f"The criterion ({kind}):",
            CRITERION_OPEN,
            credit.criterion.text,
            CRITERION_CLOSE,
            "",
            _INSTRUCTIONS,
        ]
    )
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def parse_category(text: str) -> str:
    """The category of a classifier reply; unknown or missing names are an :class:`AnswerError`."""
    obj = parse_json_object(text)
    cat = obj.get("category")
    if not isinstance(cat, str) or cat.strip().lower() not in CATEGORIES:
        raise AnswerError(f'"category" must be one of {", ".join(CATEGORIES)}, got {cat!r}')
    return cat.strip().lower()


def classify(
    judge: Any, examples: dict[str, Example], credits: Sequence[ExploitedCredit], max_examples: int = 3,
    progress: bool | str = False,
) -> dict[str, Any]:
    """Category counts and shares (of classified credits), failures, and a few examples per category."""
    answers = ask_many(judge, [taxonomy_messages(examples[c.prompt_id], c) for c in credits], parse_category,
                       progress)
    counts = {c: 0 for c in CATEGORIES}
    shown: dict[str, list[dict[str, Any]]] = {c: [] for c in CATEGORIES}
    failures = 0
    for credit, (cat, _) in zip(credits, answers):
        if cat is None:
            failures += 1
            continue
        counts[cat] += 1
        if len(shown[cat]) < max_examples:
            shown[cat].append(
                {
                    "checkpoint": credit.checkpoint,
                    "prompt_id": credit.prompt_id,
                    "sample": credit.sample,
                    "criterion": credit.criterion.text,
                    "response": credit.response[:600],
                }
            )
    n = sum(counts.values())
    return {
        "n_credits": len(credits),
        "n_classified": n,
        "n_failures": failures,
        "counts": counts,
        "shares": {c: (counts[c] / n if n else None) for c in CATEGORIES},
        "examples": shown,
    }
