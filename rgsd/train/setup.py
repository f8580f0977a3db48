"""Everything a run needs before its first step: accelerator, model (+LoRA), data, optimizer, generation.

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
from rgsd.rollout import Rollout, generate
from rgsd.train.config import ModelArgs, RGSDConfig

log = logging.getLogger(__name__)


@dataclass
class Run:
    accelerator: Any
    wrapper: nn.Module
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    teacher: Any
    examples: list[Example]
    resume_dir: Path | None
    generate_fn: Callable[[nn.Module, list[list[int]]], list[Rollout]]
    probe_fn: Callable[[nn.Module, list[Example], int], float]


def resolve_dtype(cfg: ModelArgs) -> torch.dtype:
    """auto = bf16 on GPU, fp32 on CPU."""
    if cfg.dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.dtype]


def load_policy(cfg: ModelArgs) -> tuple[nn.Module, Any]:
    """The trainable model: LoRA adapters on the base (adapter in fp32), or the full model."""
    from rgsd.models import load_model

    dtype = resolve_dtype(cfg)
    # Full fine-tuning keeps fp32 master weights; bf16 then comes from autocast (mixed precision).
    model, tok = load_model(cfg.model, dtype=dtype if cfg.use_lora else torch.float32,
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


def load_training_examples(cfg: ModelArgs) -> list[Example]:
    from rgsd.data.loaders import load_examples, require_unique_ids

    examples = require_unique_ids(load_examples(cfg.data, format=cfg.format, polarity=cfg.polarity)).examples
    return examples[: cfg.max_examples] if cfg.max_examples else examples


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    ckpts = sorted((Path(output_dir) / "checkpoints").glob("step-*"))
    return ckpts[-1] if ckpts else None


def prepare_run(cfg: RGSDConfig, resume: bool = False) -> Run:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_scheduler

    from rgsd.train.teacher import Teacher
    from rgsd.train.trainer import StudentLoss

    mixed = "bf16" if (not cfg.use_lora and resolve_dtype(cfg) == torch.bfloat16) else "no"
    acc = Accelerator(log_with=cfg.report_to or None, project_dir=cfg.output_dir, mixed_precision=mixed,
                      cpu=not torch.cuda.is_available())  # cpu=True lets gloo multi-process runs start
    if cfg.report_to:
        acc.init_trackers("rgsd")
    set_seed(cfg.seed)
    model, tok = load_policy(cfg)
    examples = load_training_examples(cfg)
    # The teacher copy (full fine-tuning) is taken from the initial weights before anything is wrapped.
    teacher = Teacher(model, cfg.teacher, cfg.use_lora, cfg.ema_decay)
    wrapper = StudentLoss(model, sharded=_is_sharded(acc))
    params = [p for p in wrapper.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
                            eps=cfg.adam_epsilon, weight_decay=cfg.weight_decay)
    names = {"constant": "constant_with_warmup", "cosine": "cosine", "linear": "linear"}
    sched = get_scheduler(names[cfg.lr_scheduler], opt, num_warmup_steps=int(cfg.warmup_ratio * cfg.max_steps),
                          num_training_steps=cfg.max_steps)
    # The scheduler is stepped by hand once per optimizer step (accelerate's wrapper would step it once per
    # process); it is registered so save_state/load_state carry it.
    wrapper, opt = acc.prepare(wrapper, opt)
    acc.register_for_checkpointing(sched)
    teacher.prepare(acc)
    resume_dir = latest_checkpoint(cfg.output_dir) if resume else None
    if resume and resume_dir is None:
        log.warning("--resume: no checkpoint in %s/checkpoints, starting from scratch", cfg.output_dir)
    return Run(acc, wrapper, tok, opt, sched, teacher, examples, resume_dir,
               generate_fn=make_generate_fn(cfg, tok, acc), probe_fn=make_probe_fn(cfg, tok))


def _is_sharded(acc) -> bool:
    """True when parameters are partitioned across ranks (DeepSpeed ZeRO-3 or FSDP)."""
    from accelerate.utils import DistributedType

    if acc.distributed_type == DistributedType.FSDP:
        return True
    if acc.distributed_type == DistributedType.DEEPSPEED:
        return acc.state.deepspeed_plugin.zero_stage == 3
    return False


def make_generate_fn(cfg: RGSDConfig, tok, acc) -> Callable[[nn.Module, list[list[int]]], list[Rollout]]:
    """On-policy sampling: transformers generate (default), or a TRL vLLM server."""
    if cfg.generation_backend == "vllm-server":
        from rgsd.train.vllm_backend import VLLMServerGenerator

        return VLLMServerGenerator(cfg, tok, acc)

    def gen(model: nn.Module, prompts: list[list[int]]) -> list[Rollout]:
        return generate(model, tok, prompts, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                        top_p=cfg.top_p, do_sample=cfg.temperature > 0, batch_size=cfg.generation_batch_size)

    return gen


def make_probe_fn(cfg: RGSDConfig, tok) -> Callable[[nn.Module, list[Example], int], float]:
    """Self-internalization gap on a fixed probe set, with its own RNG so training sampling is unchanged."""

    def probe(model: nn.Module, examples: list[Example], step: int) -> float:
        from rgsd.evaluate.gap import self_internalization_gap

        with torch.random.fork_rng(devices=[]):
            result = self_internalization_gap(
                model, tok, examples, k=cfg.probe_samples, max_new_tokens=cfg.probe_max_new_tokens,
                seed=cfg.seed + 7919, placement=cfg.teacher_placement, style=cfg.teacher_style,
            )
        return float(result if isinstance(result, (int, float)) else result.gap)

    return probe
