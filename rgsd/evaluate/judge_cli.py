"""``rgsd judge check``: a judge's false-positive rates on known non-answers; and ``rgsd eval --canaries N``.

The canaries, the pair sampling and the false-positive rule are :mod:`rgsd.judges.canaries`; this module
turns them into a command (a table on stdout, ``canaries.json`` with ``--out``) and into the gate ``rgsd eval``
runs before it generates or grades anything (:func:`canary_gate`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rgsd.checks import AT_LEAST_ONE, NON_NEGATIVE, SEED, SHARE
from rgsd.data.options import EvalDataArgs
from rgsd.evaluate.command import (
    EXIT_BAD_INPUT,
    EXIT_BUDGET,
    EXIT_JUDGE_FAILED,
    close,
    load_eval_examples,
    quiet_http_logs,
    require_kind,
)
from rgsd.judges.canaries import CANARIES, CanaryReport, Pairs, run_canaries, sample_pairs
from rgsd.judges.options import JudgeOptions
from rgsd.options import CommandParser, add_command, arg, options

COMMAND = "rgsd judge check"
CHECK_HELP = "measure a judge's false-positive rate on known non-answers (canaries) before paying for an eval"
CHECK_DESCRIPTION = (
    "Send known non-answers (" + ", ".join(CANARIES) + ") as the graded response for --sample sampled "
    "(example, criterion) pairs of the data and print each canary's false-positive rate: the share of answered "
    "verdicts that call a positive-points criterion met (negative-points and abstention-phrased criteria are "
    "skipped: a non-answer's correct verdict on them cannot expose a fooled judge). Judge failures are "
    "counted apart, never as met or unmet. Published 'master key' replies such as ':' reach 80-90% on some "
    "judges (arXiv 2507.08794)."
)
CHECK_EPILOG = (
    "exit codes: 0 every rate is at most --max-canary-rate; 2 bad input or configuration (also a judge rejecting "
    "the key, URL or model); 3 judge budget exhausted; 4 a rate above --max-canary-rate, a canary without one "
    "answered verdict, or more than --judge-max-failure-rate of the verdicts failed"
)


@dataclass
class CanaryGate:
    """The false-positive rate a judge may show on a canary."""

    max_canary_rate: float = arg(
        0.1, "Fail (exit 4) when any canary's false-positive rate (met on a non-answer) is above this.", check=SHARE)

    def validate(self) -> None:
        if not 0 <= self.max_canary_rate <= 1:
            raise ValueError(f"--max-canary-rate must be from 0 to 1, got {self.max_canary_rate}")


@dataclass
class CanaryArgs(CanaryGate):
    """``rgsd eval``'s canary check, run before anything is generated or graded."""

    canaries: int = arg(
        0, "Before generating or grading, run the judge canaries (" + ", ".join(CANARIES) + ") on N sampled "
           "(example, criterion) pairs, 7N verdicts, and stop with exit 4 when a false-positive rate is above "
           "--max-canary-rate (see `rgsd judge check`); they count against --judge-max-calls; 0 = off.",
        check=NON_NEGATIVE)

    def validate(self) -> None:
        super().validate()
        if self.canaries < 0:
            raise ValueError(f"--canaries must be >= 0, got {self.canaries}")


@dataclass
class CheckArgs(CanaryGate):
    """How many pairs ``rgsd judge check`` samples, and where its report goes."""

    sample: int = arg(20, "(example, criterion) pairs to sample from the positive-points criteria; every canary "
                          "is graded on each (7 verdicts a pair).", check=AT_LEAST_ONE)
    seed: int = arg(0, "Seed of the sample.", check=SEED)
    out: str = arg("", "Folder for canaries.json (and the judge cache, with --judge-cache auto); empty = print only.")

    def validate(self) -> None:
        super().validate()
        if self.sample < 1:
            raise ValueError(f"--sample must be >= 1, got {self.sample}")


def run_gate(
    judge: Any, sample: Pairs, gate: CanaryGate, max_failure_rate: float
) -> tuple[int, CanaryReport | None, str | None]:
    """``(exit code, report, message)`` of running the canaries: 0 passed, else 2, 3 or 4 with a one-line message."""
    from rgsd.judges.openai_judge import JudgeConfigError
    from rgsd.judges.usage import BudgetExhausted

    try:
        report = run_canaries(judge, sample)
    except BudgetExhausted as err:
        return EXIT_BUDGET, None, f"judge budget exhausted during the canaries: {err}"
    except (ValueError, JudgeConfigError) as err:  # a holistic judge; a 401 or an unknown model
        return EXIT_BAD_INPUT, None, str(err)
    report.extra["max_canary_rate"] = gate.max_canary_rate
    problem = report.verdict(gate.max_canary_rate, max_failure_rate)
    report.extra["passed"] = problem is None
    return (EXIT_JUDGE_FAILED if problem else 0), report, problem


def one_line(text: str) -> str:
    """A judge's explanation may hold newlines; the error stays one line."""
    return " ".join(text.split())


def write_report(report: CanaryReport, out: Path) -> Path:
    from rgsd.evaluate.run import write_atomic

    path = out / "canaries.json"
    write_atomic(path, json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return path


def _header(report: CanaryReport, judge: Any, data: str) -> str:
    mode = getattr(judge, "mode", None)
    return (f"judge canaries: {report.judge}{f' ({mode})' if mode else ''} on {data}: {len(report.pairs)} "
            f"(example, criterion) pairs of {report.pool} eligible ({report.skipped_negative} negative-points and "
            f"{report.skipped_abstention} abstention-phrased criteria skipped), {report.n_verdicts} verdicts")


def run_check(args: argparse.Namespace) -> int:
    from rgsd.judges.openai_judge import JudgeConfigError
    from rgsd.judges.options import build_judge

    quiet_http_logs()
    try:
        ca, data, jo = (options(args, c) for c in (CheckArgs, EvalDataArgs, JudgeOptions))
        require_kind(jo, ("openai", "regex"), COMMAND)
        sample = sample_pairs(load_eval_examples(data), ca.sample, ca.seed)
        out = Path(ca.out) if ca.out else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        judge = build_judge(jo, out)
    except (ValueError, JudgeConfigError, OSError) as err:  # DataError and ConfigError are ValueErrors
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        code, report, problem = run_gate(judge, sample, ca, jo.judge_max_failure_rate)
    finally:
        close(judge)
    if report is not None:
        report.extra["data"] = data.dataset_name
        print(_header(report, judge, data.dataset_name))
        print(report.table())
        if report.note:
            print(f"note: {report.note}")
        if out is not None:
            print(f"wrote {write_report(report, out)}")
    if problem:
        print(f"error: {one_line(problem)}", file=sys.stderr)
    return code


def canary_gate(judge: Any, examples: list[Any], args: CanaryArgs, max_failure_rate: float, seed: int,
                out: Path) -> tuple[int, dict[str, Any] | None]:
    """``rgsd eval --canaries N``: ``(0, report)`` to go on, else ``(exit code, report or None)`` after a message.

    The report (also written to ``out/canaries.json``) goes into summary.json when the eval goes on.
    """
    try:
        sample = sample_pairs(examples, args.canaries, seed)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT, None
    code, report, problem = run_gate(judge, sample, args, max_failure_rate)
    if report is not None:
        write_report(report, out)
    if problem:
        tail = f" (details in {out / 'canaries.json'})" if report is not None else ""
        print(f"error: {one_line(problem)}; nothing generated or graded{tail}", file=sys.stderr)
        return code, None if report is None else report.to_dict()
    rates = ", ".join(f"{c.name} {c.rate:.2f}" for c in report.canaries if c.rate is not None)  # type: ignore[union-attr]
    print(f"judge canaries passed (at most {args.max_canary_rate}): {rates}", file=sys.stderr)
    return 0, report.to_dict()  # type: ignore[union-attr]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``rgsd judge`` with its ``check`` subcommand."""
    top = sub.add_parser("judge", help="check a judge before paying for it", usage="%(prog)s SUBCOMMAND [OPTIONS]")
    inner = top.add_subparsers(dest="judge_command", metavar="SUBCOMMAND", parser_class=CommandParser,
                               prog=top.prog)
    top.set_defaults(func=lambda args: (top.print_help(), 2)[1])
    add_command(inner, "check", [CheckArgs, EvalDataArgs, JudgeOptions], run_check, help=CHECK_HELP,
                description=CHECK_DESCRIPTION, epilog=CHECK_EPILOG)
