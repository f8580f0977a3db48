"""``rgsd rubrics generate --dataset-name IN --out OUT.jsonl --judge-model M --judge-base-url URL``."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from rgsd.checks import AT_LEAST_ONE, NON_NEGATIVE
from rgsd.evaluate.command import reject_unused, require_kind
from rgsd.judges.options import JudgeOptions
from rgsd.options import CommandParser, add_command, arg, options

COMMAND = "rgsd rubrics generate"


@dataclass
class GenerateInput:
    """The prompts to write rubrics for, and the output file."""

    DEPRECATED: ClassVar[dict[str, str]] = {"data": "dataset_name", "split": "dataset_train_split",
                                            "config_name": "dataset_config"}

    dataset_name: str = arg("", "Prompts (required): any supported rubric format, or JSONL/JSON/Parquet/a Hugging "
                                "Face dataset with a prompt and (optionally) a reference answer.")
    out: str = arg("", "Canonical JSONL to write (required).")
    dataset_train_split: str | None = arg(None, "Split of a Hugging Face dataset (e.g. train).")
    dataset_config: str | None = arg(None, "Configuration (subset) of a Hugging Face dataset.")
    prompt_column: str | None = arg(None, "Field holding the prompt (string or chat messages).")
    reference_column: str | None = arg(None, "Field holding the reference answer (a.b reaches into an object).")
    id_column: str | None = arg(None, "Field holding the example id.")
    limit: int | None = arg(None, "Use only the first N prompts.", check=AT_LEAST_ONE)
    on_error: Literal["strict", "skip"] = arg(
        "strict", "strict: stop on any bad input record (default); skip: list and skip them.")


@dataclass
class RubricShape:
    """How many criteria, their weights, and what counts as copying the reference."""

    min_criteria: int = arg(7, "Fewest criteria in a rubric.", check=AT_LEAST_ONE)
    max_criteria: int = arg(20, "Most criteria in a rubric.", check=AT_LEAST_ONE)
    weights: str = arg("", "Weight ranges per category, e.g. 'Essential=5,Important=3:4,Optional=1:2,Pitfall=-2:-1' "
                           "(the default).")
    copy_words: int = arg(10, "Flag a criterion holding this many consecutive words of the reference (0 = off).",
                          check=NON_NEGATIVE)
    drop_copies: bool = arg(False, "Drop flagged copies instead of tagging them.")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``rgsd rubrics`` with its ``generate`` subcommand."""
    top = subparsers.add_parser("rubrics", help="write rubrics for prompts with an LLM",
                                usage="%(prog)s SUBCOMMAND [OPTIONS]")
    sub = top.add_subparsers(dest="rubrics_command", metavar="SUBCOMMAND", parser_class=CommandParser,
                             prog=top.prog)
    top.set_defaults(func=lambda args: (top.print_help(), 2)[1])
    add_command(
        sub, "generate", [GenerateInput, RubricShape, JudgeOptions], run_generate,
        help="write a RaR-style rubric for every prompt, from its reference answer when there is one",
        description="Write a rubric (Essential / Important / Optional / Pitfall criteria) for every prompt of "
        "the data into OUT (canonical JSONL), asking one OpenAI-compatible model (the --judge-* options). "
        "Resumable: a rerun keeps what OUT has and replays paid replies from the cache ('auto': OUT.cache.sqlite).",
        epilog="exit codes: 0 done; 1 bad input records or failed rubrics (listed); 2 bad configuration or a judge "
        "rejecting the key, URL or model; 3 judge budget exhausted (rerun to continue)",
    )


def run_generate(args: argparse.Namespace) -> int:
    from rgsd.data.loaders import DataError
    from rgsd.judges.openai_judge import JudgeConfigError
    from rgsd.judges.options import build_judge
    from rgsd.rubrics.generate import Settings, failures_path, generate_rubrics
    from rgsd.rubrics.inputs import read_tasks
    from rgsd.rubrics.parse import parse_weight_map

    try:
        src, shape, jo = (options(args, c) for c in (GenerateInput, RubricShape, JudgeOptions))
        for flag, value in (("--dataset-name", src.dataset_name), ("--out", src.out)):
            if not value:
                raise ValueError(f"{flag} is required")
        require_kind(jo, ("openai",), COMMAND)
        reject_unused(jo, ("judge_mode", "judge_panel_rule", "judge_max_failure_rate", "judge_price_in",
                           "judge_price_out", "judge_prices"), COMMAND)
        if jo.judge_model and "," in jo.judge_model:
            raise ValueError(f"--judge-model {jo.judge_model}: {COMMAND} asks one model, not a panel")
        settings = Settings(
            min_criteria=shape.min_criteria,
            max_criteria=shape.max_criteria,
            weights=parse_weight_map(shape.weights),
            copy_words=shape.copy_words,
            drop_copies=shape.drop_copies,
            max_reasks=jo.judge_max_reasks,
            structured=jo.judge_structured,
        )
    except ValueError as err:
        print(f"{COMMAND}: error: {err}", file=sys.stderr)
        return 2
    out = Path(src.out)
    try:
        tasks, issues = read_tasks(
            src.dataset_name, src.dataset_train_split, src.prompt_column, src.reference_column, src.id_column,
            src.on_error, src.limit, src.dataset_config,
        )
    except (DataError, FileNotFoundError) as err:
        print(err, file=sys.stderr)
        print(f"nothing written to {out}", file=sys.stderr)
        return 1
    for issue in issues:
        print(issue, file=sys.stderr)
    try:
        judge = build_judge(jo, out.parent, cache_name=out.name + ".cache.sqlite")
    except (JudgeConfigError, ValueError) as err:
        print(f"{COMMAND}: error: {err}", file=sys.stderr)
        return 2
    try:
        report = generate_rubrics(tasks, out, judge, settings, progress=True)
    except JudgeConfigError as err:
        print(f"{COMMAND}: error: {err}", file=sys.stderr)
        return 2
    except DataError as err:
        print(f"{out}: {err}", file=sys.stderr)
        return 1
    finally:
        judge.close()
    u = report.usage
    print(
        f"wrote {report.written:,} rubrics to {out} ({report.generated:,} new, {report.kept:,} kept from the "
        f"previous run); {len(report.failed):,} failed; {report.merged:,} duplicate criteria merged; "
        f"{report.copies:,} criteria copy the reference{' (dropped)' if settings.drop_copies else ' (tagged copies-reference)'}"
    )
    print(
        f"generator: {u['calls']:,} calls, {u['cache_hits']:,} cache hits, {u['reasks']:,} re-asks, "
        f"{u['retries']:,} retries, {u['total_tokens']:,} tokens"
    )
    for f in report.failed[:20]:
        print(f"{f['where']}: rubric: {f['error']}", file=sys.stderr)
    if report.failed:
        print(f"failures listed in {failures_path(out)}; rerun to try them again", file=sys.stderr)
    if report.budget_stop:
        print(f"stopped: {report.budget_stop}; rerun to continue (paid replies are cached)", file=sys.stderr)
        return 3
    return 1 if report.failed else 0
