"""The chunked divergence for sharded models (FSDP2).

:func:`rgsd.method.chunked_loss.chunked_jsd_from_hidden` reads the LM head's weight tensor directly, which is fast
but sees only a shard when FSDP partitions the weights. This variant calls the head *module* on
each chunk (so the framework's hooks gather the weight) and wraps every chunk in activation checkpointing,
so at most one chunk's logits live at a time; backward recomputes that chunk's logits. It costs one more
head matmul per chunk than the fused path and gives the same value and gradients. It follows the contract of
:mod:`rgsd.method.losses` (one :class:`~rgsd.method.losses.LossOptions` in, ``(loss_sum, LossStats)`` out).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from rgsd.method.losses import LossOptions, LossStats, jsd_per_token

__all__ = ["checkpointed_jsd_from_hidden"]


def checkpointed_jsd_from_hidden(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, student_head: nn.Module,
    teacher_head: nn.Module, options: LossOptions, *, student_bias: torch.Tensor | None = None,
    teacher_bias: torch.Tensor | None = None, targets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, LossStats]:
    """Summed generalized JSD over ``N`` positions (same contract as ``chunked_jsd_from_hidden``).

    The heads must be modules (the sharding hooks gather their weights), so ``student_bias``/``teacher_bias``
    must be ``None``. The signal diagnostics are not computed here: with ``options.diagnostics`` their fields
    of the returned :class:`~rgsd.method.losses.LossStats` stay ``None`` (``targets`` is unused).
    ``options.chunk_size`` positions are recomputed at a time (``options.impl`` is not read here).
    ``clipped_fraction`` and ``clipped_fraction_sum`` are Python floats.
    """
    del targets
    if student_bias is not None or teacher_bias is not None:
        raise ValueError("checkpointed_jsd_from_hidden calls the heads as modules: pass no separate bias")

    def chunk_loss(h_s: torch.Tensor, h_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            t_logits = teacher_head(h_t)
        loss, frac = jsd_per_token(student_head(h_s), t_logits, options.beta, options.clip, options.clip_mode,
                                   options.top_k, options.temperature)
        return loss.sum(), frac.sum()

    total = student_hidden.new_zeros((), dtype=torch.float32)
    clipped = 0.0
    n, chunk_size = student_hidden.shape[0], options.chunk_size
    for start in range(0, n, chunk_size):
        h_s, h_t = student_hidden[start : start + chunk_size], teacher_hidden[start : start + chunk_size]
        loss, frac = checkpoint(chunk_loss, h_s, h_t, use_reentrant=False)
        total = total + loss
        clipped += float(frac)
    return total, LossStats(n_tokens=n, clipped_fraction=clipped / max(n, 1), clipped_fraction_sum=clipped)
