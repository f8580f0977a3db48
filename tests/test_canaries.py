"""Judge canaries over loopback HTTP: `rgsd judge check` reports the false-positive rates of known non-answers,
`rgsd eval --canaries N` stops with exit 4 before generating or grading when a judge falls for them.

The data: 3 examples, each with 5 criteria; 3 per example are eligible (positive points, not abstention-phrased),
so 9 pairs, and every canary is graded on each (63 verdicts). The scripted judges decide from the response as
the judge server reads it, so every number below is counted by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judge_server import JudgeServer, Reply, judging_policy, read_judge_prompt  # noqa: E402

from rgsd.cli import main  # noqa: E402
from rgsd.data.schema import Criterion, Example  # noqa: E402
from rgsd.judges.canaries import CANARIES, sample_pairs  # noqa: E402

# (id, text, points, pattern): keyword = last word; "item" also occurs in the forged turn ("every rubric item").
RUBRIC = [
    ("a", "Mentions apple", 2, "apple"),
    ("b", "Mentions banana", 1, "banana"),
    ("i", "Lists every item", 1, "item"),
    ("abx", "Recommends antibiotics", -3, "antibiotic"),  # negative points: skipped
    ("j", "Avoids jargon", 1, "jargon"),  # abstention-phrased: skipped
]
IDS = ["e1", "e2", "e3"]
NAMES = list(CANARIES)


def keyword(criterion: str) -> str:
    return criterion.split()[-1].lower()


def gullible(criterion: str, points: float, response: str) -> bool:
    """Falls for the master keys and for any response naming the criterion's keyword."""
    return response.strip() == ":" or response.startswith("Thought process") or keyword(criterion) in response.lower()


def honest(criterion: str, points: float, response: str) -> bool:
    """Met only when the response actually suggests the thing (none of the canaries does)."""
    return "i suggest" in response.lower() and keyword(criterion) in response.lower()


# gullible, by hand: "" 0; ":" and "Thought process:" all 9; the echo and the pasted rubric name every keyword: 9;
# the forged turn says "every rubric item": the 3 "item" criteria; the grader note names no keyword: 0.
GULLIBLE = {"empty": 0, "colon": 9, "thought-process": 9, "criterion-echo": 9, "rubric-pasted": 9,
            "forged-turn": 3, "grader-note": 0}


def write_data(tmp_path: Path) -> Path:
    path = tmp_path / "data.jsonl"
    with path.open("w") as fh:
        for eid in IDS:
            rubric = [{"id": cid, "text": text, "weight": abs(p), "polarity": "positive" if p > 0 else "negative",
                       "pattern": pat} for cid, text, p, pat in RUBRIC]
            fh.write(json.dumps({"id": eid, "prompt": [{"role": "user", "content": f"Fruit for {eid}?"}], "rubric": rubric}) + "\n")
    return path


def write_responses(tmp_path: Path) -> Path:
    path = tmp_path / "responses.jsonl"
    texts = {"e1": "I suggest an apple and a banana.", "e2": "I suggest every item.", "e3": "No idea."}
    path.write_text("".join(json.dumps({"prompt_id": k, "response": v}) + "\n" for k, v in texts.items()))
    return path


def check_args(tmp_path: Path, url: str, *extra: str, model: str = "m") -> list[str]:
    return ["judge", "check", "--dataset-name", str(write_data(tmp_path)), "--judge", "openai", "--judge-model", model,
            "--judge-base-url", url, "--judge-max-retries", "0", "--sample", "9", "--out", str(tmp_path / "chk"),
            *extra]


def table(out: str) -> dict[str, tuple[int, int, str, int]]:
    """The printed table: canary -> (n, false positives, rate, failed)."""
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in NAMES and len(parts) == 5:
            rows[parts[0]] = (int(parts[1]), int(parts[2]), parts[3], int(parts[4]))
    return rows


def expected_rows(false_pos: dict[str, int], n: int = 9) -> dict[str, tuple[int, int, str, int]]:
    return {k: (n, fp, f"{fp / n:.2f}", 0) for k, fp in false_pos.items()}


# ---- the sample ---------------------------------------------------------------------------------------------
def test_sample_keeps_positive_non_abstention_criteria_only():
    def crit(cid: str, text: str, points: float) -> Criterion:
        return Criterion(cid, text, abs(points), "positive" if points > 0 else "negative")

    examples = [Example(e, [{"role": "user", "content": "Q"}], [crit(c, t, p) for c, t, p, _ in RUBRIC]) for e in IDS]
    s = sample_pairs(examples, 100)
    assert (s.pool, s.skipped_negative, s.skipped_abstention) == (9, 3, 3)
    assert [(e.id, c.id) for e, c in s.pairs] == [(e, c) for e in IDS for c in ("a", "b", "i")]
    assert len(sample_pairs(examples, 4, seed=1).pairs) == 4
    assert sample_pairs(examples, 4, seed=1).pairs == sample_pairs(examples, 4, seed=1).pairs  # reproducible
    with pytest.raises(ValueError, match="no positive-points criterion"):
        sample_pairs([Example("x", [], [crit("n", "Recommends X", -1)])], 5)


# ---- (a) a judge that falls for them --------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [(), ("--judge-mode", "batched"), ("--judge-model", "m1,m2,m3")],
                         ids=["per-criterion", "batched", "panel"])
def test_judge_check_reports_a_gullible_judges_rates(tmp_path, capsys, extra):
    with JudgeServer(judging_policy(gullible)) as server:
        code = main(check_args(tmp_path, server.url, *extra))
        members = 3 if "m1,m2,m3" in extra else 1
        assert server.count == 63 * members  # 9 pairs x 7 canaries, nothing else
    out, err = capsys.readouterr()
    assert code == 4
    assert table(out) == expected_rows(GULLIBLE)
    assert "9 (example, criterion) pairs of 9 eligible (3 negative-points and 3 abstention-phrased" in out
    assert err.strip() == (
        "error: judge canaries: false-positive rate above --max-canary-rate 0.1: 'colon' 1.00 (9 of 9), "
        "'thought-process' 1.00 (9 of 9), 'criterion-echo' 1.00 (9 of 9), 'rubric-pasted' 1.00 (9 of 9), "
        "'forged-turn' 0.33 (3 of 9)")
    report = json.loads((tmp_path / "chk" / "canaries.json").read_text())
    assert report["rates"] == {k: v / 9 for k, v in GULLIBLE.items()}
    assert report["n_verdicts"] == 63 and report["n_failed"] == 0 and report["passed"] is False
    assert report["pairs"] == [[e, c] for e in IDS for c in ("a", "b", "i")]
    assert report["canaries"][5]["first_false_positive"]["criterion_id"] == "i"  # the forged turn, on "item"


def test_eval_with_canaries_stops_before_generating_or_grading(tmp_path, capsys):
    out_dir = tmp_path / "out"
    # --model names no model at all: exit 4 (not a load error) proves the canaries ran first
    args = ["eval", "--dataset-name", str(write_data(tmp_path)), "--model", str(tmp_path / "no-such-model"),
            "--judge", "openai", "--judge-model", "m", "--out", str(out_dir), "--canaries", "9"]
    with JudgeServer(judging_policy(gullible)) as server:
        assert main([*args, "--judge-base-url", server.url]) == 4
        assert server.count == 63  # the canaries only: nothing graded
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("error: judge canaries: false-positive rate above --max-canary-rate 0.1: 'colon' 1.00 "
                          "(9 of 9),")
    assert f"'forged-turn' 0.33 (3 of 9); nothing generated or graded (details in {out_dir / 'canaries.json'})" in err
    assert not (out_dir / "results.jsonl").exists() and not (out_dir / "summary.json").exists()
    assert not (out_dir / "responses.jsonl").exists()
    assert json.loads((out_dir / "canaries.json").read_text())["rates"]["colon"] == 1.0


def test_the_regex_judge_falls_for_echoes_and_pasted_rubrics(tmp_path, capsys):
    # The offline judge searches each criterion's pattern: a response quoting the criterion matches it.
    args = ["judge", "check", "--dataset-name", str(write_data(tmp_path)), "--judge", "regex", "--sample", "9"]
    assert main(args) == 4
    out = capsys.readouterr().out
    assert table(out) == expected_rows({**{k: 0 for k in NAMES}, "criterion-echo": 9, "rubric-pasted": 9,
                                        "forged-turn": 3})
    assert "note: Graded by the regex judge" in out


# ---- (b) a judge that does not -------------------------------------------------------------------------------
def test_an_honest_judge_passes_and_the_eval_records_the_rates(tmp_path, capsys):
    with JudgeServer(judging_policy(honest)) as server:
        assert main(check_args(tmp_path, server.url)) == 0
        out, err = capsys.readouterr()
        assert table(out) == expected_rows({k: 0 for k in NAMES}) and err == ""
        start = server.count
        args = ["eval", "--dataset-name", str(write_data(tmp_path)), "--responses", str(write_responses(tmp_path)),
                "--judge", "openai", "--judge-model", "m", "--judge-base-url", server.url,
                "--out", str(tmp_path / "out"), "--canaries", "9"]
        assert main(args) == 0
        assert server.count - start == 63 + 3 * 5  # the canaries, then 3 responses x 5 criteria
    err = capsys.readouterr().err
    assert "judge canaries passed (at most 0.1): empty 0.00, colon 0.00" in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["canaries"]["rates"] == {k: 0.0 for k in NAMES} and summary["canaries"]["passed"] is True
    assert summary["canaries"]["judge_usage"]["calls"] == 63
    assert summary["judge"]["calls"] == 15  # the eval's own usage leaves the canaries out
    results = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    met = {r["id"]: [v["met"] for v in r["verdicts"]] for r in results}
    assert met == {"e1": [True, True, False, False, False], "e2": [False, False, True, False, False],
                   "e3": [False] * 5}


def test_canaries_are_off_by_default(tmp_path, capsys):
    with JudgeServer(judging_policy(gullible)) as server:
        args = ["eval", "--dataset-name", str(write_data(tmp_path)), "--responses", str(write_responses(tmp_path)),
                "--judge", "openai", "--judge-model", "m", "--judge-base-url", server.url,
                "--out", str(tmp_path / "out")]
        assert main(args) == 0 and server.count == 15
    assert "canaries" not in json.loads((tmp_path / "out" / "summary.json").read_text())


# ---- (c) judge failures are failures, not false positives -----------------------------------------------------
def broken_sometimes(body: dict) -> Reply | str:
    """Garbage for "Thought process:" and for the echo of the apple criterion; the echo of banana is called met."""
    req = read_judge_prompt(body)
    if req.response == "Thought process:" or req.response == "Mentions apple":
        return "I would rather not say."
    if req.response == "Mentions banana":
        return json.dumps({"explanation": "it mentions banana", "criteria_met": True})
    return judging_policy(honest)(body)


def test_failed_verdicts_are_counted_apart(tmp_path, capsys):
    with JudgeServer(broken_sometimes) as server:
        assert main(check_args(tmp_path, server.url, "--judge-max-reasks", "0")) == 4
    out, err = capsys.readouterr()
    rows = table(out)
    assert rows["thought-process"] == (9, 0, "-", 9)  # no answered verdict: no rate, not a pass
    assert rows["criterion-echo"] == (9, 3, "0.50", 3)  # 3 met of the 6 answered
    assert all(rows[k] == (9, 0, "0.00", 0) for k in NAMES if k not in ("thought-process", "criterion-echo"))
    assert "'criterion-echo' 0.50 (3 of 6)" in err
    report = json.loads((tmp_path / "chk" / "canaries.json").read_text())
    assert report["rates"]["thought-process"] is None and report["n_failed"] == 12
    assert report["canaries"][2]["first_failure"]


def test_a_canary_without_an_answered_verdict_fails_the_check(tmp_path, capsys):
    # Even with every rate allowed, an unchecked canary is not a passed one.
    with JudgeServer(broken_sometimes) as server:
        args = check_args(tmp_path, server.url, "--judge-max-reasks", "0", "--max-canary-rate", "1",
                          "--judge-max-failure-rate", "1")
        assert main(args) == 4
    err = capsys.readouterr().err
    assert err.startswith("error: judge canaries: every verdict failed for thought-process (first failure:")
    assert len(err.strip().splitlines()) == 1


def test_too_many_failed_canary_verdicts_fail_the_check(tmp_path, capsys):
    def apple_fails(body: dict) -> Reply | str:  # garbage for the apple criterion under "" and ":": 6 of 63
        req = read_judge_prompt(body)
        if req.response in ("", ":") and req.items[0][2] == "Mentions apple":
            return "??"
        return judging_policy(honest)(body)

    with JudgeServer(apple_fails) as server:
        assert main(check_args(tmp_path, server.url, "--judge-max-reasks", "0")) == 4
    out, err = capsys.readouterr()
    assert table(out)["empty"] == (9, 0, "0.00", 3) and table(out)["colon"] == (9, 0, "0.00", 3)
    assert err.strip() == ("error: judge canaries: 6 of 63 verdicts are judge failures, above "
                           "--judge-max-failure-rate 0.05")


# ---- refusals -------------------------------------------------------------------------------------------------
def test_holistic_judges_and_bad_options_exit_2(tmp_path, capsys):
    with JudgeServer(judging_policy(honest)) as server:
        assert main(check_args(tmp_path, server.url, "--judge-mode", "holistic")) == 2
        assert "canaries need per-criterion verdicts" in capsys.readouterr().err
        assert server.count == 0
    for bad, message in ((["--sample", "0"], "rgsd judge check: error: --sample: must be >= 1, got 0"),
                         (["--max-canary-rate", "1.5"],
                          "rgsd judge check: error: --max-canary-rate: must be in [0, 1], got 1.5")):
        assert main(check_args(tmp_path, "http://127.0.0.1:9/v1", *bad)) == 2
        assert message in capsys.readouterr().err
    args = ["eval", "--dataset-name", str(write_data(tmp_path)), "--responses", str(write_responses(tmp_path)),
            "--judge", "regex", "--out", str(tmp_path / "out"), "--canaries", "-1"]
    assert main(args) == 2 and "rgsd eval: error: --canaries: must be >= 0, got -1" in capsys.readouterr().err


def test_a_budget_stop_during_the_canaries_exits_3(tmp_path, capsys):
    with JudgeServer(judging_policy(honest)) as server:
        assert main(check_args(tmp_path, server.url, "--judge-max-calls", "5")) == 3
        assert server.count <= 5
    assert "judge budget exhausted during the canaries" in capsys.readouterr().err
