"""``rgsd compare``: the table's arithmetic against hand-computed numbers, then two tiny matched runs
(trained by the command itself) compared with the regex judge, and the same runs re-read and judged by a
loopback LLM judge."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judge_server import JudgeServer, hash_rule, judging_policy  # noqa: E402

from rgsd.compare.plan import judge_spec, same_judge  # noqa: E402
from rgsd.compare.table import build_rows, render_table  # noqa: E402
from rgsd.costs import CostRecord  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRAIN, HELDOUT = REPO / "rgsd/demo_data/train.jsonl", REPO / "rgsd/demo_data/heldout.jsonl"
COLUMNS = [
    "rubric score, normalized",
    "HealthBench score",
    "gain (pp)",
    "mean response length",
    "training judge calls",
    "rollouts",
    "generated tokens",
    "wall time (s)",
    "judge calls per pp",
    "wall s per pp",
    "eval judge = training judge",
]


def test_rows_cost_per_point_and_na_when_no_gain():
    summaries = {
        "base": {
            "score_normalized": 0.40,
            "score_normalized_std": 0.02,
            "score": 0.30,
            "score_std": 0.03,
            "mean_response_tokens": 100.0,
        },
        "rgsd": {
            "score_normalized": 0.45,
            "score_normalized_std": 0.02,
            "score": 0.36,
            "score_std": 0.03,
            "mean_response_tokens": 90.0,
        },
        "grpo": {
            "score_normalized": 0.38,
            "score_normalized_std": 0.02,
            "score": 0.31,
            "score_std": 0.03,
            "mean_response_tokens": 210.0,
        },
    }
    costs = {
        "rgsd": CostRecord("rgsd", rollouts=64, generated_tokens=6400, wall_time=500.0),
        "grpo": CostRecord("grpo", rollouts=1024, generated_tokens=9e4, judge_calls=1024, wall_time=4000.0),
    }
    rows = {r["model"]: r for r in build_rows(summaries, costs, same=True)}
    assert rows["rgsd"]["gain_normalized_pp"] == pytest.approx(5.0)
    assert rows["rgsd"]["gain_healthbench_pp"] == pytest.approx(6.0)
    assert rows["rgsd"]["wall_s_per_pp"] == pytest.approx(100.0)  # 500 s / 5 pp
    assert rows["rgsd"]["judge_calls_per_pp"] == 0.0
    assert rows["grpo"]["gain_normalized_pp"] == pytest.approx(-2.0)
    assert rows["grpo"]["judge_calls_per_pp"] is None and rows["grpo"]["wall_s_per_pp"] is None
    table = render_table(list(rows.values()), same=True, notes=["a note"])
    assert "favours GRPO" in table.splitlines()[0]  # said plainly, above the table
    grpo_line = next(line for line in table.splitlines() if line.startswith("| grpo"))
    assert grpo_line.count("n/a (no gain)") == 2 and "YES: favours GRPO" in grpo_line
    rgsd_line = next(line for line in table.splitlines() if line.startswith("| rgsd"))
    assert "| 45.0 ± 2.0 | +5.0 | 36.0 ± 3.0 | +6.0 | 90.0 | 0 | 64 | 6400 | 500.0 | 0 | 100 |" in rgsd_line


def test_judge_sameness_ignores_mode_but_not_model():
    a = judge_spec("openai", "m1", "http://x/v1", "batched")
    assert same_judge(a, judge_spec("openai", "m1", "http://x/v1", "per-criterion"))
    assert not same_judge(a, judge_spec("openai", "m2", "http://x/v1", "batched"))
    assert same_judge(judge_spec("regex", "ignored", None, None), judge_spec("regex", None, "u", "batched"))


@pytest.fixture(scope="module")
def compared(tiny_model_dir, tmp_path_factory):
    """`rgsd compare` training both methods itself: 1 step each, regex judge for training and evaluation."""
    from rgsd.cli import main

    out = tmp_path_factory.mktemp("compare")
    argv = [
        "compare",
        "--dataset-name",
        str(TRAIN),
        "--eval-dataset-name",
        str(HELDOUT),
        "--eval-limit",
        "3",
        "--model-name-or-path",
        str(tiny_model_dir),
        "--max-steps",
        "1",
        "--out",
        str(out),
        "--judge",
        "regex",
        "--max-new-tokens",
        "6",
        "--rgsd-set",
        "per_device_train_batch_size=1",
        "--rgsd-set",
        "max_new_tokens=6",
        "--rgsd-set",
        "progress=false",
        "--grpo-set",
        "num_generations=4",
        "--grpo-set",
        "disable_tqdm=true",
        "--grpo-set",
        "per_device_train_batch_size=3",
    ]
    assert main(argv) == 0
    return out


def test_compare_trains_matched_runs_and_writes_every_column(compared):
    md = (compared / "compare.md").read_text()
    report = json.loads((compared / "compare.json").read_text())
    for col in COLUMNS:
        assert col in md, col
    assert "The evaluation judge is the same judge GRPO trained against" in md
    assert "No --eval-judge given" in md and "regex judge" in md
    assert "per_device_train_batch_size: 3 -> 4" in md  # an explicit GRPO value that matching replaced is reported
    assert report["eval_judge_is_training_judge"] is True
    rows = {r["model"]: r for r in report["rows"]}
    assert set(rows) == {"base", "rgsd", "grpo"}
    # matched: same prompts per step and steps; GRPO took RGSD's batch (its own --grpo-set was overridden)
    assert report["matched"]["prompts_per_step"] == 1 and report["matched"]["max_steps"] == 1
    assert rows["rgsd"]["prompts_seen"] == rows["grpo"]["prompts_seen"] == 1
    assert rows["rgsd"]["rollouts"] == 1 and rows["grpo"]["rollouts"] == 4
    assert rows["rgsd"]["judge_calls"] == 0
    grpo_cost = CostRecord.load(compared / "grpo" / "costs.json")
    assert rows["grpo"]["generated_tokens"] == grpo_cost.generated_tokens
    assert rows["grpo"]["wall_time"] == pytest.approx(grpo_cost.wall_time)
    for name in ("base", "rgsd", "grpo"):
        summary = json.loads((compared / "eval" / name / "summary.json").read_text())
        assert rows[name]["normalized"] == summary["score_normalized"]
        assert rows[name]["mean_response_tokens"] == summary["mean_response_tokens"] <= 6
    for png in report["plots"]:
        assert (compared / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_reads_finished_runs_with_a_different_eval_judge(compared, tmp_path):
    from rgsd.cli import main

    out = tmp_path / "reread"
    with JudgeServer(judging_policy(hash_rule)) as server:
        argv = [
            "compare",
            "--rgsd-run",
            str(compared / "rgsd"),
            "--grpo-run",
            str(compared / "grpo"),
            "--eval-dataset-name",
            str(HELDOUT),
            "--eval-limit",
            "3",
            "--out",
            str(out),
            "--judge",
            "regex",
            "--eval-judge",
            "openai",
            "--eval-judge-base-url",
            server.url,
            "--eval-judge-model",
            "test-judge",
            "--eval-judge-mode",
            "batched",
            "--max-new-tokens",
            "6",
        ]
        assert main(argv) == 0
        served = server.count
    report = json.loads((out / "compare.json").read_text())
    assert report["eval_judge_is_training_judge"] is False
    assert report["eval_judge"]["model"] == "test-judge" and report["training_judge"]["judge"] == "regex"
    # batched: one logical request per response (base + 2 models x 3 examples); identical greedy responses
    # are served from the evaluation cache, everything else reached the server
    usage = [
        json.loads((out / "eval" / m / "summary.json").read_text())["judge"] for m in ("base", "rgsd", "grpo")
    ]
    assert sum(u["calls"] + u["cache_hits"] for u in usage) == 3 * 3
    assert served == sum(u["calls"] for u in usage) >= 3
    md = (out / "compare.md").read_text()
    assert "same judge GRPO trained against" not in md
    grpo_line = next(line for line in md.splitlines() if line.startswith("| grpo"))
    assert grpo_line.rstrip().endswith("| no |")
    # The model of the runs (from their config.yaml) is the base that is evaluated.
    assert (
        report["matched"]["model_name_or_path"]
        == json.loads((compared / "compare.json").read_text())["matched"]["model_name_or_path"]
    )


def test_compare_with_samples_pairs_per_prompt_means(compared, tmp_path):
    from rgsd.cli import main

    out = tmp_path / "sampled"
    base = ["compare", "--rgsd-run", str(compared / "rgsd"), "--grpo-run", str(compared / "grpo"),
            "--eval-dataset-name", str(HELDOUT), "--eval-limit", "3", "--out", str(out), "--judge", "regex",
            "--max-new-tokens", "6"]
    assert main([*base, "--samples", "2"]) == 2  # several samples of greedy decoding: refused, nothing written
    assert not (out / "compare.json").exists()
    assert main([*base, "--samples", "3", "--temperature", "0.7"]) == 0
    report = json.loads((out / "compare.json").read_text())
    for name in ("base", "rgsd", "grpo"):
        summary = json.loads((out / "eval" / name / "summary.json").read_text())
        assert summary["samples_per_prompt"] == 3 and summary["n_prompts"] == 3 and summary["n_examples"] == 9
    means = {n: json.loads((out / "eval" / n / "summary.json").read_text())["score_normalized_prompt_means"]
             for n in ("base", "rgsd")}
    want = sum(means["rgsd"][k] - means["base"][k] for k in means["base"]) / 3  # independent recomputation
    assert report["paired"]["rgsd"]["diff"]["n"] == 3
    assert report["paired"]["rgsd"]["diff"]["mean"] == pytest.approx(want, abs=1e-12)


def test_old_compare_flags_keep_working_with_a_warning():
    from rgsd.cli import build_parser
    from rgsd.compare.cli import compare_options

    old = ["compare", "--data", "t.jsonl", "--split", "train", "--config-name", "c", "--model", "m", "--steps", "3",
           "--eval-data", "e.jsonl", "--eval-split", "test", "--eval-config-name", "ec", "--out", "o",
           "--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "K", "--price-in", "1", "--price-out", "2",
           "--prices", "p.yaml", "--eval-base-url", "http://127.0.0.1:8/v1", "--eval-api-key-env", "EK"]
    with pytest.warns(FutureWarning) as caught:
        opts = compare_options(build_parser().parse_args(old))
    said = " ".join(str(w.message) for w in caught)
    for name in ("data", "split", "config_name", "model", "steps", "eval_data", "eval_split", "eval_config_name",
                 "base_url", "api_key_env", "price_in", "price_out", "prices", "eval_base_url", "eval_api_key_env"):
        assert f"'{name}' is deprecated" in said, name
    assert (opts.data.dataset_name, opts.data.dataset_train_split, opts.data.dataset_config) == ("t.jsonl", "train", "c")
    assert (opts.run.model_name_or_path, opts.run.max_steps, opts.run.out) == ("m", 3, "o")
    assert (opts.eval_data.dataset_name, opts.eval_data.dataset_test_split, opts.eval_data.dataset_config) == (
        "e.jsonl", "test", "ec")
    j = opts.judge
    assert (j.judge_base_url, j.judge_api_key_env, j.judge_price_in, j.judge_price_out, j.judge_prices) == (
        "http://127.0.0.1:9/v1", "K", 1.0, 2.0, "p.yaml")
    assert opts.eval_judge == {"judge_base_url": "http://127.0.0.1:8/v1", "judge_api_key_env": "EK"}
    ev = opts.eval_judge_options()  # unset eval options are the training judge's
    assert (ev.judge_base_url, ev.judge_api_key_env, ev.judge_model) == ("http://127.0.0.1:8/v1", "EK", None)


def test_compare_judge_flags_are_evals_names():
    """--judge-mode, --judge-concurrency ... are JudgeOptions' fields (the names of rgsd eval)."""
    import dataclasses

    from rgsd.compare.options import CompareJudge
    from rgsd.judges.options import JudgeOptions

    assert [f.name for f in dataclasses.fields(CompareJudge)] == [f.name for f in dataclasses.fields(JudgeOptions)]


def test_compare_pools_seeds_and_trains_controls(tiny_model_dir, tmp_path):
    """Two training seeds and a shuffled-rubric control: every run trained per seed, RGSD minus the control
    pooled by seed (paired within each seed), numbers recomputed from the evaluations on disk."""
    import numpy as np
    import yaml

    from rgsd.cli import main
    from rgsd.evaluate.paired import prompt_means, read_records
    from rgsd.stats import pooled_summary

    out = tmp_path / "cmp"
    argv = ["compare", "--dataset-name", str(TRAIN), "--eval-dataset-name", str(HELDOUT), "--eval-limit", "3",
            "--model-name-or-path", str(tiny_model_dir), "--max-steps", "1", "--out", str(out), "--judge", "regex",
            "--max-new-tokens", "4", "--seeds", "5,6", "--control", "shuffled", "--temperature", "0.7",
            "--samples", "2", "--rgsd-set", "per_device_train_batch_size=1", "--rgsd-set", "max_new_tokens=4",
            "--rgsd-set", "progress=false", "--grpo-set", "num_generations=2", "--grpo-set", "disable_tqdm=true"]
    assert main(argv) == 0
    report = json.loads((out / "compare.json").read_text())
    assert report["seeds"] == [5, 6] and {r["model"] for r in report["rows"]} == {"base", "rgsd", "grpo", "shuffled"}
    for k in (5, 6):
        cfg = yaml.safe_load((out / f"seed-{k}" / "control-shuffled" / "config.yaml").read_text())
        assert cfg["teacher_context"] == "shuffled" and cfg["seed"] == k
        assert yaml.safe_load((out / f"seed-{k}" / "rgsd" / "config.yaml").read_text())["teacher_context"] == "rubric"
    means = {name: [prompt_means(read_records(out / "eval" / f"{name}-seed{k}")) for k in (5, 6)]
             for name in ("rgsd", "shuffled")}
    ids = sorted(means["rgsd"][0])
    want = pooled_summary([[r[i] - c[i] for i in ids] for r, c in zip(means["rgsd"], means["shuffled"])])
    assert report["rgsd_minus_control"]["shuffled"] == want
    base = prompt_means(read_records(out / "eval" / "base"))
    assert report["control_gain"]["shuffled"]["mean"] == pytest.approx(
        np.mean([[c[i] - base[i] for i in ids] for c in means["shuffled"]]))
    md = (out / "compare.md").read_text()
    assert "RGSD - control shuffled" in md and "2 training seeds pooled" in md
