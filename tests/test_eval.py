"""Evaluation: scores against hand computation, cache/budget through evaluate and the CLI, responses files,
the tiny model end to end, and the HealthBench physician answers against the loopback judge."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judge_server import POLICIES, JudgeServer, judging_policy  # noqa: E402

from rgsd.cli import main  # noqa: E402
from rgsd.data.schema import Criterion, Example  # noqa: E402
from rgsd.evaluate.responses import match_responses, read_responses  # noqa: E402
from rgsd.evaluate.run import evaluate  # noqa: E402
from rgsd.judges.cache import JudgeCache  # noqa: E402
from rgsd.judges.openai_judge import OpenAIJudge  # noqa: E402
from rgsd.judges.regex_judge import RegexJudge  # noqa: E402
from rgsd.judges.usage import Budget  # noqa: E402

HEALTHBENCH = Path(__file__).resolve().parents[2] / "shared/data/healthbench"
FAST = dict(backoff_base=0.001, backoff_max=0.01, jitter=0.0)


def crit(cid: str, word: str, points: float, tags: tuple[str, ...] = ()) -> Criterion:
    pol = "positive" if points > 0 else "negative"
    return Criterion(cid, f"Mentions {word}", abs(points), pol, tags=list(tags), pattern=rf"\b{word}\b")


def examples() -> list[Example]:
    q = [{"role": "user", "content": "Name some fruit."}]
    return [
        Example(
            "A",
            q,
            [
                crit("a1", "apple", 3, ("axis:acc",)),
                crit("a2", "banana", 2, ("axis:acc",)),
                crit("a3", "cherry", -4),
            ],
            metadata={"example_tags": ["theme:t"]},
        ),
        Example("B", q, [crit("b1", "damson", 5, ("axis:acc",)), crit("b2", "elder", 5)]),
        Example("C", q, [crit("c1", "apple", 1), crit("c2", "banana", -1)]),
    ]


RESPONSES = ["apple and cherry", "elder", "banana apple"]
# Verdicts: A = T,F,T -> HB (3-4)/5 = -0.2, normalized 3/9; B = F,T -> 0.5, 0.5; C = T,T -> (1-1)/1 = 0, 1/2.
HB = [-0.2, 0.5, 0.0]
NORM = [3 / 9, 0.5, 0.5]
# axis:acc: A's items a1,a2 -> 3/5; B's item b1 -> 0/5; mean 0.3. theme:t: all of A -> -0.2 -> clipped 0.
TAGS = {"axis:acc": 0.3, "theme:t": 0.0}


def word_rule(criterion: str, points: float, response: str) -> bool:
    return criterion.split()[-1].lower() in response.lower().split()


@pytest.fixture
def server():
    with JudgeServer(judging_policy(word_rule)) as s:
        yield s


def check_scores(summary: dict) -> None:
    assert summary["n"] == 3
    assert summary["score"] == pytest.approx(sum(HB) / 3)
    assert summary["score_normalized"] == pytest.approx(sum(NORM) / 3)
    assert {t: v["score"] for t, v in summary["tags"].items()} == pytest.approx(TAGS)
    assert summary["score_std"] > 0


@pytest.mark.parametrize("mode", ["per-criterion", "batched"])
def test_evaluate_matches_hand_computation(server, mode):
    judge = OpenAIJudge("m", base_url=server.url, mode=mode, **FAST)
    result = evaluate(examples(), RESPONSES, judge)
    check_scores(result.summary)
    assert [r["score"] for r in result.records] == pytest.approx(HB)
    assert [r["score_normalized"] for r in result.records] == pytest.approx(NORM)
    assert result.records[0]["verdicts"][2] == {
        "criterion_id": "a3",
        "criterion": "Mentions cherry",
        "points": -4.0,
        "met": True,
        "explanation": "scripted rule",
    }
    assert result.summary["judge"]["calls"] == (7 if mode == "per-criterion" else 3) == server.count
    assert result.summary["mean_response_tokens"] == pytest.approx((3 + 1 + 2) / 3)
    assert result.complete and "note" not in result.summary


def test_evaluate_works_inside_a_running_event_loop(server):
    # A notebook cell runs inside an event loop: evaluate() must still grade over HTTP and give the same scores.
    import asyncio

    async def cell():
        judge = OpenAIJudge("m", base_url=server.url, mode="batched", **FAST)
        return evaluate(examples(), RESPONSES, judge)

    result = asyncio.run(cell())
    check_scores(result.summary)
    assert [r["score_normalized"] for r in result.records] == pytest.approx(NORM)


def test_holistic_mode_scores_the_mapped_ratings(server):
    # The scripted rating is 1 + round(9 * share of |points| judged the good way):
    # A: 3/9 -> 4; B: 5/10 -> 1 + round(4.5) = 5; C: 1/2 -> 5. Mapped (r - 1) / 9.
    result = evaluate(examples(), RESPONSES, OpenAIJudge("m", base_url=server.url, mode="holistic", **FAST))
    assert [r["score"] for r in result.records] == pytest.approx([3 / 9, 4 / 9, 4 / 9])
    assert result.summary["score"] == pytest.approx(11 / 27) and result.summary["judge"]["calls"] == 3
    assert "holistic" in result.summary["scoring"] and result.summary["judge_mode"] == "holistic"


def test_regex_judge_gives_the_same_scores_and_says_what_it_is():
    result = evaluate(examples(), RESPONSES, RegexJudge())
    check_scores(result.summary)
    assert result.summary["judge_name"] == "regex" and "not an LLM judge" in result.summary["note"]


def test_failures_are_excluded_from_scores(server):
    # The "banana" items always fail (HTTP 400 is not retried): A scores (3-4)/3, C scores 1/1.
    good = judging_policy(word_rule)
    from judge_server import Reply, read_judge_prompt

    server.policy = lambda b: (
        Reply(status=400) if read_judge_prompt(b).items[0][2].endswith("banana") else good(b)
    )
    result = evaluate(examples(), RESPONSES, OpenAIJudge("m", base_url=server.url, **FAST))
    assert [r["score"] for r in result.records] == pytest.approx([-1 / 3, 0.5, 1.0])
    assert result.summary["n_failures"] == 2 == result.summary["judge"]["failures"]
    assert result.summary["score"] == pytest.approx((-1 / 3 + 0.5 + 1.0) / 3)


def test_budget_stop_writes_partial_results_and_resume_pays_once(server, tmp_path):
    cache = tmp_path / "cache.sqlite"
    judge = OpenAIJudge(
        "m", base_url=server.url, concurrency=1, cache=JudgeCache(cache), budget=Budget(max_calls=4), **FAST
    )
    partial = evaluate(examples(), RESPONSES, judge)
    assert not partial.complete and server.count == 4
    assert "call budget exhausted" in partial.summary["budget_stop"] and partial.summary["pending_ids"]
    assert partial.summary["n_graded"] + len(partial.summary["pending_ids"]) == 3
    partial.write(tmp_path / "partial")
    assert "Partial results" in (tmp_path / "partial/report.md").read_text()
    judge2 = OpenAIJudge(
        "m", base_url=server.url, cache=JudgeCache(cache), budget=Budget(max_calls=50), **FAST
    )
    full = evaluate(examples(), RESPONSES, judge2)
    assert full.complete and server.count == 7  # every verdict paid exactly once over both runs
    assert full.summary["judge"]["cache_hits"] == 4 and full.summary["judge"]["calls"] == 3
    check_scores(full.summary)


def write_data(tmp_path: Path) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in examples()))
    return path


def write_responses(tmp_path: Path, rows: list[dict], name: str = "resp.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_eval_openai_judge_cache_and_budget(server, tmp_path, capsys):
    data = write_data(tmp_path)
    resp = write_responses(
        tmp_path,
        [{"prompt_id": i, "response": r} for i, r in zip("CAB", [RESPONSES[2], RESPONSES[0], RESPONSES[1]])],
    )
    out = tmp_path / "out"
    args = [
        "eval",
        "--dataset-name",
        str(data),
        "--responses",
        str(resp),
        "--judge",
        "openai",
        "--judge-model",
        "m",
        "--judge-base-url",
        server.url,
        "--out",
        str(out),
        "--judge-concurrency",
        "1",
    ]
    assert main(args + ["--judge-max-calls", "3"]) == 3
    assert "judge budget exhausted" in capsys.readouterr().err
    partial = json.loads((out / "summary.json").read_text())
    assert partial["complete"] is False and server.count == 3
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    check_scores(summary)
    assert server.count == 7 and summary["judge"]["cache_hits"] == 3
    assert summary["complete"] and summary["judge_name"] == "openai:m" and summary["response_length_unit"]
    assert main(args) == 0 and server.count == 7  # third run: all from the cache
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["A", "B", "C"] and records[1]["response"] == "elder"
    assert (out / "per_tag_scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "per_tag_scores.png" in report and "lowest-scoring" in report and "### A: score -0.200" in report


def test_responses_file_matching_and_errors(tmp_path):
    exs = examples()
    ordered = read_responses(write_responses(tmp_path, [{"response": r} for r in RESPONSES]))
    kept, resp, skipped = match_responses(exs, ordered, "r.jsonl")
    assert resp == RESPONSES and skipped == []
    with pytest.raises(ValueError, match="2 responses .* but 3 examples"):
        match_responses(exs, ordered[:2], "r.jsonl")
    by_id = read_responses(
        write_responses(tmp_path, [{"prompt_id": "B", "response": "x"}, {"prompt_id": "A", "response": "y"}])
    )
    with pytest.raises(ValueError, match="no response for 1 examples \\(C\\).*--skip-missing"):
        match_responses(exs, by_id, "r.jsonl")
    kept, resp, skipped = match_responses(exs, by_id, "r.jsonl", skip_missing=True)
    assert [e.id for e in kept] == ["A", "B"] and resp == ["y", "x"] and skipped == ["C"]
    cases = {
        "dup": (
            [{"prompt_id": "A", "response": "x"}, {"prompt_id": "A", "response": "y"}],
            r"dup.jsonl:2: prompt_id: duplicate 'A' \(first on line 1\)",
        ),
        "unknown": (
            [{"prompt_id": "Z", "response": "x"}],
            r"unknown.jsonl:1: prompt_id: 'Z' is not an example id",
        ),
        "mixed": (
            [{"prompt_id": "A", "response": "x"}, {"response": "y"}],
            r"mixed.jsonl:2: prompt_id: missing",
        ),
    }
    for name, (rows, pattern) in cases.items():
        path = write_responses(tmp_path, rows, f"{name}.jsonl")
        with pytest.raises(ValueError, match=pattern):
            match_responses(exs, read_responses(path), path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"response": "ok"}\n{"response": 3}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: response: expected a string"):
        read_responses(bad)
    bad.write_text('{"response": "ok"}\n{oops\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: record: malformed JSON"):
        read_responses(bad)


def test_cli_reports_bad_input_with_exit_code_2(tmp_path, capsys):
    data = write_data(tmp_path)
    resp = write_responses(tmp_path, [{"response": "x"}])
    assert (
        main(["eval", "--dataset-name", str(data), "--responses", str(resp), "--judge", "regex",
              "--out", str(tmp_path / "o")])
        == 2
    )
    assert "1 responses (matched by line order, no prompt_id) but 3 examples" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rgsd.models import tiny_model

    model, tok = tiny_model()
    path = tmp_path_factory.mktemp("tiny") / "model"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_cli_eval_with_a_tiny_model_and_the_regex_judge(tiny_dir, tmp_path):
    data = write_data(tmp_path)
    out = tmp_path / "out"
    code = main(["eval", "--dataset-name", str(data), "--model", str(tiny_dir), "--judge", "regex",
                 "--max-new-tokens", "3", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["n_examples"] == 3 and summary["judge_name"] == "regex" and "pattern stand-in" not in summary
    )
    assert "not an LLM judge" in summary["note"] and summary["response_length_unit"].startswith(
        "model tokens"
    )
    assert 1 <= summary["mean_response_tokens"] <= 3
    generated = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert [g["prompt_id"] for g in generated] == ["A", "B", "C"]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["response"] for r in records] == [g["response"] for g in generated]
    assert "not an LLM judge" in (out / "report.md").read_text()


@pytest.mark.skipif(not HEALTHBENCH.exists(), reason="shared HealthBench data not present")
def test_healthbench_physician_answers_against_the_loopback_judge(tmp_path):
    rows, with_answer = [], []
    for line in (HEALTHBENCH / "healthbench_sample30.jsonl").read_text().splitlines()[:6]:
        rec = json.loads(line)
        ideal = rec.get("ideal_completions_data")
        if ideal:
            rows.append({"prompt_id": rec["prompt_id"], "response": ideal["ideal_completion"]})
            with_answer.append(rec["prompt_id"])
    resp = write_responses(tmp_path, rows)
    out = tmp_path / "hb"
    with JudgeServer(POLICIES["keyword"](0.5)) as server:
        code = main(["eval", "--dataset-name", str(HEALTHBENCH / "healthbench_sample30.jsonl"), "--limit", "6",
                     "--responses", str(resp), "--skip-missing", "--judge", "openai",
                     "--judge-base-url", server.url, "--judge-model", "keyword", "--judge-mode", "batched",
                     "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == len(with_answer) and len(summary["skipped_no_response"]) == 6 - len(with_answer)
    assert summary["judge"]["calls"] == len(with_answer) and summary["judge"]["failures"] == 0
    assert 0.0 <= summary["score"] <= 1.0 and any(t.startswith("axis:") for t in summary["tags"])
