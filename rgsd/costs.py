"""The cost record every training run writes (RGSD and GRPO alike), so runs compare line by line."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterator


@dataclass
class CostRecord:
    """Running totals of what a run consumed. Times are wall-clock seconds."""

    method: str = ""
    prompts_seen: int = 0
    rollouts: int = 0
    generated_tokens: int = 0
    teacher_scored_tokens: int = 0  # RGSD: response tokens the frozen teacher scored
    judge_calls: int = 0  # calls that reached the judge server (cache hits excluded)
    judge_cache_hits: int = 0
    judge_failures: int = 0
    judge_prompt_tokens: int = 0
    judge_completion_tokens: int = 0
    time_generation: float = 0.0
    time_scoring: float = 0.0  # teacher forward (RGSD) or judge grading (GRPO)
    time_optimization: float = 0.0
    wall_time: float = 0.0

    def add(self, **deltas: float) -> None:
        """Add to several counters at once: ``cost.add(rollouts=8, generated_tokens=900)``."""
        for key, value in deltas.items():
            setattr(self, key, getattr(self, key) + value)

    @contextmanager
    def timed(self, counter: str) -> Iterator[None]:
        """Add the time spent in the ``with`` block to ``counter`` (one of the ``time_*`` fields)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(**{counter: time.perf_counter() - start})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CostRecord":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "CostRecord":
        return cls.from_dict(json.loads(Path(path).read_text()))
