"""The data order of a training run: which prompts each optimizer step reads.

Shared by ``rgsd train`` and ``rgsd grpo`` (``data_order: rgsd``), so both methods see the same prompts at
every step.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["step_indices"]


@functools.lru_cache(maxsize=4)
def _epoch_order(n_items: int, seed: int, epoch: int) -> list[int]:
    return torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()


def step_indices(step: int, n_items: int, global_batch: int, seed: int) -> list[int]:
    """Dataset indices of one optimizer step: epochs of seeded permutations, read in order.

    A pure function of (step, seed), so a resumed run reads exactly the prompts the killed run would have.
    """
    positions = range(step * global_batch, (step + 1) * global_batch)
    return [_epoch_order(n_items, seed, k // n_items)[k % n_items] for k in positions]
