"""The cost record every training run writes (RGSD and GRPO alike), so runs compare line by line."""

from __future__ import annotations

import json
import math
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
    judge_cost_usd: float | None = None  # judge tokens priced by a price table, when one was given

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


# ---- money --------------------------------------------------------------------------------------------------
@dataclass
class Price:
    """US dollars per million tokens."""

    input: float
    output: float


class PriceTable:
    """Judge prices per model (dollars per million prompt / completion tokens), with an optional default.

    Built from ``--price-in``/``--price-out`` (one price for every model) and/or a small YAML file::

        gpt-4.1-mini: {input: 0.40, output: 1.60}
        default: {input: 1.0, output: 4.0}   # any model not listed
    """

    def __init__(self, prices: dict[str, Price] | None = None, default: Price | None = None) -> None:
        self.prices = dict(prices or {})
        self.default = default

    def __bool__(self) -> bool:
        return bool(self.prices) or self.default is not None

    def price(self, model: str | None) -> Price | None:
        return self.prices.get(model or "", self.default)

    def usd(self, model: str | None, prompt_tokens: int, completion_tokens: int) -> float | None:
        """What these tokens cost with ``model``'s price (None when it has none)."""
        p = self.price(model)
        if p is None:
            return None
        return round((prompt_tokens * p.input + completion_tokens * p.output) / 1e6, 6)

    def to_dict(self) -> dict:
        out = {m: asdict(p) for m, p in self.prices.items()}
        if self.default is not None:
            out["default"] = asdict(self.default)
        return out


def _price_value(value: object, where: str) -> float:
    # a NaN or infinite price would make every cost NaN or infinite: a wrong number in every report
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"{where}: expected a price >= 0 (dollars per million tokens), got {value!r}")
    return float(value)


def load_prices(path: str | Path | None = None, price_in: float | None = None, price_out: float | None = None) -> PriceTable:
    """A :class:`PriceTable` from a YAML file and/or one input/output price for every model.

    Raises ``ValueError`` naming the file, the line and the model for anything that is not a price (a model
    listed twice included).
    """
    from rgsd.checks import read_config

    table = PriceTable()
    if (price_in is None) != (price_out is None):
        raise ValueError("--price-in and --price-out go together (dollars per million input/output tokens)")
    if price_in is not None:
        table.default = Price(_price_value(price_in, "--price-in"), _price_value(price_out, "--price-out"))
    if path is None:
        return table
    data, lines = read_config(path, "price table")  # ConfigError (a ValueError) naming the file, and the line where it can
    if not data:
        raise ValueError(f"{path}: file: expected a mapping of model -> {{input: PRICE, output: PRICE}}")
    for model, entry in data.items():
        where = f"{path}:{lines.get(str(model), '?')}: {model}"
        if not isinstance(entry, dict) or set(entry) != {"input", "output"}:
            raise ValueError(f"{where}: expected {{input: PRICE, output: PRICE}}, got {entry!r}")
        p = Price(_price_value(entry["input"], f"{where}.input"), _price_value(entry["output"], f"{where}.output"))
        if str(model) == "default":
            table.default = table.default or p
        else:
            table.prices[str(model)] = p
    return table


def record_usd(cost: CostRecord, prices: PriceTable, model: str | None) -> float | None:
    """A training run's judge spend in dollars, from its :class:`CostRecord` token counts."""
    return prices.usd(model, cost.judge_prompt_tokens, cost.judge_completion_tokens)


def add_money_to_rows(rows: list[dict], costs: dict[str, CostRecord], model: str | None, prices: PriceTable) -> str:
    """Add ``training_judge_cost_usd`` to the ``rgsd compare`` rows; return a one-line note for the table."""
    parts = []
    for row in rows:
        cost = costs.get(row["model"])
        if cost is None:
            continue
        row["training_judge_cost_usd"] = record_usd(cost, prices, model)
        usd = row["training_judge_cost_usd"]
        parts.append(f"{row['model']} {'n/a' if usd is None else f'${usd:.4f}'}")
    return f"Training-time judge cost ({model or 'no judge model'} prices): " + ", ".join(parts) + "."
