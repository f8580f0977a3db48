"""The ``rgsd`` command line.

Each command lives in the module named below, which exposes ``register(subparsers)``: it adds its
parser and sets ``func`` (called with the parsed arguments, returning an exit code). Command modules keep
heavy imports (torch, transformers) inside their run functions so that ``rgsd --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = [
    "rgsd.data.cli",  # rgsd data lint|convert
    "rgsd.train.cli",  # rgsd train
    "rgsd.grpo.cli",  # rgsd grpo
    "rgsd.evaluate.cli",  # rgsd eval, rgsd gap
    "rgsd.compare",  # rgsd compare
    "rgsd.evaluate.paired",  # rgsd compare-evals
    "rgsd.demo.run",  # rgsd demo
    "rgsd.diagnose.cli",  # rgsd diagnose
    "rgsd.rubrics.cli",  # rgsd rubrics generate
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rgsd",
        description="Rubric-Guided Self-Distillation: train on rubric data without a judge, evaluate with one.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    from rgsd.options import CommandParser

    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and name.startswith(err.name):  # the command module itself is not written yet
                continue
            raise
        module.register(sub)
    return parser


def normalize_option_names(argv: list[str]) -> list[str]:
    """``--max_steps 4`` and ``--max-steps 4`` mean the same in every command: spell option names with dashes.

    Only the name of a ``--name`` or ``--name=value`` token changes; values (paths, model names) are untouched.
    """
    out = []
    for tok in argv:
        if tok.startswith("--") and len(tok) > 2:
            name, eq, value = tok[2:].partition("=")
            tok = "--" + name.replace("_", "-") + eq + value
        out.append(tok)
    return out


def main(argv: list[str] | None = None) -> int:
    from rgsd.config import ConfigError

    parser = build_parser()
    argv = normalize_option_names(sys.argv[1:] if argv is None else list(argv))
    # Config-driven commands (train, grpo) take `--field value` overrides that argparse does not know.
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "config_cls", None):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
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
