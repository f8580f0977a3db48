"""One command-line convention: `--field value` with dashes or underscores; bad keys/values exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

from rgsd.cli import main, normalize_option_names

TINY = str(REPO / "recipes" / "rgsd-tiny-cpu.yaml")


def test_option_names_are_normalized_but_values_are_not():
    argv = ["eval", "--max_calls", "3", "--data=my_data.jsonl", "--out", "out_dir", "-v", "--judge-model", "a_b"]
    assert normalize_option_names(argv) == [
        "eval", "--max-calls", "3", "--data=my_data.jsonl", "--out", "out_dir", "-v", "--judge-model", "a_b"]


@pytest.mark.parametrize("spelling", ["--max_new_tokens", "--max-new-tokens"])
def test_config_fields_accept_both_spellings(spelling, capsys):
    # Both spellings reach the same field: a bad value for it is reported under the field's name.
    code = main(["train", "--config", TINY, spelling, "many"])
    assert code == 2 and "--max_new_tokens: expected int, got 'many'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--bogus", "1"], "unknown option --bogus"),
        (["--max_stepz", "3"], "did you mean --max_steps"),
        (["--clip_mode", "foo"], "'foo' is not one of ['entry', 'token']"),
        (["--max-steps", "abc"], "--max_steps: expected int, got 'abc'"),
        (["--beta", "2"], "beta must be in [0, 1]"),
        (["--format", "jsonl"], "is not one of ['auto', 'healthbench', 'rar', 'rubrichub', 'canonical', 'generic']"),
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
    assert out.returncode == 2 and "--num_generations: expected int" in out.stderr and "Traceback" not in out.stderr
