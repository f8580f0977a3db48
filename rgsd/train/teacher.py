"""The teacher: the same model reading the rubric, frozen at the initial weights (the method).

- LoRA: the teacher is the network with the adapter disabled, i.e. exactly the initial base model, at no
  extra memory.
- Full fine-tuning: a separate frozen model loaded with ``from_pretrained`` from the same weights, in the
  student's compute dtype (bf16 when the student trains in bf16), sharded like the student under FSDP2.
  Never a deep copy of the student (which would alias or copy sharded/partitioned storage).
- ``live`` (current weights) and ``ema`` (moving average of the trainable weights) are ablations only.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from rgsd.method.hidden import final_hidden


class Teacher:
    """Gives the teacher's final hidden states and LM head for a batch of rubric-conditioned sequences."""

    def __init__(self, model: nn.Module, kind: str = "frozen", use_lora: bool = True, ema_decay: float = 0.99,
                 frozen_model: nn.Module | None = None):
        """``frozen_model``: for full fine-tuning with ``kind="frozen"``, the separately loaded initial model
        (see :func:`load_frozen_teacher`)."""
        self.kind, self.use_lora, self.ema_decay = kind, use_lora, ema_decay
        self.copy: nn.Module | None = None
        self.shadow: dict[str, torch.Tensor] = {}
        if kind == "frozen" and not use_lora:
            if frozen_model is None:
                raise ValueError("full fine-tuning with a frozen teacher needs the separately loaded teacher model")
            self.copy = frozen_model.eval()
            self.copy.requires_grad_(False)
        elif kind == "ema":
            self.shadow = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        elif kind not in ("frozen", "live"):
            raise ValueError(f"teacher must be frozen, live or ema, got {kind!r}")

    @contextlib.contextmanager
    def _as_teacher(self, model: nn.Module) -> Iterator[nn.Module]:
        if self.copy is not None:
            yield self.copy
        elif self.kind == "frozen":  # LoRA: the adapter-disabled network is the initial model
            with model.disable_adapter():
                yield model
        elif self.kind == "live":
            yield model
        else:  # ema: swap the shadow weights in for the forward pass
            _reshard(model)  # FSDP2: swap shards, and let the forward gather the swapped-in weights
            params = dict(model.named_parameters())
            saved = {n: params[n].detach().clone() for n in self.shadow}
            with torch.no_grad():
                for n, t in self.shadow.items():
                    params[n].copy_(t)
            try:
                yield model
            finally:
                with torch.no_grad():
                    for n, t in saved.items():
                        params[n].copy_(t)
                _reshard(model)  # drop the gathered teacher weights so the student's are gathered next

    @torch.no_grad()
    def hidden(self, model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Teacher final hidden states; ``model`` is the student (its sharded module under FSDP2)."""
        with self._as_teacher(model) as m:
            was_training = m.training
            m.eval()  # no dropout on the teacher side
            h = final_hidden(m, input_ids, attention_mask)
            m.train(was_training)
        return h

    def head(self, model: nn.Module) -> nn.Module:
        return (self.copy or model).get_output_embeddings()

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """After an optimizer step: move the EMA teacher toward the student (no-op otherwise)."""
        if self.kind != "ema":
            return
        _reshard(model)
        for n, p in model.named_parameters():
            if n in self.shadow:
                self.shadow[n].mul_(self.ema_decay).add_(p.detach(), alpha=1 - self.ema_decay)


def _reshard(model: nn.Module) -> None:
    """Under FSDP2, return every unit to its shards (the root stays gathered after a forward otherwise)."""
    from torch.distributed.fsdp import FSDPModule

    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.reshard()


def load_frozen_teacher(name_or_path: str, dtype: torch.dtype, attn_implementation: str | None = None) -> nn.Module:
    """The full fine-tuning teacher: the initial weights loaded again with ``from_pretrained`` in ``dtype``."""
    from rgsd.models import load_model

    model, _ = load_model(name_or_path, dtype=dtype, attn_implementation=attn_implementation)
    model.config.use_cache = False
    return model.eval().requires_grad_(False)
