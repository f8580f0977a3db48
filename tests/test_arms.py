"""The pre-flight arms (rgsd/evaluate/arms.py): lifts and per-criterion rows by hand, the shuffled arm's chats and
grading, one batched generation pass, the verdict's thresholds, the CLI end to end, and ``rgsd train --preflight``."""

from __future__ import annotations

import itertools
import json
import logging
import os
from dataclasses import replace

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from conftest import DEMO_TRAIN  # noqa: E402

from rgsd.cli import main  # noqa: E402
from rgsd.data.schema import Criterion, Example  # noqa: E402
from rgsd.evaluate import arms as arms_mod  # noqa: E402
from rgsd.evaluate.arms import (  # noqa: E402
    ARMS,
    criteria_rows,
    lifts,
    newcombe,
    parse_arms,
    sample_arms,
    taught,
    verdict,
    wilson,
)
from rgsd.judges.regex_judge import RegexJudge  # noqa: E402
from rgsd.method.teacher_prompt import derangement  # noqa: E402


def rec(pid: str, score: float | None, verdicts: list[tuple[str, bool | None]] = ()) -> dict:
    return {"id": pid, "score_normalized": score,
            "verdicts": [{"criterion_id": c, "criterion": c, "points": 1.0, "met": m} for c, m in verdicts]}


# per arm, prompt -> the samples' normalized scores (None = a judge failure, left out)
CANNED = {
    "none": {"a": [0.0, 0.2], "b": [0.5, 0.5], "c": [0.1, None]},
    "neutral": {"a": [0.1, 0.1], "b": [0.4, 0.6], "c": [0.3, 0.1]},
    "shuffled": {"a": [0.4, 0.2], "b": [0.5, 0.7], "c": [0.2, 0.2]},
    "rubric": {"a": [0.6, 0.4], "b": [0.5, 0.9], "c": [0.9, 0.5]},
}


def canned_records() -> dict[str, list[dict]]:
    return {arm: [rec(pid, s) for pid, ss in by.items() for s in ss] for arm, by in CANNED.items()}


def sign_flip_by_hand(d: list[float]) -> float:
    obs = sum(d) / len(d)
    pats = list(itertools.product((1, -1), repeat=len(d)))
    return sum(sum(s * x for s, x in zip(p, d)) / len(d) >= obs - 1e-12 for p in pats) / len(pats)


def test_lifts_by_hand():
    # per-prompt means: none a .1 b .5 c .1 | neutral .1 .5 .2 | shuffled .3 .6 .2 | rubric .5 .7 .7
    hand = {"format": [0.0, 0.0, 0.1], "list": [0.2, 0.1, 0.0], "rubric": [0.2, 0.1, 0.5], "total": [0.4, 0.2, 0.6]}
    got = lifts(canned_records())
    assert set(got) == {"format", "list", "rubric", "total"}
    for name, d in hand.items():
        assert got[name]["mean"] == pytest.approx(sum(d) / 3), name
        assert got[name]["n"] == 3
        assert got[name]["p_value"] == pytest.approx(sign_flip_by_hand(d)), name
        assert set(got[name]) >= {"mean", "ci95", "t_ci95", "p_value"}
    assert got["rubric"]["p_value"] == pytest.approx(1 / 8)  # all three up: only the observed pattern ties it
    partial = lifts({k: v for k, v in canned_records().items() if k in ("none", "rubric")})
    assert set(partial) == {"total"}


def test_verdict_thresholds():
    def s(mean, p, n=20):
        return {"mean": mean, "p_value": p, "n": n}

    assert "can teach these criteria" in verdict(s(0.02, 0.049), s(0.0, 0.9))
    assert "generic effect of a criteria list" in verdict(s(0.019, 0.01), s(0.05, 0.01))  # below +0.02
    assert "generic effect" in verdict(s(0.05, 0.06), s(0.05, 0.04))
    nothing = verdict(s(0.016, 0.28), s(0.01, 0.3))
    assert nothing.startswith("rubric-specific lift +0.016 (p 0.28)") and "nothing to teach" in nothing
    assert verdict(None, s(0.1, 0.01)).startswith("no verdict")
    assert "only 4 prompts: p cannot go below 0.0625" in verdict(s(0.3, 0.0625, 4), s(0.3, 0.0625, 4))


def test_newcombe_and_wilson_against_published_values():
    # Newcombe (1998), Stat Med 17:873, table II: 56/70 - 48/80, method 10 -> [0.0524, 0.3339]
    lo, hi = newcombe(56, 70, 48, 80)
    assert lo == pytest.approx(0.0524, abs=1e-4) and hi == pytest.approx(0.3339, abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)  # Newcombe (1998), Stat Med 17:857
    assert newcombe(1, 1, 0, 0) is None


def test_criteria_rows_by_hand():
    exs = [Example("p", [{"role": "user", "content": "q"}],
                   [Criterion("c1", "Says rest", 1.0), Criterion("c2", "Says antibiotics", 1.0, "negative")])]
    recs = {
        "none": [rec("p", 0.0, [("c1", False), ("c2", True)]), rec("p", 0.0, [("c1", False), ("c2", None)])],
        "shuffled": [rec("p", 0.0, [("c1", True), ("c2", True)]), rec("p", 0.0, [("c1", False), ("c2", True)])],
        "rubric": [rec("p", 1.0, [("c1", True), ("c2", False)]), rec("p", 1.0, [("c1", True), ("c2", False)])],
    }
    c1, c2 = criteria_rows(exs, recs)
    assert c1["met_rate"] == {"none": 0.0, "shuffled": 0.5, "rubric": 1.0} and c1["n"] == {"none": 2, "shuffled": 2,
                                                                                            "rubric": 2}
    assert c1["lift_vs_shuffled"]["mean"] == pytest.approx(0.5) and c1["lift_vs_none"]["mean"] == pytest.approx(1.0)
    assert c1["lift_vs_none"]["ci95"] == pytest.approx(newcombe(2, 2, 0, 2))
    assert c1["lift_vs_shuffled"]["ci95"] == pytest.approx(newcombe(2, 2, 1, 2))
    # Wilson 1/2 = [0.0945, 0.9055], 2/2 = [0.3424, 1]: 0.5 - sqrt(0.6576^2 + 0.4055^2), 0.5 + sqrt(0 + 0.4055^2)
    assert c1["lift_vs_shuffled"]["ci95"] == pytest.approx([-0.2726, 0.9055], abs=1e-3)
    assert c1["taught"] == "indistinguishable"  # two samples a side cannot show it
    assert c2["n"]["none"] == 1 and c2["met_rate"]["none"] == 1.0  # the judge failure is left out
    assert c2["lift_vs_shuffled"]["mean"] == pytest.approx(-1.0)
    assert c2["taught"] == ("taught" if newcombe(0, 2, 2, 2)[1] < 0 else "indistinguishable")  # a pitfall: down
    for polarity, ci, want in (("positive", [0.1, 0.5], "taught"), ("negative", [0.1, 0.5], "hurt"),
                               ("negative", [-0.5, -0.1], "taught"), ("positive", [-0.5, -0.1], "hurt"),
                               ("positive", [-0.1, 0.5], "indistinguishable")):
        assert taught({"polarity": polarity, "lift_vs_shuffled": {"ci95": ci}}) == want
    assert taught({"lift_vs_shuffled": None}) == "unknown"
    assert c1["interval"].startswith("newcombe")


def examples() -> list[Example]:
    def ex(i: int, n: int) -> Example:
        return Example(f"p{i}", [{"role": "user", "content": f"Question {i}?"}],
                       [Criterion(f"p{i}-c{j}", f"Criterion {j} of prompt {i}", 1.0, pattern=f"w{j}")
                        for j in range(n)])

    return [ex(0, 2), ex(1, 2), ex(2, 3), ex(3, 3), ex(4, 2)]


@pytest.fixture(scope="module")
def tiny():
    from rgsd.models import tiny_model

    return tiny_model(seed=3)


def test_sample_arms_one_pass_and_shuffled_never_reads_its_own_criteria(tiny, monkeypatch):
    import rgsd.evaluate.run as run_mod

    model, tok = tiny
    exs = examples()
    calls = []
    real = run_mod.generate_responses

    def spy(model, tok, items, **kw):
        calls.append(len(items))
        return real(model, tok, items, **kw)

    monkeypatch.setattr(run_mod, "generate_responses", spy)
    res = sample_arms(model, tok, exs, RegexJudge(), samples=2, temperature=1.0, max_new_tokens=3, batch_size=40,
                      seed=5, placement="system")
    assert calls == [4 * len(exs) * 2]  # every arm and sample in one generation pass
    perm = derangement(exs, 5)
    for i, ex in enumerate(exs):
        shown = json.dumps(res.chats["shuffled"][i])
        assert perm[i] != i and not any(c.text in shown for c in ex.rubric)
        assert all(c.text in shown for c in exs[perm[i]].rubric)
        assert all(c.text in json.dumps(res.chats["rubric"][i]) for c in ex.rubric)
        assert not any(c.text in json.dumps(res.chats["neutral"][i]) for e in exs for c in e.rubric)
    for arm in ARMS:
        recs = res.results[arm].records
        assert len(recs) == 2 * len(exs) and all(r["arm"] == arm for r in recs)
        for k, r in enumerate(recs):  # graded against the prompt's own criteria, in every arm
            own = exs[k // 2]
            assert r["id"] == own.id and [v["criterion_id"] for v in r["verdicts"]] == [c.id for c in own.rubric]
    summary = res.summary()
    assert set(summary["conditioning_arms"]) == set(ARMS) and set(summary["conditioning_lift"]) == set(arms_mod.LIFTS)
    assert summary["conditioning_lift"] == lifts(res.records(), 5)
    assert isinstance(summary["preflight_verdict"], str)
    assert len(res.criteria()) == sum(len(e.rubric) for e in exs)


def test_parse_arms():
    assert parse_arms("rubric, none") == ("none", "rubric")
    with pytest.raises(ValueError, match="bogus"):
        parse_arms("none,bogus")


@pytest.mark.slow
def test_cli_gap_arms_offline_model(tmp_path, capsys):
    out = tmp_path / "gap"
    code = main(["gap", "--dataset-name", "demo:train", "--limit", "4", "--samples", "2", "--temperature", "1",
                 "--judge", "regex", "--max-new-tokens", "48", "--k", "1", "--sig-max-new-tokens", "4",
                 "--batch-size", "32", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr()
    brief = json.loads(printed.out.strip())
    assert set(brief["conditioning_lift"]) == {"format", "list", "rubric", "total"}
    assert "pre-flight: " in printed.err and brief["preflight_verdict"] in printed.err
    report = json.loads((out / "gap.json").read_text())
    assert set(report["conditioning_arms"]) == set(ARMS)
    for name in ("format", "list", "rubric", "total"):
        s = report["conditioning_lift"][name]
        assert s["n"] == 4 and 0 < s["p_value"] <= 1 and len(s["ci95"]) == 2
    assert report["conditioning_gap"]["normalized"]["mean"] == pytest.approx(report["conditioning_lift"]["total"]["mean"])
    rows = [json.loads(line) for line in (out / "criteria.jsonl").read_text().splitlines()]
    assert len(rows) == sum(len(e.rubric) for e in replace_limit(4))
    assert all(r["n"]["rubric"] == 2 and set(r["met_rate"]) == set(ARMS) for r in rows)
    md = (out / "report.md").read_text()
    assert report["preflight_verdict"] in md and "| rubric | shuffled - rubric" not in md
    for d in ("without_rubric", "neutral", "shuffled", "with_rubric"):
        assert (out / d / "results.jsonl").exists()


def replace_limit(n: int) -> list[Example]:
    from rgsd.data.loaders import load_examples

    return load_examples("demo:train", limit=n).examples


def test_cli_gap_refuses_greedy_samples_and_unknown_arms(tmp_path, capsys):
    base = ["gap", "--dataset-name", "demo:train", "--judge", "regex", "--out", str(tmp_path / "g")]
    assert main(base + ["--samples", "2"]) == 2
    assert "--samples > 1 needs --temperature > 0" in capsys.readouterr().err
    assert main(base + ["--arms", "none,teacher"]) == 2
    assert "--arms: teacher" in capsys.readouterr().err


def test_train_preflight(tmp_path, tiny_model_dir, caplog):
    from rgsd.options import build as build_config
    from rgsd.train.config import RGSDConfig
    from rgsd.train.preflight import why_not
    from rgsd.train.trainer import train

    cfg = build_config(RGSDConfig, None, dict(
        dataset_name=str(DEMO_TRAIN), model_name_or_path=str(tiny_model_dir), max_steps=1,
        per_device_train_batch_size=2, max_new_tokens=4,
        output_dir=str(tmp_path / "run"), progress=False, preflight=3, preflight_samples=2))
    with caplog.at_level(logging.INFO, logger="rgsd.train.preflight"):
        out = train(cfg)
    summary = json.loads((out / "preflight.json").read_text())
    assert set(summary["conditioning_lift"]) == {"format", "list", "rubric", "total"}
    assert summary["samples_per_prompt"] == 2 and summary["conditioning_lift"]["total"]["n"] == 3
    assert len(summary["criteria"]) == sum(len(e.rubric) for e in replace_limit(3)) and summary["judge"] == "regex"
    assert f"pre-flight: {summary['preflight_verdict']}" in caplog.text
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1]
    no_pattern = [replace(e, rubric=[replace(c, pattern=None) for c in e.rubric]) for e in examples()]
    assert "the trainer has no judge" in why_not(cfg, no_pattern, False)
    assert "two prompts" in why_not(cfg, examples()[:1], False)
    assert "fsdp2" in why_not(cfg, examples(), True)
