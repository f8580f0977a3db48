"""The ``rgsd`` command line.

Each command lives in the module named below, which exposes ``register(subparsers)``: it adds its
parser (a :class:`rgsd.options.CommandParser`: flags from option dataclasses, ``--config FILE``, no
abbreviations) and sets ``func`` (called with the parsed arguments, returning an exit code). Command modules
keep torch and the models inside their run functions; building the parsers imports only transformers'
``HfArgumentParser``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

COMMAND_MODULES = [
    "rgsd.data.cli",  # rgsd data lint|convert
    "rgsd.train.cli",  # rgsd train
    "rgsd.grpo.cli",  # rgsd grpo
    "rgsd.evaluate.cli",  # rgsd eval, rgsd gap
    "rgsd.compare.cli",  # rgsd compare
    "rgsd.evaluate.paired",  # rgsd compare-evals
    "rgsd.demo.cli",  # rgsd demo
    "rgsd.diagnose.cli",  # rgsd diagnose
    "rgsd.rubrics.cli",  # rgsd rubrics generate
]


def build_parser() -> argparse.ArgumentParser:
    from rgsd.options import CommandParser

    parser = argparse.ArgumentParser(
        prog="rgsd", allow_abbrev=False,
        description="Rubric-Guided Self-Distillation: train on rubric data without a judge, evaluate with one.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _warning_line(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    # a deprecated option name is the user's business, not a source line of ours: one line on stderr
    return f"rgsd: {category.__name__}: {message}\n"


def main(argv: list[str] | None = None) -> int:
    from rgsd.options import ConfigError

    warnings.formatwarning = _warning_line  # formatting only: pytest.warns and -W still see the warning
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    except ConfigError as err:  # a bad flag value, config file, key or value in it: one line, no usage, no traceback
        print(f"{getattr(err, 'prog', 'rgsd')}: error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except ConfigError as err:  # a bad config key or value: say which and what is accepted, no traceback
        print(f"rgsd {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
