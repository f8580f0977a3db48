"""One command-line convention: `--field value` with dashes or underscores; bad keys/values exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

from rgsd.cli import build_parser, main

TINY = str(REPO / "recipes" / "rgsd-tiny-cpu.yaml")


def test_option_names_take_both_spellings_but_values_are_kept():
    parser = build_parser()
    for argv in (["train", "--dataset_name=my_data.jsonl", "--output-dir", "out_dir", "--run_name", "a_b"],
                 ["train", "--dataset-name", "my_data.jsonl", "--output_dir=out_dir", "--run-name", "a_b"]):
        args = parser.parse_args(argv)
        assert (args.dataset_name, args.output_dir, args.run_name) == ("my_data.jsonl", "out_dir", "a_b")


@pytest.mark.parametrize("spelling", ["--max_new_tokens", "--max-new-tokens"])
def test_config_fields_accept_both_spellings(spelling, capsys):
    # Both spellings reach the same field: a bad value for it is reported under the field's name.
    with pytest.raises(SystemExit) as exc:
        main(["train", "--config", TINY, spelling, "many"])
    assert exc.value.code == 2 and "--max_new_tokens/--max-new-tokens: invalid int value: 'many'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--bogus", "1"], "unrecognized arguments: --bogus"),
        (["--max_stepz", "3"], "did you mean --max_steps"),
        (["--max-stepz", "3"], "did you mean --max_steps"),
        (["--max-step", "3"], "did you mean --max_steps"),  # no abbreviation
        (["--clip_mode", "foo"], "invalid choice: 'foo' (choose from 'entry', 'token')"),
        (["--max-steps", "abc"], "--max_steps/--max-steps: invalid int value: 'abc'"),
        (["--beta", "2"], "rgsd train: error: --beta: must be in [0, 1], got 2.0"),
        (["--format", "jsonl"], "invalid choice: 'jsonl' (choose from 'auto', 'healthbench', 'rar', 'rubrichub', "
                                "'canonical', 'generic')"),
    ],
)
def test_bad_keys_and_values_exit_2_with_the_field_and_accepted_values(args, expected):
    out = subprocess.run([sys.executable, "-m", "rgsd.cli", "train", "--config", TINY, *args],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2, out.stderr
    assert expected in out.stderr and "Traceback" not in out.stderr


def test_grpo_uses_the_same_convention():
    recipe = str(REPO / "recipes" / "grpo-tiny-cpu.yaml")
    out = subprocess.run([sys.executable, "-m", "rgsd.cli", "grpo", "--config", recipe, "--num-generations", "x"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "--num_generations/--num-generations: invalid int" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_bad_key_in_the_config_file_exits_2_with_did_you_mean(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset_name: x\nlearning_rat: 0.1\n")
    out = subprocess.run([sys.executable, "-m", "rgsd.cli", "train", "--config", str(bad)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "unknown key 'learning_rat'" in out.stderr and "--learning_rate" in out.stderr
    assert "Traceback" not in out.stderr


def test_train_help_lists_the_trl_names_with_defaults():
    out = subprocess.run([sys.executable, "-m", "rgsd.cli", "train", "--help"], capture_output=True, text=True,
                         cwd=REPO)
    assert out.returncode == 0
    for name in ("model_name_or_path", "dataset_name", "dataset_config", "dataset_train_split",
                 "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type",
                 "warmup_ratio", "warmup_steps", "max_steps", "logging_steps", "save_steps", "seed", "bf16",
                 "gradient_checkpointing", "report_to", "run_name", "output_dir", "resume"):
        assert f"--{name}" in out.stdout, name
    assert "(default: constant_with_warmup)" in out.stdout
