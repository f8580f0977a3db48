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
* values from YAML are converted and checked against the field's type (:func:`convert`: a ``str`` field
  takes a string, never ``17`` or ``[a, b]`` turned into text), then every value, from a flag, a YAML file or
  :func:`build`, against the field's range (``arg(..., check=POSITIVE)``, see :mod:`rgsd.checks`; floats
  finite, ints within 64 bits); a dataclass's ``validate()`` runs after parsing. A bad value exits 2 with
  one line naming the flag (``--learning-rate: must be > 0, got -0.001``) or the file, line and key
  (``recipe.yaml:7: learning_rate: ...``); a YAML key given twice is refused, and a config file is checked
  whole, a value that a flag overrides included. The parser raises :class:`OptionError`, which
  ``rgsd.cli.main`` prints as ``rgsd CMD: error: ...`` and exits 2;
* ``--help`` shows every field's help and default; :func:`config_markdown` renders the same as a table.

The Python API builds the same dataclasses with :func:`build` (a YAML file plus field overrides, checked
as the flags are); :func:`prefixed` gives a role's copy of a dataclass (``--eval-judge-model`` ...).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import re
import sys
import types
import typing
import warnings
from pathlib import Path
from typing import Any, TypeVar

import yaml
from transformers import HfArgumentParser

from rgsd import recipes

# ConfigError and convert are imported from here by every command: this module is the configuration's face
from rgsd.checks import Check, ConfigError, check_value, convert, read_config  # noqa: F401

T = TypeVar("T")


CHECK_KEYS = ("check", "allow_inf")  # our field metadata, not argparse's


def arg(default: Any, help: str, *, check: Check | None = None, allow_inf: bool = False,  # noqa: A002
        **kw: Any) -> Any:
    """A dataclass field with a help text and the values it allows (lists and dicts are copied per instance).

    ``check``: a :class:`rgsd.checks.Range` (``POSITIVE``, ``SHARE`` ...) or ``NOT_EMPTY``; ``allow_inf``: the
    field means something by an infinite float (every other float must be finite).
    """
    meta = {"help": help, **({"check": check} if check else {}), **({"allow_inf": True} if allow_inf else {})}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return dataclasses.field(default=default, metadata=meta, **kw)


def redefault(cls: type, name: str, default: Any) -> Any:
    """Field ``name`` of dataclass ``cls`` with another default, the same help and checks (a subclass's default)."""
    (meta,) = (f.metadata for f in dataclasses.fields(cls) if f.name == name)
    return dataclasses.field(default=default, metadata=dict(meta))


# ---- values ---------------------------------------------------------------------------------------------
def field_types(cls: type) -> dict[str, Any]:
    """Field name -> declared type (from the annotations: HfArgumentParser rewrites ``Field.type``)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


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


def _config_file(value: str | Path) -> Path:
    """A config file by path, or a shipped recipe by name (:func:`rgsd.recipes.config_file`)."""
    try:
        return recipes.config_file(value)
    except FileNotFoundError as err:
        raise ConfigError(str(err)) from None


def build(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """``cls`` from a YAML file plus field overrides (the Python API's way in), checked like the flags."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    ftypes = field_types(cls)
    renames = deprecated_names([cls])
    values: dict[str, Any] = {}
    path = _config_file(path) if path is not None else None
    mapping, lines = read_config(path) if path is not None else ({}, {})
    sources = [(mapping, lambda key: f"{path}:{lines[key]}" if key in lines else str(path)),
               (dict(overrides or {}), lambda key: "overrides")]
    for items, place in sources:
        for key, value in items.items():
            where = place(str(key))
            key, value = _renamed(str(key).replace("-", "_"), value, renames, where)
            if key not in ftypes:
                raise ConfigError(f"{where}: unknown key {key!r} for {cls.__name__}{did_you_mean(key, list(ftypes))}"
                                  " (`--help` lists every field)")
            values[key] = checked(value, ftypes[key], f"{where}: {key}", fields[key].metadata)
    try:
        return instantiate(cls, values)
    except ConfigError as err:  # a check across fields: the line of the first field it names
        if path is None:
            raise
        raise ConfigError(f"{_located(str(err), str(path), lines)}: {err}") from None


def _located(message: str, path: str, lines: dict[str, int]) -> str:
    """``PATH:LINE`` of the field named first in ``message`` (``PATH`` when none of the file's keys is named)."""
    found = [(m.start(), key) for key in lines if (m := re.search(field_pattern(key), message))]
    return f"{path}:{lines[min(found)[1]]}" if found else path


def field_pattern(name: str) -> str:
    """A regular expression for field ``name`` in a message, as a key or a flag (``judge`` not in ``--judge-mode``)."""
    flag = "--" + name.replace("_", "-")
    return rf"(?<![\w-]){re.escape(name)}(?![\w-])|{re.escape(flag)}(?![\w-])"


def checked(value: Any, tp: Any, where: str, meta: typing.Mapping[str, Any] | None = None) -> Any:
    """``value`` converted to ``tp`` and checked against the field's ``meta`` (its range): else ConfigError."""
    try:
        value = convert(value, tp, where)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None
    check_value(value, meta or {}, where)
    return value


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


def save(obj: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(obj), sort_keys=False))


# ---- the parser -----------------------------------------------------------------------------------------
class OptionError(ConfigError):
    """A bad value or config file found while parsing ``prog``'s arguments (``rgsd train: error: ...``, exit 2)."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


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
        # a list of numbers takes "2,3,4" as well as "2 3 4": the words reach the field's check as text
        numbers = {name: tp for cls in self.dataclass_types for name, tp in field_types(cls).items()
                   if typing.get_origin(tp) is list and typing.get_args(tp)[:1] in ((int,), (float,))}
        self._number_lists = numbers
        for action in self._actions:
            if action.dest in numbers:
                action.type = str
            if (action.dest in optional and action.type not in (None, str) and action.nargs != "?"
                    and "none" not in (action.choices or ())):  # a choice named "none" stays a choice
                action.type = _or_null(action.type)

    @staticmethod
    def _parse_dataclass_field(parser: Any, field: dataclasses.Field) -> None:
        # transformers hands a field's metadata to add_argument: keep our own keys (its checks) from argparse
        if any(k in field.metadata for k in CHECK_KEYS):
            field = copy.copy(field)
            field.metadata = types.MappingProxyType({k: v for k, v in field.metadata.items() if k not in CHECK_KEYS})
        HfArgumentParser._parse_dataclass_field(parser, field)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        argv = self._rename_flags(sys.argv[1:] if args is None else list(args))
        path = _flag_value(argv, "--config")
        try:
            if path is not None and self.dataclass_types:
                self.set_defaults(**self._yaml_defaults(str(_config_file(path))))
            ns, extra = super().parse_known_args(argv, namespace)
            for name, tp in getattr(self, "_number_lists", {}).items():
                if isinstance(getattr(ns, name, None), list):
                    try:
                        setattr(ns, name, convert(getattr(ns, name), tp, "--" + name.replace("_", "-")))
                    except ValueError as err:
                        raise ConfigError(str(err)) from None
            self._check_values(ns)
        except OptionError:  # a subcommand's (rgsd rubrics generate): it names itself
            raise
        except ConfigError as err:  # rgsd.cli.main prints one line naming the file:line or flag, exit 2
            raise OptionError(self.prog, str(err)) from None
        unknown = [t for t in extra if t.startswith("-")]
        if unknown:
            known = sorted({s[2:].replace("-", "_") for s in self._option_string_actions if s.startswith("--")})
            name = unknown[0][2:].partition("=")[0].replace("-", "_")
            self.error(f"unrecognized arguments: {' '.join(extra)}{did_you_mean(name, known)}")
        return ns, extra

    def _check_values(self, ns: argparse.Namespace) -> None:
        """Every option's range, at parse time: a flag's value (a config file's were checked as it was read)."""
        for cls in self.dataclass_types:
            for f in dataclasses.fields(cls):
                if f.init and hasattr(ns, f.name):
                    check_value(getattr(ns, f.name), f.metadata, "--" + f.name.replace("_", "-"))

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
        metas: dict[str, Any] = {}
        for cls in self.dataclass_types:
            ftypes.update(field_types(cls))
            metas.update({f.name: f.metadata for f in dataclasses.fields(cls)})
        out = {}
        mapping, lines = read_config(path)
        for key, value in mapping.items():
            where = f"{path}:{lines[str(key)]}" if str(key) in lines else path
            key, value = _renamed(str(key).replace("-", "_"), value, self.renames, where)
            if key not in ftypes:
                raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, list(ftypes))}"
                                  " (`--help` lists every field)")
            out[key] = checked(value, ftypes[key], f"{where}: {key}", metas[key])
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
    metas = {f.name: f.metadata for f in dataclasses.fields(cls)}
    values = {k: checked(getattr(args, k), tp, f"--{k.replace('_', '-')}", metas[k]) for k, tp in ftypes.items()
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
        check = f.metadata.get("check")
        allowed = f" Allowed: {check.describe()}." if check else ""
        rows.append(f"| `{f.name}` | `{default_of(f)!r}` | {f.metadata.get('help', '')}{allowed} |")
    renames = deprecated_names([cls])
    if renames:
        rows.append("")
        rows.append("Deprecated names (they still work for one release, with a warning): " + "; ".join(
            f"`{old}` -> `{new}`" + (" (" + ", ".join(f"{a!r} -> {b!r}" for a, b in values.items()) + ")"
                                       if values else "")
            for old, (new, values) in renames.items()) + ".")
    return "\n".join(rows)
