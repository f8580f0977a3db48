"""``rgsd compare-evals --explain``: the decomposition of a gain, against numbers counted by hand."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rgsd.cli import main
from rgsd.evaluate.explain import EMPTY, OTHER, explain, explain_markdown, opening_word

FIRST_PERSON = "first person (I, I'm, I'll, I've, I'd, me, my)"


def _v(cid: str, met: bool | None) -> dict:
    return {"criterion_id": cid, "criterion": f"text of {cid}", "points": 1.0, "met": met}


def _rec(pid: str, response: str, score: float, verdicts: list, tokens: int = 10, **kw) -> dict:
    return {"id": pid, "response": response, "response_tokens": tokens, "score_normalized": score,
            "verdicts": verdicts, **kw}


BASE = [
    _rec("p1", "I think you should rest.", 0.0, [_v("c1", False), _v("c2", True)], 10, finished=True),
    _rec("p1", "## Tips\n- Drink water", 0.5, [_v("c1", False), _v("c2", None)], 20, finished=False),
    _rec("p2", "As an AI assistant, I can help.", 1.0, [_v("c3", True)], 30, finished=True),
    _rec("p2", "To start, boil water.", 0.5, [_v("c3", False)], 40, finished=True),
]
TRAINED = [  # no `finished` key: the end-of-turn rate is unknown
    _rec("p1", "To rest well, sleep early.", 1.0, [_v("c1", True), _v("c2", True)], 12),
    _rec("p1", "1. If you can, rest.", 0.5, [_v("c1", None), _v("c2", False)], 18),
    _rec("p2", "**When** boiling: use a lid. My tip: I'd wait.", 1.0, [_v("c3", True)], 30),
    _rec("p2", "To start, boil water.", 1.0, [_v("c3", True)], 40),
]


def test_opening_words_strip_markdown_and_numbering():
    assert opening_word("  ## Tips\n- Drink") == "tips"
    assert opening_word("1. If you can") == "if"
    assert opening_word("2) **When** boiling") == "when"
    assert opening_word("> \"To start,\" she said") == "to"
    assert opening_word("I'm fine.") == "i'm"
    assert opening_word("1.5 cups of flour") == "1"  # a decimal is not list numbering
    assert opening_word("") == EMPTY and opening_word(" *** --- ") == EMPTY


def test_explain_counts_by_hand():
    res = explain({"base": BASE, "trained": TRAINED})
    assert res["models"] == ["base", "trained"] and res["n_responses"] == {"base": 4, "trained": 4}
    ow = res["opening_words"]
    # base: i, tips, as, to; trained: to, if, when, to -> "to" 3 of 8 leads, then the five with one each
    assert ow["words"][0] == "to" and set(ow["words"]) == {"to", "i", "tips", "as", "if", "when"}
    assert ow["share"]["base"]["to"] == pytest.approx(1 / 4) and ow["share"]["trained"]["to"] == pytest.approx(2 / 4)
    assert ow["share"]["base"][OTHER] == 0.0
    assert ow["conditional_share"] == {"base": pytest.approx(1 / 4), "trained": pytest.approx(4 / 4)}
    persona = {p["phrase"]: p["share"] for p in res["persona"]}
    # base: "I think", "I can" -> 2 of 4; trained: "My tip: I'd" -> 1 of 4
    assert persona[FIRST_PERSON] == {"base": pytest.approx(2 / 4), "trained": pytest.approx(1 / 4)}
    assert persona["as an ai"] == {"base": pytest.approx(1 / 4), "trained": 0.0}
    assert persona["assistant"]["base"] == pytest.approx(1 / 4) and persona["smollm"]["base"] == 0.0
    assert res["length"]["mean_response_tokens"] == {"base": 25.0, "trained": 25.0}
    assert res["length"]["end_of_turn_rate"] == {"base": pytest.approx(3 / 4), "trained": None}
    # per-prompt means: base p1 0.25, p2 0.75 -> 0.5; trained p1 0.75, p2 1.0 -> 0.875
    assert res["score"] == {"base": pytest.approx(0.5), "trained": pytest.approx(0.875)}
    crit = {r["id"]: r for r in res["criteria"]}
    # c1: base 0/2; trained 1/1 (the failure left out). c2: base 1/1 (failure left out); trained 1/2. c3: 1/2 -> 2/2
    assert crit["c1"]["rate"] == {"base": 0.0, "trained": 1.0} and crit["c1"]["n"] == {"base": 2, "trained": 1}
    assert crit["c2"]["gain"]["trained"] == pytest.approx(0.5 - 1.0) and crit["c2"]["n"] == {"base": 1, "trained": 2}
    assert crit["c3"]["gain"]["trained"] == pytest.approx(1.0 - 0.5)
    assert [r["id"] for r in res["criteria"]] == ["c1", "c3", "c2"]  # by gain: +1, +0.5, -0.5
    assert res["categories"] == []


def test_explain_teacher_and_categories():
    teacher = [_rec("p1", "SmolLM here, by Hugging Face.", 1.0, [_v("c1", True), _v("c2", True)]),
               _rec("p2", "Sure.", 1.0, [_v("c3", None)])]
    tags = {"c1": ["type:content", "axis:x"], "c2": ["type:style"], "c3": ["type:content"]}
    res = explain({"base": BASE, "trained": TRAINED, "teacher": teacher}, tags)
    c1 = next(r for r in res["criteria"] if r["id"] == "c1")
    assert c1["gain"] == {"trained": 1.0, "teacher": 1.0}
    c3 = next(r for r in res["criteria"] if r["id"] == "c3")
    assert c3["rate"]["teacher"] is None and c3["gain"]["teacher"] is None and c3["n"]["teacher"] == 0
    cats = {r["id"]: r for r in res["categories"]}
    assert set(cats) == {"type:content", "type:style"}  # only type: tags
    # type:content = c1 + c3 verdicts pooled: base 0/2 + 1/2 = 1/4; trained 1/1 + 2/2 = 3/3
    assert cats["type:content"]["rate"]["base"] == pytest.approx(1 / 4)
    assert cats["type:content"]["gain"]["trained"] == pytest.approx(1 - 1 / 4)
    persona = {p["phrase"]: p["share"]["teacher"] for p in res["persona"]}
    assert persona["smollm"] == 0.5 and persona["hugging face"] == 0.5
    md = explain_markdown({"base": BASE, "trained": TRAINED, "teacher": teacher}, tags)
    assert "| to / if / when | 0.25 | 1.00 | 0.00 |" in md and "type:content" in md and "teacher - base" in md


def test_markdown_top_and_bottom_rows():
    base = [_rec("p", "x", 0.0, [_v(f"c{k:02d}", False) for k in range(25)])]
    trained = [_rec("p", "x", 1.0, [_v(f"c{k:02d}", k % 2 == 0) for k in range(25)])]
    res = explain({"base": base, "trained": trained})
    assert len(res["criteria"]) == 25
    md = explain_markdown({"base": base, "trained": trained})
    assert "top and bottom 10 of 25" in md
    rows = [line for line in md.splitlines() if re.match(r"\| c\d\d: ", line)]
    assert len(rows) == 20 and rows[0].startswith("| c00: text of c00 | 0.00 | 1.00 | +1.00 | 1 / 1 |")


def test_compare_evals_explain_cli(tmp_path, capsys):
    for name, recs in (("a", BASE), ("b", TRAINED), ("t", BASE[:2])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "out"
    assert main(["compare-evals", str(tmp_path / "a"), str(tmp_path / "b"), "--explain", "--teacher-dir",
                 str(tmp_path / "t"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "B - A" in printed and "What the gain is made of" in printed
    res = json.loads((out / "explain.json").read_text())
    assert res["models"] == ["base", "trained", "teacher"]
    assert res["opening_words"]["conditional_share"]["trained"] == pytest.approx(1.0)
    assert (out / "explain.md").read_text().startswith("What the gain is made of")
    assert main(["compare-evals", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "o2")]) == 0
    assert not (tmp_path / "o2" / "explain.json").exists() and "What the gain" not in capsys.readouterr().out
    assert main(["compare-evals", str(tmp_path / "a"), str(tmp_path / "b"), "--explain", "--teacher-dir",
                 str(tmp_path / "missing")]) == 2
    assert "missing/results.jsonl: file: not found" in capsys.readouterr().err


@settings(max_examples=300, deadline=None)
@given(st.text() | st.sampled_from(["OTHER", "other", "(empty)", "İstanbul", "1.", "- 2) ##"]))
def test_any_text_has_an_opening_word(text):
    word = opening_word(text)
    assert word == EMPTY or (word and word == word.lower() and not word[0].isspace())
    res = explain({"base": [{"id": "p", "response": text}]})
    assert sum(res["opening_words"]["share"]["base"].values()) == pytest.approx(1.0)
