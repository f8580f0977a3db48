"""One configuration mechanism for every command: option dataclasses -> flags, YAML files, overrides.

Each command declares its options as dataclasses whose fields carry ``metadata={"help": ...}``;
transformers' :class:`~transformers.HfArgumentParser` turns the fields into flags. On top of it:

* both spellings, ``--max_steps`` and ``--max-steps``, and no prefix matching (``allow_abbrev=False``: an
  abbreviation is an unknown option, never silently another one);
* ``--config FILE``: a YAML mapping of field: value, which the flags override;
* an unknown option or key exits 2 with one line naming it and the closest known names;
* renamed fields keep their old name for one release (a class attribute ``DEPRECATED = {"old": "new"}``),
  with a warning; an entry ``"old": ("new", {old_value: new_value})`` also translates values whose meaning
  changed (``"key": ("key", {None: "none"})`` deprecates a value of a field that kept its name);
* values from YAML are converted and checked against the field's type (:func:`convert`), and a dataclass's
  ``validate()`` runs after parsing; a ``ValueError`` from either exits 2 naming the field;
* ``--help`` shows every field's help and default; :func:`config_markdown` renders the same as a table.

The Python API builds the same dataclasses with :func:`build` (a YAML file plus field overrides, checked
as the flags are); :func:`prefixed` gives a role's copy of a dataclass (``--eval-judge-model`` ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
import types
import typing
import warnings
from pathlib import Path
from typing import Any, TypeVar

import yaml
from transformers import HfArgumentParser

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad option, key or value; the message names it and what is accepted. The CLI exits 2, no traceback."""


def arg(default: Any, help: str, **kw: Any) -> Any:  # noqa: A002 - "help" reads best in the definitions
    """A dataclass field with a help text (lists and dicts are copied per instance)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return dataclasses.field(default=default, metadata={"help": help}, **kw)


def redefault(cls: type, name: str, default: Any) -> Any:
    """Field ``name`` of dataclass ``cls`` with another default and the same help (a subclass's own default)."""
    (help_text,) = (f.metadata["help"] for f in dataclasses.fields(cls) if f.name == name)
    return arg(default, help_text)


# ---- values ---------------------------------------------------------------------------------------------
def field_types(cls: type) -> dict[str, Any]:
    """Field name -> declared type (from the annotations: HfArgumentParser rewrites ``Field.type``)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def convert(value: Any, tp: Any, where: str) -> Any:
    """Coerce a YAML or command-line value to the field's declared type; ``ValueError`` names ``where``."""
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
        raise ValueError(f"{where}: cannot read {value!r} as {tp}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ValueError(f"{where}: {value!r} is not one of {list(allowed)}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
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
            except yaml.YAMLError:
                raise ValueError(f"{where}: expected a mapping, got {value!r}") from None
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


def did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    return f"; did you mean {', '.join('--' + c for c in close)}?" if close else ""


Rename = tuple[str, dict[Any, Any]]


def deprecated_names(classes: list[type]) -> dict[str, Rename]:
    """Old field name -> (new name, value translations), from each class's ``DEPRECATED`` attribute."""
    out: dict[str, Rename] = {}
    for cls in classes:
        for old, new in getattr(cls, "DEPRECATED", {}).items():
            out[old] = (new, {}) if isinstance(new, str) else (new[0], dict(new[1]))
    return out


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _renamed(key: str, value: Any, renames: dict[str, Rename], where: str) -> tuple[str, Any]:
    """``(key, value)`` under the current name and meaning; warns when an old name or value was used."""
    if key not in renames:
        return key, value
    new, values = renames[key]
    changed = _hashable(value) and value in values
    if new != key:
        hint = f"; use {new!r}" + (f" ({new}: {values[value]!r} means what {key}: {value!r} meant)" if changed else "")
        warnings.warn(f"{where}: {key!r} is deprecated and will be removed in the next release{hint}",
                      FutureWarning, stacklevel=3)
    elif changed:
        warnings.warn(f"{where}: {key}: {value!r} is deprecated and will be removed in the next release; "
                      f"use {key}: {values[value]!r}", FutureWarning, stacklevel=3)
    return new, values[value] if changed else value


def build(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """``cls`` from a YAML file plus field overrides (the Python API's way in), checked like the flags."""
    ftypes = field_types(cls)
    renames = deprecated_names([cls])
    values: dict[str, Any] = {}
    sources = [(str(path), read_yaml(path))] if path is not None else []
    sources.append(("overrides", dict(overrides or {})))
    for where, mapping in sources:
        for key, value in mapping.items():
            key, value = _renamed(str(key).replace("-", "_"), value, renames, where)
            if key not in ftypes:
                raise ConfigError(f"{where}: unknown key {key!r} for {cls.__name__}{did_you_mean(key, list(ftypes))}"
                                  " (`--help` lists every field)")
            values[key] = checked(value, ftypes[key], f"{where}: {key}")
    return instantiate(cls, values)


def checked(value: Any, tp: Any, where: str) -> Any:
    try:
        return convert(value, tp, where)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None


def instantiate(cls: type[T], values: dict[str, Any]) -> T:
    try:
        obj = cls(**values)
        if hasattr(obj, "validate"):
            obj.validate()
    except ConfigError:
        raise
    except ValueError as err:  # validate() names the field in its message
        raise ConfigError(f"{cls.__name__}: {err}") from None
    return obj


def read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of field: value")
    return raw


def save(obj: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(obj), sort_keys=False))


# ---- the parser -----------------------------------------------------------------------------------------
class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """``--help``: descriptions as written, and every option's default after its help."""


class CommandParser(HfArgumentParser):
    """One command's parser: its option dataclasses as flags, plus ``--config FILE`` (see the module doc)."""

    def __init__(self, dataclass_types: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("usage", "%(prog)s [OPTIONS]  (--help lists them)")  # an error's usage line stays short
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(dataclass_types, **kwargs)
        self.renames = deprecated_names(self.dataclass_types)
        self._accept_null()
        if self.dataclass_types:
            self.add_argument("--config", default=None, metavar="FILE",
                              help="YAML file of options (keys are the long option names); flags override it")

    def _accept_null(self) -> None:
        # HfArgumentParser gives an optional number the plain type: let "none"/"null" mean None, as in YAML
        optional = {name for cls in self.dataclass_types for name, tp in field_types(cls).items()
                    if type(None) in typing.get_args(tp)}
        for action in self._actions:
            if (action.dest in optional and action.type not in (None, str) and action.nargs != "?"
                    and "none" not in (action.choices or ())):  # a choice named "none" stays a choice
                action.type = _or_null(action.type)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        argv = self._rename_flags(sys.argv[1:] if args is None else list(args))
        path = _flag_value(argv, "--config")
        if path is not None and self.dataclass_types:
            try:
                self.set_defaults(**self._yaml_defaults(path))
            except ConfigError as err:  # exit 2 with the command's usage line, like a bad flag
                self.error(str(err))
        ns, extra = super().parse_known_args(argv, namespace)
        unknown = [t for t in extra if t.startswith("-")]
        if unknown:
            known = sorted({s[2:].replace("-", "_") for s in self._option_string_actions if s.startswith("--")})
            name = unknown[0][2:].partition("=")[0].replace("-", "_")
            self.error(f"unrecognized arguments: {' '.join(extra)}{did_you_mean(name, known)}")
        return ns, extra

    def _rename_flags(self, argv: list[str]) -> list[str]:
        """Old option names (and old values, see ``DEPRECATED``) rewritten to the current ones, with a warning."""
        out: list[str] = []
        i = 0
        while i < len(argv):
            tok = argv[i]
            i += 1
            name, eq, value = tok[2:].partition("=")
            key = name.replace("-", "_")
            if not tok.startswith("--") or key not in self.renames:
                out.append(tok)
                continue
            if not eq and self.renames[key][1] and i < len(argv) and not argv[i].startswith("--"):
                eq, value, i = "=", argv[i], i + 1  # the value may be translated too
            new, value = _renamed(key, value, self.renames, "command line")
            out.append("--" + new + (f"={value}" if eq else ""))
        return out

    def _yaml_defaults(self, path: str) -> dict[str, Any]:
        ftypes: dict[str, Any] = {}
        for cls in self.dataclass_types:
            ftypes.update(field_types(cls))
        out = {}
        for key, value in read_yaml(path).items():
            key, value = _renamed(str(key).replace("-", "_"), value, self.renames, path)
            if key not in ftypes:
                raise ConfigError(f"{path}: unknown key {key!r}{did_you_mean(key, list(ftypes))}"
                                  " (`--help` lists every field)")
            out[key] = checked(value, ftypes[key], f"{path}: {key}")
        return out


def _or_null(tp: Any) -> Any:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null") else tp(text)

    parse.__name__ = getattr(tp, "__name__", "value")  # argparse names the type in its error message
    return parse


def _flag_value(argv: list[str], flag: str) -> str | None:
    for i, tok in enumerate(argv):
        if tok == flag and i + 1 < len(argv):
            return argv[i + 1]
        if tok.startswith(flag + "="):
            return tok.split("=", 1)[1]
    return None


def add_command(sub: argparse._SubParsersAction, name: str, option_types: list[type], func: Any, help: str,
                description: str | None = None, epilog: str | None = None) -> CommandParser:
    """Register ``rgsd NAME`` with the flags of ``option_types``; ``func(args)`` runs it."""
    p = sub.add_parser(name, dataclass_types=option_types, help=help, description=description or help,
                       epilog=epilog)
    p.set_defaults(func=func, option_types=tuple(option_types))
    return p


def options(args: argparse.Namespace, cls: type[T]) -> T:
    """The ``cls`` instance in parsed arguments: values converted to the field types, then ``validate()``."""
    ftypes = field_types(cls)
    values = {k: checked(getattr(args, k), tp, f"--{k.replace('_', '-')}") for k, tp in ftypes.items()
              if hasattr(args, k)}
    return instantiate(cls, values)


def prefixed(cls: type, prefix: str, *, only: list[str] | None = None, note: str = "", **defaults: Any) -> type:
    """A copy of dataclass ``cls`` whose fields are named ``PREFIX_field`` (a role's options, e.g. a second judge).

    ``only`` keeps those fields (by the unprefixed name); ``note`` is added to each help text; ``defaults``
    replace field defaults (by the unprefixed name); :func:`unprefixed` gets ``cls`` back.
    """
    fields = []
    for f, tp in zip(dataclasses.fields(cls), field_types(cls).values()):
        if only is not None and f.name not in only:
            continue
        meta = dict(f.metadata)
        if note:
            meta["help"] = f"{meta.get('help', '')} {note}".strip()
        if f.name in defaults:
            spec = dataclasses.field(default=defaults[f.name], metadata=meta)
        elif f.default_factory is not dataclasses.MISSING:
            spec = dataclasses.field(default_factory=f.default_factory, metadata=meta)
        else:
            spec = dataclasses.field(default=f.default, metadata=meta)
        fields.append((f"{prefix}_{f.name}", tp, spec))
    return dataclasses.make_dataclass(f"{prefix.title()}{cls.__name__}", fields)


def field_values(items: list[str] | None, what: str = "FIELD=VALUE") -> dict[str, str]:
    """``["max_steps=4", "max-new-tokens=32"]`` -> ``{"max_steps": "4", "max_new_tokens": "32"}`` (for :func:`build`)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{what} takes FIELD=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = value
    return out


def unprefixed(args: argparse.Namespace, cls: type[T], prefix: str) -> T:
    """The ``cls`` options of role ``prefix`` in parsed arguments (see :func:`prefixed`)."""
    ns = argparse.Namespace(**{k: getattr(args, f"{prefix}_{k}") for k in field_types(cls)
                               if hasattr(args, f"{prefix}_{k}")})
    return options(ns, cls)


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return "(required)"


def config_markdown(cls: type) -> str:
    """The fields of ``cls`` as a Markdown table (docs/configuration.md is generated from this)."""
    rows = ["| field | default | meaning |", "| --- | --- | --- |"]
    for f in dataclasses.fields(cls):
        rows.append(f"| `{f.name}` | `{default_of(f)!r}` | {f.metadata.get('help', '')} |")
    renames = deprecated_names([cls])
    if renames:
        rows.append("")
        rows.append("Deprecated names (they still work for one release, with a warning): " + "; ".join(
            f"`{old}` -> `{new}`" + (" (" + ", ".join(f"{a!r} -> {b!r}" for a, b in values.items()) + ")"
                                       if values else "")
            for old, (new, values) in renames.items()) + ".")
    return "\n".join(rows)
