"""``rgsd data lint FILE...`` and ``rgsd data convert IN OUT``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rgsd.data.loaders import FORMATS, DataError, load_examples, read_polarity_overrides, require_unique_ids
from rgsd.data.rar import DEFAULT_POLICY, POLARITY_POLICIES
from rgsd.data.source_args import add_source_args, source_kwargs


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format", default="auto", choices=("auto", *FORMATS), help="input format (default: detect)"
    )
    p.add_argument(
        "--polarity",
        default=DEFAULT_POLICY,
        choices=POLARITY_POLICIES,
        help="how a negative weight is read: 'sign' = penalty when met (default); 'avoid-positive' = a "
        "negative-weight criterion phrased as good behaviour ('Avoids ...') is worth |w| when met",
    )
    p.add_argument(
        "--polarity-overrides",
        metavar="JSON",
        help='JSON object {"<example_id>/<criterion_id>" or "<example_id>": "positive"|"negative"}',
    )
    add_source_args(p)  # --split, --config-name, --prompt-column, --rubric-column, --id-column


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``rgsd data`` with its ``lint`` and ``convert`` subcommands."""
    data = subparsers.add_parser("data", help="check and convert rubric datasets")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])

    lint = sub.add_parser("lint", help="report every problem in rubric files (exit 1 when errors are found)")
    lint.add_argument("files", nargs="+", metavar="FILE")
    _common(lint)
    lint.add_argument(
        "--max-criterion-chars", type=int, default=None, help="flag longer criteria (default 4000)"
    )
    lint.set_defaults(func=run_lint)

    conv = sub.add_parser("convert", help="write the canonical JSONL form of a rubric dataset")
    conv.add_argument("input", metavar="IN", help=".jsonl/.json/.parquet file, dataset folder or hub name")
    conv.add_argument("output", metavar="OUT", help="canonical JSONL file to write")
    _common(conv)
    conv.add_argument(
        "--on-error",
        default="strict",
        choices=("strict", "skip"),
        help="strict: stop on any bad record (default); skip: write the good ones, list the rest",
    )
    conv.add_argument("--limit", type=int, default=None, help="stop after this many examples")
    conv.set_defaults(func=run_convert)


def _overrides(args: argparse.Namespace) -> dict[str, str] | None:
    return read_polarity_overrides(args.polarity_overrides) if args.polarity_overrides else None


def run_lint(args: argparse.Namespace) -> int:
    from rgsd.data.lint import MAX_CRITERION_CHARS, format_summary, lint_file

    try:
        overrides = _overrides(args)
    except DataError as err:
        print(err, file=sys.stderr)
        return 1
    failed = False
    for path in args.files:
        report = lint_file(
            path,
            format=args.format,
            polarity=args.polarity,
            polarity_overrides=overrides,
            max_criterion_chars=args.max_criterion_chars or MAX_CRITERION_CHARS,
            **source_kwargs(args),
        )
        for problem in report.problems:
            print(problem)
        print(format_summary(report))
        failed |= not report.ok
    return 1 if failed else 0


def run_convert(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit <= 0:
        print(f"error: --limit must be >= 1, got {args.limit}; nothing written to {args.output}", file=sys.stderr)
        return 1
    try:
        result = load_examples(
            args.input,
            format=args.format,
            polarity=args.polarity,
            on_error=args.on_error,
            limit=args.limit,
            polarity_overrides=_overrides(args),
            **source_kwargs(args),
        )
        require_unique_ids(result, on_error=args.on_error)
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
