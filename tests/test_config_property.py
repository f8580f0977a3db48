"""Property: any YAML mapping of known keys to any JSON-able values, given to ``build`` for any command's option
class, builds an object whose given fields have their declared types and ranges, or raises ConfigError naming the
file (and the line) and the field: never another exception. The classes are the ones ``rgsd`` really parses."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rgsd.checks import ConfigError, check_value
from rgsd.cli import build_parser
from rgsd.options import build, field_pattern, field_types


def command_classes() -> dict[str, type]:
    """Class name -> option dataclass, over every (sub)command of ``rgsd``."""
    found: dict[str, type] = {}

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    for cls in getattr(sub, "dataclass_types", None) or []:
                        found.setdefault(cls.__name__, cls)
                    walk(sub)

    walk(build_parser())
    return found


CLASSES = command_classes()


def test_every_command_is_covered():
    assert {"RGSDConfig", "GRPORunConfig", "JudgeOptions", "GenerationArgs", "EvalDataArgs", "EvalArgs", "GapArgs",
            "CompareArgs", "CompareJudge", "EvalJudgeOptions", "DemoArgs", "DiagnoseArgs", "ReferenceJudgeOptions",
            "GenerateInput", "RubricShape", "LintArgs", "ConvertArgs", "PairedArgs"} <= set(CLASSES)


def conforms(value: Any, tp: Any) -> bool:
    """``value`` is exactly of type ``tp`` (no bool for an int, no int for a float, no text for a number)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is Literal:
        return not isinstance(value, bool) and value in typing.get_args(tp)
    if origin is list:
        return isinstance(value, list) and all(conforms(v, typing.get_args(tp)[0]) for v in value)
    if tp is dict or origin is dict:
        return isinstance(value, dict)
    return type(value) is tp


# numbers near every bound, numbers as text, and YAML's spellings of nothing and of infinity
SPECIAL = st.sampled_from([0, 1, 2, -1, 0.5, 1.0, 1.5, -0.0, 65535, 65536, 2**32, 2**63, 10**30, 1e-300, 1e300,
                           "0", "1", "-1", "1e-4", "1e400", "nan", "inf", "-inf", "none", "null", "true", "no", "",
                           " ", "auto", "regex", "openai", "none", "sign", "wandb", "tensorboard,wandb"])
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12), SPECIAL),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=2)),
    max_leaves=6)
BASE = {"dataset_name": "data.jsonl", "judge": "regex", "out": "out"}  # so that many draws build


def plausible(tp: Any) -> st.SearchStrategy:
    """Values of about the right type (small numbers either side of the usual bounds), or anything at all."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(plausible(a) for a in typing.get_args(tp)))
    if tp is type(None):
        return st.none()
    if origin is Literal:
        return st.sampled_from(typing.get_args(tp))
    if origin is list:
        return st.lists(plausible(typing.get_args(tp)[0]), max_size=3)
    simple = {int: st.integers(-3, 70000), float: st.floats(-2, 3), bool: st.booleans(),
              str: st.text(max_size=8), dict: st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)}
    return simple.get(tp, JSON)


def yaml_line(key: str, value: Any) -> str:
    # JSON is YAML: one top-level key per line, so the key on line N is the N-th drawn
    return f"{key}: {json.dumps(value)}\n"


def must_name_the_field(message: str, origin: str, cls: type, lines: dict[str, int]) -> None:
    if origin == "overrides" and message.startswith(f"{cls.__name__}: "):
        message = f"overrides: {message}"  # the Python API's check across fields names no file
    m = re.match(rf"{re.escape(origin)}(?::(\d+))?: (.*)$", message, re.S)
    assert m, message
    line, rest = m.group(1), m.group(2)
    if rest.startswith(f"{cls.__name__}: "):  # a check across fields: at the line of a field it names, if any
        named = [k for k in field_types(cls) if re.search(field_pattern(k), rest)]
        assert named, message
        if line is not None:
            assert int(line) in {lines[k] for k in named if k in lines}, message
        return
    key = rest.split(":", 1)[0]
    assert key in lines, message
    assert origin == "overrides" or int(line) == lines[key], message


@pytest.mark.parametrize("name", sorted(CLASSES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_yaml_builds_a_checked_config_or_is_refused_naming_file_line_field(name, data):
    cls = CLASSES[name]
    ftypes = field_types(cls)
    metas = {f.name: f.metadata for f in dataclasses.fields(cls)}
    keys = data.draw(st.lists(st.sampled_from(sorted(ftypes)), max_size=5, unique=True))
    drawn = {k: data.draw(st.one_of(plausible(ftypes[k]), JSON)) for k in keys}
    mapping = {k: v for k, v in BASE.items() if k in ftypes} | drawn
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text("".join(yaml_line(k, v) for k, v in mapping.items()), encoding="utf-8")
        lines = {k: i for i, k in enumerate(mapping, 1)}
        for source, overrides, origin in ((path, None, str(path)), (None, mapping, "overrides")):
            try:
                obj = build(cls, source, overrides)
            except ConfigError as err:
                must_name_the_field(str(err), origin, cls, lines)
                continue
            for key in drawn:
                value = getattr(obj, key)
                assert conforms(value, ftypes[key]), (key, value, ftypes[key])
                check_value(value, metas[key], key)  # raises if a value out of range got through


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_default_is_of_its_type_and_in_its_range(name):
    cls = CLASSES[name]
    ftypes = field_types(cls)
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if default is None:  # a role's unset option (it takes another role's value)
            continue
        tp = ftypes[f.name]
        # an int default for a float field is a float to Python's typing (warmup_steps 0 reads as "no steps")
        assert conforms(default, tp) or (type(default) is int and conforms(float(default), tp)), (name, f.name)
        check_value(default, f.metadata, f"{name}.{f.name}")


# A number a field may hold without a declared range: none.
UNCHECKED: set[tuple[str, str]] = set()


def test_every_number_declares_its_range():
    missing = []
    for name, cls in sorted(CLASSES.items()):
        for f in dataclasses.fields(cls):
            tp = field_types(cls)[f.name]
            numeric = {int, float} & set(typing.get_args(tp) or (tp,))
            if numeric and "check" not in f.metadata and (name, f.name) not in UNCHECKED:
                missing.append(f"{name}.{f.name}")
    assert missing == []
