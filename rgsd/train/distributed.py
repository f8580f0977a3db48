"""Process group and sharding for RGSD training: torch.distributed directly, the same code on gloo and NCCL.

``sharding`` (config field):

- ``none``: one process, no process group.
- ``ddp``: torch ``DistributedDataParallel`` (every rank holds all weights; gradients all-reduced).
- ``fsdp2``: torch's ``fully_shard`` on every decoder layer (the classes in the model's ``_no_split_modules``)
  and then on the model itself (the root: embeddings, final norm, head). Generation and every forward go
  through the sharded model itself, so FSDP's hooks gather the weights.

Launch with ``torchrun`` (or ``accelerate launch`` used only as a process launcher: it sets the same
``RANK``/``WORLD_SIZE``/``MASTER_ADDR`` environment). Accelerate's FSDP/DeepSpeed plugins are not used.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Dist:
    """Where this process sits; ``created`` says whether we opened the process group (and must close it)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    created: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over ranks (float64, so counts stay exact)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world > 1:
            torch.distributed.all_reduce(t)
        return t.tolist()

    def gather_int(self, value: int) -> list[int]:
        """``value`` from every rank, in rank order."""
        if self.world == 1:
            return [value]
        t = torch.tensor([value], dtype=torch.int64, device=self.device)
        out = [torch.zeros_like(t) for _ in range(self.world)]
        torch.distributed.all_gather(out, t)
        return [int(x.item()) for x in out]

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.created and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.created = False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(sharding: str) -> Dist:
    """Join the process group the launcher described (``WORLD_SIZE`` > 1), or open a one-rank group for
    ``fsdp2`` in a single process (``fully_shard`` needs a device mesh). NCCL on GPU, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    created = False
    if (world > 1 or sharding == "fsdp2") and not torch.distributed.is_initialized():
        backend = "nccl" if cuda else "gloo"
        if world == 1:
            torch.distributed.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}",
                                                 rank=0, world_size=1)
        else:
            torch.distributed.init_process_group(backend, device_id=device if cuda else None)
        created = True
    return Dist(rank, world, local, device, created)


def decoder_layer_classes(model: nn.Module) -> set[type]:
    """The classes named by ``_no_split_modules`` of the transformers model inside ``model`` (PEFT or not)."""
    names: set[str] = set()
    for m in model.modules():
        names.update(getattr(m, "_no_split_modules", None) or [])
    classes = {type(m) for m in model.modules() if type(m).__name__ in names}
    if not classes:
        raise ValueError(f"{type(model).__name__} declares no _no_split_modules: cannot pick FSDP2 units")
    return classes


def hf_model(model: nn.Module) -> nn.Module:
    """The transformers ``PreTrainedModel`` inside a PEFT wrapper (or ``model`` itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def shard_fsdp2(model: nn.Module, compute_dtype: torch.dtype | None = None) -> nn.Module:
    """``fully_shard`` each decoder layer, then the transformers model as the root; returns ``model``.

    The root is the ``PreTrainedModel`` itself (inside PEFT), so ``generate`` and the PEFT forward both enter
    through FSDP's hooks. ``compute_dtype`` (e.g. bf16 with fp32 weights) becomes FSDP's mixed-precision
    policy, with gradients reduced in fp32.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    kw = {}
    if compute_dtype is not None:
        kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
    classes = tuple(decoder_layer_classes(model))
    root = hf_model(model)
    for m in list(root.modules()):
        if isinstance(m, classes):
            fully_shard(m, **kw)
    fully_shard(root, **kw)
    return model


def fsdp_root(model: nn.Module) -> nn.Module | None:
    """The FSDP2 root module inside ``model`` (None when not sharded)."""
    from torch.distributed.fsdp import FSDPModule

    root = hf_model(model)
    return root if isinstance(root, FSDPModule) else None


def local_param_count(model: nn.Module) -> int:
    """Parameters this rank holds (its local shards under FSDP2)."""
    n = 0
    for p in model.parameters():
        n += p.to_local().numel() if hasattr(p, "to_local") else p.numel()
    return n
