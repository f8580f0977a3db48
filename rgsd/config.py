"""Config dataclasses <-> YAML files <-> command-line overrides.

Every trainer has one config dataclass whose fields carry ``metadata={"help": ...}``. A YAML file maps
keys to fields; ``--field value`` (or ``--field=value``) on the command line overrides them. Unknown keys
are errors that name the key and the file, so a typo in a recipe never passes silently.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad config key or value; the message names the field (and the file) and what is accepted.

    The CLI prints it without a traceback and exits 2.
    """


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Coerce a YAML or command-line value to the field's declared type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        errors = []
        for a in args:
            try:
                return _convert(value, a, where)
            except (TypeError, ValueError) as err:
                errors.append(str(err))
        raise ValueError(f"{where}: cannot read {value!r} as {tp}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ValueError(f"{where}: {value!r} is not one of {list(allowed)}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        (inner,) = typing.get_args(tp)[:1] or (str,)
        return [_convert(v, inner, where) for v in value]
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        raise ValueError(f"{where}: expected true/false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string, so parse numbers ourselves
            try:
                value = int(value) if tp is int else float(value)
            except ValueError:
                raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}") from None
        if tp is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, (int, float)) or (tp is int and not isinstance(value, int)):
            raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}")
        return tp(value)
    if tp is str:
        return str(value)
    return value


def parse_overrides(tokens: list[str]) -> dict[str, str]:
    """``["--lr", "1e-4", "--use_lora=false"]`` -> ``{"lr": "1e-4", "use_lora": "false"}``."""
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            raise ConfigError(f"unexpected argument {tok!r}: overrides look like --field value")
        key = tok[2:].replace("-", "_")
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            value = tokens[i + 1]
            i += 2
        else:  # a bare flag means true
            value, i = "true", i + 1
        out[key] = value
    return out


def build_config(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """Instantiate ``cls`` from a YAML file plus overrides, with type checks and clear errors."""
    types_ = _field_types(cls)
    values: dict[str, Any] = {}
    if path is not None:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: a config file must be a mapping of field: value")
        for key, value in raw.items():
            if key not in types_:
                raise ConfigError(f"{path}: unknown config key {key!r} for {cls.__name__}{_did_you_mean(key, types_)}")
            values[key] = _checked(value, types_[key], f"{path}: {key}")
    for key, value in (overrides or {}).items():
        key = key.replace("-", "_")  # --max-steps and --max_steps name the same field
        if key not in types_:
            raise ConfigError(f"command line: unknown option --{key} for {cls.__name__}{_did_you_mean(key, types_)}")
        values[key] = _checked(value, types_[key], f"command line: --{key}")
    try:
        cfg = cls(**values)
        if hasattr(cfg, "validate"):
            cfg.validate()
    except ConfigError:
        raise
    except ValueError as err:  # validate() names the field in its message
        raise ConfigError(f"{cls.__name__}: {err}") from None
    return cfg


def _checked(value: Any, tp: Any, where: str) -> Any:
    try:
        return _convert(value, tp, where)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None


def _did_you_mean(key: str, fields: dict[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(fields), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join('--' + c for c in close)}?" if close else ""
    return f"{hint} (`--help` lists every field)"


def config_help(cls: type) -> str:
    """A reference table of the fields (name, default, help) for ``--help`` and the README."""
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)"
        )
        lines.append(f"  --{f.name} (default: {default!r})\n      {f.metadata.get('help', '')}")
    return "\n".join(lines)


def config_markdown(cls: type) -> str:
    """The fields of ``cls`` as a Markdown table (docs/configuration.md is generated from this)."""
    rows = ["| field | default | meaning |", "| --- | --- | --- |"]
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append(f"| `{f.name}` | `{default!r}` | {f.metadata.get('help', '')} |")
    return "\n".join(rows)


def add_config_command(
    sub: argparse._SubParsersAction, name: str, cls: type, help: str, func: Any
) -> argparse.ArgumentParser:
    """Register ``rgsd NAME --config FILE [--field value ...] [--resume]`` for a config dataclass."""
    p = sub.add_parser(
        name,
        help=help,
        description=f"{help}\n\nConfig fields (YAML keys, or --field value overrides):\n{config_help(cls)}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="YAML recipe (see recipes/)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    p.set_defaults(func=func, config_cls=cls)
    return p


def config_from_args(args: argparse.Namespace, extra: list[str]) -> Any:
    """Build the config of a command registered with :func:`add_config_command`."""
    return build_config(args.config_cls, args.config, parse_overrides(extra))


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
