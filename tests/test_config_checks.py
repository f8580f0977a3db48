"""Config validation at load (issue 19, items 8-9): every bad value, flag or YAML, exits 2 with one line naming
the flag or FILE:LINE and the field, never a traceback and never a run that fails late; broken config files too."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

from rgsd.checks import POSITIVE, ConfigError, read_config
from rgsd.cli import main
from rgsd.grpo.config import GRPORunConfig
from rgsd.judges.options import JudgeOptions
from rgsd.options import arg, build
from rgsd.train.config import RGSDConfig


def refused(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """The one stderr line of ``rgsd ARGV``, which must exit 2 before doing anything."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("rgsd"), err
    return err.strip()


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---- 1. NaN and infinity, from a flag, in every command -----------------------------------------------------
@pytest.mark.parametrize("argv, line", [
    (["eval", "--judge-temperature", "nan"], "rgsd eval: error: --judge-temperature: must be a number, got nan"),
    (["eval", "--judge-temperature", "inf"], "rgsd eval: error: --judge-temperature: must be finite, got inf"),
    (["eval", "--judge-temperature=-inf"], "rgsd eval: error: --judge-temperature: must be finite, got -inf"),
    (["eval", "--judge-price-in", "nan"], "rgsd eval: error: --judge-price-in: must be a number, got nan"),
    (["gap", "--sig-temperature", "NaN"], "rgsd gap: error: --sig-temperature: must be a number, got nan"),
    (["train", "--learning-rate", "nan"], "rgsd train: error: --learning-rate: must be a number, got nan"),
    (["train", "--max-grad-norm", "inf"], "rgsd train: error: --max-grad-norm: must be finite, got inf"),
    (["grpo", "--judge-timeout", "inf"], "rgsd grpo: error: --judge-timeout: must be finite, got inf"),
    (["compare", "--temperature", "1e400"], "rgsd compare: error: --temperature: must be finite, got inf"),
    (["diagnose", "--reference-judge-temperature", "nan"],
     "rgsd diagnose: error: --reference-judge-temperature: must be a number, got nan"),
    (["demo", "--eval-temperature", "inf"], "rgsd demo: error: --eval-temperature: must be finite, got inf"),
    (["rubrics", "generate", "--judge-max-failure-rate", "nan"],
     "rgsd rubrics generate: error: --judge-max-failure-rate: must be a number, got nan"),
])
def test_nan_and_infinity_are_refused_in_every_command(argv, line, capsys):
    assert refused(argv, capsys) == line


def test_a_field_may_allow_infinity_but_never_nan():
    @dataclass
    class Limits:
        cap: float = arg(1.0, "A cap; inf = none.", check=POSITIVE, allow_inf=True)
        rate: float = arg(1.0, "A rate.")

    assert build(Limits, None, {"cap": "inf"}).cap == float("inf")
    with pytest.raises(ConfigError, match=r"^overrides: cap: must be a number, got nan$"):
        build(Limits, None, {"cap": "nan"})
    with pytest.raises(ConfigError, match=r"^overrides: rate: must be finite, got inf$"):
        build(Limits, None, {"rate": float("inf")})


# ---- 2. config files that are not configs ---------------------------------------------------------------
@pytest.mark.parametrize("text, problem", [
    ("dataset_name: x\nmax_steps: [1\n", ":3:1: not valid YAML: expected ',' or ']', but got '<stream end>'"),
    ("dataset_name: x\n\tmax_steps: 1\n", ":2:1: not valid YAML: found character '\\t' that cannot start any token"),
    ("a: 1\n---\nb: 2\n", ":2:1: not valid YAML: but found another document"),
    ("[a]: 1\n", ":1:1: not valid YAML: found unhashable key"),
    ("- a\n- b\n", ": a config file must be a mapping of field: value, got ['a', 'b']"),
    ("just a word\n", ": a config file must be a mapping of field: value, got 'just a word'"),
    ("0\n", ": a config file must be a mapping of field: value, got 0"),
    ("a: " + "[" * 3000 + "]" * 3000 + "\n", ": not a usable YAML config: nested too deeply"),
    ("max_steps: " + "9" * 5000 + "\n", ": not a usable YAML config: a number too long to read"),
])
def test_a_broken_config_file_is_one_line_naming_the_file(tmp_path, capsys, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        build(RGSDConfig, path)
    assert str(exc.value) == f"{path}{problem}"
    assert refused(["train", "--config", str(path)], capsys) == f"rgsd train: error: {path}{problem}"


def test_a_missing_unreadable_or_binary_config_file(tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    assert refused(["train", "--config", str(missing)], capsys) == (
        f"rgsd train: error: {missing}: cannot read the config file: No such file or directory")
    assert refused(["eval", "--config", str(tmp_path)], capsys) == (
        f"rgsd eval: error: {tmp_path}: cannot read the config file: Is a directory")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00max_steps: 1\n")
    with pytest.raises(ConfigError, match=r": cannot read the config file: it is not UTF-8 text$"):
        build(RGSDConfig, binary)
    for name in ("a\x00b.yaml", "\ud800.yaml"):  # a YAML escape can give a path no file system takes
        with pytest.raises(ConfigError) as exc:
            read_config(name)
        assert str(exc.value) == f"{name!r}: cannot read the config file: not a usable file name"


@pytest.mark.parametrize("text", ["", "# nothing set yet\n", "~\n"])
def test_an_empty_config_file_is_an_empty_mapping(tmp_path, text):
    path = write(tmp_path, text)
    assert read_config(path) == ({}, {})
    assert build(RGSDConfig, path, {"dataset_name": "x"}).max_steps == 100


def test_each_top_level_key_has_its_line(tmp_path):
    path = write(tmp_path, "# a recipe\ndataset_name: x\n\nreport_to:\n  - wandb\nmax_steps: 4\n")
    assert read_config(path) == ({"dataset_name": "x", "report_to": ["wandb"], "max_steps": 4},
                                 {"dataset_name": 2, "report_to": 4, "max_steps": 6})


# ---- 3. values that cannot be right, from YAML (FILE:LINE: field) and from flags (--flag) ------------------
YAML_CASES = [
    ("learning_rate: -1.0e-3", "learning_rate: must be > 0, got -0.001"),
    ("learning_rate: .nan", "learning_rate: must be a number, got nan"),
    ("learning_rate: 0", "learning_rate: must be > 0, got 0.0"),
    ("learning_rate: 1e400", "learning_rate: must be finite, got inf"),
    ("max_steps: -5", "max_steps: must be >= 1, got -5"),
    ("max_steps: -1", "max_steps: must be >= 1, got -1"),
    ("max_steps: 0", "max_steps: must be >= 1, got 0"),
    ("max_steps: 1.5", "max_steps: expected int, got 1.5"),
    ("max_steps: true", "max_steps: expected a number, got True"),
    ("max_steps: 1.0e+30", f"max_steps: must be at most {2**63 - 1} in size, got 1000000000000000019884624838656"),
    ("output_dir: 17", "output_dir: expected a string, got 17 (quote it if it is a name)"),
    ("output_dir: ''", "output_dir: must not be empty"),
    ("run_name: yes", "run_name: cannot read True as str | None"),
    ("model_name_or_path: {a: 1}", "model_name_or_path: expected a string, got {'a': 1} (quote it if it is a name)"),
    ("warmup_ratio: 1.5", "warmup_ratio: must be in [0, 1), got 1.5"),
    ("warmup_steps: -2", "warmup_steps: must be >= 0, got -2.0"),
    ("per_device_train_batch_size: 0", "per_device_train_batch_size: must be >= 1, got 0"),
    ("gradient_accumulation_steps: -1", "gradient_accumulation_steps: must be >= 1, got -1"),
    ("lora_r: 0", "lora_r: must be >= 1, got 0"),
    ("lora_dropout: 1", "lora_dropout: must be in [0, 1), got 1.0"),
    ("adam_beta2: 1.0", "adam_beta2: must be in [0, 1), got 1.0"),
    ("adam_epsilon: 0", "adam_epsilon: must be > 0, got 0.0"),
    ("weight_decay: -0.1", "weight_decay: must be >= 0, got -0.1"),
    ("temperature: -0.5", "temperature: must be >= 0, got -0.5"),
    ("top_p: 0", "top_p: must be in (0, 1], got 0.0"),
    ("top_p: 1.5", "top_p: must be in (0, 1], got 1.5"),
    ("max_new_tokens: 0", "max_new_tokens: must be >= 1, got 0"),
    ("beta: 1.5", "beta: must be in [0, 1], got 1.5"),
    ("clip: -0.05", "clip: must be > 0, got -0.05"),
    ("top_k: 0", "top_k: must be >= 1, got 0"),
    ("ema_decay: 2", "ema_decay: must be in [0, 1], got 2.0"),
    ("loss_temperature: 0", "loss_temperature: must be > 0, got 0.0"),
    ("seed: -1", "seed: must be in [0, 4.29497e+09], got -1"),
    ("seed: 4294967296", "seed: must be in [0, 4.29497e+09], got 4294967296"),
    ("seed: 0.5", "seed: expected int, got 0.5"),
    ("vllm_server_port: 70000", "vllm_server_port: must be in [1, 65535], got 70000"),
    ("save_steps: -1", "save_steps: must be >= 0, got -1"),
    ("logging_steps: 0", "logging_steps: must be >= 1, got 0"),
    ("probe_prompts: 0", "probe_prompts: must be >= 1, got 0"),
    ("max_examples: 0", "max_examples: must be >= 1, got 0"),
    ("report_to: [mlfow]", "report_to: 'mlfow' is not one of ['none', 'all', 'azure_ml', 'clearml', 'codecarbon', 'comet_ml', 'dagshub', 'dvclive', 'flyte', 'kubeflow', 'mlflow', 'neptune', 'swanlab', 'tensorboard', 'trackio', 'wandb']"),
    ("clip_mode: foo", "clip_mode: 'foo' is not one of ['entry', 'token']"),
    ("lr_scheduler_type: Constant", "lr_scheduler_type: 'Constant' is not one of ['constant', "
                                    "'constant_with_warmup', 'cosine', 'linear']"),
    ("polarity: bogus", "polarity: 'bogus' is not one of ['sign', 'avoid-positive']"),
    ("use_lora: 2", "use_lora: expected true/false, got 2"),
]


@pytest.mark.parametrize("line, problem", YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_a_bad_yaml_value_names_file_line_and_field(tmp_path, line, problem):
    path = write(tmp_path, f"# recipe\ndataset_name: data.jsonl\n{line}\n")
    with pytest.raises(ConfigError) as exc:
        build(RGSDConfig, path)
    assert str(exc.value) == f"{path}:3: {problem}"


@pytest.mark.parametrize("text, problem", [
    ("dataset_name: [a, b]\n", "1: dataset_name: expected a string, got ['a', 'b'] (quote it if it is a name)"),
    ("dataset_name: x\nlearning_rate: 1.0e-4\nmax_steps: 3\nlearning_rate: 2.0e-4\n",
     "4: duplicate key 'learning_rate' (first at line 2); give each key once"),
    ("dataset_name: x\nlearning_rate: -1.0e-3\n", "2: learning_rate: must be > 0, got -0.001"),
    ("dataset_name: x\noutput_dir: 17\n", "2: output_dir: expected a string, got 17 (quote it if it is a name)"),
    ("dataset_name: x\nmax_steps: -5\n", "2: max_steps: must be >= 1, got -5"),
    ("dataset_name: x\nmax_stepz: 5\n", "2: unknown key 'max_stepz'; did you mean --max_steps, --save_steps? "
                                        "(`--help` lists every field)"),
])
def test_the_issues_repros_exit_2_from_the_cli(tmp_path, capsys, text, problem):
    path = write(tmp_path, text)
    assert refused(["train", "--config", str(path)], capsys) == f"rgsd train: error: {path}:{problem}"


def test_a_duplicate_key_is_refused_at_any_depth_but_a_merge_may_be_overridden(tmp_path):
    path = write(tmp_path, "dataset_name: x\nreport_to: [wandb]\nx: &base {a: 1, b: 2}\n")
    nested = write(tmp_path, "judge: regex\njudge_prices:\n  m: {input: 1, input: 2}\n", "nested.yaml")
    with pytest.raises(ConfigError, match=r"nested.yaml:3: duplicate key 'input' \(first at line 3\)"):
        read_config(nested)
    merged = write(tmp_path, "base: &b {a: 1, b: 2}\nrun:\n  <<: *b\n  a: 3\n", "merged.yaml")
    assert read_config(merged)[0] == {"base": {"a": 1, "b": 2}, "run": {"a": 3, "b": 2}}
    assert read_config(path)[1] == {"dataset_name": 1, "report_to": 2, "x": 3}


@pytest.mark.parametrize("argv, line", [
    (["train", "--learning-rate", "-0.001"], "rgsd train: error: --learning-rate: must be > 0, got -0.001"),
    (["train", "--learning_rate", "0"], "rgsd train: error: --learning-rate: must be > 0, got 0.0"),
    (["train", "--max-steps", "-5"], "rgsd train: error: --max-steps: must be >= 1, got -5"),
    (["train", "--warmup-ratio", "1"], "rgsd train: error: --warmup-ratio: must be in [0, 1), got 1.0"),
    (["train", "--report-to", "tensorboard", "mlfow"],
     "rgsd train: error: --report-to: 'mlfow' is not one of ['none', 'all', 'azure_ml', 'clearml', 'codecarbon', 'comet_ml', 'dagshub', 'dvclive', 'flyte', 'kubeflow', 'mlflow', 'neptune', 'swanlab', 'tensorboard', 'trackio', 'wandb']"),
    (["train", "--max-steps", "9" * 30],
     f"rgsd train: error: --max-steps: must be at most {2**63 - 1} in size, got {'9' * 30}"),
    (["grpo", "--num-generations", "1"], "rgsd grpo: error: --num-generations: must be >= 2, got 1"),
    (["grpo", "--temperature", "0"], "rgsd grpo: error: --temperature: must be > 0, got 0.0"),
    (["grpo", "--vllm-gpu-memory-utilization", "0"],
     "rgsd grpo: error: --vllm-gpu-memory-utilization: must be in (0, 1], got 0.0"),
    (["eval", "--judge-concurrency", "0"], "rgsd eval: error: --judge-concurrency: must be >= 1, got 0"),
    (["eval", "--judge-temperature", "-1"], "rgsd eval: error: --judge-temperature: must be >= 0, got -1.0"),
    (["eval", "--judge-timeout", "0"], "rgsd eval: error: --judge-timeout: must be > 0, got 0.0"),
    (["eval", "--judge-max-failure-rate", "1.5"],
     "rgsd eval: error: --judge-max-failure-rate: must be in [0, 1], got 1.5"),
    (["eval", "--max-new-tokens", "0"], "rgsd eval: error: --max-new-tokens: must be >= 1, got 0"),
    (["eval", "--batch-size", "-8"], "rgsd eval: error: --batch-size: must be >= 1, got -8"),
    (["eval", "--limit", "0"], "rgsd eval: error: --limit: must be >= 1, got 0"),
    (["gap", "--k", "0"], "rgsd gap: error: --k: must be >= 1, got 0"),
    (["compare", "--max-steps", "0"], "rgsd compare: error: --max-steps: must be >= 1, got 0"),
    (["compare", "--eval-judge-concurrency", "0"],
     "rgsd compare: error: --eval-judge-concurrency: must be >= 1, got 0"),
    (["compare", "--seed", "-3"], "rgsd compare: error: --seed: must be in [0, 4.29497e+09], got -3"),
    (["compare-evals", "a", "b", "--seed", "-1"],
     "rgsd compare-evals: error: --seed: must be in [0, 4.29497e+09], got -1"),
    (["demo", "--steps", "0"], "rgsd demo: error: --steps: must be >= 1, got 0"),
    (["demo", "--threads", "0"], "rgsd demo: error: --threads: must be >= 1, got 0"),
    (["diagnose", "--samples", "0"], "rgsd diagnose: error: --samples: must be >= 1, got 0"),
    (["diagnose", "--pairwise-judge-max-retries", "-1"],
     "rgsd diagnose: error: --pairwise-judge-max-retries: must be >= 0, got -1"),
    (["rubrics", "generate", "--min-criteria", "0"],
     "rgsd rubrics generate: error: --min-criteria: must be >= 1, got 0"),
    (["data", "convert", "in", "out", "--limit", "0"], "rgsd data convert: error: --limit: must be >= 1, got 0"),
])
def test_a_bad_flag_value_names_the_flag(argv, line, capsys):
    assert refused(argv, capsys) == line


def test_yaml_choices_are_checked_as_the_flags_are(tmp_path, capsys):
    path = write(tmp_path, "judge: openai\njudge_mode: Batched\n")
    assert refused(["eval", "--config", str(path)], capsys) == (
        f"rgsd eval: error: {path}:2: judge_mode: 'Batched' is not one of ['per-criterion', 'batched', 'holistic']")
    path = write(tmp_path, "dtype: float64\n")
    assert refused(["diagnose", "--config", str(path)], capsys).startswith(
        f"rgsd diagnose: error: {path}:1: dtype: 'float64' is not one of ['float32', 'bfloat16'")


def test_a_check_across_fields_names_the_line_of_the_first_field_it_names(tmp_path):
    path = write(tmp_path, "dataset_name: x\ndtype: fp16\nbf16: true\n")
    with pytest.raises(ConfigError) as exc:
        build(RGSDConfig, path)
    assert str(exc.value) == f"{path}:3: RGSDConfig: bf16: true contradicts dtype fp16"
    path = write(tmp_path, "judge: regex\nper_device_train_batch_size: 3\nnum_generations: 2\n")
    with pytest.raises(ConfigError, match=rf"^{path}:2: GRPORunConfig: per_device_train_batch_size x "):
        build(GRPORunConfig, path, {"dataset_name": "x", "gradient_accumulation_steps": 1})
    path = write(tmp_path, "max_steps: 3\n")
    with pytest.raises(ConfigError, match=rf"^{path}: RGSDConfig: dataset_name is required"):
        build(RGSDConfig, path)


def test_the_python_api_checks_overrides_and_takes_paths_for_strings():
    cfg = build(RGSDConfig, None, {"dataset_name": Path("data/train.jsonl"), "output_dir": Path("runs/x")})
    assert (cfg.dataset_name, cfg.output_dir) == ("data/train.jsonl", "runs/x")
    with pytest.raises(ConfigError, match=r"^overrides: judge_max_calls: must be >= 0, got -1$"):
        build(JudgeOptions, None, {"judge": "regex", "judge_max_calls": -1})
    with pytest.raises(ConfigError, match=r"^overrides: learning_rate: must be > 0, got -0.001$"):
        build(RGSDConfig, None, {"dataset_name": "x", "learning_rate": -1e-3})


def test_a_bad_file_is_refused_even_when_a_flag_overrides_its_value(tmp_path, capsys):
    # the file is wrong whatever the command line says: it would be wrong the next time it is used alone
    path = write(tmp_path, "dataset_name: x\nlearning_rate: -1.0e-3\n")
    assert refused(["train", "--config", str(path), "--learning-rate", "0.1"], capsys) == (
        f"rgsd train: error: {path}:2: learning_rate: must be > 0, got -0.001")


def test_as_a_subprocess_no_traceback_and_exit_2(tmp_path):
    path = write(tmp_path, "dataset_name: x\nlearning_rate: .nan\n")
    for argv in (["train", "--config", str(path)], ["eval", "--judge-temperature", "nan"]):
        out = subprocess.run([sys.executable, "-m", "rgsd.cli", *argv], capture_output=True, text=True, cwd=REPO,
                             timeout=300)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("rgsd "), out.stderr
