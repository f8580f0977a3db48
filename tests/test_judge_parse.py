"""Judge replies, hostile or broken: a verdict for exactly the item it names, or a ParseError, nothing else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rgsd.judges.parse import (
    MAX_ANSWER_CHARS,
    ParseError,
    answer_text,
    parse_batched,
    parse_holistic,
    parse_verdict,
)


def item(met: bool, why: str = "") -> dict:
    return {"explanation": why, "criteria_met": met}


# ---- the repros ---------------------------------------------------------------------------------------------
def test_a_zero_based_or_longer_batched_reply_is_refused_not_shifted():
    zero_based = json.dumps({"0": item(True), "1": item(False)})
    with pytest.raises(ParseError, match='"0"'):
        parse_batched(zero_based, [1, 2])
    extra = json.dumps({"1": item(True), "2": item(False), "3": item(True)})
    with pytest.raises(ParseError, match='"3"'):
        parse_batched(extra, [1, 2])
    # a re-ask round asks for items 2 and 4 only: an answer for item 1 is not one of them
    with pytest.raises(ParseError):
        parse_batched(json.dumps({"1": item(True), "2": item(True), "4": item(True)}), [2, 4])
    found, problems = parse_batched(json.dumps({"2": item(True), "4": item(False, "no")}), [2, 4])
    assert found == {2: (True, ""), 4: (False, "no")} and problems == {}


@pytest.mark.parametrize("key", ["03", "¹", "٣", "+3", "3.0", "three", "", "-1", "1e0"])
def test_batched_keys_other_than_plain_item_numbers_are_refused(key):
    reply = json.dumps({"1": item(True), key: item(False)}, ensure_ascii=False)
    with pytest.raises(ParseError):
        parse_batched(reply, [1, 3])


@pytest.mark.parametrize(
    "reply",
    [
        "[" * 1000,
        "{" * 100_000,
        '{"a":' * 5000,
        '{"explanation": "x", "criteria_met": true, "n": ' + "7" * 5000 + "}",
        "x" * (5 * 2**20),  # 5 MB, no JSON
        '{"{"' * 20_000,
        "\ud800",
        '{"explanation": "\\ud800", "criteria_met": true, "criteria_met": false}',
    ],
    ids=["brackets", "braces", "nested", "5000-digit int", "5MB", "brace-quote", "surrogate", "duplicate"],
)
def test_hostile_replies_give_a_parse_error_never_another_exception(reply):
    for parse in (parse_verdict, parse_holistic, lambda r: parse_batched(r, [1, 2])):
        with pytest.raises(ParseError):
            parse(reply)


def test_an_answer_over_the_cap_is_refused_and_one_under_it_is_read():
    pad = " " * 10
    good = json.dumps(item(True, "y" * (MAX_ANSWER_CHARS - 100)))
    assert parse_verdict(good + pad)[0] is True
    with pytest.raises(ParseError, match="over the cap"):
        parse_verdict(json.dumps(item(True, "y" * MAX_ANSWER_CHARS)))


def test_reasoning_before_the_answer_is_not_searched():
    think = '<think>The reply quotes {"criteria_met": false}; I disagree.</think>\n'
    assert parse_verdict(think + json.dumps(item(True, "met"))) == (True, "met")
    # DeepSeek-style: the opening tag sits in the prompt template, only the closing one is in the reply
    assert parse_verdict('maybe {"criteria_met": false}</think>{"criteria_met": true}') == (True, "")
    with pytest.raises(ParseError, match="no answer"):
        parse_verdict('<think>still thinking about {"criteria_met": true}')
    assert answer_text("  plain  ") == "plain"


# ---- properties ---------------------------------------------------------------------------------------------
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSONISH = st.recursive(
    JSON_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
TEXT = st.text(max_size=300) | st.builds(
    lambda a, obj, b: a + json.dumps(obj) + b, st.text(max_size=50), JSONISH, st.text(max_size=50)
)


@settings(max_examples=400, deadline=None)
@given(reply=TEXT, expected=st.lists(st.integers(1, 12), min_size=1, max_size=5, unique=True))
def test_any_reply_gives_a_result_or_a_parse_error(reply, expected):
    for parse in (parse_verdict, parse_holistic):
        try:
            out = parse(reply)
        except ParseError:
            continue
        assert isinstance(out, tuple) and isinstance(out[1], str)
    try:
        found, problems = parse_batched(reply, expected)
    except ParseError:
        return
    assert set(found) | set(problems) == set(expected) and not set(found) & set(problems)


@settings(max_examples=300, deadline=None)
@given(
    answers=st.dictionaries(
        st.integers(0, 15).map(str) | st.sampled_from(["01", "¹", " 2", "x", "3 "]),
        st.booleans(), min_size=1, max_size=6),
    expected=st.lists(st.integers(1, 8), min_size=1, max_size=6, unique=True),
    prose=st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=40),
)
def test_a_batched_reply_maps_key_k_to_item_k_or_is_refused(answers, expected, prose):
    reply = prose + json.dumps({k: item(v, f"k{k}") for k, v in answers.items()}, ensure_ascii=False)
    numbers = {k: int(k.strip()) for k in answers if k.strip().isascii() and k.strip().isdigit()
               and not k.strip().startswith("0")}
    canonical = len(numbers) == len(answers) and set(numbers.values()) <= set(expected) and len(
        set(numbers.values())) == len(numbers)
    try:
        found, problems = parse_batched(reply, expected)
    except ParseError:
        assert not canonical
        return
    assert canonical
    assert found == {numbers[k]: (v, f"k{k}") for k, v in answers.items()}
    assert set(problems) == set(expected) - set(found)
