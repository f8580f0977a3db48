"""Errors of rubric data: every problem is ``FILE:LINE: field: message`` (or ``FILE:row N: ...``).

Kept apart from :mod:`rgsd.data.loaders` so the container readers (:mod:`.tables`, :mod:`.hub_folder`) can raise
them without importing the loader that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def format_issues(issues: list[LoadIssue]) -> str:
    lines = [str(i) for i in issues[:MAX_LISTED]]
    if len(issues) > MAX_LISTED:
        lines.append(f"... and {len(issues) - MAX_LISTED} more problems")
    return "\n".join(lines)


def file_error(file: str, field: str, message: str, line: int | None = None) -> DataError:
    """A :class:`DataError` for a problem of the whole file (or of one spot that stops reading)."""
    issue = LoadIssue(str(file), line, field, message)
    return DataError(str(issue), [issue])


class Malformed:
    """A record that could not even be decoded (its message says why; ``field`` names the layer)."""

    def __init__(self, message: str, field: str = "record"):
        self.message = message
        self.field = field


def utf8_error(raw: bytes, pos: int) -> tuple[int, str]:
    """(line number, message) for the undecodable byte at offset ``pos`` of ``raw``."""
    line_start = raw.rfind(b"\n", 0, pos) + 1
    msg = f"not UTF-8 (byte 0x{raw[pos]:02x} at column {pos - line_start + 1}); re-save the file as UTF-8"
    return raw.count(b"\n", 0, pos) + 1, msg


def decode_utf8(raw: bytes, label: str) -> str:
    """``raw`` as UTF-8 text, or a :class:`DataError` ``FILE:LINE: encoding: ...`` naming the bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line, msg = utf8_error(raw, err.start)
        raise file_error(label, "encoding", msg, line) from None
