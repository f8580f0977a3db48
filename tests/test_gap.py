"""Conditioning gap and self-internalization gap, checked against float64 brute force and hand arithmetic."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rgsd.cli import main  # noqa: E402
from rgsd.data.schema import Criterion, Example  # noqa: E402
from rgsd.evaluate.gap import (  # noqa: E402
    conditioning_gap,
    paired_difference,
)
from rgsd.judges.regex_judge import RegexJudge  # noqa: E402
from rgsd.method.probe import self_internalization_gap, sequence_logprobs  # noqa: E402
from rgsd.method.rollout import chat_prompt_ids  # noqa: E402
from rgsd.method.teacher_prompt import student_messages, teacher_messages  # noqa: E402
from rgsd.stats import student_t_quantile  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    from rgsd.models import tiny_model

    return tiny_model(seed=3)


def examples() -> list[Example]:
    return [
        Example(
            "p1",
            [{"role": "user", "content": "How do I treat a mild cold?"}],
            [
                Criterion("a", "Recommends rest", 5, pattern="rest"),
                Criterion("b", "Mentions fluids", 3, pattern="flu"),
                Criterion("c", "Recommends antibiotics", 4, "negative", pattern="antibiotic"),
            ],
        ),
        Example(
            "p2",
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is coffee bad?"}],
            [
                Criterion("a", "Mentions moderation", 2, pattern="."),
                Criterion("b", "Mentions sleep", 1, pattern="zzq"),
            ],
        ),
    ]


@torch.no_grad()
def brute_avg_logprob(model64, prompt: list[int], response: list[int]) -> float:
    """float64, one prefix forward per response token (no slicing arithmetic shared with the code)."""
    total = 0.0
    for j, tok in enumerate(response):
        ids = torch.tensor([prompt + response[:j]])
        logits = model64(input_ids=ids, logits_to_keep=1).logits[0, -1].double()
        total += float(torch.log_softmax(logits, -1)[tok])
    return total / len(response)


@torch.no_grad()
def brute_avg_logprob_one_pass(model64, prompt: list[int], response: list[int]) -> float:
    """float64, one unpadded forward; token j of the response is predicted at position len(prompt) - 1 + j."""
    logp = torch.log_softmax(model64(input_ids=torch.tensor([prompt + response])).logits[0].double(), -1)
    return sum(float(logp[len(prompt) - 1 + j, tok]) for j, tok in enumerate(response)) / len(response)


@pytest.fixture(scope="module")
def model64(tiny):
    import copy

    return copy.deepcopy(tiny[0]).double().eval()


def test_sequence_logprobs_match_float64_prefix_forwards(tiny, model64):
    model, tok = tiny
    exs = examples()
    # Three prompts of different lengths, batches of 2: exercises length sorting, right padding and the
    # logits_to_keep offset (the longest prompt's response starts far from the batch's first kept position).
    prompts = [
        chat_prompt_ids(tok, teacher_messages(exs[0])),
        chat_prompt_ids(tok, exs[0].prompt),
        chat_prompt_ids(tok, exs[1].prompt),
    ]
    responses = [[42, 7, 1000], [5, 99, 123, 77, 3000, 12], [8]]
    got = sequence_logprobs(model, prompts, responses, batch_size=2, pad_id=tok.pad_token_id)
    want = [brute_avg_logprob(model64, p, r) for p, r in zip(prompts, responses)]
    assert got == pytest.approx(want, abs=1e-4)
    alone = sequence_logprobs(model, prompts[:1], responses[:1])  # padding must not change a sequence's value
    assert alone[0] == pytest.approx(got[0], abs=1e-5)


def test_self_internalization_gap_against_brute_force(tiny, model64):
    model, tok = tiny
    exs = examples()
    res = self_internalization_gap(model, tok, exs, k=2, max_new_tokens=4, seed=11, batch_size=3)
    assert res.k == 2 and len(res.per_example) == 2 and len(res.response_ids) == 4
    diffs = []
    for i, ex in enumerate(exs):
        student = chat_prompt_ids(tok, student_messages(ex))
        teacher = chat_prompt_ids(tok, teacher_messages(ex))
        assert len(teacher) > len(student)
        for s in range(2):
            o = res.response_ids[i * 2 + s]
            diffs.append(
                brute_avg_logprob_one_pass(model64, student, o)
                - brute_avg_logprob_one_pass(model64, teacher, o)
            )
    assert [d for per in res.per_sample for d in per] == pytest.approx(diffs, abs=1e-4)
    assert res.gap == pytest.approx(sum(diffs) / 4, abs=1e-4) == float(res)
    assert res.per_example == pytest.approx([sum(diffs[:2]) / 2, sum(diffs[2:]) / 2], abs=1e-4)


def test_gap_is_zero_without_a_rubric(tiny):
    model, tok = tiny
    bare = [Example("x", [{"role": "user", "content": "Hello there"}], [])]
    res = self_internalization_gap(model, tok, bare, k=3, max_new_tokens=3, seed=0)
    assert res.gap == 0.0 and res.per_sample == [[0.0, 0.0, 0.0]]


def test_t_quantile_and_paired_difference_by_hand():
    assert student_t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-3)
    assert student_t_quantile(0.975, 10) == pytest.approx(2.2281, abs=1e-3)
    assert student_t_quantile(0.975, 29) == pytest.approx(2.0452, abs=1e-3)
    before, after = [0.1, 0.2, 0.3, 0.4], [0.3, 0.1, 0.6, 0.5]  # d = 0.2, -0.1, 0.3, 0.1
    out = paired_difference(before, after, n_boot=2000, seed=1)
    sd = math.sqrt((0.075**2 + 0.225**2 + 0.175**2 + 0.025**2) / 3)
    half = 3.182446 * sd / 2
    assert out["mean"] == pytest.approx(0.125) and out["std"] == pytest.approx(sd)
    assert out["ci95_t"] == pytest.approx([0.125 - half, 0.125 + half], abs=1e-4)
    lo, hi = out["ci95_bootstrap"]
    assert -0.1 <= lo <= 0.125 <= hi <= 0.3  # a percentile interval of resampled means of d
    assert paired_difference([], [])["mean"] is None


def test_conditioning_gap_pairs_per_example_scores(tiny):
    model, tok = tiny
    cg = conditioning_gap(model, tok, examples(), RegexJudge(), max_new_tokens=4, seed=0)
    for key, stats in (("score_normalized", cg.normalized), ("score", cg.healthbench)):
        d = [b[key] - a[key] for a, b in zip(cg.without_rubric.records, cg.with_rubric.records)]
        assert stats["n"] == 2 and stats["mean"] == pytest.approx(sum(d) / 2)
    assert cg.complete and cg.n_unpaired == 0
    assert cg.to_dict()["with_rubric"]["n"] == 2


def test_cli_gap(tiny, tmp_path, capsys):
    model, tok = tiny
    path = tmp_path / "tiny"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in examples()))
    out = tmp_path / "gap"
    code = main(["gap", "--dataset-name", str(data), "--model", str(path), "--judge", "regex", "--k", "2",
                 "--max-new-tokens", "3", "--sig-max-new-tokens", "3", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr()
    for phase in ("generate without rubric", "judge with rubric", "probe: sample with rubric",
                  "probe: score without rubric"):  # a bar per phase, on stderr; stdout keeps the one result line
        assert phase in printed.err, phase
    assert len(printed.out.strip().splitlines()) == 1 and "probe" not in printed.out
    report = json.loads((out / "gap.json").read_text())
    assert report["conditioning_gap"]["normalized"]["n"] == 2 and "not an LLM judge" in report["note"]
    assert (
        report["self_internalization_gap"]["k"] == 2
        and len(report["self_internalization_gap"]["per_example"]) == 2
    )
    assert (out / "with_rubric/summary.json").exists() and (out / "without_rubric/report.md").exists()
    with pytest.warns(FutureWarning, match="'data' is deprecated"):  # the old name, for one release
        code = main(["gap", "--data", str(data), "--model", str(path), "--judge", "none", "--k", "1",
                     "--sig-max-new-tokens", "2", "--out", str(tmp_path / "g2")])
    assert code == 0
    assert "conditioning_gap" not in json.loads((tmp_path / "g2/gap.json").read_text())


def test_cli_gap_refuses_judge_options_it_would_ignore(tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in examples()))
    args = ["gap", "--dataset-name", str(data), "--judge", "regex", "--out", str(tmp_path / "g")]
    assert main(args + ["--judge-price-in", "1", "--judge-price-out", "2"]) == 2
    assert "--judge-price-in is not used by rgsd gap" in capsys.readouterr().err
