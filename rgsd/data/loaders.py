"""Read rubric datasets (HealthBench, RaR, RubricHub, canonical, generic JSONL) into :class:`Example` objects.

Containers: ``.jsonl`` (records numbered by line), ``.json`` (a list; numbered by the line where each record
starts), ``.csv`` / ``.tsv`` (numbered by the line where each record starts; header = line 1; see
:mod:`.tables`), ``.parquet`` and Hugging Face datasets (a hub name or a ``save_to_disk`` folder; numbered
``row N``, 0-based like ``dataset[N]``). A local folder laid out like a hub dataset (configurations, splits;
see :mod:`.hub_folder`) is read file by file, each record named by its own file and line or row.
Every problem is reported as ``FILE:LINE: field: message``.
See ``docs/data-formats.md`` for the field list of every format and the polarity policy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from rgsd.data.errors import (  # noqa: F401  (re-exported: callers import them from here)
    MAX_LISTED,
    DataError,
    LoadIssue,
    Malformed,
    decode_utf8,
    file_error,
    format_issues,
)
from rgsd.data.files import FILE_CONTAINERS, file_records, json_kind
from rgsd.data.formats import RecordError, detect_format, parse_record
from rgsd.data.hub_folder import split_files
from rgsd.data.rar import DEFAULT_POLICY, POLARITY_POLICIES
from rgsd.data.schema import POLARITIES, Example
from rgsd.data.tables import DELIMITERS

FORMATS: tuple[str, ...] = ("healthbench", "rar", "rubrichub", "canonical", "generic")



@dataclass(frozen=True)
class Source:
    """Where an example came from, and the names its format gives to the prompt/rubric/text/weight fields."""

    file: str
    line: int
    unit: str = "line"
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.unit == "line" else f"{self.file}:row {self.line}"


@dataclass
class LoadResult:
    """Examples read from one source; every record not kept is in ``skipped`` (one issue per problem)."""

    examples: list[Example]
    skipped: list[LoadIssue]
    format: str
    sources: list[Source] = field(default_factory=list)  # parallel to ``examples``
    unused_overrides: list[str] = field(default_factory=list)

    @property
    def skipped_records(self) -> int:
        return len({(i.file, i.line) for i in self.skipped})


# ---------------------------------------------------------------------------------------------- containers
def _container(source: str) -> str:
    path = Path(source)
    suffix = path.suffix.lower()
    if path.is_dir():
        return "hf-local"
    if suffix in FILE_CONTAINERS:
        if not path.is_file():
            raise file_error(source, "file", "not found")
        return FILE_CONTAINERS[suffix]
    if path.exists():
        raise file_error(
            source, "file", "unknown container (expected .jsonl, .json, .csv, .tsv, .parquet or a folder)")
    # A hub name is "name" or "org/name"; anything else that does not exist is a missing local path.
    looks_like_path = source.startswith((".", "/", "~")) or source.count("/") > 1 or bool(path.suffix)
    if looks_like_path:
        raise file_error(source, "file", "not found")
    return "hub"


def _hf_rows(source: str, kind: str, split: str | None, config_name: str | None = None) -> Iterator[tuple[int, Any]]:
    import datasets

    path = Path(source)
    if kind == "hf-local" and _saved_to_disk(path):
        ds = datasets.load_from_disk(str(path))
    else:
        try:
            ds = datasets.load_dataset(source if kind == "hub" else str(path), name=config_name, split=split)
        except (ConnectionError, TimeoutError) as err:
            why = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") else ""
            raise file_error(
                source,
                "file",
                f"the Hugging Face hub is unreachable{why}, so the dataset cannot be loaded ({err}); download it "
                "where the hub is reachable and pass a local path (a .jsonl/.json/.parquet file or a save_to_disk "
                "folder)",
            ) from err
        except Exception as err:  # datasets raises many types; name the source in every case
            raise file_error(source, "file", f"cannot load as a Hugging Face dataset: {err}") from err
    if isinstance(ds, datasets.DatasetDict):
        names = list(ds.keys())
        if split is not None:
            if split not in ds:
                raise file_error(source, "split", f"no split {split!r} (available: {', '.join(names)})")
            ds = ds[split]
        elif len(names) == 1:
            ds = ds[names[0]]
        else:
            raise file_error(source, "split", f"several splits ({', '.join(names)}); pass one with --split")
    yield from enumerate(ds)


class Spot(NamedTuple):
    """Where one record is: its file, its line (or 0-based row) there, and which of the two the number is."""

    file: str
    n: int
    unit: str
    id_prefix: str = ""  # put before ``line-N`` in a default id when a split spans several files

    @property
    def default_id(self) -> str:
        return f"{self.id_prefix}{self.unit}-{self.n}"


def _saved_to_disk(folder: Path) -> bool:
    return any((folder / f).exists() for f in ("dataset_dict.json", "state.json"))


def _folder_records(source: str, split: str | None, config_name: str | None) -> Iterator[tuple[Spot, Any]]:
    folder = Path(source)
    if _saved_to_disk(folder):
        for n, rec in _hf_rows(source, "hf-local", split):
            yield Spot(source, n, "row"), rec
        return
    chosen = split_files(folder, config_name, split)
    if not chosen.readable:  # files rgsd cannot number itself: datasets reads the split, rows are numbered
        for n, rec in _hf_rows(str(chosen.folder), "hf-local", chosen.split, chosen.config):
            yield Spot(source, n, "row"), rec
        return
    several, root = len(chosen.files) > 1, folder.resolve()
    for path in chosen.files:
        inside = path.is_relative_to(root)  # datasets gives absolute paths; name them as the user wrote the folder
        rel = path.relative_to(root) if inside else Path(path.name)
        shown = folder / rel if inside else path
        kind = FILE_CONTAINERS[path.suffix.lower()]
        kind = json_kind(path) if kind == "json" else kind
        delimiter = chosen.delimiter or DELIMITERS.get(path.suffix.lower())
        unit, records = file_records(path, kind, delimiter)
        prefix = f"{rel.as_posix()}:" if several else ""  # "line-3" alone would repeat in every file
        for n, rec in records:
            yield Spot(str(shown), n, unit, prefix), rec


def located_records(source: str, split: str | None, config_name: str | None = None) -> Iterator[tuple[Spot, Any]]:
    """Every record of ``source`` with its :class:`Spot`; a missing or unknown file raises here, at once."""
    kind = _container(source)
    if config_name is not None and (kind not in ("hub", "hf-local") or _saved_to_disk(Path(source))):
        what = "a save_to_disk folder" if kind == "hf-local" else "one file"
        raise file_error(source, "config_name", "a dataset configuration name applies only to a hub dataset or "
                         f"a hub-style dataset folder, not to {what}")
    if kind == "hub":
        return (((Spot(source, n, "row"), rec) for n, rec in _hf_rows(source, kind, split, config_name)))
    if kind == "hf-local":
        return _folder_records(source, split, config_name)
    unit, records = file_records(Path(source), kind)
    return ((Spot(source, n, unit), rec) for n, rec in records)


def _map_columns(rec: Any, columns: Mapping[str, str]) -> Any:
    """Copy the user's columns onto the names the formats read (``{"prompt": "question"}``: prompt <- question).

    A dotted source name reaches into an object (``meta.rubric``). A record without a mapped column is bad.
    """
    if not isinstance(rec, dict) or isinstance(rec, Malformed):
        return rec
    out = dict(rec)
    for target, src in columns.items():
        value: Any = rec
        for part in src.split("."):
            if not isinstance(value, dict) or part not in value:
                return Malformed(f"missing column {src!r} (mapped to {target})", field=src)
            value = value[part]
        out[target] = value
    return out


# ------------------------------------------------------------------------------------------------ overrides
def read_polarity_overrides(path: str | Path) -> dict[str, str]:
    """Read a JSON object ``{"<example_id>/<criterion_id>" or "<example_id>": "positive"|"negative"}``."""
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise file_error(str(path), "file", f"cannot read polarity overrides: {err}") from None
    text = decode_utf8(raw, str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise file_error(str(path), "file", f"cannot read polarity overrides: {err}", err.lineno) from None
    if not isinstance(data, dict):
        raise file_error(str(path), "file", "polarity overrides must be a JSON object of key -> polarity")
    _check_overrides(data, str(path))
    return data


def _check_overrides(overrides: Mapping[str, str], label: str) -> None:
    for key, value in overrides.items():
        if value not in POLARITIES:
            raise file_error(label, key, f"polarity override must be 'positive' or 'negative', got {value!r}")


def _apply_overrides(ex: Example, overrides: Mapping[str, str], used: set[str]) -> None:
    for c in ex.rubric:
        key = f"{ex.id}/{c.id}"
        if key in overrides:
            c.polarity = overrides[key]  # type: ignore[assignment]
            used.add(key)
        elif ex.id in overrides and c.polarity == "negative":
            # An example-level key speaks about the criteria that carry a penalty sign.
            c.polarity = overrides[ex.id]  # type: ignore[assignment]
            used.add(ex.id)


# --------------------------------------------------------------------------------------------------- loading
DEMO_PREFIX = "demo:"


def resolve_source(source: str | Path) -> str | Path:
    """``demo:train`` / ``demo:heldout`` name the demo rubric sets shipped inside the package."""
    if isinstance(source, str) and source.startswith(DEMO_PREFIX):
        path = Path(__file__).resolve().parents[1] / "demo_data" / f"{source[len(DEMO_PREFIX):]}.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"{source}: no such demo set (use demo:train or demo:heldout)")
        return path
    return source


def load_examples(
    source: str | Path,
    format: str = "auto",
    polarity: str = DEFAULT_POLICY,
    on_error: str = "strict",
    split: str | None = None,
    limit: int | None = None,
    polarity_overrides: Mapping[str, str] | None = None,
    config_name: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> LoadResult:
    """Read every example of ``source``.

    ``format``: ``"auto"`` (detected from the first record that looks like a known format) or one of
    :data:`FORMATS`. ``polarity``: ``"sign"`` or ``"avoid-positive"`` (see :mod:`rgsd.data.rar`; ignored by
    the canonical format, whose polarity is explicit). ``polarity_overrides`` apply after the policy, to every
    format. ``on_error="strict"`` raises :class:`DataError` listing the problems (first 20) of all bad records;
    ``"skip"`` keeps the good records and returns every problem in ``LoadResult.skipped``. A whole-file problem
    (missing file, undetectable format, unreachable hub) raises in both modes. ``limit`` stops after that many
    good examples. ``split`` / ``config_name`` pick a Hugging Face dataset's split and configuration.
    ``columns`` maps the names the formats read to the source's own columns, e.g. ``{"prompt": "question",
    "rubric": "criteria", "id": "uid"}`` (applied to every record before the format is detected).
    """
    if format != "auto" and format not in FORMATS:
        raise file_error(
            str(source), "format", f"unknown format {format!r} (expected auto, {', '.join(FORMATS)})"
        )
    if polarity not in POLARITY_POLICIES:
        raise file_error(
            str(source), "polarity", f"unknown policy {polarity!r} (expected {', '.join(POLARITY_POLICIES)})"
        )
    if on_error not in ("strict", "skip"):
        raise file_error(str(source), "on_error", f"expected 'strict' or 'skip', got {on_error!r}")
    overrides = dict(polarity_overrides or {})
    _check_overrides(overrides, "polarity_overrides")
    source = resolve_source(source)
    label = str(source)
    records = located_records(label, split, config_name)
    if columns:
        records = ((spot, _map_columns(rec, columns)) for spot, rec in records)

    fmt = None if format == "auto" else format
    pending: list[tuple[Spot, Any]] = []  # records read before the format was detected
    result = LoadResult(examples=[], skipped=[], format=format)
    used: set[str] = set()

    def handle(at: Spot, rec: Any) -> None:
        if isinstance(rec, Malformed):
            result.skipped.append(LoadIssue(at.file, at.n, rec.field, rec.message, at.unit))
            return
        assert fmt is not None
        try:
            ex, names = parse_record(rec, fmt, at.default_id, polarity)
        except RecordError as err:
            result.skipped.extend(LoadIssue(at.file, at.n, f, m, at.unit) for f, m in err.problems)
            return
        _apply_overrides(ex, overrides, used)
        result.examples.append(ex)
        result.sources.append(Source(at.file, at.n, at.unit, names))

    for at, rec in records:
        if fmt is None:
            fmt = detect_format(rec) if isinstance(rec, dict) else None
            if fmt is None:
                pending.append((at, rec))
                continue
            for pat, prec in pending:
                handle(pat, prec)
            pending.clear()
        handle(at, rec)
        if limit is not None and len(result.examples) >= limit:
            break
    if fmt is None:
        if not pending:
            raise file_error(label, "file", "no records")
        broken = [LoadIssue(a.file, a.n, r.field, r.message, a.unit) for a, r in pending if isinstance(r, Malformed)]
        if len(broken) == len(pending):  # nothing decodable: those problems are the story, not the format
            raise DataError(format_issues(broken), broken)
        empty = next(((a, r) for a, r in pending if isinstance(r, dict) and any(
            isinstance(r.get(k), list) and not r[k] for k in ("rubric", "rubrics"))), None)
        if empty is not None:  # "cannot detect the format" would send the user looking in the wrong place
            at, rec = empty
            key = "rubrics" if isinstance(rec.get("rubrics"), list) else "rubric"
            where = (at.file, at.n) if at.unit == "line" else (label, None)
            raise file_error(where[0], key, "empty: a record needs at least one criterion", where[1])
        first = pending[0][0]
        where = (first.file, first.n) if first.unit == "line" else (label, None)
        raise file_error(where[0], "format",
                         f"cannot detect the format (no record looks like {', '.join(FORMATS)}); pass --format",
                         where[1])
    result.format = fmt
    result.unused_overrides = sorted(set(overrides) - used)
    result.skipped.sort(key=lambda i: (i.line is None, i.file, i.line or 0))  # files: a folder's split
    if result.skipped and on_error == "strict":
        raise DataError(format_issues(result.skipped), result.skipped)
    return result


def require_unique_ids(result: LoadResult, on_error: str = "strict") -> LoadResult:
    """``result`` unchanged, or a :class:`DataError` for every example id used twice (both places named).

    Training, evaluation, ``gap`` and ``convert`` key verdicts, caches and outputs by example id, so a
    repeated id would silently merge two examples. ``on_error="skip"`` keeps the first example of each id
    instead and lists the repeats in ``result.skipped``.
    """
    first: dict[str, Source] = {}
    issues: list[LoadIssue] = []
    for ex, src in zip(result.examples, result.sources):
        if ex.id in first:
            issues.append(
                LoadIssue(
                    src.file,
                    src.line,
                    src.fields.get("id", "id"),
                    f"duplicate example id {ex.id!r} (first at {first[ex.id].where}); ids must be unique",
                    src.unit,
                )
            )
        else:
            first[ex.id] = src
    if issues and on_error == "skip":
        repeated = {(i.file, i.line) for i in issues}
        kept = [(ex, src) for ex, src in zip(result.examples, result.sources) if (src.file, src.line) not in repeated]
        result.examples = [ex for ex, _ in kept]
        result.sources = [src for _, src in kept]
        result.skipped = sorted(result.skipped + issues, key=lambda i: (i.line is None, i.line or 0))
    elif issues:
        raise DataError(format_issues(issues), issues)
    return result
