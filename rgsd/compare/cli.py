"""``rgsd compare``: its flags from :mod:`rgsd.compare.options`, then :func:`rgsd.compare.run.run_compare`."""

from __future__ import annotations

import argparse

from rgsd.compare.options import (
    EVAL_JUDGE_FIELDS,
    CompareArgs,
    CompareJudge,
    CompareOptions,
    EvalData,
    EvalJudge,
)
from rgsd.data.options import EvalDataArgs, TrainDataArgs
from rgsd.judges.options import JudgeOptions
from rgsd.options import add_command, checked, field_types, options, unprefixed

HELP = "RGSD vs judge-based GRPO: matched runs, one evaluation judge, cost per point gained"
DESCRIPTION = """RGSD vs judge-based GRPO on matched prompts and steps, judged by one evaluation judge.

Trains both methods on the same data, steps, prompts per step, seed and response length (or reads two
finished runs with --rgsd-run/--grpo-run); evaluates the base model and both final models on the evaluation
data with one evaluation judge; writes compare.md, compare.json and two plots (rubric score against wall time
and against training-time judge calls). Cost per point gained uses the normalized rubric score in percentage
points (pp); it is n/a when the gain is <= 0.

Judges: --judge-* is GRPO's training judge (unset --judge: regex when training; with --grpo-run the run's own
training judge is read, and --judge, if given, describes the evaluation judge). Every --eval-judge-* option
left unset is the training judge's; when the evaluation judge is GRPO's training judge the table says so,
since a policy trained against a judge learns its blind spots. Dollar costs price the training judge
(--judge-price-*); --eval-judge-price-* and the failure-rate options are not used here."""


def compare_options(args: argparse.Namespace) -> CompareOptions:
    """The typed options of parsed ``rgsd compare`` arguments."""
    types = field_types(JudgeOptions)
    eval_judge = {name: checked(getattr(args, f"eval_{name}"), types[name], f"--eval-{name.replace('_', '-')}")
                  for name in EVAL_JUDGE_FIELDS if getattr(args, f"eval_{name}") is not None}
    return CompareOptions(run=options(args, CompareArgs), data=options(args, TrainDataArgs),
                          eval_data=unprefixed(args, EvalDataArgs, "eval"), judge=options(args, CompareJudge),
                          eval_judge=eval_judge)


def _run(args: argparse.Namespace) -> int:
    from rgsd.compare.run import run_compare

    run_compare(compare_options(args))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    add_command(sub, "compare", [CompareArgs, TrainDataArgs, EvalData, CompareJudge, EvalJudge], _run, HELP,
                description=DESCRIPTION)
