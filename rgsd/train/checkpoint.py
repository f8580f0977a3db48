"""Checkpoints users can load, with the resume state beside them, and the final model.

``output_dir/checkpoints/step-NNNNNN/``:

- ``model/``: a folder ``from_pretrained`` loads (full fine-tuning: config + weights) or PEFT loads (LoRA:
  ``adapter_config.json`` + adapter weights, no base weights), with the tokenizer. ``rgsd eval --model`` reads it.
- ``resume/``: torch.distributed.checkpoint (DCP) shards of what trains (``get_state_dict``: full fine-tuning
  all weights, LoRA the adapter only), the optimizer and the EMA teacher's shadow (sharded as trained under
  FSDP2); beside them ``scheduler.pt`` and ``rng_rank{R}.pt`` (CPU, CUDA, Python, numpy) for every rank.
- ``trainer_state.json``: step (= data position), counters, cost record; written last, so its presence marks
  a complete checkpoint.

LoRA: the frozen base is not saved (it is ``model_name_or_path``, read again on resume), so a checkpoint
costs the adapter and its AdamW moments, not another copy of the model. The data order is a function of seed
and step, so restoring all this reproduces the uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch
from torch import nn

from rgsd.costs import CostRecord
from rgsd.hub import finish_model_folder

if TYPE_CHECKING:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    from rgsd.train.distributed import Dist
    from rgsd.train.setup import Run
    from rgsd.train.teacher import Teacher


class CheckpointError(RuntimeError):
    """A checkpoint this run cannot resume from; the message is one line for the user."""


def _student(wrapper: nn.Module) -> nn.Module:
    return getattr(wrapper, "module", wrapper).lm  # DDP keeps the StudentLoss in .module


def _is_lora(wrapper: nn.Module) -> bool:
    return hasattr(_student(wrapper), "peft_config")


def _options(wrapper: nn.Module, full: bool, strict: bool = True) -> StateDictOptions:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # LoRA: the frozen base is never saved (it is the model it was trained from)
    return StateDictOptions(full_state_dict=full, cpu_offload=full, ignore_frozen_params=_is_lora(wrapper),
                            strict=strict)


def _frozen_names(wrapper: nn.Module) -> set[str]:
    """Every name a frozen parameter goes by, as ``get_state_dict`` spells them (no DDP ``module.``)."""
    # remove_duplicate=False: DCP's ignore_frozen_params walks named_parameters(), which lists a tied weight
    # once (embed_tokens), so its alias (lm_head.weight) would be saved: the whole embedding matrix per checkpoint
    return {n.removeprefix("module.") for n, p in wrapper.named_parameters(remove_duplicate=False)
            if not p.requires_grad}


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


def _resume_state(wrapper: nn.Module, optimizer: torch.optim.Optimizer, teacher: Teacher) -> dict:
    """What DCP saves and loads in place: trainable weights (sharded as trained), optimizer, EMA shadow."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_sd, optim_sd = get_state_dict(wrapper, optimizer, options=_options(wrapper, full=False))
    if _is_lora(wrapper):
        frozen = _frozen_names(wrapper)
        model_sd = {k: v for k, v in model_sd.items() if k not in frozen}
    return {"model": model_sd, "optim": optim_sd, "ema": dict(teacher.shadow)}


def _no_dist(dist: Dist) -> bool:
    return dist.world == 1 and not torch.distributed.is_initialized()


@contextlib.contextmanager
def _quiet_single_process() -> Iterator[None]:
    """Silence DCP's "assuming the intent is to save/load in a single process" warning: that is the intent."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.distributed is .*single process")
        yield


def save(run: Run, out_dir: Path, state: dict, cost: CostRecord, keep: int | None) -> Path:
    """Write ``checkpoints/step-NNNNNN/`` (model folder + resume state) on every rank; prune old ones."""
    import torch.distributed.checkpoint as dcp

    dist = run.dist
    path = Path(out_dir) / "checkpoints" / f"step-{state['step']:06d}"
    save_model(run.wrapper, run.tokenizer, path / "model", dist)
    with _quiet_single_process():
        dcp.save(_resume_state(run.wrapper, run.optimizer, run.teacher), checkpoint_id=str(path / "resume"),
                 no_dist=_no_dist(dist))
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


def check_resumable(path: Path, world: int) -> None:
    """Refuse, in one line, a checkpoint this version or this number of processes cannot resume."""
    resume = Path(path) / "resume"
    if not (resume / ".metadata").exists():
        # before DCP, rgsd wrote accelerate's save_state (model.safetensors, optimizer.bin, random_states_*.pkl)
        raise CheckpointError(f"{path} has no resume/ state (an older rgsd wrote accelerate's layout): this "
                              "version cannot resume it; train again into a new output_dir")
    if not (resume / "scheduler.pt").exists():
        raise CheckpointError(f"{path}: resume/scheduler.pt is missing; resume from another checkpoint")
    saved = len(list(resume.glob("rng_rank*.pt")))
    if saved != world:
        raise CheckpointError(f"{path} was saved by {saved} process(es), this run has {world}: resume with "
                              f"the same number of processes (the data order and every rank's RNG depend on it)")


def _reason(err: BaseException) -> str:
    """The first line of the first failure (DCP wraps each rank's exception with its traceback)."""
    failures = getattr(err, "_failures", None)
    if failures:
        first = next(iter(failures.values()))
        err = first[0] if isinstance(first, tuple) else first
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def load(run: Run, path: Path) -> tuple[dict, CostRecord]:
    """Restore weights, optimizer, EMA shadow, scheduler and this rank's RNG states from ``path``."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.state_dict import set_state_dict

    dist, path = run.dist, Path(path)
    check_resumable(path, dist.world)
    sd = _resume_state(run.wrapper, run.optimizer, run.teacher)
    fit = "resume with the model, use_lora, LoRA settings and teacher it was saved with"
    try:
        with _quiet_single_process():
            dcp.load(sd, checkpoint_id=str(path / "resume"), no_dist=_no_dist(dist))
    except (CheckpointException, RuntimeError, ValueError) as err:  # a key or shape this run has, it has not
        raise CheckpointError(f"{path} does not fit this run ({_reason(err)}): {fit}") from None
    lora = _is_lora(run.wrapper)
    # LoRA: the state holds the adapter only, so the base's keys are missing by design (strict off, checked below)
    result = set_state_dict(run.wrapper, run.optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"],
                            options=_options(run.wrapper, full=False, strict=not lora))
    missing = {k.removeprefix("module.") for k in result.missing_keys} - _frozen_names(run.wrapper)
    if missing or result.unexpected_keys:
        raise CheckpointError(f"{path} does not fit this run (missing {sorted(missing)[:3]}, unexpected "
                              f"{sorted(result.unexpected_keys)[:3]}): {fit}")
    with torch.no_grad():
        for name, t in sd["ema"].items():
            run.teacher.shadow[name].copy_(t)
    run.scheduler.load_state_dict(torch.load(path / "resume" / "scheduler.pt", weights_only=False))
    rng = torch.load(path / "resume" / f"rng_rank{dist.rank}.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    saved = json.loads((path / "trainer_state.json").read_text())
    return saved["state"], CostRecord.from_dict(saved["cost"])


def save_final(run: Run, out_dir: Path, cost: CostRecord) -> Path:
    """Save the trained model to ``output_dir/final`` (LoRA: the adapter; full: all weights) + tokenizer."""
    final = save_model(run.wrapper, run.tokenizer, Path(out_dir) / "final", run.dist)
    if run.dist.is_main:
        cost.save(Path(out_dir) / "costs.json")
    return final
