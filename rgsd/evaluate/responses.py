"""The responses file of ``rgsd eval --responses``: one ``{"prompt_id"?, "response"}`` JSON object per line.

:func:`read_responses` reads it (naming file, line and field on any error); :func:`match_responses` pairs its
lines with the examples, by ``prompt_id`` when the file has ids, else by line order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rgsd.data.formats import unicode_problem


@dataclass
class ResponseLine:
    prompt_id: str | None
    response: str
    line: int


def read_responses(path: str | Path) -> list[ResponseLine]:
    """Read ``{"prompt_id"?: str, "response": str}`` per line (``id`` is accepted for ``prompt_id``)."""
    out: list[ResponseLine] = []
    try:
        fh = Path(path).open("rb")
    except OSError as err:
        raise ValueError(f"{path}: file: cannot read responses: {err}") from None
    with fh:
        for n, raw in enumerate(fh, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(
                    f"{path}:{n}: encoding: not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})"
                ) from None
            if not text.strip():
                continue
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{path}:{n}: record: malformed JSON: {err.msg} (column {err.colno})"
                ) from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{n}: record: expected a JSON object, got {type(rec).__name__}")
            if not isinstance(rec.get("response"), str):
                got = "missing" if "response" not in rec else f"a {type(rec['response']).__name__}"
                raise ValueError(f"{path}:{n}: response: expected a string, {got}")
            if (why := unicode_problem(rec["response"])) is not None:
                raise ValueError(f"{path}:{n}: response: {why}")
            pid = rec.get("prompt_id", rec.get("id"))
            if pid is not None and not isinstance(pid, (str, int)):
                raise ValueError(f"{path}:{n}: prompt_id: expected a string, got {type(pid).__name__}")
            out.append(ResponseLine(None if pid is None else str(pid), rec["response"], n))
    if not out:
        raise ValueError(f"{path}: file: no responses")
    return out


def match_responses(
    examples: list[Any],
    lines: list[ResponseLine],
    path: str | Path,
    skip_missing: bool = False,
    limited: bool = False,
) -> tuple[list[Any], list[str], list[str]]:
    """Pair examples with responses: by ``prompt_id`` when the file has ids, else by line order.

    Returns ``(examples, responses, skipped_ids)``; ``skipped_ids`` are examples without a response, dropped
    only with ``skip_missing`` (otherwise an error names them). ``limited`` (``--limit`` given) tolerates
    responses for examples that were not loaded.
    """
    with_id = [ln for ln in lines if ln.prompt_id is not None]
    if with_id and len(with_id) != len(lines):
        first = next(ln for ln in lines if ln.prompt_id is None)
        raise ValueError(
            f"{path}:{first.line}: prompt_id: missing, but other lines have one (use ids on all or none)"
        )
    if not with_id:
        if len(lines) < len(examples) or (len(lines) > len(examples) and not limited):
            raise ValueError(
                f"{path}: file: {len(lines)} responses (matched by line order, no prompt_id) but "
                f"{len(examples)} examples"
            )
        return list(examples), [ln.response for ln in lines[: len(examples)]], []
    by_id: dict[str, ResponseLine] = {}
    for ln in lines:
        if ln.prompt_id in by_id:
            raise ValueError(
                f"{path}:{ln.line}: prompt_id: duplicate {ln.prompt_id!r} (first on line "
                f"{by_id[ln.prompt_id].line})"
            )
        by_id[ln.prompt_id] = ln  # type: ignore[index]
    known = {ex.id for ex in examples}
    unknown = [ln for ln in lines if ln.prompt_id not in known]
    if unknown and not limited:
        raise ValueError(
            f"{path}:{unknown[0].line}: prompt_id: {unknown[0].prompt_id!r} is not an example id of "
            f"the data ({len(unknown)} such lines)"
        )
    missing = [ex.id for ex in examples if ex.id not in by_id]
    if missing and not skip_missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{path}: file: no response for {len(missing)} examples ({shown}); add them or pass "
            "--skip-missing to evaluate only the examples that have one"
        )
    kept = [ex for ex in examples if ex.id in by_id]
    return kept, [by_id[ex.id].response for ex in kept], missing
