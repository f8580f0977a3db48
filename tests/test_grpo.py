"""Judge-based GRPO baseline: TRL mapping, two real GRPO steps (regex judge; loopback HTTP judge), the cost
record, the prompt order shared with RGSD, NaN handling of unscored completions in TRL's advantages,
resume."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judge_server import JudgeServer, hash_rule, judging_policy  # noqa: E402

from rgsd.costs import CostRecord  # noqa: E402
from rgsd.grpo.config import GRPORunConfig  # noqa: E402
from rgsd.options import build  # noqa: E402

DEMO_TRAIN = Path(__file__).resolve().parents[1] / "rgsd" / "demo_data" / "train.jsonl"
G = 4


def small(tiny_model_dir: Path, out: Path, **kw) -> GRPORunConfig:
    values = dict(
        model_name_or_path=str(tiny_model_dir),
        dataset_name=str(DEMO_TRAIN),
        judge="regex",
        max_steps=2,
        per_device_train_batch_size=2 * G,  # completions, as in TRL: 2 prompts x G rollouts
        gradient_accumulation_steps=1,
        num_generations=G,
        max_completion_length=6,
        output_dir=str(out),
        disable_tqdm=True,
        learning_rate=1e-2,
        lora_r=4,
        lora_alpha=8,
    )
    values.update(kw)
    return GRPORunConfig(**values)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- config -----------------------------------------------------------------------------------------------
def test_config_validation_names_the_problem(tmp_path):
    with pytest.raises(ValueError, match="dataset_name is required"):
        GRPORunConfig().validate()
    with pytest.raises(ValueError, match="num_generations must be >= 2"):
        GRPORunConfig(dataset_name="x", num_generations=1).validate()
    with pytest.raises(ValueError, match="must be a multiple of num_generations"):
        GRPORunConfig(dataset_name="x", per_device_train_batch_size=3, gradient_accumulation_steps=1, num_generations=4).validate()
    with pytest.raises(ValueError, match="warmup_steps"):
        GRPORunConfig(dataset_name="x", warmup_steps=2.5).validate()
    with pytest.raises(ValueError, match="rar-implicit needs judge_mode holistic"):
        GRPORunConfig(dataset_name="x", judge="openai", reward="rar-implicit").validate()
    with pytest.raises(ValueError, match="holistic gives no per-criterion verdicts"):
        GRPORunConfig(dataset_name="x", judge="openai", judge_mode="holistic").validate()
    with pytest.raises(ValueError, match="--judge-price-in and --judge-price-out go together"):
        GRPORunConfig(dataset_name="x", judge_price_in=1.0).validate()
    recipe = tmp_path / "r.yaml"
    recipe.write_text("dataset_name: d.jsonl\nnum_generation: 4\n")
    with pytest.raises(ValueError, match=r"r\.yaml:2: unknown key 'num_generation'"):
        build(GRPORunConfig, recipe)


def test_trl_mapping_counts_completions_and_keeps_prompts_per_step():
    from rgsd.grpo.trainer import trl_config

    cfg = GRPORunConfig(
        dataset_name="x",
        judge="regex",
        per_device_train_batch_size=4,
        gradient_accumulation_steps=12,
        num_generations=8,
        max_completion_length=77,
        beta=0.04,
        max_steps=40,
        warmup_steps=0.05,
        output_dir="runs/unused-grpo",
    )
    cfg.validate()
    args = trl_config(cfg, "fp32")
    # TRL's meaning, passed through: micro-batches of 4 completions x 12 = 48 completions = 6 prompts x 8
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (4, 12)
    assert args.steps_per_generation == 12 and args.generation_batch_size == 48
    assert args.generation_batch_size // args.num_generations == cfg.prompts_per_step() == 6
    assert args.max_completion_length == 77 and args.beta == 0.04 and args.temperature == 1.0
    assert args.bf16 is False and args.gradient_checkpointing is False and args.warmup_steps == 0.05
    assert args.run_name == "unused-grpo" and args.project == "runs"  # tracker names from output_dir
    assert args.lr_scheduler_type.value == "constant_with_warmup" and args.shuffle_dataset is False
    assert args.adam_beta2 == 0.999 and args.weight_decay == 0.01 and args.remove_unused_columns is False


def test_field_names_are_trls_where_trl_has_the_field():
    """Every GRPO training/loss/generation field we expose exists in trl.GRPOConfig under the same name."""
    import dataclasses

    from trl import GRPOConfig

    from rgsd.judges.options import JudgeOptions

    ours = {f.name for f in dataclasses.fields(GRPORunConfig)}
    trl = {f.name for f in dataclasses.fields(GRPOConfig)}
    not_trl = {  # model/LoRA (TRL keeps those in ModelConfig/peft), data, judge, reward and rgsd-only fields
        "model_name_or_path", "dtype", "attn_implementation", "use_lora", "lora_r", "lora_alpha", "lora_dropout",
        "lora_target_modules", "dataset_name", "format", "polarity", "max_examples", "data_order",
        "max_prompt_tokens", "dataset_train_split", "dataset_config", "prompt_column", "rubric_column", "id_column",
        "warmup_ratio",  # transformers 4's name (transformers 5 reads a share from warmup_steps)
        *(f.name for f in dataclasses.fields(JudgeOptions)), "reward", "dynamic_weights", "dynamic_weights_eps",
    }
    assert ours - not_trl <= trl, sorted(ours - not_trl - trl)
    assert {"per_device_train_batch_size", "beta", "max_completion_length", "run_name", "project"} <= ours - not_trl


def test_trl_private_api_is_as_written_against():
    """rgsd/grpo/trl_shim.py relies on TRL internals; a TRL that changes them must fail here, loudly."""
    import trl

    from rgsd.grpo.trl_shim import TRL_VERSION, private_api_problems, timed_grpo_trainer_class

    problems = private_api_problems()
    assert not problems, f"trl {trl.__version__} (shim written against {TRL_VERSION}): " + "; ".join(problems)
    assert timed_grpo_trainer_class().generation_time == 0.0


def test_tracker_names_default_from_the_output_folder_and_the_config_is_logged(monkeypatch):
    from rgsd.grpo.trackers import ConfigToTrackers, apply_project

    cfg = GRPORunConfig(dataset_name="x", judge="regex", output_dir="runs/exp7", report_to=["wandb"])
    assert cfg.tracker_names() == ("exp7", "runs")
    assert GRPORunConfig(output_dir="solo", run_name="r", project="p").tracker_names() == ("r", "p")
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    apply_project("runs", ["wandb"], explicit=False)
    import os

    assert os.environ["WANDB_PROJECT"] == "mine"  # a default does not override the user's environment
    apply_project("p", ["wandb"], explicit=True)
    assert os.environ["WANDB_PROJECT"] == "p"

    class Writer:  # stands in for tensorboard's SummaryWriter (tensorboard is not installed in CI)
        def __init__(self):
            self.texts = {}

        def add_text(self, tag, text):
            self.texts[tag] = text

        def flush(self):
            pass

    from transformers.integrations import TensorBoardCallback as PublicTensorBoardCallback

    class TensorBoardCallback(PublicTensorBoardCallback):
        def __init__(self):  # the real one needs tensorboard installed
            self.tb_writer = Writer()

    class Handler:
        callbacks = [TensorBoardCallback()]

    class State:
        is_world_process_zero = True

    cb = ConfigToTrackers(cfg)
    cb.attach(type("T", (), {"callback_handler": Handler()})())
    cb.on_train_begin(None, State(), None)
    import yaml

    logged = yaml.safe_load(Handler.callbacks[0].tb_writer.texts["rgsd_config"].strip("`\n"))
    assert logged["judge"] == "regex" and logged["output_dir"] == "runs/exp7" and logged["beta"] == 0.0


# ---- two real GRPO steps with the regex judge, then a resume -----------------------------------------------
def test_grpo_regex_two_steps_then_resume(tiny_model_dir, tmp_path):
    from rgsd.cli import main
    from rgsd.data.order import step_indices
    from rgsd.grpo.trainer import train_grpo
    from rgsd.models import load_model

    out = tmp_path / "regex"
    cfg = small(tiny_model_dir, out, save_steps=2, per_device_train_batch_size=G)
    assert train_grpo(cfg) == out
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "costs.json",
        "criteria.jsonl",
        "final/adapter_config.json",
        "final/tokenizer.json",
        "checkpoint-2/costs.json",
    ):
        assert (out / name).exists(), name

    metrics, cost = read_jsonl(out / "metrics.jsonl"), CostRecord.load(out / "costs.json")
    assert [m["step"] for m in metrics] == [1, 2]
    assert cost.method == "grpo" and cost.prompts_seen == 2 and cost.rollouts == 2 * G
    # generated tokens = sum over steps of (mean completion length x completions), TRL's own measurement
    assert cost.generated_tokens == round(sum(m["completions/mean_length"] * G for m in metrics))
    assert cost.judge_calls == 0 and cost.judge_failures == 0  # the regex judge sends no requests
    assert cost.time_generation > 0 and cost.time_optimization > 0
    assert cost.wall_time >= cost.time_generation + cost.time_scoring + cost.time_optimization - 1e-6
    assert metrics[-1]["total_rollouts"] == cost.rollouts  # running totals in every line

    # Same prompts per step as `rgsd train` (its seeded order), each graded as one group of G rollouts.
    ids = [json.loads(line)["id"] for line in DEMO_TRAIN.read_text().splitlines()]
    lines = read_jsonl(out / "criteria.jsonl")
    for step in (1, 2):
        got = [ln["example_id"] for ln in lines if ln["step"] == step]
        assert got == [ids[i] for i in step_indices(step - 1, len(ids), 1, cfg.seed)]
        assert all(ln["rollouts"] == G for ln in lines if ln["step"] == step)

    model, tok = load_model(str(out / "final"))  # LoRA adapter merged on load
    assert model.config.hidden_size == 64 and tok.eos_token == "<|im_end|>"

    # Resume from checkpoint-2 through the CLI with one more step: totals continue, no step is logged twice.
    assert main(["grpo", "--config", str(out / "config.yaml"), "--resume", "--max_steps", "3"]) == 0
    metrics, cost = read_jsonl(out / "metrics.jsonl"), CostRecord.load(out / "costs.json")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert cost.rollouts == 3 * G and cost.prompts_seen == 3


# ---- two real GRPO steps against the loopback HTTP judge ---------------------------------------------------
def _failing_policy():
    """Hash verdicts, but any rubric item containing UNJUDGEABLE gets an unreadable reply (every time)."""
    ok = judging_policy(hash_rule)

    def policy(body: dict) -> str:
        text = body["messages"][0]["content"]
        item = text.split("=== RUBRIC ITEM ===", 1)[1].split("=== END OF RUBRIC ===", 1)[0]
        return "I cannot decide." if "UNJUDGEABLE" in item else ok(body)

    return policy


def _write_data(path: Path) -> None:
    rows = [
        {
            "id": "A",
            "prompt": [{"role": "user", "content": "Name a fruit."}],
            "rubric": [
                {"id": "A1", "text": "Mentions apple", "weight": 3, "polarity": "positive"},
                {"id": "A2", "text": "Mentions banana", "weight": 2, "polarity": "positive"},
                {"id": "A3", "text": "UNJUDGEABLE detail", "weight": 1, "polarity": "positive"},
            ],
        },
        {
            "id": "B",
            "prompt": [{"role": "user", "content": "Name a colour."}],
            "rubric": [
                {"id": "B1", "text": "UNJUDGEABLE one", "weight": 2, "polarity": "positive"},
                {"id": "B2", "text": "UNJUDGEABLE two", "weight": 1, "polarity": "positive"},
            ],
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_grpo_http_judge_costs_failures_and_nan_advantages(tiny_model_dir, tmp_path):
    import pandas as pd
    from safetensors.torch import load_file

    from rgsd.grpo.trainer import train_grpo

    data = tmp_path / "fruit.jsonl"
    _write_data(data)
    out = tmp_path / "http"
    with JudgeServer(_failing_policy()) as server:
        cfg = small(
            tiny_model_dir,
            out,
            dataset_name=str(data),
            judge="openai",
            judge_base_url=server.url,
            judge_model="test-judge",
            judge_mode="per-criterion",
            judge_concurrency=8,
            dynamic_weights=True,
            log_completions=True,
            judge_price_in=2.0,
            judge_price_out=8.0,
        )
        train_grpo(cfg)
        served = server.count

    cost, metrics = CostRecord.load(out / "costs.json"), read_jsonl(out / "metrics.jsonl")
    steps, reasks = 2, 2  # max_reasks of the judge: an unreadable reply is asked 3 times, then a failure
    # per step and rollout: A = 2 criteria x 1 request + 1 failing x 3; B = 2 failing x 3
    logical = steps * G * ((2 + 1 * (1 + reasks)) + 2 * (1 + reasks))
    assert cost.judge_calls == served  # every request that reached the server, and only those
    assert cost.judge_calls + cost.judge_cache_hits == logical
    assert cost.judge_failures == steps * G * (1 + 2)
    assert cost.judge_prompt_tokens > 0 and cost.judge_completion_tokens > 0
    # judge spend in dollars: tokens x price per million, computed by hand from the recorded tokens
    want_usd = (cost.judge_prompt_tokens * 2.0 + cost.judge_completion_tokens * 8.0) / 1e6
    assert cost.judge_cost_usd == pytest.approx(want_usd, abs=1e-6) and cost.judge_cost_usd > 0
    assert cost.prompts_seen == 4 and cost.rollouts == steps * 2 * G
    # B's completions have no usable verdict: reward None, counted, never scored
    assert sum(m["unscored_completions"] for m in metrics) == steps * G

    for step, m in zip((1, 2), metrics):
        df = pd.read_parquet(out / "completions" / f"completions_{step:05d}.parquet")
        fruit = df[df["prompt"].astype(str).str.contains("fruit")]
        colour = df[df["prompt"].astype(str).str.contains("colour")]
        assert len(fruit) == G and len(colour) == G
        # TRL 1.16: None -> NaN, left out of the group baseline, advantage forced to 0
        assert colour["rubric"].isna().all() and (colour["advantage"] == 0).all()
        r = fruit["rubric"].to_numpy(dtype=np.float64)
        assert not np.isnan(r).any()
        want = (r - r.mean()) / (r.std(ddof=1) + 1e-4)  # float64 reference of TRL's group scaling
        assert fruit["advantage"].to_numpy(dtype=np.float64) == pytest.approx(want, abs=1e-4)
        assert m["reward"] == pytest.approx(r.mean(), abs=1e-6)  # unscored rows excluded from the mean

    # Dynamic weights logged per group: B's criteria have no valid verdict (pass rate None, alpha 1).
    lines = read_jsonl(out / "criteria.jsonl")
    b = [ln for ln in lines if ln["example_id"] == "B"]
    assert len(b) == steps and all(ln["pass_rate"] == {"B1": None, "B2": None} for ln in b)
    assert all(ln["alpha"] == {"B1": 1.0, "B2": 1.0} for ln in b)
    a = [ln for ln in lines if ln["example_id"] == "A"]
    for ln in a:  # A3 never judged -> alpha 1; A1/A2 share a category, their factors average to 1
        assert ln["alpha"]["A3"] == 1.0
        assert (ln["alpha"]["A1"] + ln["alpha"]["A2"]) / 2 == pytest.approx(1.0, abs=1e-5)
    # The judge's signal reached the policy: the LoRA B matrices (zero at init) moved.
    weights = load_file(str(out / "final" / "adapter_model.safetensors"))
    assert any(float(t.abs().max()) > 0 for k, t in weights.items() if "lora_B" in k)
    assert not math.isnan(cost.wall_time)


def test_another_trl_runs_only_if_the_internals_the_shim_uses_are_unchanged(monkeypatch, caplog):
    import trl
    from trl import GRPOTrainer

    from rgsd.checks import ConfigError
    from rgsd.grpo.trl_shim import TRL_VERSION, require_compatible_trl

    require_compatible_trl()  # the tested version: nothing to say
    monkeypatch.setattr(trl, "__version__", "1.99.0")
    with caplog.at_level("WARNING", logger="rgsd.grpo.trl_shim"):
        require_compatible_trl()
    assert f"trl 1.99.0: the TRL internals the GRPO baseline uses (written against {TRL_VERSION}) check out" in caplog.text
    monkeypatch.delattr(GRPOTrainer, "_calculate_rewards")
    with pytest.raises(ConfigError, match=r"trl 1\.99\.0: .* changed \(GRPOTrainer\._calculate_rewards no longer .*\); "
                                          rf"pip install trl=={TRL_VERSION}"):
        require_compatible_trl()
