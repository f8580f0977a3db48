"""Teacher contexts: the method's (the rubric) and the controls (neutral template, another prompt's criteria)."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rgsd.data.schema import Criterion, Example
from rgsd.method.teacher_prompt import context_messages, derangement, neutral_messages, teacher_messages


def _ex(i: int, n_criteria: int, system: str | None = None) -> Example:
    prompt = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": f"q{i}"}]
    return Example(f"p{i}", prompt, [Criterion(f"p{i}-c{k}", f"point {i}.{k}", 1.0) for k in range(n_criteria)])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=40), st.integers(0, 2**32 - 1))
def test_derangement_never_gives_a_prompt_its_own_criteria(counts: list[int], seed: int) -> None:
    exs = [_ex(i, c) for i, c in enumerate(counts)]
    perm = derangement(exs, seed)
    assert sorted(perm) == list(range(len(exs)))  # a permutation: every list is read once
    assert all(j != i for i, j in enumerate(perm))
    # a prompt whose count is shared by another prompt reads a list of its own length
    shared = {c for c, k in Counter(counts).items() if k >= 2}
    singles = [c for c, k in Counter(counts).items() if k == 1]
    if not singles:
        assert all(counts[perm[i]] == counts[i] for i in range(len(counts)))
    else:
        same = sum(counts[perm[i]] == counts[i] for i in range(len(counts)) if counts[i] in shared)
        assert same >= sum(k for c, k in Counter(counts).items() if k >= 2) - 2 * len(singles)
    assert derangement(exs, seed) == perm  # fixed by the seed


def test_derangement_needs_two_prompts() -> None:
    with pytest.raises(ValueError, match="two prompts"):
        derangement([_ex(0, 3)])


def test_contexts_render_as_documented() -> None:
    exs = [_ex(0, 3), _ex(1, 3), _ex(2, 4)]
    rubric = context_messages(exs, "rubric", "system", style="compact")
    assert rubric[0] == teacher_messages(exs[0], "system", style="compact")
    assert rubric[0][0]["content"] == ("You are a helpful assistant. When you answer, make sure to:\n"
                                       "- point 0.0\n- point 0.1\n- point 0.2")
    neutral = context_messages(exs, "neutral", "system", style="compact")
    assert neutral[0] == [{"role": "system", "content": "You are a helpful assistant."},
                          {"role": "user", "content": "q0"}]
    assert neutral_messages(exs[0], "system", "full")[0]["content"] == "You are a careful, knowledgeable assistant."
    # the user's own system message stays first, as with the rubric
    own = neutral_messages(_ex(5, 2, system="Be brief."), "system", "compact")
    assert own[0]["content"] == "Be brief.\n\nYou are a helpful assistant." and len(own) == 2
    assert neutral_messages(exs[0], "user_suffix", "compact") == [{"role": "user", "content": "q0"}]
    shuffled = context_messages(exs, "shuffled", "system", style="compact")
    for i, chat in enumerate(shuffled):
        assert f"point {i}." not in chat[0]["content"] and chat[-1]["content"] == f"q{i}"
    with pytest.raises(ValueError, match="teacher context"):
        context_messages(exs, "other", "system")  # type: ignore[arg-type]


# ---- system_keep: a minimal pair with the student's own (or the template's default) system message ----------
SMOL_DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.fixture(scope="module")
def smol_tok():
    from rgsd.models import load_tokenizer

    return load_tokenizer("smollm2-offline")


def test_default_system_prompt_found_by_rendering(smol_tok) -> None:
    from rgsd.method.teacher_prompt import default_system_prompt

    assert default_system_prompt(smol_tok) == SMOL_DEFAULT

    class Plain:  # a template that writes no system turn of its own
        def apply_chat_template(self, messages, tokenize=False):
            return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)

    class NoSystemRole:
        def apply_chat_template(self, messages, tokenize=False):
            if messages[0]["role"] == "system":
                raise ValueError("System role not supported")
            return "".join(m["content"] for m in messages)

    assert default_system_prompt(Plain()) is None and default_system_prompt(NoSystemRole()) is None


@pytest.mark.parametrize("style", ["full", "compact"])
def test_system_keep_is_the_student_prompt_plus_the_criteria(smol_tok, style) -> None:
    from rgsd.method.rollout import chat_prompt_ids
    from rgsd.method.teacher_prompt import default_system_prompt, student_messages

    default = default_system_prompt(smol_tok)
    im_end = smol_tok.convert_tokens_to_ids("<|im_end|>")
    for ex in (_ex(1, 3), _ex(2, 2, system="Be brief.")):
        student = chat_prompt_ids(smol_tok, student_messages(ex))
        teacher = chat_prompt_ids(smol_tok, teacher_messages(ex, "system_keep", style=style, default_system=default))
        k = student.index(im_end)  # the end of the student's system turn
        assert teacher[:k] == student[:k] and teacher[-(len(student) - k):] == student[k:]
        added = smol_tok.decode(teacher[k: len(teacher) - (len(student) - k)])
        assert added.startswith("\n\n") and all(c.text in added for c in ex.rubric)
        assert "You are" not in added  # no persona of ours next to the student's own
        own = ex.prompt[0]["content"] if ex.prompt[0]["role"] == "system" else SMOL_DEFAULT
        assert smol_tok.decode(student[:k]).endswith(own)
        neutral = chat_prompt_ids(smol_tok, neutral_messages(ex, "system_keep", style, default_system=default))
        assert neutral == student  # the neutral arm under system_keep is the student's chat exactly
    assert neutral_messages(_ex(1, 1), "system_keep", default_system=default)[0] == {
        "role": "system", "content": SMOL_DEFAULT}
    shuffled = context_messages([_ex(1, 2), _ex(2, 2)], "shuffled", "system_keep", default_system=default)
    assert shuffled[0][0]["content"].startswith(SMOL_DEFAULT + "\n\n") and "point 2.0" in shuffled[0][0]["content"]
