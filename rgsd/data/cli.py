"""``rgsd data lint FILE...`` and ``rgsd data convert IN OUT``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from rgsd.checks import AT_LEAST_ONE
from rgsd.data.loaders import DataError, load_examples, read_polarity_overrides, require_unique_ids
from rgsd.data.options import DatasetArgs
from rgsd.data.rar import DEFAULT_POLICY
from rgsd.options import CommandParser, add_command, arg, options


@dataclass
class SourceArgs(DatasetArgs):
    """How ``rgsd data`` reads its input: the data-source fields of every command, plus split and polarity."""

    DEPRECATED: ClassVar[dict[str, str]] = {"config_name": "dataset_config"}

    split: str | None = arg(None, "Split of a Hugging Face dataset (e.g. train).")
    polarity: Literal["sign", "avoid-positive"] = arg(
        DEFAULT_POLICY, "How a negative weight is read: 'sign' = penalty when met; 'avoid-positive' = a "
                        "negative-weight criterion phrased as good behaviour ('Avoids ...') is worth |w| when met.")
    polarity_overrides: str | None = arg(
        None, 'JSON object {"<example_id>/<criterion_id>" or "<example_id>": "positive"|"negative"}.')

    def source_kwargs(self) -> dict[str, Any]:
        """``load_examples`` keyword arguments of these fields (besides the source, polarity overrides)."""
        return {"format": self.format, "polarity": self.polarity, "split": self.split,
                "config_name": self.dataset_config, "columns": self.columns()}


@dataclass
class LintArgs(SourceArgs):
    max_criterion_chars: int | None = arg(None, "Flag longer criteria (default 4000).", check=AT_LEAST_ONE)


@dataclass
class ConvertArgs(SourceArgs):
    on_error: Literal["strict", "skip"] = arg(
        "strict", "strict: stop on any bad record; skip: write the good ones, list the rest.")
    limit: int | None = arg(None, "Stop after this many examples.", check=AT_LEAST_ONE)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``rgsd data`` with its ``lint`` and ``convert`` subcommands."""
    data = subparsers.add_parser("data", help="check and convert rubric datasets", usage="%(prog)s {lint,convert} ...")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=CommandParser,
                              prog=data.prog)  # errors say "rgsd data convert", not the usage line
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])

    lint = add_command(sub, "lint", [LintArgs], run_lint,
                       "report every problem in rubric files (exit 1 when errors are found)")
    lint.add_argument("files", nargs="+", metavar="FILE")
    conv = add_command(sub, "convert", [ConvertArgs], run_convert, "write the canonical JSONL form of a rubric dataset")
    conv.add_argument("input", metavar="IN", help=".jsonl/.json/.csv/.tsv/.parquet file, dataset folder or hub name")
    conv.add_argument("output", metavar="OUT", help="canonical JSONL file to write")


def _overrides(opts: SourceArgs) -> dict[str, str] | None:
    return read_polarity_overrides(opts.polarity_overrides) if opts.polarity_overrides else None


def run_lint(args: argparse.Namespace) -> int:
    from rgsd.data.lint import MAX_CRITERION_CHARS, format_summary, lint_file

    opts = options(args, LintArgs)
    try:
        overrides = _overrides(opts)
    except DataError as err:
        print(err, file=sys.stderr)
        return 1
    failed = False
    for path in args.files:
        report = lint_file(
            path,
            polarity_overrides=overrides,
            max_criterion_chars=opts.max_criterion_chars or MAX_CRITERION_CHARS,
            **opts.source_kwargs(),
        )
        for problem in report.problems:
            print(problem)
        print(format_summary(report))
        failed |= not report.ok
    return 1 if failed else 0


def run_convert(args: argparse.Namespace) -> int:
    opts = options(args, ConvertArgs)
    if opts.limit is not None and opts.limit <= 0:
        print(f"error: --limit must be >= 1, got {opts.limit}; nothing written to {args.output}", file=sys.stderr)
        return 1
    try:
        result = load_examples(
            args.input,
            on_error=opts.on_error,
            limit=opts.limit,
            polarity_overrides=_overrides(opts),
            **opts.source_kwargs(),
        )
        require_unique_ids(result, on_error=opts.on_error)
    except DataError as err:
        print(err, file=sys.stderr)
        print(f"nothing written to {args.output}", file=sys.stderr)
        return 1
    for issue in result.skipped:
        print(issue, file=sys.stderr)
    for key in result.unused_overrides:
        print(f"warning: polarity override {key!r} matches no criterion", file=sys.stderr)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:  # written aside, then renamed: no half-written OUT
        for ex in result.examples:
            fh.write(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    n_crit = sum(len(ex.rubric) for ex in result.examples)
    print(
        f"wrote {len(result.examples):,} examples ({n_crit:,} criteria, format {result.format}) to {out}; "
        f"skipped {result.skipped_records:,} records ({len(result.skipped):,} problems)"
    )
    return 0
