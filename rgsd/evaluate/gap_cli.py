"""``rgsd gap``: the conditioning arms (none, neutral, shuffled, rubric: :mod:`rgsd.evaluate.arms`), their lifts
and the pre-flight verdict, the conditioning gap (same judge, with vs without the rubric in context) and the
judge-free self-internalization gap of a model."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rgsd.checks import AT_LEAST_ONE, NON_NEGATIVE, NOT_EMPTY
from rgsd.data.options import EvalDataArgs
from rgsd.evaluate.command import (
    EXIT_BAD_INPUT,
    EXIT_BUDGET,
    EXIT_JUDGE_FAILED,
    GenerationArgs,
    Placement,
    add_judging_command,
    close,
    judge_failed,
    load_eval_examples,
    load_generator,
    quiet_http_logs,
    reject_unused,
    require_kind,
    require_out,
)
from rgsd.judges.options import JudgeOptions
from rgsd.options import arg, options

HELP = "conditioning gap (judge) and self-internalization gap (judge-free)"
DESCRIPTION = (
    "Measure whether the rubric in context changes the model's answers (same judge, with vs "
    "without rubric), whether it is these criteria or any criteria list and template that does it (the arms "
    "none, neutral, shuffled, rubric and their lifts), and the self-internalization gap Delta."
)


@dataclass
class GapArgs:
    """The model and how the teacher prompt and the self-internalization probe are built."""

    model: str = arg("smollm2-offline", "Model to measure.", check=NOT_EMPTY)
    placement: Placement = arg("user_suffix", "Where the rubric goes in the teacher prompt.")
    teacher_style: Literal["full", "compact"] = arg(
        "full", "Rubric wording in the teacher prompt (compact suits very small models).")
    k: int = arg(4, "Samples per prompt for the self-internalization gap (paper: 10).", check=AT_LEAST_ONE)
    sig_max_new_tokens: int = arg(
        128, "Longest response in tokens for the self-internalization gap.", check=AT_LEAST_ONE)
    sig_temperature: float = arg(1.0, "Sampling temperature for the self-internalization gap.", check=NON_NEGATIVE)
    arms: str = arg("none,neutral,shuffled,rubric",
                    "Contexts the base model answers from, comma-separated (none = the student's prompt, neutral = "
                    "the teacher template without criteria, shuffled = another prompt's criteria, rubric = the "
                    "teacher); each is graded against the prompt's own criteria. The conditioning gap needs none "
                    "and rubric; the verdict needs none, shuffled and rubric.", check=NOT_EMPTY)
    samples: int = arg(1, "Responses per prompt and arm (more than 1 needs --temperature > 0).", check=AT_LEAST_ONE)


def _conditioning(model: Any, tok: Any, examples: list[Any], judge: Any, a: GapArgs, gen: GenerationArgs,
                  out: Path, report: dict[str, Any], max_failure_rate: float) -> tuple[int, str | None]:
    """Sample, grade and write the arms, their lifts and the conditioning gap; ``(exit code, why the judge
    failed)``."""
    from rgsd.evaluate.arms import ARM_DIRS, parse_arms, sample_arms
    from rgsd.evaluate.arms_report import write_arms
    from rgsd.evaluate.gap import conditioning_gap_from_arms

    arms = parse_arms(a.arms)
    if "shuffled" in arms and len(examples) < 2:
        print("note: the shuffled arm needs at least two prompts; left out", file=sys.stderr)
        arms = tuple(x for x in arms if x != "shuffled")
    try:
        res = sample_arms(model, tok, examples, judge, arms, samples=a.samples, temperature=gen.temperature,
                          max_new_tokens=gen.max_new_tokens, batch_size=gen.batch_size, seed=gen.seed,
                          placement=a.placement, style=a.teacher_style, progress=True)
    finally:
        close(judge)
    for arm in arms:
        res.results[arm].write(out / ARM_DIRS[arm])
    if "none" in arms and "rubric" in arms:
        report["conditioning_gap"] = conditioning_gap_from_arms(res, seed=gen.seed).to_dict()
    summary = res.summary()
    report.update(summary)
    write_arms(res, out, summary)
    last = res.results[arms[-1]].summary
    report["judge_name"] = last.get("judge_name")
    if last.get("note"):
        report["note"] = last["note"]
    failed = None
    for arm in arms:
        failed = failed or judge_failed(res.results[arm].summary, max_failure_rate)
    if failed:
        return EXIT_JUDGE_FAILED, failed
    return (0 if res.complete else EXIT_BUDGET), None


def run(args: argparse.Namespace) -> int:
    from rgsd.evaluate.arms import parse_arms
    from rgsd.evaluate.gap import self_internalization_gap
    from rgsd.judges.openai_judge import JudgeConfigError
    from rgsd.judges.options import build_judge

    quiet_http_logs()
    try:
        a, data, gen, jo = (options(args, c) for c in (GapArgs, EvalDataArgs, GenerationArgs, JudgeOptions))
        out = require_out(gen.out, ("gap.json",))
        require_kind(jo, ("openai", "regex", "none"), "rgsd gap")
        reject_unused(jo, ("judge_price_in", "judge_price_out", "judge_prices"), "rgsd gap")
        examples = load_eval_examples(data)
        parse_arms(a.arms)
        if a.samples > 1 and gen.temperature <= 0:
            raise ValueError("--samples > 1 needs --temperature > 0 (greedy decoding gives the same response)")
        out.mkdir(parents=True, exist_ok=True)
        judge = build_judge(jo, out)
    except (ValueError, JudgeConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    model, tok = load_generator(a.model, gen)
    report: dict[str, Any] = {"data": data.dataset_name, "model": a.model, "n_examples": len(examples),
                              "placement": a.placement, "teacher_style": a.teacher_style}
    code, failed = 0, None
    if judge is not None:
        try:
            code, failed = _conditioning(model, tok, examples, judge, a, gen, out, report, jo.judge_max_failure_rate)
        except JudgeConfigError as err:  # the judge rejected its key, URL or model (possibly mid-run)
            print(f"error: {err}; the judge cache keeps every verdict paid for", file=sys.stderr)
            return EXIT_BAD_INPUT
    sig = self_internalization_gap(model, tok, examples, k=a.k, max_new_tokens=a.sig_max_new_tokens, seed=gen.seed,
                                   placement=a.placement, style=a.teacher_style, temperature=a.sig_temperature,
                                   batch_size=gen.batch_size, progress=True)
    report["self_internalization_gap"] = sig.to_dict()
    (out / "gap.json").write_text(json.dumps(report, indent=2) + "\n")
    brief: dict[str, Any] = {"self_internalization_gap": sig.gap}
    if "conditioning_gap" in report:
        c = report["conditioning_gap"]
        brief.update(conditioning_gap_normalized=c["normalized"]["mean"], ci95=c["normalized"]["ci95_bootstrap"],
                     conditioning_gap_healthbench=c["healthbench"]["mean"])
    if "conditioning_lift" in report:
        brief["conditioning_lift"] = {k: v["mean"] for k, v in report["conditioning_lift"].items()}
        brief["preflight_verdict"] = report["preflight_verdict"]
        print(f"pre-flight: {report['preflight_verdict']} (details: {out / 'report.md'})", file=sys.stderr)
    print(json.dumps(brief))
    if failed:
        print(f"error: {failed} (conditioning gap)", file=sys.stderr)
    if code == EXIT_BUDGET:
        print("judge budget exhausted: the conditioning gap is partial; rerun with a larger budget", file=sys.stderr)
    return code


def register(sub: argparse._SubParsersAction) -> None:
    add_judging_command(sub, "gap", GapArgs, run, HELP, DESCRIPTION)
