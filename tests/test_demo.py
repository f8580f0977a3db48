"""`rgsd demo` end to end on a tiny random model: every stage runs and the summary's numbers are the evals'."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rgsd.demo import DemoSettings, run_demo


def _prompt_means(path):
    by_id: dict[str, list[float]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        by_id.setdefault(r["id"], []).append(r["score_normalized"])
    return {k: sum(v) / len(v) for k, v in by_id.items()}


def test_demo_pipeline_on_tiny_model(tmp_path, capsys):
    s = DemoSettings(out=tmp_path / "demo", model="tiny-random", steps=2, max_new_tokens=4, train_prompts=4,
                     eval_samples=2, base_eval_samples=3, train_overrides={"per_device_train_batch_size": 2, "probe_steps": 1,
                                                      "probe_prompts": 1, "probe_samples": 1,
                                                      "probe_max_new_tokens": 4, "progress": False})
    summary = run_demo(s)
    out = tmp_path / "demo"
    for name in ("base_train", "base_heldout", "rgsd_train", "rgsd_heldout", "with_rubric_train"):
        records = [json.loads(line) for line in (out / "eval" / name / "results.jsonl").read_text().splitlines()]
        per_prompt = 3 if name.startswith("base") else 2  # the base model, every difference's reference, gets more
        assert len(records) == per_prompt * (4 if "train" in name else 16)
        mean = sum(r["score_normalized"] for r in records) / len(records)  # independent recomputation
        assert abs(summary["scores"][name]["normalized"] - mean) < 1e-12
    # paired effects: the mean of per-prompt differences, and a CI around it
    for key, (a, b) in (("conditioning_gap", ("base", "with_rubric")), ("rgsd_gain", ("base", "rgsd"))):
        for split in ("train", "heldout"):
            ma = _prompt_means(out / "eval" / f"{a}_{split}" / "results.jsonl")
            mb = _prompt_means(out / "eval" / f"{b}_{split}" / "results.jsonl")
            want = float(np.mean([mb[k] - ma[k] for k in ma]))
            eff = summary[key][split]
            assert abs(eff["mean"] - want) < 1e-12
            assert eff["ci95"][0] <= eff["mean"] <= eff["ci95"][1]
    # the pre-flight's four arms: every lift recomputed from the saved evaluations
    pf = summary["preflight"]["train"]
    arm_dirs = {"none": "base", "neutral": "neutral", "shuffled": "shuffled", "rubric": "with_rubric"}
    means = {arm: _prompt_means(out / "eval" / f"{d}_train" / "results.jsonl") for arm, d in arm_dirs.items()}
    for name, (a, b) in {"format": ("none", "neutral"), "list": ("neutral", "shuffled"),
                         "rubric": ("shuffled", "rubric"), "total": ("none", "rubric")}.items():
        want = float(np.mean([means[b][k] - means[a][k] for k in means[a]]))
        assert abs(pf["conditioning_lift"][name]["mean"] - want) < 1e-12
    assert pf["conditioning_arms"]["shuffled"] == pytest.approx(float(np.mean(list(means["shuffled"].values()))))
    t, gap, g = summary["target"], summary["conditioning_gap"]["train"], summary["rgsd_gain"]["train"]
    assert t["half_conditioning_gap"] == 0.5 * gap["mean"]
    assert t["met"] == (g["mean"] >= 0.5 * gap["mean"] and g["p_value"] < 0.05)
    assert t["p_value"] == g["p_value"] and 0 < g["p_value"] <= 1 and len(g["t_ci95"]) == 2
    assert summary["wall_time_s"] > 0 and summary["wall_time_s"] >= sum(summary["timings_s"].values()) - 1e-6
    assert [step for step, _ in summary["self_internalization_gap"]] == [1, 2]
    assert summary["rgsd_costs"]["judge_calls"] == 0 and summary["rgsd_costs"]["rollouts"] == 4
    assert "clipped_position_share" in summary["signal"] and summary["loss_temperature_in_effect"] == 0.7
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["rgsd_gain"] == summary["rgsd_gain"]
    report = (out / "report.md").read_text()
    assert "regex" in report and "not an LLM judge" in report and "RGSD gain" in report
    assert all((out / f).exists() for f in ("scores.png", "gap.png", "loss.png", "summary.json"))
    assert (out / "rgsd-run" / "final" / "adapter_config.json").exists()
    printed = capsys.readouterr().out
    g = summary["rgsd_gain"]["train"]
    assert "pre-flight verdict: " in printed and "shuffled), training prompts" in printed
    assert "RGSD model, held-out prompts" in printed and f"{g['mean']:+.3f} [{g['ci95'][0]:+.3f}" in printed


def test_demo_flags_build_the_settings_and_the_defaults_are_the_demos():
    from rgsd.cli import build_parser
    from rgsd.demo.cli import DemoArgs, settings
    from rgsd.options import options

    assert settings(options(build_parser().parse_args(["demo"]), DemoArgs)) == DemoSettings()
    args = build_parser().parse_args(["demo", "--set", "probe_steps=2", "--rgsd-set", "lora_target_modules=q,v",
                                      "--with-grpo", "--steps", "3"])
    s = settings(options(args, DemoArgs))
    assert s.train_overrides == {"probe_steps": "2", "lora_target_modules": "q,v"} and s.with_grpo and s.steps == 3


def test_demo_seeds_pooled_with_controls(tmp_path):
    """Two seeds, both controls, held-out prompts taken from the training file: every effect is recomputed."""
    from rgsd.stats import pooled_summary

    s = DemoSettings(out=tmp_path / "demo", model="tiny-random", steps=1, max_new_tokens=4, train_prompts=3,
                     first_train_prompt=5, heldout_prompts="9-11", seeds=[2, 3],
                     controls=["neutral-system", "shuffled"], eval_samples=2, base_eval_samples=2,
                     train_overrides={"per_device_train_batch_size": 3, "probe_steps": 0, "progress": False})
    summary = run_demo(s)
    out = tmp_path / "demo"
    assert summary["prompt_ids"] == {"train": ["demo-train-005", "demo-train-006", "demo-train-007"],
                                     "heldout": ["demo-train-009", "demo-train-010", "demo-train-011"]}
    assert summary["seeds"] == [2, 3] and set(summary["checkpoints"]) == {"rgsd", "neutral-system", "shuffled"}
    for name in ("rgsd", "neutral-system", "shuffled"):
        assert len(summary["checkpoints"][name]) == 2
    base = {**_prompt_means(out / "eval" / "base_train" / "results.jsonl"),
            **_prompt_means(out / "eval" / "base_heldout" / "results.jsonl")}
    ids = sorted(base)

    def arm(name, seed):
        return {**_prompt_means(out / "eval" / f"{name}_seed{seed}_train" / "results.jsonl"),
                **_prompt_means(out / "eval" / f"{name}_seed{seed}_heldout" / "results.jsonl")}

    rg = [arm("rgsd", k) for k in (2, 3)]
    # stage 1's base model under another prompt's criteria keeps its own name, apart from the shuffled control
    assert summary["scores"]["shuffled_train"]["n_responses"] == 3 * 2  # three prompts x two samples, one model
    assert summary["scores"]["control-shuffled_train"]["n_responses"] == 2 * 3 * 2  # and two seeds
    assert len((out / "eval" / "shuffled_train" / "results.jsonl").read_text().splitlines()) == 3 * 2
    want = pooled_summary([[r[i] - base[i] for i in ids] for r in rg], seed=2)
    assert summary["rgsd_gain"]["all"] == want
    ctl = [arm("control-neutral-system", k) for k in (2, 3)]
    assert summary["control_gain"]["neutral-system"]["all"]["mean"] == pytest.approx(
        np.mean([[c[i] - base[i] for i in ids] for c in ctl]))
    minus = summary["rgsd_minus_control"]["neutral-system"]["all"]
    assert minus == pooled_summary([[r[i] - c[i] for i in ids] for r, c in zip(rg, ctl)], seed=2)
    assert {"mean", "ci95", "p_value", "t_ci95"} <= set(summary["rgsd_minus_control"]["shuffled"]["train"])
    # the control runs trained with their teacher context
    import yaml

    cfg = yaml.safe_load((out / "control-shuffled-seed3" / "config.yaml").read_text())
    assert cfg["teacher_context"] == "shuffled" and cfg["seed"] == 3
    report = (out / "report.md").read_text()
    assert "RGSD minus control neutral-system" in report and "What the gain is made of" in report
    comp = summary["gain_composition"]
    assert comp["models"] == ["base", "RGSD", "teacher", "neutral-system", "shuffled"]
    assert comp["n_responses"]["RGSD"] == 2 * 2 * 6  # two seeds x two samples x six prompts


def test_demo_rejects_overlapping_heldout_range(tmp_path):
    s = DemoSettings(out=tmp_path / "d", model="tiny-random", steps=1, train_prompts=4, heldout_prompts="3-8")
    with pytest.raises(ValueError, match="outside the trained ones"):
        run_demo(s)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12))
def test_any_heldout_range_text_is_read_or_refused_naming_the_field(text):
    from rgsd.demo.protocol import prompt_range

    try:
        a, b = prompt_range(text)
    except ValueError as err:
        assert str(err).startswith("heldout_prompts: ")
        return
    parts = text.split("-")
    assert len(parts) == 2 and (a, b) == (int(parts[0]), int(parts[1])) and 1 <= a <= b


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.integers(-3, 2**33), st.text(alphabet="0123456789,x -", max_size=6)), min_size=1,
                max_size=3))
def test_any_seeds_flag_is_read_or_refused_naming_the_flag(words):
    """`--seeds` words, commas inside or not: the integers they spell, each checked, or exit 2 naming --seeds."""
    import contextlib
    import io

    from rgsd.cli import build_parser
    from rgsd.demo.cli import DemoArgs
    from rgsd.options import OptionError, options

    argv = ["demo", "--seeds", *[str(w) for w in words]]
    items = [p for w in words for p in str(w).split(",") if p != ""]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            seeds = options(build_parser().parse_args(argv), DemoArgs).seeds
    except OptionError as exc:  # rgsd.cli.main prints it on one line and exits 2
        assert "--seeds" in str(exc)
        return
    except SystemExit as exc:  # argparse's own refusal: --seeds without a value, or a word it reads as a flag
        message = err.getvalue()  # (or as "--", the end of options: the words after it are extra arguments)
        assert exc.code == 2
        assert "argument --seeds" in message or (
            "unrecognized arguments: " in message and any(str(w).startswith("-") for w in words)), message
        return
    assert seeds == [int(p) for p in items] and all(0 <= x < 2**32 for x in seeds)
