"""Paired comparison of evaluations, multi-sample evaluation and the signal statistics, against hand-computed
numbers and an independent bootstrap."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rgsd.cli import main
from rgsd.evaluate.paired import paired_compare, prompt_means
from rgsd.evaluate.sampling import repeat, sample_summary
from rgsd.method.signal import SignalStats, response_positions


def _rec(pid: str, score: float, verdicts=None) -> dict:
    return {"id": pid, "score_normalized": score, "verdicts": verdicts or []}


def test_prompt_means_average_samples_and_skip_failures():
    recs = [_rec("a", 0.2), _rec("a", 0.6), _rec("b", 1.0), {"id": "b", "score_normalized": None}]
    assert prompt_means(recs) == {"a": pytest.approx(0.4), "b": 1.0}


def test_paired_compare_pairs_by_prompt_and_per_tag():
    v = lambda cid, met: {"criterion_id": cid, "points": 1.0, "met": met}  # noqa: E731
    a = [_rec("p1", 0.0, [v("c1", False), v("c2", False)]), _rec("p2", 0.5, [v("c3", True), v("c4", False)]),
         _rec("only_a", 1.0)]
    b = [_rec("p1", 0.5, [v("c1", True), v("c2", False)]), _rec("p2", 1.0, [v("c3", True), v("c4", True)])]
    tags = {"c1": ["type:content"], "c2": ["type:safety"], "c3": ["type:content"], "c4": ["type:safety"]}
    res = paired_compare(a, b, tags)
    assert res["n_shared_prompts"] == 2 and res["only_a"] == 1
    assert res["diff"]["mean"] == pytest.approx(0.5)  # (0.5 - 0) and (1.0 - 0.5)
    assert res["tags"]["type:content"]["mean"] == pytest.approx(0.5)  # p1: 1-0, p2: 1-1
    assert res["tags"]["type:safety"]["mean"] == pytest.approx(0.5)  # p1: 0-0, p2: 1-0


def test_compare_evals_cli(tmp_path, capsys):
    for name, scores in (("a", [0.1, 0.2, 0.3]), ("b", [0.3, 0.3, 0.5])):
        d = tmp_path / name
        d.mkdir()
        d.joinpath("results.jsonl").write_text("".join(json.dumps(_rec(f"p{i}", s)) + "\n"
                                                       for i, s in enumerate(scores)))
    assert main(["compare-evals", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c")]) == 0
    res = json.loads((tmp_path / "c" / "paired.json").read_text())
    assert res["diff"]["mean"] == pytest.approx((0.2 + 0.1 + 0.2) / 3) and res["diff"]["better"] == 3
    assert "B - A" in capsys.readouterr().out
    assert main(["compare-evals", str(tmp_path / "a"), str(tmp_path / "missing")]) == 2
    assert "missing/results.jsonl: file: not found" in capsys.readouterr().err
    with pytest.warns(FutureWarning, match="'data' is deprecated"):  # the old name of --dataset-name
        assert main(["compare-evals", str(tmp_path / "a"), str(tmp_path / "b"), "--data", str(tmp_path / "no")]) == 2
    assert "no: file: not found" in capsys.readouterr().err


def test_sample_summary_and_repeat():
    assert repeat(["x", "y"], 2) == ["x", "x", "y", "y"]
    recs = [_rec("a", 0.0), _rec("a", 1.0), _rec("b", 0.5), _rec("b", 0.5)]
    s = sample_summary(recs, 2, 0.7)
    assert [r["sample"] for r in recs] == [0, 1, 0, 1]
    assert s["n_prompts"] == 2 and s["samples_per_prompt"] == 2
    assert s["score_normalized_prompt_std"] == pytest.approx((np.std([0, 1], ddof=1) + 0.0) / 2)


def test_signal_stats_buckets_and_shares():
    masks = [[True] * 10, [False, True, True]]  # response positions 0..9, then 1, 2
    pos = response_positions(masks)
    assert pos == list(range(10)) + [1, 2]
    div = torch.arange(12, dtype=torch.float32)
    diag = {"divergence": div, "any_clipped": div > 8, "removed": torch.full((12,), 0.5),
            "target_logratio": torch.ones(12), "raise": torch.tensor([0.0, 2.4, -1.2])}
    st = SignalStats(top_tokens=2)
    st.add({"diag": diag}, pos)

    class Tok:
        def decode(self, ids):
            return f"t{ids[0]}"

    m = st.metrics(Tok())
    # bucket 0-7: positions 0..7 (values 0..7) and the two of the second response (values 10, 11)
    assert m["signal_divergence_by_position"]["0-7"] == pytest.approx((sum(range(8)) + 10 + 11) / 10)
    assert m["signal_divergence_by_position"]["8-31"] == pytest.approx((8 + 9) / 2)
    assert m["signal_divergence_by_position"]["32+"] is None
    assert m["signal_clipped_position_share"] == pytest.approx(3 / 12)
    assert m["signal_clip_removed_share"] == pytest.approx(6.0 / sum(range(12)))
    assert m["signal_sampled_token_logratio"] == pytest.approx(1.0)
    assert [t for t, _ in m["signal_top_raised_tokens"]] == ["t1", "t0"]
    with pytest.raises(ValueError, match="response positions"):
        st.add({"diag": diag}, pos[:-1])


def test_cli_eval_multi_sample(tmp_path):
    out = tmp_path / "out"
    code = main(["eval", "--dataset-name", "demo:heldout", "--limit", "3", "--model", "tiny-random", "--judge", "regex",
                 "--samples", "2", "--temperature", "0.7", "--max-new-tokens", "3", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 6 and summary["samples_per_prompt"] == 2 and summary["n_prompts"] == 3
    means = prompt_means(recs)
    assert summary["score_normalized"] == pytest.approx(sum(means.values()) / 3)


def test_compare_evals_pools_training_seeds(tmp_path, capsys):
    """B given once per training seed: the pooled mean, the p over prompts' seed means, and the seed spread."""
    from rgsd.stats import pooled_summary, sign_flip_p

    scores = {"a": [0.1, 0.2, 0.3, 0.0], "b1": [0.3, 0.3, 0.5, 0.1], "b2": [0.1, 0.4, 0.2, 0.3]}
    for name, sc in scores.items():
        d = tmp_path / name
        d.mkdir()
        d.joinpath("results.jsonl").write_text("".join(json.dumps(_rec(f"p{i}", s)) + "\n" for i, s in enumerate(sc)))
    b = f"{tmp_path / 'b1'},{tmp_path / 'b2'}"
    assert main(["compare-evals", str(tmp_path / "a"), b, "--out", str(tmp_path / "c")]) == 0
    res = json.loads((tmp_path / "c" / "paired.json").read_text())
    d1 = [0.2, 0.1, 0.2, 0.1]
    d2 = [0.0, 0.2, -0.1, 0.3]
    assert res["n_seeds"] == 2 and res["diff"]["mean"] == pytest.approx(np.mean(d1 + d2))
    assert res["diff"]["p_value"] == sign_flip_p([(x + y) / 2 for x, y in zip(d1, d2)]) == 1 / 16
    assert res["diff"]["ci95"] == pytest.approx(pooled_summary([d1, d2])["ci95"])
    assert res["diff"]["seed_means"] == pytest.approx([np.mean(d1), np.mean(d2)])
    assert "2 training seeds pooled" in capsys.readouterr().out
    # one A per seed pairs by position; a count that fits neither way is an error naming both counts
    a2 = f"{tmp_path / 'a'},{tmp_path / 'b1'}"
    assert main(["compare-evals", a2, b, "--out", str(tmp_path / "c2")]) == 0
    res2 = json.loads((tmp_path / "c2" / "paired.json").read_text())
    assert res2["diff"]["mean"] == pytest.approx(np.mean(d1 + [y - x for x, y in zip(scores["b1"], scores["b2"])]))
    a3 = f"{tmp_path / 'a'},{tmp_path / 'b1'},{tmp_path / 'b2'}"
    assert main(["compare-evals", a3, b]) == 2
    assert "3 A folders for 2 B folders" in capsys.readouterr().err
