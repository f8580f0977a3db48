"""What a configuration value may be: its type (:func:`convert`), its range (:class:`Range`), and where it came from.

The bottom of :mod:`rgsd.options`: a field declares its range once, ``arg(1e-4, "help", check=POSITIVE)``, and
:func:`check_value` applies it to a value from a flag, a YAML file or the Python API alike. Every float must be
finite (a field that means something by infinity says ``allow_inf=True``) and every int fits in 64 bits.
:func:`read_config` reads a YAML config with the line of each top-level key, refusing duplicate keys, so an
error reads ``recipe.yaml:7: learning_rate: must be > 0, got -0.001``.
"""

from __future__ import annotations

import math
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

INT64_MAX = 2**63 - 1  # torch, numpy and SQLite hold no larger int


class ConfigError(ValueError):
    """A bad option, key or value; the message names it and what is accepted. The CLI exits 2, no traceback."""


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (an error line stays one short line, whatever the input)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"  # repr of a huge int may raise
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- ranges ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Range:
    """Numbers from ``lo`` to ``hi`` (either may be None = unbounded), each end closed unless said open."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        if self.hi is None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        if self.lo is None:
            return f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"

    def problem(self, value: Any) -> str | None:
        lo_ok = self.lo is None or (value > self.lo if self.lo_open else value >= self.lo)
        hi_ok = self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)
        return None if lo_ok and hi_ok else f"must be {self.describe()}, got {show(value)}"


@dataclass(frozen=True)
class NonEmpty:
    """A string that must not be empty (a name or path whose default is one)."""

    def describe(self) -> str:
        return "not empty"

    def problem(self, value: Any) -> str | None:
        return None if str(value).strip() else "must not be empty"


@dataclass(frozen=True)
class OneOf:
    """A string among ``choices`` (where the field's type cannot be a Literal: the items of a list)."""

    choices: tuple[str, ...]

    def describe(self) -> str:
        return f"one of {list(self.choices)}"

    def problem(self, value: Any) -> str | None:
        return None if value in self.choices else f"{show(value)} is not one of {list(self.choices)}"


Check = Range | NonEmpty | OneOf
POSITIVE = Range(0, lo_open=True)  # learning rates, timeouts, epsilons
NON_NEGATIVE = Range(0)  # counts where 0 means "off" or "none"
AT_LEAST_ONE = Range(1)  # sizes and counts that must be there: batch sizes, steps, tokens
SHARE = Range(0, 1)  # probabilities and rates
SHARE_BELOW_ONE = Range(0, 1, hi_open=True)  # dropout, betas, warm-up shares
UNIT_OPEN_LOW = Range(0, 1, lo_open=True)  # top_p, memory shares: 0 would keep nothing
SEED = Range(0, 2**32 - 1)  # numpy's seeds; random and torch take these too
PORT = Range(1, 65535)
NOT_EMPTY = NonEmpty()


def check_value(value: Any, meta: typing.Mapping[str, Any], where: str) -> None:
    """Raise :class:`ConfigError` ``WHERE: problem`` unless ``value`` (already of the field's type) is allowed.

    ``meta`` is the field's metadata: ``check`` (a :class:`Range`, :class:`NonEmpty` or :class:`OneOf`) and ``allow_inf``.
    None (an optional field left unset) and each item of a list are checked as the field says.
    """
    if value is None:
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            check_value(item, meta, where)
        return
    problem = None
    if isinstance(value, float) and math.isnan(value):
        problem = "must be a number, got nan"
    elif isinstance(value, float) and math.isinf(value) and not meta.get("allow_inf"):
        problem = f"must be finite, got {value}"
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
        problem = f"must be at most {INT64_MAX} in size, got {show(value)}"
    elif meta.get("check") is not None and not isinstance(value, bool):
        problem = meta["check"].problem(value)
    if problem:
        raise ConfigError(f"{where}: {problem}")


# ---- types ----------------------------------------------------------------------------------------------
def convert(value: Any, tp: Any, where: str) -> Any:
    """Coerce a YAML or command-line value to the field's declared type; ``ValueError`` names ``where``.

    A ``str`` field takes a string (or, from Python, a path), never a number, a bool or a list turned into
    text: YAML reads ``output_dir: 17`` as an int and ``dataset_name: [a, b]`` as a list, and either is
    more likely a slip than a name; quote it (``'17'``) when it is one.
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        for a in args:
            try:
                return convert(value, a, where)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"{where}: cannot read {show(value)} as {tp}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, bool) or value not in allowed:  # True == 1: a bool is no choice
            raise ValueError(f"{where}: {show(value)} is not one of {list(allowed)}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {show(value)}")
        (inner,) = typing.get_args(tp)[:1] or (str,)
        # "a,b" and ["a", "b"] mean the same (the flag takes several words, a YAML value may be one string);
        # a repeated flag (action "append") gives lists, whose words are kept whole
        items: list[Any] = []
        for v in value:
            if isinstance(v, (list, tuple)):
                items.extend(v)
            elif isinstance(v, str):
                items.extend(p for p in v.split(",") if p != "")
            else:
                items.append(v)
        return [convert(v, inner, where) for v in items]
    if origin is dict or tp is dict:
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value)
            except (yaml.YAMLError, ValueError, RecursionError):
                raise ValueError(f"{where}: expected a mapping, got {show(value)}") from None
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {show(value)}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        raise ValueError(f"{where}: expected true/false, got {show(value)}")
    if tp in (int, float):
        return _number(value, tp, where)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        raise ValueError(f"{where}: expected a string, got {show(value)} (quote it if it is a name)")
    return value


def _number(value: Any, tp: type, where: str) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string, so parse numbers ourselves
        try:
            value = int(value) if tp is int else float(value)
        except ValueError:
            raise ValueError(f"{where}: expected {tp.__name__}, got {show(value)}") from None
    if tp is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, (int, float)) or (tp is int and not isinstance(value, int)):
        raise ValueError(f"{where}: expected {tp.__name__}, got {show(value)}")
    try:
        return tp(value)
    except OverflowError:  # an int too large for a float
        raise ValueError(f"{where}: expected {tp.__name__}, got {show(value)}") from None


# ---- YAML with line numbers -----------------------------------------------------------------------------
class _LineLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping and keeps the line of each top-level key."""

    def __init__(self, stream: str, name: str) -> None:
        super().__init__(stream)
        self.name = name
        self.top: yaml.Node | None = None
        self.lines: dict[str, int] = {}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *base" may be overridden by the keys beside it
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: SafeLoader says so below
            if first is not None:
                raise ConfigError(f"{self.name}:{line}: duplicate key {show(key)} (first at line {first}); "
                                  "give each key once")
            seen[key] = line
            if node is self.top:
                self.lines[str(key)] = line
        return super().construct_mapping(node, deep=deep)


def read_config(path: str | Path, what: str = "config file") -> tuple[dict[str, Any], dict[str, int]]:
    """A YAML config file's mapping and the line of each top-level key; :class:`ConfigError` names the file.

    An empty file is an empty mapping; anything but a mapping, a syntax error (with its line:column), a key
    given twice, a file that cannot be read or is not UTF-8 is refused.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the {what}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read the {what}: it is not UTF-8 text") from None
    except ValueError:  # a NUL or a lone surrogate in the name (from a YAML escape): no file has that name
        raise ConfigError(f"{show(str(path))}: cannot read the {what}: not a usable file name") from None
    loader = _LineLoader(text, str(path))
    try:
        loader.top = node = loader.get_single_node()
        raw = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{at}: not valid YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a usable YAML config: nested too deeply") from None
    except ConfigError:  # a duplicate key
        raise
    except ValueError:  # Python reads no int of over 4,300 digits
        raise ConfigError(f"{path}: not a usable YAML config: a number too long to read") from None
    finally:
        loader.dispose()
    if raw is None:
        return {}, {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of field: value, got {show(raw)}")
    return raw, loader.lines
