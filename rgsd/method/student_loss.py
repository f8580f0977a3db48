"""The student side of one RGSD micro-batch: forward, gather the scored positions, divergence to the teacher.

One ``nn.Module`` so that DDP/FSDP see every trainable weight used in its forward. The divergence is one of
the implementations of :mod:`rgsd.method.losses`' contract: the fused chunked loss by default, the
checkpointed one when the weights are sharded (FSDP2), where the head must be called as a module.
"""

from __future__ import annotations

import torch
from torch import nn

from rgsd.method.alignment import gather_hidden
from rgsd.method.chunked_loss import chunked_jsd_from_hidden
from rgsd.method.hidden import final_hidden
from rgsd.method.losses import LossOptions, LossStats
from rgsd.method.sharded_loss import checkpointed_jsd_from_hidden

__all__ = ["StudentLoss"]


class StudentLoss(nn.Module):
    """Student forward and divergence in one module; ``forward`` returns ``(loss_sum, LossStats)``."""

    def __init__(self, lm: nn.Module, options: LossOptions | None = None, sharded: bool = False):
        super().__init__()
        self.lm = lm
        self.options = options if options is not None else LossOptions()
        self.sharded = sharded  # weights sharded (FSDP2): call the head as a module

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor,
                teacher_hidden: torch.Tensor, teacher_head: nn.Module,
                targets: torch.Tensor | None = None) -> tuple[torch.Tensor, LossStats]:
        opts = self.options
        hidden = gather_hidden(final_hidden(self.lm, input_ids, attention_mask), positions)
        impl = opts.impl if opts.impl != "auto" else ("checkpointed" if self.sharded else "fused")
        loss_fn = checkpointed_jsd_from_hidden if impl == "checkpointed" else chunked_jsd_from_hidden
        # the signal diagnostics (the only reader of the targets) come from buffers only the fused loop holds
        diagnostics = impl == "fused" and opts.diagnostics
        return loss_fn(hidden, teacher_hidden, self.lm.get_output_embeddings(), teacher_head, opts,
                       targets=targets if diagnostics else None)
