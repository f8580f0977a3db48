"""The judge transport over real loopback HTTP: one structured-output fallback per judge, ask_json's re-asks and
counted failures, one budget for a panel, and the judge built from JudgeOptions (build_judge, check, prices)."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judge_server import JudgeServer, Reply, judging_policy  # noqa: E402

from rgsd.data.schema import Criterion, Example  # noqa: E402
from rgsd.judges import ask_json, build_judge  # noqa: E402
from rgsd.judges.asking import ask_all  # noqa: E402
from rgsd.judges.cache import JudgeCache  # noqa: E402
from rgsd.judges.openai_judge import OpenAIJudge  # noqa: E402
from rgsd.judges.options import JudgeOptions, check, prices  # noqa: E402
from rgsd.judges.panel import PanelJudge  # noqa: E402
from rgsd.judges.parse import parse_verdict  # noqa: E402
from rgsd.judges.prompts import per_criterion_messages  # noqa: E402
from rgsd.judges.regex_judge import RegexJudge  # noqa: E402
from rgsd.judges.schemas import verdict_format  # noqa: E402
from rgsd.judges.usage import BudgetExhausted  # noqa: E402

FAST = dict(backoff_base=0.001, backoff_max=0.01, jitter=0.0)
WORDS = ["apple", "banana", "cherry", "damson", "elder", "fig"]
RULE = judging_policy(lambda criterion, points, response: criterion.split()[-1].lower() in response.lower())


def example(ex_id: str = "ex1", words: list[str] = WORDS[:4]) -> Example:
    rubric = [Criterion(f"c{i}", f"Mentions {w}", 1.0) for i, w in enumerate(words)]
    return Example(ex_id, [{"role": "user", "content": "Name some fruit."}], rubric)


def questions(ex: Example, response: str = "apple and cherry") -> list[list[dict[str, str]]]:
    return [per_criterion_messages(ex, response, c) for c in ex.rubric]


def judge(server: JudgeServer, **kw) -> OpenAIJudge:
    return OpenAIJudge("m", base_url=server.url, **{**FAST, **kw})


def with_schema(server: JudgeServer) -> list[bool]:
    return ["response_format" in body for body in server.requests]


# ---- (a) structured outputs: one fallback per judge in auto, none in on ------------------------------------
def test_auto_falls_back_once_per_judge_and_remembers_it():
    ex = example(words=WORDS)
    with JudgeServer(RULE, refuse_response_format=True) as s:
        j = judge(s, concurrency=8)
        answers = ask_all(j, questions(ex), parse_verdict, schema=verdict_format())
        assert [a.value[0] for a in answers] == [True, False, True, False, False, False]
        # one refused request (the others waited for its answer), then the same questions plainly
        assert with_schema(s) == [True] + [False] * len(WORDS)
        assert j.structured_supported is False and j.usage.calls == 1 + len(WORDS)
        assert j.usage.retries == 0 and j.usage.failures == 0
        ask_all(j, questions(example("ex2"), "fig"), parse_verdict, schema=verdict_format())
        assert s.count == 1 + len(WORDS) + 4 and not any(with_schema(s)[1:])  # remembered: no second probe
        j.close()
        other = judge(s)  # another judge learns it for itself: one refused request of its own
        other.grade_sync(example("ex3"), "apple")
        assert with_schema(s)[s.count - 5:] == [True, False, False, False, False]
        other.close()


def test_on_never_falls_back_and_a_refusal_is_a_counted_failure():
    ex = example()
    with JudgeServer(RULE, refuse_response_format=True) as s:
        j = judge(s, structured="on")
        answers = ask_all(j, questions(ex), parse_verdict, schema=verdict_format())
        assert all(not a.ok and a.unavailable and "HTTP 400" in a.error for a in answers)
        assert all(with_schema(s)) and s.count == len(ex.rubric)  # no plain retry of any of them
        assert j.usage.failures == len(ex.rubric) and j.structured_supported is None
        g = j.grade_sync(example("ex2"), "apple")
        assert g.failures == 4 and all(with_schema(s))
        j.close()
    with JudgeServer(RULE) as s:
        j = judge(s, structured="on", mode="batched")
        assert [v.met for v in j.grade_sync(ex, "apple and cherry").verdicts] == [True, False, True, False]
        assert with_schema(s) == [True]
        j.close()


def test_structured_off_sends_no_schema_and_a_question_may_override_the_mode():
    with JudgeServer(RULE) as s:
        j = judge(s, structured="off")
        j.grade_sync(example(), "apple")
        assert not any(with_schema(s))
        ask_all(j, questions(example("ex2")), parse_verdict, schema=verdict_format(), structured="auto")
        assert with_schema(s)[4:] == [True] * 4
        j.close()


# ---- (c) ask_json: re-asks, then a counted failure; the accepted reply cached under the first question ------
def test_ask_json_reasks_max_reasks_times_then_counts_a_failure(tmp_path):
    q = questions(example())[0]
    with JudgeServer(RULE) as s:
        j = judge(s, max_reasks=2, cache=JudgeCache(tmp_path / "c.sqlite"))
        s.push("no idea", "still no idea", "maybe?")
        ans = asyncio.run(ask_json(j, q, parse_verdict))
        assert ans.value is None and ans.tries == 3 and ans.error.startswith("unusable reply after 3 tries")
        assert s.count == 3 and j.usage.reasks == 2 and j.usage.failures == 1
        # a re-ask shows the judge its reply and the problem
        assert s.requests[1]["messages"][-2] == {"role": "assistant", "content": "no idea"}
        assert "could not be used" in s.requests[1]["messages"][-1]["content"]
        assert len(j.cache) == 0  # a rejected reply is never cached
        s.push("no idea", Reply(content='{"explanation": "cut', finish_reason="length"))
        ans = asyncio.run(ask_json(j, q, parse_verdict, max_reasks=1))  # the caller's limit wins
        assert not ans.ok and "cut off" in ans.error and s.count == 5 and j.usage.failures == 2
        s.push("no idea")  # then the policy's good answer, on the re-ask
        ans = asyncio.run(ask_json(j, q, parse_verdict))
        assert ans.ok and ans.value[0] is True and ans.tries == 2 and s.count == 7
        j.close()
        rerun = judge(s, cache=JudgeCache(tmp_path / "c.sqlite"))
        again = asyncio.run(ask_json(rerun, q, parse_verdict))
        assert again.value == ans.value and again.cached and s.count == 7 and rerun.usage.calls == 0
        rerun.close()


def test_ask_json_from_the_judges_own_loop_and_from_another():
    q = questions(example())[1]
    with JudgeServer(RULE) as s:
        j = judge(s)

        async def nested():  # a coroutine already on the judge's loop awaits ask_json directly
            return await ask_json(j, q, parse_verdict)

        assert j.run_sync(nested()).value[0] is False
        assert asyncio.run(ask_json(j, q, parse_verdict)).value[0] is False
        j.close()


# ---- (b) a panel shares one budget ------------------------------------------------------------------------
def test_reference_panel_of_three_makes_at_most_max_calls_requests(tmp_path):
    with JudgeServer(RULE) as s:
        opts = JudgeOptions(judge_model="ref-a,ref-b,ref-c", judge_base_url=s.url, judge_max_calls=5,
                            judge_concurrency=1)
        panel = build_judge(opts, tmp_path)
        assert isinstance(panel, PanelJudge) and len(panel.members) == 3
        budgets = {id(m.budget) for m in panel.members}
        assert len(budgets) == 1  # one Budget object for all members
        stopped = 0
        for m in panel.members:  # graded one by one, as diagnose grades its reference panel
            try:
                m.grade_sync(example(), "apple")
            except BudgetExhausted:
                stopped += 1
        assert s.count == 5 and stopped == 2 and panel.usage.calls == 5
        panel.close()
        voting = build_judge(replace(opts, judge_max_calls=7), tmp_path / "b")
        with pytest.raises(BudgetExhausted):
            asyncio.run(voting.grade(example(), "apple"))
        assert s.count - 5 <= 7
        voting.close()


def test_panel_rule_all_is_unanimous():
    members = [RegexJudge(), RegexJudge()]
    assert PanelJudge(members, rule="all").rule == "unanimous"
    with pytest.raises(ValueError, match="panel rule"):
        PanelJudge(members, rule="most")


# ---- (d) build_judge, check, prices --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, value, flag",
    [
        ("judge_max_retries", -1, "--judge-max-retries"),
        ("judge_max_reasks", -1, "--judge-max-reasks"),
        ("judge_max_calls", -1, "--judge-max-calls"),
        ("judge_max_tokens_budget", -1, "--judge-max-tokens-budget"),
        ("judge_concurrency", 0, "--judge-concurrency"),
        ("judge_max_tokens", 0, "--judge-max-tokens"),
        ("judge_timeout", 0.0, "--judge-timeout"),
        ("judge_timeout", -1.0, "--judge-timeout"),
        ("judge_timeout", float("nan"), "--judge-timeout"),
        ("judge_max_failure_rate", 1.5, "--judge-max-failure-rate"),
        ("judge_max_failure_rate", -0.1, "--judge-max-failure-rate"),
        ("judge_model", None, "--judge-model"),
    ],
)
def test_impossible_values_are_refused_with_the_flag_name(field, value, flag, tmp_path):
    opts = replace(JudgeOptions(judge_model="m", judge_base_url="http://127.0.0.1:9/v1"), **{field: value})
    with pytest.raises(ValueError, match=flag):
        check(opts)
    with pytest.raises(ValueError, match=flag):
        build_judge(opts, tmp_path)
    if field != "judge_model":  # the regex judge is checked too (as rgsd eval always did)
        with pytest.raises(ValueError, match=flag):
            build_judge(replace(opts, judge="regex"), tmp_path)


def test_build_judge_caches_and_kinds(tmp_path):
    base = JudgeOptions(judge_model="m", judge_base_url="http://127.0.0.1:9/v1", judge_structured="on",
                        judge_mode="batched", judge_max_reasks=1)
    assert build_judge(replace(base, judge="none", judge_max_calls=-1), tmp_path) is None  # none: nothing checked
    assert isinstance(build_judge(replace(base, judge="regex", judge_model=None), tmp_path), RegexJudge)
    j = build_judge(base, tmp_path, cache_name="role.sqlite")
    assert j.cache.path == tmp_path / "role.sqlite" and (j.structured, j.mode, j.max_reasks) == ("on", "batched", 1)
    assert j.budget is None
    assert build_judge(replace(base, judge_cache="none"), tmp_path).cache is None
    assert build_judge(base, None).cache is None  # auto without an output folder: no cache
    assert build_judge(replace(base, judge_cache=str(tmp_path / "x.sqlite")), None).cache.path == tmp_path / "x.sqlite"
    capped = build_judge(replace(base, judge_max_calls=3, judge_max_tokens_budget=100), tmp_path)
    assert (capped.budget.max_calls, capped.budget.max_tokens) == (3, 100)
    panel = build_judge(replace(base, judge_model="a,b", judge_panel_rule="unanimous"), tmp_path)
    assert panel.rule == "unanimous" and {m.cache.path for m in panel.members} == {tmp_path / "judge_cache.sqlite"}


def test_prices(tmp_path):
    assert prices(JudgeOptions()) is None
    table = prices(JudgeOptions(judge_price_in=1.0, judge_price_out=2.0))
    assert table is not None and table.default.input == 1.0 and table.default.output == 2.0
    with pytest.raises(ValueError, match="price-in"):
        prices(JudgeOptions(judge_price_in=1.0))


# ---- rubric generation takes the judge's structured mode ------------------------------------------------------
def test_rubric_generation_uses_the_judges_structured_mode(tmp_path):
    from rubric_server import GeneratorServer

    from rgsd.rubrics.generate import Settings, generate_rubrics
    from rgsd.rubrics.inputs import Task

    tasks = [Task(f"p{i}", [{"role": "user", "content": f"question {i} about colds"}], None, f"in:{i}")
             for i in range(3)]
    with GeneratorServer(reject_response_format=True) as s:
        j = build_judge(JudgeOptions(judge_model="gen", judge_base_url=s.url, judge_cache="none"), tmp_path)
        report = generate_rubrics(tasks, tmp_path / "a.jsonl", j, Settings())
        j.close()
        assert report.generated == 3 and not report.failed
        assert [("response_format" in b) for b in s.requests] == [True, False, False, False]
    with GeneratorServer(reject_response_format=True) as s:
        opts = JudgeOptions(judge_model="gen", judge_base_url=s.url, judge_cache="none", judge_structured="on")
        j = build_judge(opts, tmp_path)
        report = generate_rubrics(tasks, tmp_path / "b.jsonl", j, Settings())
        j.close()
        assert report.generated == 0 and len(report.failed) == 3 and s.count == 3
        assert all(f["error"].startswith("request failed: HTTP 400") for f in report.failed)
