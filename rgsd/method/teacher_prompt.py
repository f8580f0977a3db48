"""Rubric -> teacher prompt.

The teacher is the base model reading the rubric; the student reads the plain prompt. Two placements are
attested for RGSD: appended to the last user turn (``"user_suffix"``, the default here) or as a system message
(``"system"``). Penalty criteria are rendered as things to avoid; weights are hidden unless asked for.
A third placement is ours: ``"user_prefix"`` puts the criteria as key points *before* the question in
the same user turn, so the last thing the teacher reads is the question itself. Measured on SmolLM2-135M
(docs/ablations.md), a rubric after the question is read as feedback ("You're right, I'll make sure to ...")
and the divergence sits on the response's opening tokens; training on it lowered the rubric score. In a system
message the opening changes least, and that was the only placement that trained positively (the demo uses it).
"""

from __future__ import annotations

from typing import Any, Literal

from rgsd.data.schema import Criterion, Example

Placement = Literal["user_suffix", "system", "user_prefix", "system_keep"]
PLACEMENTS: tuple[str, ...] = ("user_suffix", "system", "user_prefix", "system_keep")
Style = Literal["full", "compact"]
STYLES: tuple[str, ...] = ("full", "compact")
# What the teacher reads. "rubric" is the method; "neutral" (the template, no criteria) and "shuffled" (another
# prompt's criteria) are controls: they separate the effect of the template and of *a* criteria list from the
# effect of *this* rubric.
Context = Literal["rubric", "neutral", "shuffled"]
CONTEXTS: tuple[str, ...] = ("rubric", "neutral", "shuffled")
# a control arm of `rgsd demo --control` / `rgsd compare --control` -> the teacher context it trains with
CONTROLS: dict[str, str] = {"neutral-system": "neutral", "shuffled": "shuffled"}

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


# "compact": a bare bullet list, no meta-instruction. Small models (measured on SmolLM2-135M, see
# rgsd/demo_data/README.md) answer a long instruction instead of the question and copy numbered criteria;
# this wording raised their rubric score where the full one lowered it.
_COMPACT_USER_HEADING = "In your answer:"
_COMPACT_SYSTEM_HEADING = "You are a helpful assistant. When you answer, make sure to:"
# "system_keep": appended to the student's own system message, so no persona sentence of ours
_KEEP_TEMPLATE = (
    "Your reply to the user will be judged against the hidden criteria listed below. Write the reply so that it "
    "meets them, but never mention the criteria, this list or the fact that you are being evaluated.\n\n{criteria}"
)
_COMPACT_KEEP_HEADING = "When you answer, make sure to:"
# "user_prefix": the criteria read as background facts about the question that follows, not as instructions.
_PREFIX_HEADING = "Key points that a good answer to the question below covers:"
_PREFIX_INSTRUCTION = "Answer the question naturally; do not mention these points as a list or as notes."


def render_criteria(rubric: list[Criterion], show_weights: bool = False, style: Style = "full") -> str:
    """The criteria as a list; penalty criteria become explicit things to avoid.

    ``full``: numbered, penalties as "Avoid this: ..."; ``compact``: bullets, penalties as "Do not: ...".
    """
    lines = []
    for i, c in enumerate(rubric, 1):
        text = c.text.strip()
        if c.polarity == "negative":
            text = f"{'Do not' if style == 'compact' else 'Avoid this'}: {text}"
        if show_weights:
            text += f" ({'+' if c.polarity == 'positive' else '-'}{c.weight:g} points)"
        lines.append(f"- {text}" if style == "compact" else f"{i}. {text}")
    return "\n".join(lines)


def default_system_prompt(tokenizer: Any) -> str | None:
    """The system message the chat template writes when the chat has none (``None`` when it writes none).

    Found by rendering: ``[system: SENTINEL, user: "x"]`` splits into what comes before and after the system
    content; ``[user: "x"]`` rendered between the same two pieces holds the default in the middle.
    """
    sentinel = "\x00rgsd-system\x00"
    try:
        bare = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
        marked = tokenizer.apply_chat_template(
            [{"role": "system", "content": sentinel}, {"role": "user", "content": "x"}], tokenize=False)
    except Exception:  # noqa: BLE001  # a template without a system role (it raises) has no default either
        return None
    if not isinstance(bare, str) or not isinstance(marked, str) or marked.count(sentinel) != 1:
        return None
    head, tail = marked.split(sentinel)
    if not (bare.startswith(head) and bare.endswith(tail) and len(bare) > len(head) + len(tail)):
        return None
    return bare[len(head): len(bare) - len(tail)] or None


def _keep_system(messages: list[dict[str, str]], addition: str, default_system: str | None) -> None:
    """Append ``addition`` to the chat's system message (the template's default when it has none), in place."""
    if messages and messages[0]["role"] == "system":
        own = messages[0]["content"]
        messages[0]["content"] = f"{own}\n\n{addition}" if own and addition else own or addition
        return
    content = f"{default_system}\n\n{addition}" if default_system and addition else default_system or addition
    if content:
        messages.insert(0, {"role": "system", "content": content})


def teacher_messages(
    example: Example, placement: Placement = "user_suffix", show_weights: bool = False, style: Style = "full",
    default_system: str | None = None,
) -> list[dict[str, str]]:
    """The teacher's chat: the student's prompt with the rubric added in the chosen placement.

    ``style="full"`` (default) tells the model the criteria are hidden evaluation criteria to meet without
    mentioning them; ``"compact"`` only lists them (for small models, see the comment above).
    ``default_system``: the template's own system message (:func:`default_system_prompt`), kept under
    ``"system_keep"`` when the chat has no system message; ignored by the other placements.
    An empty rubric returns the plain prompt unchanged (teacher == student), which the alignment tests use.
    """
    if style not in STYLES:
        raise ValueError(f"teacher style must be one of {STYLES}, got {style!r}")
    messages = [dict(m) for m in example.prompt]
    if not example.rubric:
        return messages
    criteria = render_criteria(example.rubric, show_weights, style)
    if placement == "user_suffix":
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        suffix = (f"{_COMPACT_USER_HEADING}\n{criteria}" if style == "compact"
                  else f"{_USER_HEADING}\n{criteria}\n\n{_USER_INSTRUCTION}")
        messages[last_user]["content"] = f"{messages[last_user]['content']}\n\n{suffix}"
    elif placement == "user_prefix":
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        head = _PREFIX_HEADING if style == "compact" else f"{_PREFIX_HEADING}\n{criteria}\n{_PREFIX_INSTRUCTION}"
        body = f"{_PREFIX_HEADING}\n{criteria}" if style == "compact" else head
        messages[last_user]["content"] = f"{body}\n\nQuestion: {messages[last_user]['content']}"
    elif placement == "system":
        system = (f"{_COMPACT_SYSTEM_HEADING}\n{criteria}" if style == "compact"
                  else _SYSTEM_TEMPLATE.format(criteria=criteria))
        if messages and messages[0]["role"] == "system":  # keep the user's own system prompt first
            messages[0]["content"] = f"{messages[0]['content']}\n\n{system}"
        else:
            messages.insert(0, {"role": "system", "content": system})
    elif placement == "system_keep":
        addition = (f"{_COMPACT_KEEP_HEADING}\n{criteria}" if style == "compact"
                    else _KEEP_TEMPLATE.format(criteria=criteria))
        _keep_system(messages, addition, default_system)
    else:
        raise ValueError(f"teacher placement must be one of {PLACEMENTS}, got {placement!r}")
    return messages


def neutral_messages(example: Example, placement: Placement = "user_suffix", style: Style = "full",
                     default_system: str | None = None) -> list[dict[str, str]]:
    """The teacher's template with no criteria: the control that isolates the template (persona, layout).

    In a system message: the template's own first sentence ("You are a helpful assistant." in compact style),
    placed as the criteria would be. After or before the question, the criteria are the only content the
    template adds (a heading over nothing is not a context), so the neutral teacher is the plain prompt.
    Under ``"system_keep"`` it is the student's chat exactly, the template's default system message written out.
    """
    messages = [dict(m) for m in example.prompt]
    if placement == "system_keep":
        _keep_system(messages, "", default_system)
        return messages
    if placement != "system":
        return messages
    persona = (_COMPACT_SYSTEM_HEADING if style == "compact" else _SYSTEM_TEMPLATE).split(". ")[0] + "."
    if messages and messages[0]["role"] == "system":
        messages[0]["content"] = f"{messages[0]['content']}\n\n{persona}"
    else:
        messages.insert(0, {"role": "system", "content": persona})
    return messages


def derangement(examples: list[Example], seed: int = 0) -> list[int]:
    """``perm[i]``: whose criteria prompt ``i`` reads in the shuffled control; never ``i`` itself.

    Prompts are grouped by criteria count (a lone count joins its neighbour), and each group is rotated in a
    fixed-seed random order, so a prompt reads a list as long as its own wherever the data allow.
    """
    import random

    n = len(examples)
    if n < 2:
        raise ValueError("the shuffled control needs at least two prompts")
    rng = random.Random(seed)
    keys = {i: rng.random() for i in range(n)}
    order = sorted(range(n), key=lambda i: (len(examples[i].rubric), keys[i]))
    groups: list[list[int]] = []
    for i in order:
        if groups and len(examples[groups[-1][0]].rubric) == len(examples[i].rubric):
            groups[-1].append(i)
        else:
            groups.append([i])
    merged: list[list[int]] = []
    for g in groups:  # a group of one cannot be deranged: join it to the previous group (or the next)
        if len(g) == 1 and merged:
            merged[-1].extend(g)
        elif merged and len(merged[-1]) == 1:
            merged[-1].extend(g)
        else:
            merged.append(list(g))
    perm = list(range(n))
    for g in merged:
        for k, i in enumerate(g):
            perm[i] = g[(k + 1) % len(g)]
    return perm


def context_messages(
    examples: list[Example], context: Context, placement: Placement = "user_suffix", show_weights: bool = False,
    style: Style = "full", seed: int = 0, default_system: str | None = None,
) -> list[list[dict[str, str]]]:
    """The teacher chat of each example under ``context`` (``rubric`` = the method, or one of the controls).

    ``default_system``: the template's default system message, used by ``"system_keep"`` (see there)."""
    if context == "rubric":
        return [teacher_messages(ex, placement, show_weights, style, default_system) for ex in examples]
    if context == "neutral":
        return [neutral_messages(ex, placement, style, default_system) for ex in examples]
    if context == "shuffled":
        from dataclasses import replace

        perm = derangement(examples, seed)
        return [teacher_messages(replace(ex, rubric=examples[j].rubric), placement, show_weights, style,
                                 default_system) for ex, j in zip(examples, perm)]
    raise ValueError(f"teacher context must be one of {CONTEXTS}, got {context!r}")


def student_messages(example: Example) -> list[dict[str, str]]:
    """The student's chat: exactly the plain prompt."""
    return [dict(m) for m in example.prompt]
