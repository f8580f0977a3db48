"""`rgsd demo` end to end on a tiny random model: every stage runs and the report's numbers are the evals'."""

from __future__ import annotations

import json

from rgsd.demo import DemoSettings, run_demo


def test_demo_pipeline_on_tiny_model(tmp_path, capsys):
    s = DemoSettings(out=tmp_path / "demo", model="tiny-random", steps=2, max_new_tokens=4,
                     train_overrides={"per_device_batch_size": 2, "probe_steps": 1, "probe_prompts": 1,
                                      "probe_samples": 1, "probe_max_new_tokens": 4, "progress": False})
    summary = run_demo(s)
    out = tmp_path / "demo"
    for name in ("base_train", "base_heldout", "rgsd_train", "rgsd_heldout"):
        records = [json.loads(line) for line in (out / "eval" / name / "results.jsonl").read_text().splitlines()]
        assert len(records) == (48 if "train" in name else 16)
        mean = sum(r["score_normalized"] for r in records) / len(records)  # independent recomputation
        assert abs(summary["scores"][name]["normalized"] - mean) < 1e-12
    gap = summary["scores"]["base_with_rubric_train"]["normalized"] - summary["scores"]["base_train"]["normalized"]
    assert summary["conditioning_gap_normalized"] == gap
    assert [step for step, _ in summary["self_internalization_gap"]] == [1, 2]
    assert summary["rgsd_costs"]["judge_calls"] == 0 and summary["rgsd_costs"]["rollouts"] == 4
    report = (out / "report.md").read_text()
    assert "regex" in report and "not an LLM judge" in report
    assert all((out / f).exists() for f in ("scores.png", "gap.png", "loss.png", "summary.json"))
    assert (out / "rgsd-run" / "final" / "adapter_config.json").exists()
    printed = capsys.readouterr().out
    assert "RGSD model, held-out prompts" in printed and f"{gap:+.3f}" in printed
