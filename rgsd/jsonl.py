"""Reading JSON Lines files written by rgsd (metrics, evaluation records): one reader, errors that name the line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_jsonl(path: str | Path) -> list[tuple[int, Any]]:
    """``(line number, value)`` for every non-blank line; a malformed line raises ``ValueError`` naming it."""
    path = Path(path)
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n}: record: malformed JSON: {err.msg}") from None
    return out
