"""The run folder's ``metrics.jsonl``: one JSON object per optimizer step, written by both trainers."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["truncate_metrics"]


def truncate_metrics(path: Path, step: int) -> None:
    """Keep only the metric lines of steps <= ``step`` (a resumed run redoes the steps after its checkpoint)."""
    if path.exists():
        lines = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln).get("step", 0) <= step]
        path.write_text("".join(ln + "\n" for ln in lines))
