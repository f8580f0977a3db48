"""Padding token-id lists into a batch: the one place rollouts, alignment and the gap probe pad sequences."""

from __future__ import annotations

from typing import Literal

import torch


def pad_batch(
    seqs: list[list[int]], pad_id: int, side: Literal["left", "right"] = "right", width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` of shape ``[len(seqs), width]`` (default: the longest sequence).

    ``left`` puts the padding before the tokens (what ``generate`` needs, so every prompt ends at the same
    column); ``right`` after them (every real token keeps its natural position, as the loss slices assume).
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    width = max((len(s) for s in seqs), default=0) if width is None else width
    if any(len(s) > width for s in seqs):
        raise ValueError(f"a sequence is longer than width={width}")
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        if not s:
            continue
        cols = slice(width - len(s), width) if side == "left" else slice(0, len(s))
        ids[row, cols] = torch.tensor(s, dtype=torch.long)
        mask[row, cols] = 1
    return ids, mask
