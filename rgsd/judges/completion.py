"""Reading one chat-completion body: the answer text, why it stopped, and the tokens it cost.

Only ``message.content`` is the answer. Reasoning models put their thinking beside it
(``reasoning_content`` on DeepSeek and vLLM, ``reasoning`` on OpenRouter); that text may quote JSON that
looks like a verdict, so it is never read as one. A reply whose content is empty while its reasoning ran
into the token limit (``finish_reason == "length"``) is a cut-off reply (the caller re-asks it).

Token counts come from the reply's ``usage``. A count that is missing, not an integer, negative or not
below ``2**31`` (some servers send garbage there, and SQLite cannot store an integer of ``2**63``) is not
believed: :func:`estimate_tokens` stands in for it, so a token budget and the cost are kept for endpoints
that report no usage. The estimate is ``ceil(characters / 4)``, of the request messages' text for the
prompt and of the reply's text for the completion (a rough English average; it is counted, and marked, in
:attr:`rgsd.judges.usage.Usage.estimated_usage`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

MAX_TOKENS_COUNT = 2**31  # a token count at or above this is not believed
CHARS_PER_TOKEN = 4
_REASONING = ("reasoning_content", "reasoning")


class BadCompletion(Exception):
    """An HTTP 200 whose body is not a usable chat completion (retried)."""


@dataclass
class Completion:
    """What one 200 reply carried; a token count is ``None`` when the server gave none worth believing."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None

    def tokens(self, messages: list[dict[str, str]]) -> tuple[int, int, bool]:
        """``(prompt, completion, estimated)``: the reported counts, each missing one estimated."""
        pt, ct = self.prompt_tokens, self.completion_tokens
        estimated = pt is None or ct is None
        pt = estimate_tokens(messages_text(messages)) if pt is None else pt
        return pt, estimate_tokens(self.text) if ct is None else ct, estimated


def token_count(usage: Any, name: str) -> int | None:
    """``usage[name]`` when it is an int in ``[0, 2**31)``, else ``None`` (missing or not believable)."""
    value = usage.get(name) if isinstance(usage, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_TOKENS_COUNT:
        return value
    return None


def estimate_tokens(text: str) -> int:
    """``ceil(len(text) / 4)``: the stand-in for a token count the server did not report."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def messages_text(messages: list[dict[str, str]]) -> str:
    """The text of every message, concatenated (what :func:`estimate_tokens` counts for a prompt)."""
    return "".join(m.get("content") or "" for m in messages if isinstance(m.get("content"), str))


def read_completion(body: bytes) -> Completion:
    """The answer, finish reason and token counts of a chat-completion body.

    Raises :class:`BadCompletion` naming what is wrong, for anything else a 200 may carry (not JSON, an
    integer too long for Python to read, nesting too deep to parse, no choices, content that is not text).
    """
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        head = body[:60].decode("utf-8", "replace").strip().replace("\n", " ")
        raise BadCompletion(f"the 200 reply is not JSON (starts {head!r})") from None
    if not isinstance(obj, dict):
        raise BadCompletion(f"the 200 reply is a JSON {type(obj).__name__}, not a chat completion")
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise BadCompletion("the 200 reply has no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise BadCompletion("the 200 reply has no message")
    finish = choices[0].get("finish_reason")
    finish = finish if isinstance(finish, str) else None
    content = message.get("content")
    thought = any(isinstance(message.get(k), str) and message.get(k) for k in _REASONING)
    if (content is None or content == "") and thought and finish == "length":
        content = ""  # it thought until the token limit and never answered: a cut-off reply
    if not isinstance(content, str):
        got = "null" if content is None else type(content).__name__
        raise BadCompletion(f"the reply's message content is {got}, not text")
    usage = obj.get("usage")
    return Completion(content, finish, token_count(usage, "prompt_tokens"), token_count(usage, "completion_tokens"))
