"""The data files rgsd numbers itself: JSON Lines and JSON lists by line, Parquet by row, CSV/TSV by line.

Each reader yields ``(number, record)``; a record that cannot be decoded is a :class:`Malformed` (JSON Lines:
one bad line costs one record), a problem that stops reading raises :class:`DataError` with its line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rgsd.data.errors import Malformed, decode_utf8, file_error, utf8_error
from rgsd.data.tables import csv_records

# File suffix -> reader kind ("csv" covers TSV: the delimiter follows the suffix).
FILE_CONTAINERS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet",
                   ".csv": "csv", ".tsv": "csv"}


def jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    """Records of a JSON Lines file, numbered by line (blank lines are skipped)."""
    with path.open("rb") as fh:  # decoded line by line, so one bad byte costs one record, not the file
        for n, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield n, Malformed(utf8_error(raw, err.start)[1], "encoding")
                continue
            if not text.strip():
                continue  # blank lines are not records
            try:
                yield n, json.loads(text.rstrip("\r\n"))  # so an error column points into the line
            except json.JSONDecodeError as err:
                yield n, Malformed(f"malformed JSON: {err.msg} (column {err.colno})")


def json_list_records(path: Path) -> Iterator[tuple[int, Any]]:
    """Records of a JSON list, numbered by the line where each starts."""
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


def parquet_records(path: Path) -> Iterator[tuple[int, Any]]:
    """Rows of a Parquet file, numbered from 0 like ``dataset[N]``."""
    import pyarrow.parquet as pq

    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield n, row
            n += 1


def file_records(path: Path, kind: str, delimiter: str | None = None) -> tuple[str, Iterator[tuple[int, Any]]]:
    """``(unit, records)`` of one file of reader ``kind`` (a :data:`FILE_CONTAINERS` value)."""
    if kind == "jsonl":
        return "line", jsonl_records(path)
    if kind == "json":
        return "line", json_list_records(path)
    if kind == "csv":
        return "line", csv_records(path, delimiter)
    return "row", parquet_records(path)


def json_kind(path: Path) -> str:
    """A hub folder's ``.json`` file may hold a list or JSON Lines (``datasets`` reads both): look at it."""
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "json" if head[:1] == b"[" else "jsonl"
