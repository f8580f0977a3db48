"""Signal diagnostics: what the teacher's divergence actually asks the student to change.

The fused loss (``chunked_jsd_from_hidden`` with ``LossOptions(diagnostics=True)``) fills the diagnostic fields
of its :class:`~rgsd.method.losses.LossStats` from per-position vectors it already had in memory;
:class:`SignalStats` accumulates them over a step's micro-batches and turns them into the ``signal_*`` fields
of ``metrics.jsonl``:

* ``signal_divergence_by_position``: mean unclipped divergence per response-position bucket (``"0-7"``, ...):
  a signal concentrated on the first tokens teaches openings, not content;
* ``signal_top_raised_tokens``: the tokens whose probability the teacher raises most over the student (summed
  ``q - p`` over the step's positions);
* ``signal_clipped_position_share``: share of scored positions with at least one clipped entry (token mode: a
  clipped position);
* ``signal_clip_removed_share``: share of the divergence mass the clip removed, ``sum(term - tau) / sum(term)``
  over clipped entries;
* ``signal_sampled_token_logratio``: mean ``log q - log p`` of the sampled token (the per-token advantage the
  teacher offers; > 0 means the teacher likes the student's own samples more than the student does).

They are rank-local (the main process's share of the batch) to stay free of extra collectives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from rgsd.method.losses import LossStats

__all__ = ["BUCKETS", "SignalStats", "response_positions"]

# Response-position buckets [lo, hi): openings, early body, the rest.
BUCKETS: tuple[tuple[int, int], ...] = ((0, 8), (8, 32), (32, 10**9))


def bucket_name(lo: int, hi: int) -> str:
    return f"{lo}-{hi - 1}" if hi < 10**9 else f"{lo}+"


def response_positions(masks: list[list[bool]]) -> list[int]:
    """Index within its response of every scored position, in the order the loss sees them."""
    return [j for m in masks for j, keep in enumerate(m) if keep]


class SignalStats:
    """Accumulates the loss diagnostics of one optimizer step (see the module docstring)."""

    def __init__(self, top_tokens: int = 8) -> None:
        self.top_tokens = top_tokens
        self.div_sum = [0.0] * len(BUCKETS)
        self.div_n = [0] * len(BUCKETS)
        self.n = 0
        self.any_clipped = 0
        self.removed = 0.0
        self.total = 0.0
        self.logratio_sum = 0.0
        self.logratio_n = 0
        self.raised: torch.Tensor | None = None

    def add(self, stats: LossStats | Mapping[str, Any], positions: list[int]) -> None:
        """Add one micro-batch: ``stats`` from the loss, ``positions`` from :func:`response_positions` of the
        same micro-batch. A loss without diagnostics is ignored.

        ``stats`` may also be the older mapping ``{"diag": {"divergence": ..., "raise": ...}}``.
        """
        diag = _diagnostics(stats)
        if diag is None:
            return
        div = diag["divergence"].double().cpu()
        if len(positions) != div.numel():
            raise ValueError(f"{len(positions)} response positions for {div.numel()} scored positions")
        pos = torch.tensor(positions)
        for b, (lo, hi) in enumerate(BUCKETS):
            sel = (pos >= lo) & (pos < hi)
            self.div_sum[b] += float(div[sel].sum())
            self.div_n[b] += int(sel.sum())
        self.n += div.numel()
        self.any_clipped += int(diag["any_clipped"].sum())
        self.removed += float(diag["removed"].double().sum())
        self.total += float(div.sum())
        if diag.get("target_logratio") is not None:
            self.logratio_sum += float(diag["target_logratio"].double().sum())
            self.logratio_n += int(diag["target_logratio"].numel())
        if diag.get("raise") is not None:
            r = diag["raise"].double().cpu()
            self.raised = r if self.raised is None else self.raised + r

    def metrics(self, tokenizer: Any = None) -> dict[str, Any]:
        """The ``signal_*`` fields (empty when nothing was added)."""
        if not self.n:
            return {}
        out: dict[str, Any] = {
            "signal_divergence_by_position": {
                bucket_name(lo, hi): (s / n if n else None)
                for (lo, hi), s, n in zip(BUCKETS, self.div_sum, self.div_n)
            },
            "signal_clipped_position_share": self.any_clipped / self.n,
            "signal_clip_removed_share": self.removed / self.total if self.total > 0 else 0.0,
            "signal_divergence_mean": self.total / self.n,
        }
        if self.logratio_n:
            out["signal_sampled_token_logratio"] = self.logratio_sum / self.logratio_n
        if self.raised is not None and tokenizer is not None:
            vals, ids = (self.raised / self.n).topk(min(self.top_tokens, self.raised.numel()))
            out["signal_top_raised_tokens"] = [
                [tokenizer.decode([int(i)]), round(float(v), 5)] for v, i in zip(vals, ids)
            ]
        return out


def _diagnostics(stats: LossStats | Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The diagnostic vectors by name, or None when the loss computed none."""
    if isinstance(stats, LossStats):
        if not stats.has_diagnostics:
            return None
        return {"divergence": stats.divergence, "any_clipped": stats.any_clipped, "removed": stats.removed,
                "target_logratio": stats.target_logratio, "raise": stats.raised}
    return stats.get("diag")
