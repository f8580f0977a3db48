"""Rubric -> teacher prompt.

The teacher is the base model reading the rubric; the student reads the plain prompt. Two placements are
attested for RGSD: appended to the last user turn (``"user_suffix"``, the default here) or as a system message
(``"system"``). Penalty criteria are rendered as things to avoid; weights are hidden unless asked for.
"""

from __future__ import annotations

from typing import Literal

from rgsd.data.schema import Criterion, Example

Placement = Literal["user_suffix", "system"]
PLACEMENTS: tuple[str, ...] = ("user_suffix", "system")

_USER_HEADING = "Hidden evaluation criteria that a strong answer to the request above will satisfy:"
_USER_INSTRUCTION = (
    "Now answer the request above as helpfully and thoroughly as you can. Cover the criteria naturally in "
    "the answer itself. Do not mention, quote, number or refer to the criteria or to this note."
)
_SYSTEM_TEMPLATE = (
    "You are a careful, knowledgeable assistant. Your reply to the user will be judged against the hidden "
    "criteria listed below. Write the reply so that it meets them, but never mention the criteria, this "
    "list or the fact that you are being evaluated. If a criterion could only be met by saying something "
    "false or unsafe, stay truthful and safe instead.\n\n{criteria}"
)


def render_criteria(rubric: list[Criterion], show_weights: bool = False) -> str:
    """Numbered list of criteria; penalty criteria become explicit things to avoid."""
    lines = []
    for i, c in enumerate(rubric, 1):
        text = c.text.strip()
        if c.polarity == "negative":
            text = f"Avoid this: {text}"
        if show_weights:
            text += f" ({'+' if c.polarity == 'positive' else '-'}{c.weight:g} points)"
        lines.append(f"{i}. {text}")
    return "\n".join(lines)


def teacher_messages(
    example: Example, placement: Placement = "user_suffix", show_weights: bool = False
) -> list[dict[str, str]]:
    """The teacher's chat: the student's prompt with the rubric added in the chosen placement.

    An empty rubric returns the plain prompt unchanged (teacher == student), which the alignment tests use.
    """
    messages = [dict(m) for m in example.prompt]
    if not example.rubric:
        return messages
    criteria = render_criteria(example.rubric, show_weights)
    if placement == "user_suffix":
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        messages[last_user]["content"] = (
            f"{messages[last_user]['content']}\n\n{_USER_HEADING}\n{criteria}\n\n{_USER_INSTRUCTION}"
        )
    elif placement == "system":
        system = _SYSTEM_TEMPLATE.format(criteria=criteria)
        if messages and messages[0]["role"] == "system":  # keep the user's own system prompt first
            messages[0]["content"] = f"{messages[0]['content']}\n\n{system}"
        else:
            messages.insert(0, {"role": "system", "content": system})
    else:
        raise ValueError(f"teacher placement must be one of {PLACEMENTS}, got {placement!r}")
    return messages


def student_messages(example: Example) -> list[dict[str, str]]:
    """The student's chat: exactly the plain prompt."""
    return [dict(m) for m in example.prompt]
