"""Everything a run needs before its first step: process group, model (+LoRA), data, optimizer, generation.

Kept apart from the loop in ``trainer.py`` so the loop reads top to bottom.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from rgsd.data.schema import Example
from rgsd.data.training import load_training_examples
from rgsd.method.probe import self_internalization_gap
from rgsd.method.rollout import Rollout, generate
from rgsd.method.student_loss import StudentLoss
from rgsd.train.config import ModelArgs, RGSDConfig
from rgsd.train.distributed import Dist

log = logging.getLogger(__name__)


@dataclass
class Run:
    dist: Dist
    wrapper: nn.Module  # StudentLoss (DDP-wrapped under ddp); under fsdp2 its .lm holds the sharded model
    student: nn.Module  # the model generation, probes and the teacher read (the sharded module under fsdp2)
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    teacher: Any
    examples: list[Example]
    resume_dir: Path | None
    generate_fn: Callable[[nn.Module, list[list[int]]], list[Rollout]]
    probe_fn: Callable[[nn.Module, list[Example], int], float]
    sharding: str = "none"
    compute_dtype: torch.dtype = torch.float32


def resolve_dtype(cfg: ModelArgs) -> torch.dtype:
    """auto = bf16 on GPU, fp32 on CPU."""
    from rgsd.models import torch_dtype

    return torch_dtype(cfg.dtype)


def load_policy(cfg: ModelArgs) -> tuple[nn.Module, Any]:
    """The trainable model: LoRA adapters on the base (adapter in fp32), or the full model."""
    from rgsd.models import load_model

    dtype = resolve_dtype(cfg)
    # Full fine-tuning keeps fp32 master weights; bf16 then comes from autocast (mixed precision).
    model, tok = load_model(cfg.model_name_or_path, dtype=dtype if cfg.use_lora else torch.float32,
                            attn_implementation=cfg.attn_implementation)
    if cfg.use_lora:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=list(cfg.lora_target_modules), task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.use_lora:
            model.enable_input_require_grads()
    model.config.use_cache = False
    return model, tok


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint (its trainer_state.json is written last)."""
    ckpts = sorted(p.parent for p in (Path(output_dir) / "checkpoints").glob("step-*/trainer_state.json"))
    return ckpts[-1] if ckpts else None


def seed_everything(seed: int) -> None:
    """Python, numpy and torch (CPU and every CUDA device) RNGs."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def prepare_run(cfg: RGSDConfig, resume: bool = False) -> Run:
    from transformers import get_scheduler

    from rgsd.train.distributed import init_distributed, shard_fsdp2
    from rgsd.train.teacher import Teacher, load_frozen_teacher

    options = cfg.loss_options()
    dist = init_distributed(cfg.sharding)
    sharding = "ddp" if cfg.sharding == "none" and dist.world > 1 else cfg.sharding
    compute = resolve_dtype(cfg)
    seed_everything(cfg.seed)  # same on every rank: LoRA initialization must agree
    model, tok = load_policy(cfg)
    examples = load_training_examples(cfg)
    frozen = None
    if cfg.teacher == "frozen" and not cfg.use_lora:  # full FT: load the initial weights again, never deep-copy
        frozen = load_frozen_teacher(cfg.model_name_or_path, compute, cfg.attn_implementation)
    if sharding == "fsdp2":
        # fp32 master weights, bf16 compute through FSDP's mixed precision (LoRA: base and adapter alike)
        shard_fsdp2(model, compute if compute != torch.float32 else None)
        if frozen is not None:
            shard_fsdp2(frozen)
    else:
        model.to(dist.device)
        if frozen is not None:
            frozen.to(dist.device)
    teacher = Teacher(model, cfg.teacher, cfg.use_lora, cfg.ema_decay, frozen_model=frozen)
    wrapper: nn.Module = StudentLoss(model, options, sharded=sharding == "fsdp2")
    if sharding == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        wrapper = DistributedDataParallel(wrapper, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None)
    params = [p for p in wrapper.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
                            eps=cfg.adam_epsilon, weight_decay=cfg.weight_decay)
    sched = get_scheduler(cfg.lr_scheduler_type, opt, num_warmup_steps=cfg.num_warmup_steps(),
                          num_training_steps=cfg.max_steps)
    # Sampling noise differs per rank (device-specific seed); resume restores each rank's own RNG state.
    seed_everything(cfg.seed + 1_000_003 * dist.rank)
    resume_dir = latest_checkpoint(cfg.output_dir) if resume else None
    if resume and resume_dir is None:
        log.warning("--resume: no checkpoint in %s/checkpoints, starting from scratch", cfg.output_dir)
    return Run(dist, wrapper, model, tok, opt, sched, teacher, examples, resume_dir,
               generate_fn=make_generate_fn(cfg, tok, dist, model), probe_fn=make_probe_fn(cfg, tok),
               sharding=sharding, compute_dtype=compute)


def make_generate_fn(cfg: RGSDConfig, tok: Any, dist: Dist, model: nn.Module
                     ) -> Callable[[nn.Module, list[list[int]]], list[Rollout]]:
    """On-policy sampling: transformers generate on the (sharded) student, or vLLM through TRL."""
    if cfg.generation_backend.startswith("vllm"):
        from rgsd.train.vllm_backend import VLLMGenerator

        return VLLMGenerator(cfg, tok, dist, model)

    def gen(model: nn.Module, prompts: list[list[int]]) -> list[Rollout]:
        return generate(model, tok, prompts, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                        top_p=cfg.top_p, do_sample=cfg.temperature > 0, batch_size=cfg.generation_batch_size)

    return gen


def make_probe_fn(cfg: RGSDConfig, tok: Any) -> Callable[[nn.Module, list[Example], int], float]:
    """Self-internalization gap on a fixed probe set, with its own RNG so training sampling is unchanged."""

    def probe(model: nn.Module, examples: list[Example], step: int) -> float:
        # fork every RNG the probe's reseeding touches (CUDA included), so the training stream is unchanged
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            result = self_internalization_gap(
                model, tok, examples, k=cfg.probe_samples, max_new_tokens=cfg.probe_max_new_tokens,
                seed=cfg.seed + 7919, placement=cfg.teacher_placement, style=cfg.teacher_style,
            )
        return float(result if isinstance(result, (int, float)) else result.gap)

    return probe
