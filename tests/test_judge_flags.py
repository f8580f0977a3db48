"""One judge definition: every command that talks to a judge (eval, gap, compare, diagnose with its roles,
rubrics generate) offers the judge flags of :class:`rgsd.judges.options.JudgeOptions` with the same option
strings, choices, defaults and help text, read from the parsers ``rgsd`` really builds."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

import pytest

from rgsd.cli import build_parser
from rgsd.judges.options import JudgeOptions
from rgsd.options import CommandParser

NAMES = [f.name for f in fields(JudgeOptions)]

# Role defaults that differ on purpose (today's behaviour of that role): everything else is JudgeOptions'.
ROLE_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("diagnose", "reference"): {"judge_panel_rule": "unanimous"},  # a credit falls only if every member rejects it
    ("diagnose", "pairwise"): {"judge": "none"},  # optional roles: skipped unless asked for
    ("diagnose", "classifier"): {"judge": "none"},
    ("compare", ""): {"judge": None},  # unset: regex to train, or a finished run's own judge
    ("compare", "eval"): dict.fromkeys(NAMES),  # unset: the training judge's value
}


def subcommand(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def judge_flags(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, dict[str, Any]]:
    """JudgeOptions field -> its flag's option strings (role prefix removed), choices, default and help."""
    by_dest = {a.dest: a for a in parser._actions}
    out = {}
    for name in NAMES:
        action = by_dest.get(f"{prefix}_{name}" if prefix else name)
        if action is None:
            continue
        strings = sorted({s.replace(f"--{prefix}-", "--", 1).replace(f"--{prefix}_", "--", 1) if prefix else s
                          for s in action.option_strings})
        out[name] = {"option_strings": strings, "choices": list(action.choices or []), "default": action.default,
                     "help": action.help}
    return out


def roles(parser: argparse.ArgumentParser) -> list[str]:
    """The role prefixes of a parser's judges ('' = unprefixed), found by their judge_model flag."""
    return sorted(a.dest[: -len("_judge_model")] if a.dest != "judge_model" else ""
                  for a in parser._actions if a.dest == "judge_model" or a.dest.endswith("_judge_model"))


REFERENCE = judge_flags(CommandParser([JudgeOptions]))
COMMANDS = [
    pytest.param(("eval",), id="eval"),
    pytest.param(("gap",), id="gap"),
    pytest.param(("compare",), id="compare"),
    pytest.param(("diagnose",), id="diagnose"),
    pytest.param(("rubrics", "generate"), id="rubrics-generate"),
]


def test_the_reference_covers_every_field_with_help():
    assert set(REFERENCE) == set(NAMES)
    for name, flag in REFERENCE.items():
        dashed = "--" + name.replace("_", "-")
        assert flag["option_strings"] == sorted({dashed, "--" + name}) and flag["help"], name


@pytest.mark.parametrize("path", COMMANDS)
def test_judge_flags_are_the_same_in_every_command(path):
    parser = subcommand(build_parser(), *path)
    assert parser.allow_abbrev is False  # --judge-mod must never be read as --judge-model or --judge-mode
    found = roles(parser)
    assert found, f"rgsd {' '.join(path)} has no judge flags"
    for prefix in found:
        got = judge_flags(parser, prefix)
        assert sorted(got) == sorted(NAMES), (path, prefix)
        overrides = ROLE_DEFAULTS.get((path[0], prefix), {})
        for name in NAMES:
            want = dict(REFERENCE[name], default=overrides.get(name, REFERENCE[name]["default"]))
            assert got[name] == want, (path, prefix, name)


def test_diagnose_has_each_judge_role():
    assert roles(subcommand(build_parser(), "diagnose")) == ["", "classifier", "pairwise", "reference"]
