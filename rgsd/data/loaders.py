"""Read rubric datasets (HealthBench, RaR, RubricHub, canonical, generic JSONL) into :class:`Example` objects.

Containers: ``.jsonl`` (records numbered by line), ``.json`` (a list; numbered by the line where each record
starts), ``.parquet`` and Hugging Face datasets (a hub name, a ``save_to_disk`` folder or a local data folder;
numbered ``row N``, 0-based like ``dataset[N]``). Every problem is reported as ``FILE:LINE: field: message``.
See ``docs/data-formats.md`` for the field list of every format and the polarity policy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rgsd.data.formats import RecordError, detect_format, parse_record
from rgsd.data.rar import DEFAULT_POLICY, POLARITY_POLICIES
from rgsd.data.schema import POLARITIES, Example

FORMATS: tuple[str, ...] = ("healthbench", "rar", "rubrichub", "canonical", "generic")
MAX_LISTED = 20  # problems quoted in a strict-mode DataError


class DataError(ValueError):
    """Bad input data; the message starts with ``FILE:LINE: field: message`` of the first problem."""

    def __init__(self, message: str, issues: list[LoadIssue] | None = None):
        super().__init__(message)
        self.issues = issues or []


@dataclass(frozen=True)
class LoadIssue:
    """One problem in one record (``line`` is None for a whole-file problem)."""

    file: str
    line: int | None
    field: str
    message: str
    unit: str = "line"  # "line" (JSONL/JSON) or "row" (parquet / HF datasets, 0-based)
    severity: str = "error"  # "error" or "warning" (lint heuristics only)

    @property
    def where(self) -> str:
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}" if self.unit == "line" else f"{self.file}:row {self.line}"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.where}: {self.field}: {prefix}{self.message}"


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


def format_issues(issues: list[LoadIssue]) -> str:
    lines = [str(i) for i in issues[:MAX_LISTED]]
    if len(issues) > MAX_LISTED:
        lines.append(f"... and {len(issues) - MAX_LISTED} more problems")
    return "\n".join(lines)


def file_error(file: str, field: str, message: str, line: int | None = None) -> DataError:
    """A :class:`DataError` for a problem of the whole file (or of one spot that stops reading)."""
    issue = LoadIssue(str(file), line, field, message)
    return DataError(str(issue), [issue])


# ---------------------------------------------------------------------------------------------- containers
class Malformed:
    """A record that could not even be decoded (its message says why; ``field`` names the layer)."""

    def __init__(self, message: str, field: str = "record"):
        self.message = message
        self.field = field


def _utf8_error(raw: bytes, pos: int) -> tuple[int, str]:
    """(line number, message) for the undecodable byte at offset ``pos`` of ``raw``."""
    line_start = raw.rfind(b"\n", 0, pos) + 1
    msg = f"not UTF-8 (byte 0x{raw[pos]:02x} at column {pos - line_start + 1}); re-save the file as UTF-8"
    return raw.count(b"\n", 0, pos) + 1, msg


def decode_utf8(raw: bytes, label: str) -> str:
    """``raw`` as UTF-8 text, or a :class:`DataError` ``FILE:LINE: encoding: ...`` naming the bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line, msg = _utf8_error(raw, err.start)
        raise file_error(label, "encoding", msg, line) from None


def _container(source: str) -> str:
    path = Path(source)
    suffix = path.suffix.lower()
    if path.is_dir():
        return "hf-local"
    if suffix in (".jsonl", ".ndjson", ".json", ".parquet"):
        if not path.is_file():
            raise file_error(source, "file", "not found")
        return {".ndjson": "jsonl", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}[suffix]
    if path.exists():
        raise file_error(source, "file", "unknown container (expected .jsonl, .json, .parquet or a folder)")
    # A hub name is "name" or "org/name"; anything else that does not exist is a missing local path.
    looks_like_path = source.startswith((".", "/", "~")) or source.count("/") > 1 or bool(path.suffix)
    if looks_like_path:
        raise file_error(source, "file", "not found")
    return "hub"


def _jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as fh:  # decoded line by line, so one bad byte costs one record, not the file
        for n, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield n, Malformed(_utf8_error(raw, err.start)[1], "encoding")
                continue
            if not text.strip():
                continue  # blank lines are not records
            try:
                yield n, json.loads(text.rstrip("\r\n"))  # so an error column points into the line
            except json.JSONDecodeError as err:
                yield n, Malformed(f"malformed JSON: {err.msg} (column {err.colno})")


def _json_list(path: Path) -> Iterator[tuple[int, Any]]:
    text = decode_utf8(path.read_bytes(), str(path))
    decoder = json.JSONDecoder()
    pos, line, counted = 0, 1, 0

    def skip_ws(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def line_at(i: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, i)
        counted = i
        return line

    pos = skip_ws(pos)
    if not text[pos : pos + 1] == "[":
        raise file_error(str(path), "file", "expected a JSON list of records", line_at(pos))
    pos = skip_ws(pos + 1)
    while pos < len(text) and text[pos] != "]":
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise file_error(
                str(path), "file", f"malformed JSON: {err.msg} (column {err.colno})", err.lineno
            ) from err
        yield line_at(pos), obj
        pos = skip_ws(end)
        if text[pos : pos + 1] == ",":
            pos = skip_ws(pos + 1)
        elif text[pos : pos + 1] != "]":
            raise file_error(str(path), "file", "malformed JSON: expected ',' or ']'", line_at(pos))


def _parquet(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield n, row
            n += 1


def _hf_rows(source: str, kind: str, split: str | None, config_name: str | None = None) -> Iterator[tuple[int, Any]]:
    import datasets

    path = Path(source)
    if kind == "hf-local" and any((path / f).exists() for f in ("dataset_dict.json", "state.json")):
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


def numbered_records(source: str, split: str | None, config_name: str | None = None) -> tuple[str, Iterator[tuple[int, Any]]]:
    kind = _container(source)
    if config_name is not None and kind != "hub":
        raise file_error(source, "config_name", "a dataset configuration name applies only to a hub dataset")
    if kind == "jsonl":
        return "line", _jsonl(Path(source))
    if kind == "json":
        return "line", _json_list(Path(source))
    if kind == "parquet":
        return "row", _parquet(Path(source))
    return "row", _hf_rows(source, kind, split, config_name)


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
    unit, records = numbered_records(label, split, config_name)
    if columns:
        records = ((n, _map_columns(rec, columns)) for n, rec in records)

    fmt = None if format == "auto" else format
    pending: list[tuple[int, Any]] = []  # records read before the format was detected
    result = LoadResult(examples=[], skipped=[], format=format)
    used: set[str] = set()

    def handle(n: int, rec: Any) -> None:
        if isinstance(rec, Malformed):
            result.skipped.append(LoadIssue(label, n, rec.field, rec.message, unit))
            return
        assert fmt is not None
        try:
            ex, names = parse_record(rec, fmt, f"{unit}-{n}", polarity)
        except RecordError as err:
            result.skipped.extend(LoadIssue(label, n, f, m, unit) for f, m in err.problems)
            return
        _apply_overrides(ex, overrides, used)
        result.examples.append(ex)
        result.sources.append(Source(label, n, unit, names))

    for n, rec in records:
        if fmt is None:
            fmt = detect_format(rec) if isinstance(rec, dict) else None
            if fmt is None:
                pending.append((n, rec))
                continue
            for pn, prec in pending:
                handle(pn, prec)
            pending.clear()
        handle(n, rec)
        if limit is not None and len(result.examples) >= limit:
            break
    if fmt is None:
        if not pending:
            raise file_error(label, "file", "no records")
        broken = [LoadIssue(label, n, r.field, r.message, unit) for n, r in pending if isinstance(r, Malformed)]
        if len(broken) == len(pending):  # nothing decodable: those problems are the story, not the format
            raise DataError(format_issues(broken), broken)
        empty = next((n for n, r in pending if isinstance(r, dict) and any(
            isinstance(r.get(k), list) and not r[k] for k in ("rubric", "rubrics"))), None)
        if empty is not None:  # "cannot detect the format" would send the user looking in the wrong place
            key = "rubrics" if isinstance(dict(pending)[empty].get("rubrics"), list) else "rubric"
            raise file_error(label, key, "empty: a record needs at least one criterion", empty if unit == "line" else None)
        raise file_error(
            label,
            "format",
            f"cannot detect the format (no record looks like {', '.join(FORMATS)}); pass --format",
            pending[0][0] if unit == "line" else None,
        )
    result.format = fmt
    result.unused_overrides = sorted(set(overrides) - used)
    result.skipped.sort(key=lambda i: (i.line is None, i.line or 0))
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
