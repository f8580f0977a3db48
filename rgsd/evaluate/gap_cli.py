"""``rgsd gap``: the conditioning gap (same judge, with vs without the rubric in context) and the judge-free
self-internalization gap of a model."""

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
    "without rubric) and the self-internalization gap Delta."
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


def _conditioning(model: Any, tok: Any, examples: list[Any], judge: Any, a: GapArgs, gen: GenerationArgs,
                  out: Path, report: dict[str, Any], max_failure_rate: float) -> tuple[int, str | None]:
    """Measure and write the conditioning gap; ``(exit code, why the judge failed)``."""
    from rgsd.evaluate.gap import conditioning_gap

    try:
        cg = conditioning_gap(model, tok, examples, judge, max_new_tokens=gen.max_new_tokens,
                              temperature=gen.temperature, placement=a.placement, style=a.teacher_style,
                              batch_size=gen.batch_size, seed=gen.seed, progress=True)
    finally:
        close(judge)
    cg.without_rubric.write(out / "without_rubric")
    cg.with_rubric.write(out / "with_rubric")
    report["conditioning_gap"] = cg.to_dict()
    report["judge_name"] = cg.with_rubric.summary.get("judge_name")
    if cg.with_rubric.summary.get("note"):
        report["note"] = cg.with_rubric.summary["note"]
    failed = None
    for side in (cg.without_rubric, cg.with_rubric):
        failed = failed or judge_failed(side.summary, max_failure_rate)
    if failed:
        return EXIT_JUDGE_FAILED, failed
    return (0 if cg.complete else EXIT_BUDGET), None


def run(args: argparse.Namespace) -> int:
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
    print(json.dumps(brief))
    if failed:
        print(f"error: {failed} (conditioning gap)", file=sys.stderr)
    if code == EXIT_BUDGET:
        print("judge budget exhausted: the conditioning gap is partial; rerun with a larger budget", file=sys.stderr)
    return code


def register(sub: argparse._SubParsersAction) -> None:
    add_judging_command(sub, "gap", GapArgs, run, HELP, DESCRIPTION)
