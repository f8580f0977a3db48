"""The one internal model every rubric dataset is normalized to.

An :class:`Example` is a chat prompt plus a rubric. Each :class:`Criterion` carries an explicit
``polarity``: ``"positive"`` means meeting it earns ``weight`` points, ``"negative"`` means meeting it
describes an undesirable behaviour and costs ``weight`` points. ``weight`` is always a magnitude (>= 0);
the signed HealthBench-style value is :attr:`Criterion.points`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Polarity = Literal["positive", "negative"]
POLARITIES: tuple[str, ...] = ("positive", "negative")


@dataclass
class Criterion:
    """One rubric item."""

    id: str
    text: str
    weight: float
    polarity: Polarity = "positive"
    category: str | None = None
    tags: list[str] = field(default_factory=list)
    # Optional regular expression for the offline ``regex`` judge (met = the pattern matches the response).
    pattern: str | None = None

    @property
    def points(self) -> float:
        """Signed credit for meeting the criterion (HealthBench convention: negative = penalty)."""
        return self.weight if self.polarity == "positive" else -self.weight

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["pattern"] is None:
            d.pop("pattern")
        return d


@dataclass
class Example:
    """A prompt (list of chat messages) with its rubric."""

    id: str
    prompt: list[dict[str, str]]
    rubric: list[Criterion]
    reference: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def points(self) -> list[float]:
        return [c.points for c in self.rubric]

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSONL record (what ``rgsd data convert`` writes)."""
        return {
            "id": self.id,
            "prompt": self.prompt,
            "rubric": [c.to_dict() for c in self.rubric],
            "reference": self.reference,
            "metadata": self.metadata,
        }
