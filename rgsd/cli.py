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
    "rgsd.export",  # rgsd export
    "rgsd.evaluate.cli",  # rgsd eval, rgsd gap, rgsd judge check
    "rgsd.compare.cli",  # rgsd compare
    "rgsd.evaluate.paired_cli",  # rgsd compare-evals
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
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (rgsd's own)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def package_version() -> str:
    """The installed distribution's version (a checkout that is not installed: the package's own)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rgsd")
    except PackageNotFoundError:
        from rgsd import __version__

        return __version__


def configure_logging(verbose: bool) -> None:
    """rgsd's lines at INFO (``-v``: DEBUG) on stderr; every other library's stay at WARNING and up."""
    # The level goes on the ``rgsd`` logger, not on root: a root at INFO lets every library's INFO lines through
    # (HTTP requests, checkpoint shards). Records still propagate to root's handler, so pytest's caplog sees them.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("rgsd").setLevel(logging.DEBUG if verbose else logging.INFO)


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
    configure_logging(args.verbose)
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
