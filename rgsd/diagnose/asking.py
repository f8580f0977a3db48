"""Ask an LLM judge a question that is not a rubric verdict (pairwise preference, failure category).

The question goes through :func:`rgsd.judges.asking.ask_all` (the judge layer's one request path and re-ask
loop: its cache, retries, budget and usage counters); only the prompts, the parsers and the wording of a
re-ask are diagnose's. A reply the parser rejects (it raises :class:`AnswerError`) is re-asked
``judge.max_reasks`` times, shown its reply and the problem, and then counted as a failure; only parsed
replies are cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, TypeVar

from rgsd.judges.parse import ParseError

T = TypeVar("T")
Messages = list[dict[str, str]]


class AnswerError(ParseError):
    """The judge's reply does not answer the question unambiguously."""


def require_llm_judge(judge: Any, role: str) -> None:
    """Pairwise and classifier roles need a chat model, not the regex stand-in."""
    if not hasattr(judge, "request"):
        raise ValueError(f"--{role}-judge must be an LLM judge ('openai'), not {getattr(judge, 'name', judge)!r}")


def reask_messages(base: Messages, reply: str, problem: str) -> Messages:
    """Show the judge its unusable reply and the problem, and ask again."""
    return base + [
        {"role": "assistant", "content": reply},
        {
            "role": "user",
            "content": f"That reply could not be used ({problem}). Answer again with exactly one JSON "
            "object in the format asked for, and nothing else.",
        },
    ]


def ask_many(judge: Any, questions: Sequence[Messages], parse: Callable[[str], T],
             progress: bool | str = False) -> list[tuple[T | None, str]]:
    """Ask every question concurrently (the judge bounds requests in flight); ``(answer | None, error)``.

    Raises :class:`rgsd.judges.usage.BudgetExhausted` when the budget stops it (after every sibling ended).
    """
    from rgsd.judges.asking import ask_all

    answers = ask_all(judge, questions, parse, progress=progress, reask=reask_messages)
    return [(a.value, "") if a.ok else (None, f"judge failure: {a.error}") for a in answers]
