"""Checkpoints users can load, with the resume state beside them, and the final model.

``output_dir/checkpoints/step-NNNNNN/``:

- ``model/``: a folder ``from_pretrained`` loads (full fine-tuning: config + weights) or PEFT loads (LoRA:
  ``adapter_config.json`` + adapter weights, no base weights), with the tokenizer. ``rgsd eval --model`` reads it.
- ``resume/``: torch.distributed.checkpoint (DCP) shards of the trainable weights, the optimizer and the EMA
  teacher's shadow (sharded as trained under FSDP2), the scheduler, and every rank's RNG states (CPU, CUDA,
  Python, numpy).
- ``trainer_state.json``: step (= data position), counters, cost record.

The data order is a function of seed and step, so restoring these reproduces the uninterrupted run.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from rgsd.costs import CostRecord
from rgsd.hub import finish_model_folder

if TYPE_CHECKING:
    from rgsd.train.distributed import Dist
    from rgsd.train.setup import Run


def _student(wrapper: nn.Module) -> nn.Module:
    return getattr(wrapper, "module", wrapper).lm  # DDP keeps the StudentLoss in .module


def _options(wrapper: nn.Module, full: bool):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    lora = hasattr(_student(wrapper), "peft_config")
    # LoRA: the frozen base is never saved (it is the model it was trained from)
    return StateDictOptions(full_state_dict=full, cpu_offload=full, ignore_frozen_params=lora)


def _reshard(wrapper: nn.Module) -> None:
    """FSDP2 keeps the root unsharded after a forward without backward (generation): reshard before saving."""
    from torch.distributed.fsdp import FSDPModule

    for m in wrapper.modules():
        if isinstance(m, FSDPModule):
            m.reshard()


def save_model(wrapper: nn.Module, tokenizer: Any, folder: Path, dist: Dist) -> Path:
    """Write a loadable model folder (full weights, or the LoRA adapter only) plus the tokenizer."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    _reshard(wrapper)
    state = get_model_state_dict(wrapper, options=_options(wrapper, full=True))  # collective; rank 0 gets it
    if dist.is_main:
        lm = _student(wrapper)
        state = {k.removeprefix("lm."): v for k, v in state.items()}
        lm.save_pretrained(folder, state_dict=state)
        tokenizer.save_pretrained(folder)
        finish_model_folder(folder)  # the base model as the user named it (not rgsd's cache) + model card
    dist.barrier()
    return folder


def _resume_state(wrapper: nn.Module, optimizer, teacher) -> dict:
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_sd, optim_sd = get_state_dict(wrapper, optimizer, options=_options(wrapper, full=False))
    return {"model": model_sd, "optim": optim_sd, "ema": dict(teacher.shadow)}


def save(run: Run, out_dir: Path, state: dict, cost: CostRecord, keep: int | None) -> Path:
    """Write ``checkpoints/step-NNNNNN/`` (model folder + resume state) on every rank; prune old ones."""
    import torch.distributed.checkpoint as dcp

    dist = run.dist
    path = Path(out_dir) / "checkpoints" / f"step-{state['step']:06d}"
    save_model(run.wrapper, run.tokenizer, path / "model", dist)
    dcp.save(_resume_state(run.wrapper, run.optimizer, run.teacher), checkpoint_id=str(path / "resume"),
             no_dist=dist.world == 1 and not torch.distributed.is_initialized())
    rng = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
           "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    torch.save(rng, path / "resume" / f"rng_rank{dist.rank}.pt")
    if dist.is_main:
        torch.save(run.scheduler.state_dict(), path / "resume" / "scheduler.pt")
    dist.barrier()
    if dist.is_main:  # written last: its presence marks a complete checkpoint
        (path / "trainer_state.json").write_text(json.dumps({"state": state, "cost": cost.to_dict()}, indent=2))
        if keep:
            for old in sorted((Path(out_dir) / "checkpoints").glob("step-*"))[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return path


def load(run: Run, path: Path) -> tuple[dict, CostRecord]:
    """Restore weights, optimizer, EMA shadow, scheduler and this rank's RNG states from ``path``."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    dist = run.dist
    sd = _resume_state(run.wrapper, run.optimizer, run.teacher)
    dcp.load(sd, checkpoint_id=str(Path(path) / "resume"),
             no_dist=dist.world == 1 and not torch.distributed.is_initialized())
    set_state_dict(run.wrapper, run.optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"],
                   options=_options(run.wrapper, full=False))
    with torch.no_grad():
        for name, t in sd["ema"].items():
            run.teacher.shadow[name].copy_(t)
    run.scheduler.load_state_dict(torch.load(Path(path) / "resume" / "scheduler.pt", weights_only=False))
    rng_file = Path(path) / "resume" / f"rng_rank{dist.rank}.pt"
    if not rng_file.exists():
        raise RuntimeError(f"{rng_file} is missing: resume with the same number of processes as the saved run")
    rng = torch.load(rng_file, weights_only=False)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    saved = json.loads((Path(path) / "trainer_state.json").read_text())
    return saved["state"], CostRecord.from_dict(saved["cost"])


def save_final(run: Run, out_dir: Path, cost: CostRecord) -> Path:
    """Save the trained model to ``output_dir/final`` (LoRA: the adapter; full: all weights) + tokenizer."""
    final = save_model(run.wrapper, run.tokenizer, Path(out_dir) / "final", run.dist)
    if run.dist.is_main:
        cost.save(Path(out_dir) / "costs.json")
    return final
