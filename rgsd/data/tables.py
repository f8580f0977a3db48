"""CSV and TSV files: records read by the ``datasets`` CSV builder, numbered by the line where each starts.

The builder (pandas underneath) gives no line numbers, so the file is also scanned with the stdlib ``csv``
module: that scan finds each record's first line (header = line 1; a quoted multi-line cell belongs to the
line its record starts on), refuses what the builder would read silently wrong (a row with more or fewer cells
than the header, a quote never closed, a repeated column name), and then checks that both readers saw the
same cells. Cells are text; a cell holding JSON (a ``rubric`` list, ``prompt`` messages) is decoded, and an
empty cell is a missing value.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rgsd.data.errors import Malformed, decode_utf8, file_error

DELIMITERS = {".csv": ",", ".tsv": "\t"}
# Columns whose cells must be JSON when they look like it; any other column may hold text that starts with '['.
JSON_COLUMNS = frozenset({"rubric", "rubrics", "metadata", "example_tags", "tags", "ideal_completions_data"})
# Text that can only be meant as JSON (a list of objects/lists/strings, an object with a key): a parse error
# in such a cell is reported, not kept as text.
_JSON_LIKE = re.compile(r'\s*(\[\s*[\[{"\]]|\{\s*["}])')
_MAX_CELL = 2**31 - 1  # the csv module refuses cells over 128 KiB by default; rubric cells can be longer


def _scan(text: str, delimiter: str, label: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and every record with the line it starts on; a :class:`DataError` at the first bad one."""
    csv.field_size_limit(max(csv.field_size_limit(), _MAX_CELL))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    records: list[tuple[int, list[str]]] = []
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:  # a quote never closed, or text after a closing quote
            why = f"malformed CSV: {err} (read up to line {reader.line_num})"
            if "unexpected end of data" in str(err):
                why = f"a quoted cell of this record is never closed (the file ends inside it, line {reader.line_num})"
            raise file_error(label, "record" if header else "header", why, start) from None
        if row:  # the csv module gives [] for a blank line; the builder skips those too
            if header is None:
                _check_header(row, label, start)
                header = row
            elif len(row) != len(header):
                raise file_error(label, "record", f"{len(row)} cells, but the header has {len(header)} "
                                 "(a delimiter inside an unquoted cell?)", start)
            else:
                records.append((start, row))
        start = reader.line_num + 1
    if header is None:
        raise file_error(label, "file", "empty: a CSV file needs a header line naming its columns", 1)
    return header, records


def _check_header(names: list[str], label: str, line: int) -> None:
    for i, name in enumerate(names):
        if not name.strip():
            raise file_error(label, "header", f"column {i + 1} has no name", line)
        if name in names[:i]:
            raise file_error(label, "header", f"column name {name!r} is used twice", line)


def _builder_rows(path: Path, header: list[str], delimiter: str) -> list[dict[str, Any]]:
    """Every record as the ``datasets`` CSV builder reads it: each column as text, empty cells kept as ''.

    Raises whatever ``datasets`` or pandas raise (many types)."""
    import datasets

    features = datasets.Features({name: datasets.Value("string") for name in header})
    quiet = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # a "Generating train split" bar per file is noise in lint output
    # A throwaway cache: the file is read once per run anyway, and a cache keyed by path and time could
    # serve an older copy of a file rewritten in the same instant.
    try:
        with tempfile.TemporaryDirectory(prefix="rgsd-csv-") as cache:
            ds = datasets.load_dataset("csv", data_files=[str(path)], split="train", delimiter=delimiter,
                                       features=features, na_filter=False, cache_dir=cache, keep_in_memory=True)
            return list(ds)
    finally:
        if not quiet:
            datasets.enable_progress_bars()


def decode_cell(column: str, text: str | None) -> Any:
    """The value of one cell: None when empty, decoded JSON when it holds JSON, else the text."""
    if text is None or text == "":
        return None
    if text.lstrip()[:1] not in ("[", "{"):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        if column in JSON_COLUMNS or _JSON_LIKE.match(text):
            where = f"line {err.lineno} of the cell, " if "\n" in text else ""
            return Malformed(f"the cell is not valid JSON: {err.msg} ({where}column {err.colno})", column)
        return text  # text that merely starts with a bracket, like "[Note] ..."


def _record(row: dict[str, Any]) -> Any:
    rec: dict[str, Any] = {}
    for column, text in row.items():
        value = decode_cell(column, text)
        if isinstance(value, Malformed):
            return value
        rec[column] = value
    return rec


def csv_records(path: Path, delimiter: str | None = None) -> Iterator[tuple[int, Any]]:
    """``(line, record)`` for every record of a CSV/TSV file (``delimiter`` defaults by the file's suffix)."""
    label = str(path)
    sep = delimiter or DELIMITERS.get(path.suffix.lower(), ",")
    text = decode_utf8(path.read_bytes(), label)
    header, records = _scan(text.removeprefix("\ufeff"), sep, label)
    if not records:
        raise file_error(label, "file", "no records (only a header)", 1)
    try:
        rows = _builder_rows(path, header, sep)
    except Exception as err:  # the scan found nothing wrong, so name the first record: reading stops there
        raise file_error(label, "record", f"the datasets CSV builder cannot read the records from here on ({err}); "
                         "check the quotes and line ends", records[0][0]) from err
    for i, (line, cells) in enumerate(records):
        # Both readers must agree cell for cell, else the line numbers (and perhaps the values) are wrong.
        if i >= len(rows) or [rows[i].get(name) for name in header] != cells:
            raise file_error(label, "record", "the datasets CSV builder reads this record differently; check "
                             "its quotes (a cell with a delimiter, quote or line break must be quoted)", line)
        yield line, _record(rows[i])
    if len(rows) > len(records):
        raise file_error(label, "record", "the datasets CSV builder reads more records than there are; "
                         "check the quotes after this line", records[-1][0])

