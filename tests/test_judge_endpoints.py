"""Hostile endpoints over real loopback HTTP (issue 19): no usage, hung judges, absurd usage counts, corrupt
caches, odd Retry-After headers, redirects, malformed keys, two runs on one cache, reasoning fields.

Each test is written from a repro of the issue; none mocks our own code."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judge_server import JudgeServer, Reply, judging_policy  # noqa: E402

from rgsd.cli import main  # noqa: E402
from rgsd.data.schema import Criterion, Example  # noqa: E402
from rgsd.judges.asking import ask_all  # noqa: E402
from rgsd.judges.cache import JudgeCache  # noqa: E402
from rgsd.judges.completion import estimate_tokens, messages_text, read_completion  # noqa: E402
from rgsd.judges.keys import redact  # noqa: E402
from rgsd.judges.openai_judge import OpenAIJudge  # noqa: E402
from rgsd.judges.parse import parse_verdict  # noqa: E402
from rgsd.judges.prompts import per_criterion_messages  # noqa: E402
from rgsd.judges.resilience import retry_after  # noqa: E402
from rgsd.judges.transport import JudgeConfigError  # noqa: E402
from rgsd.judges.usage import Budget, BudgetExhausted  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(backoff_base=0.001, backoff_max=0.01, jitter=0.0)
WORDS = ["apple", "banana", "cherry", "damson"]
MEANT = [True, False, True, False]  # for the response "apple and cherry"


def word_rule(criterion: str, points: float, response: str) -> bool:
    return criterion.split()[-1].lower() in response.lower()


RULE = judging_policy(word_rule)


def example(ex_id: str = "ex1", n: int = 4) -> Example:
    words = (WORDS * (n // len(WORDS) + 1))[:n]
    rubric = [Criterion(f"c{i}", f"Mentions {w}", 1.0) for i, w in enumerate(words)]
    return Example(ex_id, [{"role": "user", "content": "Name some fruit."}], rubric)


def mets(grade) -> list:
    return [v.met for v in grade.verdicts]


def judge(server: JudgeServer, **kw) -> OpenAIJudge:
    return OpenAIJudge("m", base_url=server.url, **{**FAST, **kw})


def write_eval_inputs(tmp_path: Path, n_examples: int = 3, n_criteria: int = 3) -> tuple[Path, Path]:
    data, responses = tmp_path / "data.jsonl", tmp_path / "responses.jsonl"
    with data.open("w") as fh, responses.open("w") as rh:
        for e in range(n_examples):
            rubric = [{"id": f"k{i}", "text": f"Mentions {WORDS[i % 4]}", "weight": 1} for i in range(n_criteria)]
            fh.write(json.dumps({"id": f"e{e}", "prompt": [{"role": "user", "content": f"Fruit {e}?"}],
                                 "rubric": rubric}) + "\n")
            rh.write(json.dumps({"prompt_id": f"e{e}", "response": "apple and cherry"}) + "\n")
    return data, responses


def eval_args(tmp_path: Path, url: str, *extra: str, n_examples: int = 3, n_criteria: int = 3) -> list[str]:
    data, responses = write_eval_inputs(tmp_path, n_examples, n_criteria)
    return ["eval", "--dataset-name", str(data), "--responses", str(responses), "--judge", "openai",
            "--judge-model", "m", "--judge-base-url", url, "--out", str(tmp_path / "out"), *extra]


def summary(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / "summary.json").read_text())


def no_usage(body: dict) -> Reply:
    return Reply(content=RULE(body), usage=None)


# ---- 1. an endpoint that reports no usage: estimates keep the budget and the cost ---------------------------
def test_replies_without_usage_count_an_estimate_and_warn_once(caplog):
    ex = example()
    with JudgeServer(no_usage) as s, caplog.at_level(logging.WARNING, logger="rgsd.judges.transport"):
        j = judge(s, concurrency=1)
        assert mets(j.grade_sync(ex, "apple and cherry")) == MEANT
        expect_prompt = sum(estimate_tokens(messages_text(b["messages"])) for b in s.requests)
        expect_completion = sum(estimate_tokens(RULE(b)) for b in s.requests)
        assert j.usage.estimated_usage == 4 and j.usage.calls == 4
        assert (j.usage.prompt_tokens, j.usage.completion_tokens) == (expect_prompt, expect_completion)
        assert expect_prompt > 4 * 50  # a judge prompt is hundreds of characters
        j.grade_sync(example("ex2"), "fig")
        j.close()
    warnings = [r for r in caplog.records if "no usable token usage" in r.getMessage()]
    assert len(warnings) == 1  # one warning per judge, not per reply


def test_token_budget_is_kept_when_the_endpoint_omits_usage(tmp_path, capsys):
    with JudgeServer(no_usage) as s:
        with pytest.raises(BudgetExhausted, match="token budget"):
            judge(s, concurrency=1, budget=Budget(max_tokens=50)).grade_sync(example(), "apple")
        assert s.count == 1  # the first reply's estimate already spent the 50 tokens
        args = eval_args(tmp_path, s.url, "--judge-max-tokens-budget", "50", "--judge-concurrency", "1",
                         "--judge-price-in", "1", "--judge-price-out", "1", n_examples=10)
        assert main(args) == 3  # the repro: 31 calls, exit 0, cost 0.0
        assert s.count == 2
    out = summary(tmp_path)
    assert out["complete"] is False and out["judge"]["estimated_usage"] == out["judge"]["calls"] == 1
    assert out["judge"]["total_tokens"] >= 50 and out["judge_cost_usd"] > 0
    assert "budget" in capsys.readouterr().err


# ---- 2. a hung judge fails fast ---------------------------------------------------------------------------
def hung(body: dict) -> Reply:
    return Reply(content=RULE(body), delay=5.0)


def test_hung_judge_eval_finishes_fast_with_every_verdict_a_counted_failure(tmp_path, capsys):
    # 30 verdicts, --judge-concurrency 8, 1 retry. Before: the probe lock made every attempt wait for the one
    # before it (30 x 2 x 0.5 s = 30 s here; 35 h with the defaults); then the breaker stops the rest.
    with JudgeServer(hung) as s:
        started = time.monotonic()
        args = eval_args(tmp_path, s.url, "--judge-timeout", "0.5", "--judge-max-retries", "1",
                         "--judge-concurrency", "8", n_examples=10, n_criteria=3)
        assert main(args) == 4
        assert time.monotonic() - started < 25  # 22 s seen with the two cores busy with other work; before: 30 s+
        assert s.count < 30 * 2  # the breaker spared the rest
    out = summary(tmp_path)
    assert out["n_judge_failures"] == 30 and out["failure_rate"] == 1.0 and out["judge"]["failures"] == 30
    explanations = [v["explanation"] for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()
                    for v in json.loads(line)["verdicts"]]
    assert sum("judge marked down" in e for e in explanations) > 0 and all("judge failure" in e for e in explanations)
    err = capsys.readouterr().err
    assert "all 30 verdicts are judge failures" in err and "Traceback" not in err


def test_a_timed_out_probe_lets_the_others_go_in_parallel():
    # The breaker off: only the probe gate is tested. Server-side, a request lives twice the client's
    # timeout; with the probe serializing attempts at most two overlap, in parallel up to the concurrency.
    # (Under load a request may time out before the server sees it: the server's count is a bound.)
    with JudgeServer(lambda body: Reply(content=RULE(body), delay=0.5)) as s:
        j = judge(s, concurrency=8, timeout=0.25, max_retries=0, max_consecutive_failures=0)
        g = j.grade_sync(example(n=16), "apple")
        assert g.failures == 16 and j.usage.calls == 16 and s.count <= 16 and j.structured_supported is None
        assert s.max_inflight >= 4
        j.close()


def test_breaker_marks_the_judge_down_after_k_failures_in_a_row_and_a_reply_resets_it():
    with JudgeServer(RULE) as s:
        s.push(*[Reply(status=503)] * 2, "{\"explanation\": \"\", \"criteria_met\": true}", *[Reply(status=503)] * 3)
        j = judge(s, concurrency=1, max_retries=0, max_consecutive_failures=3, structured="off")
        g = j.grade_sync(example(n=10), "apple")
        # 2 failures, a reply (the streak restarts), 3 failures: down; the last 4 verdicts sent nothing.
        assert s.count == 6 and j.usage.calls == 6 and j.usage.failures == 9 and g.failures == 9
        assert all("judge marked down: 3 requests in a row" in v.explanation for v in g.verdicts[6:])
        assert "HTTP 503" in g.verdicts[-1].explanation  # names the last cause
        j.close()


def test_max_consecutive_failures_is_checked(tmp_path, capsys):
    assert main(eval_args(tmp_path, "http://127.0.0.1:9/v1", "--judge-max-consecutive-failures", "-1")) == 2
    assert capsys.readouterr().err.strip() == "rgsd eval: error: --judge-max-consecutive-failures: must be >= 0, got -1"


# ---- 3. usage counts that overflow, numbers Python will not read ---------------------------------------------
@pytest.mark.parametrize("bad", [2**63, -5, 2**31, 1.5, "12", True, None])
def test_unbelievable_usage_counts_are_estimated_and_cached(bad, tmp_path):
    with JudgeServer(lambda body: Reply(content=RULE(body), usage={"prompt_tokens": bad, "completion_tokens": 7})) as s:
        j = judge(s, cache=JudgeCache(tmp_path / "c.sqlite"))
        assert mets(j.grade_sync(example(n=1), "apple")) == [True]  # before: OverflowError in the cache
        assert j.usage.estimated_usage == 1 and j.usage.completion_tokens == 7
        assert j.usage.prompt_tokens == estimate_tokens(messages_text(s.requests[0]["messages"]))
        j.close()
        again = judge(s, cache=JudgeCache(tmp_path / "c.sqlite"))
        assert mets(again.grade_sync(example(n=1), "apple")) == [True] and s.count == 1
        again.close()


def huge_number_body(body: dict) -> Reply:
    good = {"choices": [{"message": {"role": "assistant", "content": RULE(body)}, "finish_reason": "stop"}]}
    text = json.dumps(good)[:-1] + ', "usage": {"prompt_tokens": 1' + "0" * 5000 + "}}"
    return Reply(raw=text)


def test_a_5000_digit_usage_is_a_counted_retry_not_a_crash():
    with pytest.raises(ValueError):  # Python's limit on int digits: json.loads refuses it
        json.loads("1" + "0" * 5000)
    with JudgeServer(huge_number_body) as s:
        j = judge(s, max_retries=1)
        g = j.grade_sync(example(n=2), "apple")
        assert g.failures == 2 and j.usage.retries == 2 and s.count == 4
        assert "not JSON" in g.verdicts[0].explanation
        s.policy, deep = RULE, Reply(raw="[" * 100_000)  # nested past Python's recursion limit
        s.push(deep)
        assert mets(j.grade_sync(example(n=1), "apple")) == [True] and j.usage.retries == 3
        j.close()


# ---- 4. a corrupt or truncated cache file ------------------------------------------------------------------
def real_cache(path: Path, rows: int = 300) -> Path:
    cache = JudgeCache(path)
    for i in range(rows):
        cache.put(f"k{i}", "m", f"reply {i} " + "x" * 500)
    cache.close()
    return path


@pytest.mark.parametrize("kind", ["random bytes", "truncated"])
def test_an_unusable_cache_file_is_refused_at_open_with_exit_2(kind, tmp_path, capsys):
    path = tmp_path / "judge.sqlite"
    if kind == "random bytes":
        path.write_bytes(os.urandom(8192))
    else:
        real_cache(tmp_path / "real.sqlite")
        shutil.copy(tmp_path / "real.sqlite", path)
        with path.open("r+b") as fh:
            fh.truncate(path.stat().st_size // 2)
    with pytest.raises(ValueError, match=f"judge cache {path}: not a usable SQLite judge cache"):
        JudgeCache(path)
    with JudgeServer(RULE) as s:
        assert main(eval_args(tmp_path, s.url, "--judge-cache", str(path))) == 2
        assert s.count == 0
    err = capsys.readouterr().err
    assert f"judge cache {path}: not a usable SQLite judge cache" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_cache_that_breaks_mid_run_is_turned_off_and_the_run_finishes(tmp_path, capsys, caplog):
    path = real_cache(tmp_path / "c.sqlite")
    with JudgeServer(RULE) as s, caplog.at_level(logging.WARNING, logger="rgsd.judges.lease"):
        j = judge(s, cache=JudgeCache(path))
        with path.open("r+b") as fh:  # the file is overwritten under the open connection
            fh.seek(4096)
            fh.write(os.urandom(path.stat().st_size - 4096))
        assert mets(j.grade_sync(example(), "apple and cherry")) == MEANT
        assert mets(j.grade_sync(example("ex2"), "apple and cherry")) == MEANT
        assert j.usage.cache_errors >= 1 and s.count == 8 and j.usage.failures == 0
        j.close()
    assert len([r for r in caplog.records if "continuing without it" in r.getMessage()]) == 1


def test_eval_with_a_cache_breaking_mid_run_writes_every_verdict(tmp_path):
    path = real_cache(tmp_path / "c.sqlite")
    breaker = {"done": False}

    def break_then_answer(body: dict) -> str:
        if not breaker["done"]:  # the table goes away under the run: every later read and write fails
            breaker["done"] = True
            with sqlite3.connect(path) as db:
                db.execute("DROP TABLE replies")
        return RULE(body)

    with JudgeServer(break_then_answer) as s:
        assert main(eval_args(tmp_path, s.url, "--judge-cache", str(path))) == 0
        assert s.count == 9
    out = summary(tmp_path)
    assert out["n_judge_failures"] == 0 and out["judge"]["cache_errors"] >= 1 and out["complete"] is True


# ---- 5. Retry-After that is not a number of seconds --------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5", "1e400", "Wed, 21 Oct 2015 07:28:00 GMT",
                                   "Thu, 99 Foo 2099 25:00:00 GMT", "soon", ""])
def test_odd_retry_after_is_ignored(value):
    with JudgeServer(RULE) as s:
        s.push(Reply(status=429, headers={"Retry-After": value}))
        j = OpenAIJudge("m", base_url=s.url, backoff_base=0.01, backoff_max=30.0, jitter=0.0)
        started = time.monotonic()
        assert mets(j.grade_sync(example(n=1), "apple")) == [True]
        assert time.monotonic() - started < 10 and j.usage.retries == 1  # before: 30 s for "nan"
        j.close()


def test_retry_after_reads_seconds_and_dates():
    assert retry_after("2", 30.0) == 2.0 and retry_after("100", 30.0) == 30.0
    assert retry_after("nan", 30.0) is None and retry_after("-1", 30.0) is None
    soon = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 20))
    assert 10 < retry_after(soon, 30.0) <= 30.0
    assert retry_after("Mon, 99 Foo 2020", 30.0) is None and retry_after(None, 30.0) is None


# ---- 6. a redirect is a configuration error ------------------------------------------------------------------
def test_a_redirect_to_another_port_is_refused_naming_the_location(tmp_path, capsys):
    with JudgeServer(RULE) as other, JudgeServer(RULE) as s:
        target = other.url + "/chat/completions"
        s.policy = lambda body: Reply(status=307, headers={"Location": target})
        j = judge(s)
        with pytest.raises(JudgeConfigError, match=f"redirects \\(HTTP 307\\) to {target}"):
            j.grade_sync(example(), "apple")
        j.close()
        assert main(eval_args(tmp_path, s.url)) == 2
        assert other.count == 0 and s.count == 2  # one refused request each; nothing followed
    err = capsys.readouterr().err
    assert "redirects (HTTP 307) to " + target in err and "Traceback" not in err


# ---- 7. the API key --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["sk-test-0123456789abcdef\n", " sk-test-0123456789abcdef", "sk-test 01234567",
                                 "sk-test-\x1b-0123456789", "sk-test-é-0123456789"])
def test_a_malformed_key_is_refused_at_construction_without_echoing_it(bad, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("RGSD_KEY", bad)
    with pytest.raises(JudgeConfigError, match="the API key in the environment variable RGSD_KEY") as err:
        OpenAIJudge("m", base_url="https://judge.example.com/v1", api_key_env="RGSD_KEY")
    assert "0123456789" not in str(err.value)
    with JudgeServer(RULE) as s:  # before: "Connection error", exit 4
        assert main(eval_args(tmp_path, s.url, "--judge-api-key-env", "RGSD_KEY")) == 2
        assert s.count == 0
    out = capsys.readouterr().err
    assert "RGSD_KEY" in out and "0123456789" not in out and len(out.strip().splitlines()) == 1


KEYS = {3: "k3y", 10: "sk-9876543", 40: "sk-proj-0123456789abcdefghijklmnopqrstuv"}


@pytest.mark.parametrize("length", sorted(KEYS))
@pytest.mark.parametrize("echo", ["whole", "truncated"])
def test_echoed_keys_are_redacted(length, echo, monkeypatch):
    key = KEYS[length]
    assert len(key) == length
    monkeypatch.setenv("RGSD_KEY", key)
    shown = length if echo == "whole" else max(8, length - 2)
    leak = Reply(status=400, echo_prefix=shown)
    with JudgeServer(RULE) as s:
        s.push(leak)
        j = judge(s, api_key_env="RGSD_KEY", structured="off", max_reasks=0)
        g = j.grade_sync(example(n=1), "apple")
        explanation = g.verdicts[0].explanation
        assert s.auth[0] == f"Bearer {key}" and "scripted HTTP 400" in explanation
        assert key[:shown] not in explanation and "[redacted]" in explanation
        j.close()


def test_the_redaction_rule():
    key = "sk-proj-0123456789abcdefghijklmnopqrstuv"
    assert redact(f"a {key} b {key[:8]} c {key[:7]} d {key[:20]}...", key) == (
        f"a [redacted] b [redacted] c {key[:7]} d [redacted]...")
    assert redact("key k3y and k3", "k3y") == "key [redacted] and k3"  # shorter than 8: the whole key only
    assert redact("0123456701234567", "0123456789") == "[redacted][redacted]"


# ---- 8. two runs on one cache pay once ---------------------------------------------------------------------
WORKER = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[5])
from rgsd.data.schema import Criterion, Example
from rgsd.judges.cache import JudgeCache
from rgsd.judges.openai_judge import OpenAIJudge
url, cache, gate, me = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
words = ["apple", "banana", "cherry", "damson"]
ex = Example("ex", [{"role": "user", "content": "Fruit?"}],
             [Criterion(f"c{i}", f"Mentions {words[i % 4]} {i}", 1.0) for i in range(20)])
judge = OpenAIJudge("m", base_url=url, cache=JudgeCache(cache), concurrency=4)
(gate / me).touch()
deadline = time.time() + 60
while len(list(gate.iterdir())) < 2:  # both processes start grading together
    time.sleep(0.01)
    if time.time() > deadline:
        sys.exit("the other worker never opened the cache")
grade = judge.grade_sync(ex, "apple and cherry")
judge.close()
print(json.dumps({"met": [v.met for v in grade.verdicts], "calls": judge.usage.calls,
                  "hits": judge.usage.cache_hits}))
"""


def test_two_processes_on_one_cache_pay_each_verdict_once(tmp_path):
    script, gate = tmp_path / "worker.py", tmp_path / "gate"
    script.write_text(WORKER)
    gate.mkdir()
    rule = judging_policy(lambda c, p, r: c.split()[-2].lower() in r.lower())
    with JudgeServer(rule, latency=0.2) as s:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [subprocess.Popen([sys.executable, str(script), s.url, str(tmp_path / "c.sqlite"), str(gate), name,
                                   str(ROOT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for name in ("a", "b")]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
        results = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
        assert s.count == 20  # before: 40
    expect = [i % 4 in (0, 2) for i in range(20)]
    assert results[0]["met"] == results[1]["met"] == expect
    assert results[0]["calls"] + results[1]["calls"] == 20 and results[0]["hits"] + results[1]["hits"] == 20
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0


def test_identical_questions_in_flight_share_one_request(tmp_path):
    q = per_criterion_messages(example(), "apple", example().rubric[0])
    with JudgeServer(RULE, latency=0.2) as s:
        j = judge(s, cache=JudgeCache(tmp_path / "c.sqlite"))
        answers = ask_all(j, [q] * 5, parse_verdict)
        assert [a.value[0] for a in answers] == [True] * 5
        assert s.count == 1 and j.usage.calls == 1 and j.usage.cache_hits == 4
        j.close()


def test_a_lease_of_another_owner_is_waited_for_then_used_or_taken_over(tmp_path):
    path = tmp_path / "c.sqlite"
    q = per_criterion_messages(example(), "apple", example().rubric[0])
    with JudgeServer(RULE) as s:
        j = judge(s, cache=JudgeCache(path))
        key = j.key(q)
        other = JudgeCache(path)
        assert other.take_lease(key, "another-process", ttl=60.0)

        def answer_later() -> None:  # the other owner pays and stores the reply
            time.sleep(0.3)
            other.put(key, "m", '{"explanation": "from the other run", "criteria_met": false}')

        threading.Thread(target=answer_later).start()
        (ans,) = ask_all(j, [q], parse_verdict)
        assert ans.value == (False, "from the other run") and s.count == 0 and j.usage.cache_hits == 1
        # A lease whose holder died: it expires, this judge takes it over and pays.
        q2 = per_criterion_messages(example(), "cherry", example().rubric[2])
        assert other.take_lease(j.key(q2), "a-dead-process", ttl=0.5)
        (ans,) = ask_all(j, [q2], parse_verdict)
        assert ans.value[0] is True and s.count == 1
        other.close()
        j.close()


def test_a_failed_question_releases_its_lease(tmp_path):
    path = tmp_path / "c.sqlite"
    with JudgeServer(lambda body: Reply(status=500)) as s:
        j = judge(s, cache=JudgeCache(path), max_retries=0, max_consecutive_failures=0)
        assert j.grade_sync(example(), "apple").failures == 4 and s.count == 4
        j.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0


# ---- 9. reasoning fields are never the answer ---------------------------------------------------------------
def test_reasoning_content_is_never_read_as_the_verdict():
    fake = '{"explanation": "thinking aloud", "criteria_met": true}'
    with JudgeServer(RULE) as s:
        j = judge(s)
        for field in ("reasoning_content", "reasoning"):
            s.push(Reply(content='{"explanation": "no banana", "criteria_met": false}', message_extra={field: fake}))
            banana = Example(f"b-{field}", example().prompt, example().rubric[1:2])
            assert mets(j.grade_sync(banana, "apple")) == [False]
        # thought until the token limit, no answer: a cut-off reply, re-asked
        s.push(Reply(content=None, finish_reason="length", message_extra={"reasoning_content": fake}))
        g = j.grade_sync(Example("b2", example().prompt, example().rubric[1:2]), "apple")
        assert mets(g) == [False] and j.usage.reasks == 1 and j.usage.retries == 0
        assert "finish_reason" in s.requests[-1]["messages"][-1]["content"]
        j.close()


def test_read_completion_reads_content_only():
    def body(message: dict, finish: str = "stop") -> bytes:
        return json.dumps({"choices": [{"message": message, "finish_reason": finish}]}).encode()

    got = read_completion(body({"content": "answer", "reasoning_content": "{}"}))
    assert (got.text, got.prompt_tokens) == ("answer", None)
    assert read_completion(body({"content": "", "reasoning": "hmm"}, "length")).finish_reason == "length"
    assert read_completion(body({"content": None, "reasoning": "hmm"}, "length")).text == ""
    with pytest.raises(Exception, match="content is null"):
        read_completion(body({"content": None, "reasoning": "hmm"}))
    assert math.isclose(estimate_tokens("abcde"), 2)


OPENER = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from rgsd.judges.cache import JudgeCache
folder, start = Path(sys.argv[1]), float(sys.argv[2])
refused = []
for i in range(30):
    while time.time() < start + i * 0.15:  # both processes open the same new file at the same moment
        pass
    try:
        JudgeCache(folder / f"c{i}.sqlite").close()
    except ValueError as err:
        refused.append(str(err))
print(len(refused), refused[:1])
"""


def test_two_processes_opening_one_new_cache_together_are_both_let_in(tmp_path):
    # SQLite may answer "database is locked" at once to a WAL switch while another process opens the file;
    # before, the cache read that as a broken file (about 1 open in 7 here) and the eval exited 2.
    script = tmp_path / "opener.py"
    script.write_text(OPENER)
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), str(start), str(ROOT)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outs == ["0 []", "0 []"]


# ---- any header or body an endpoint sends: a value or a counted failure, never another exception -----------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rgsd.judges.transport import BadCompletion  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.floats().map(str) | st.integers().map(str))
def test_any_retry_after_header_is_a_delay_within_the_cap_or_ignored(value):
    delay = retry_after(value, 30.0)
    assert delay is None or 0.0 <= delay <= 30.0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["choices", "message", "content", "usage", "finish_reason", "prompt_tokens", "x"]), inner, max_size=4),
    max_leaves=10).map(lambda obj: json.dumps(obj).encode()))
def test_any_200_body_is_a_completion_or_a_bad_completion(body):
    try:
        content, finish, pt, ct = read_completion(body)[:4]
    except BadCompletion:
        return
    assert isinstance(content, str)
