"""The prompts (and reference answers) to write rubrics for, from any source ``load_examples`` reads.

A record in a supported rubric format (HealthBench, RaR, RubricHub, canonical, generic) gives its prompt,
reference answer, id and metadata (its old rubric is replaced). Any other record is read by columns: the
prompt from ``prompt``/``question``/``messages`` (a string or a list of chat messages), the reference from
``reference``/``reference_answer``/``answer``/``ideal_completion``, the id from ``id``/``prompt_id``; the
column options override those names (a dotted name reaches into an object, e.g.
``ideal_completions_data.ideal_completion``) and then apply to every record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rgsd.data.formats import Record, RecordError, detect_format, parse_record
from rgsd.data.loaders import (
    DataError,
    LoadIssue,
    Malformed,
    file_error,
    format_issues,
    located_records,
    resolve_source,
)

PROMPT_KEYS = ("prompt", "question", "messages")
REFERENCE_KEYS = ("reference", "reference_answer", "answer", "ideal_completion")
ID_KEYS = ("id", "prompt_id")


@dataclass
class Task:
    """One prompt to write a rubric for; ``where`` is ``FILE:LINE`` (or ``FILE:row N``)."""

    id: str
    prompt: list[dict[str, str]]
    reference: str | None
    where: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _get(rec: dict, name: str) -> Any:
    value: Any = rec
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _by_columns(
    rec: Any, default_id: str, prompt_col: str | None, ref_col: str | None, id_col: str | None
) -> tuple[str, list[dict[str, str]], str | None, dict[str, Any]]:
    if not isinstance(rec, dict):
        raise RecordError([("record", f"wrong type: expected a JSON object, got {type(rec).__name__}")])
    r = Record(rec)
    pkey = prompt_col or next((k for k in PROMPT_KEYS if k in rec), PROMPT_KEYS[0])
    if "." in pkey:
        r.rec = {pkey: _get(rec, pkey)}
    prompt = r.prompt(pkey)
    r.rec = rec
    rkey = ref_col or next((k for k in REFERENCE_KEYS if _get(rec, k) is not None), None)
    reference = r.optional_str(_get(rec, rkey), rkey) if rkey else None
    if ref_col and reference is None and not r.problems:
        r.bad(ref_col, "missing (the --reference-column names a field every record must have)")
    ex_id = default_id
    ikey = id_col or next((k for k in ID_KEYS if k in rec), None)
    if ikey:
        ex_id = r.example_id((ikey,), default_id)
    if r.problems:
        raise RecordError(r.problems)
    return ex_id, prompt, reference or None, {}


def read_tasks(
    source: str | Path,
    split: str | None = None,
    prompt_column: str | None = None,
    reference_column: str | None = None,
    id_column: str | None = None,
    on_error: str = "strict",
    limit: int | None = None,
    config_name: str | None = None,
) -> tuple[list[Task], list[LoadIssue]]:
    """Every prompt of ``source``; bad records raise :class:`DataError` (``strict``) or are returned as issues."""
    source = resolve_source(source)
    label = str(source)
    records = located_records(label, split, config_name)
    mapped = any((prompt_column, reference_column, id_column))
    tasks: list[Task] = []
    issues: list[LoadIssue] = []
    seen: dict[str, str] = {}
    for at, rec in records:
        default_id, where = at.default_id, LoadIssue(at.file, at.n, "", "", at.unit).where
        try:
            if isinstance(rec, Malformed):
                raise RecordError([("record", rec.message)])
            fmt = None if mapped or not isinstance(rec, dict) else detect_format(rec)
            if fmt:
                ex, _ = parse_record(rec, fmt, default_id, "sign")
                found = (ex.id, ex.prompt, ex.reference or None, ex.metadata)
            else:
                found = _by_columns(rec, default_id, prompt_column, reference_column, id_column)
        except RecordError as err:
            issues.extend(LoadIssue(at.file, at.n, f, m, at.unit) for f, m in err.problems)
            continue
        ex_id = found[0]
        if ex_id in seen:
            issues.append(LoadIssue(at.file, at.n, "id", f"duplicate id {ex_id!r} (also {seen[ex_id]})", at.unit))
            continue
        seen[ex_id] = where
        tasks.append(Task(ex_id, found[1], found[2], where, dict(found[3])))
        if limit is not None and len(tasks) >= limit:
            break
    if not tasks and not issues:
        raise file_error(label, "file", "no records")
    if issues and on_error == "strict":
        raise DataError(format_issues(issues), issues)
    return tasks, issues
