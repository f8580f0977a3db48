"""The judge-based GRPO baseline: TRL 1.16's ``GRPOTrainer`` with a rubric judge as the reward.

GRPO itself is TRL's; this module maps :class:`GRPORunConfig` onto ``trl.GRPOConfig``, builds the prompt
dataset, wires the judge-backed reward (:mod:`rgsd.grpo.rewards`), and keeps the same cost record and run
folder layout as RGSD (``config.yaml``, ``metrics.jsonl``, ``costs.json``, ``final/``) so that the two
compare line by line.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from rgsd.costs import CostRecord
from rgsd.grpo.callbacks import CostCallback, quiet_console
from rgsd.grpo.config import GRPORunConfig
from rgsd.grpo.trackers import ConfigToTrackers, apply_project, point_tensorboard, tensorboard_dir
from rgsd.grpo.trl_shim import timed_grpo_trainer_class
from rgsd.runlog import truncate_metrics
from rgsd.trackers import resolve_report_to

log = logging.getLogger(__name__)


def make_judge(cfg: GRPORunConfig) -> Any:
    """The training judge described by the config (regex, or an OpenAI-compatible LLM judge)."""
    from rgsd.judges.options import build_judge

    return build_judge(cfg, cfg.output_dir)


def build_dataset(examples: list, tokenizer: Any, cfg: GRPORunConfig, world_size: int = 1) -> tuple[Any, int]:
    """A ``datasets.Dataset`` with ``prompt`` (chat messages) and ``example_id``; over-long prompts skipped.

    Prompts are never truncated (same rule as RGSD); the number skipped is returned. With ``data_order:
    rgsd`` the rows are laid out step by step in the order ``rgsd train`` visits them (its seeded
    :func:`rgsd.data.order.step_indices`), and TRL reads them unshuffled, so both methods see the same
    prompts at every step (exactly so when neither skips a prompt for length).
    """
    from datasets import Dataset

    from rgsd.method.rollout import chat_prompt_ids
    from rgsd.method.teacher_prompt import student_messages

    rows, skipped = [], 0
    for ex in examples:
        messages = student_messages(ex)
        if len(chat_prompt_ids(tokenizer, messages)) > cfg.max_prompt_tokens:
            skipped += 1
            continue
        rows.append(
            {
                "prompt": [{"role": m["role"], "content": m["content"]} for m in messages],
                "example_id": str(ex.id),
            }
        )
    if cfg.data_order == "rgsd" and rows:
        from rgsd.data.order import step_indices

        global_batch = cfg.prompts_per_step(world_size)
        rows = [
            rows[i]
            for step in range(cfg.max_steps)
            for i in step_indices(step, len(rows), global_batch, cfg.seed)
        ]
    return Dataset.from_list(rows), skipped


def _dtype(cfg: GRPORunConfig) -> str:
    import torch

    if cfg.dtype != "auto":
        return cfg.dtype
    return "bf16" if torch.cuda.is_available() else "fp32"


def trl_config(cfg: GRPORunConfig, resolved_dtype: str) -> Any:
    """Map our fields onto ``trl.GRPOConfig`` (checked against TRL 1.16.0's argument names)."""
    from trl import GRPOConfig

    from rgsd.models import torch_dtype

    run_name, project = cfg.tracker_names()
    init_kwargs: dict[str, Any] = {"dtype": torch_dtype(resolved_dtype)}
    if cfg.attn_implementation:
        init_kwargs["attn_implementation"] = cfg.attn_implementation
    kwargs: dict[str, Any] = dict(
        output_dir=cfg.output_dir,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,  # completions, TRL's meaning
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        # one generation pass = one optimizer step: always on-policy
        steps_per_generation=cfg.gradient_accumulation_steps,
        num_generations=cfg.num_generations,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_steps if 0 < cfg.warmup_steps < 1 else cfg.num_warmup_steps(),
        weight_decay=cfg.weight_decay,
        adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2,
        adam_epsilon=cfg.adam_epsilon,
        max_grad_norm=cfg.max_grad_norm or 0.0,
        seed=cfg.seed,
        data_seed=cfg.seed,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        mask_truncated_completions=cfg.mask_truncated_completions,
        bf16=resolved_dtype == "bf16",
        fp16=resolved_dtype == "fp16",
        gradient_checkpointing=cfg.gradient_checkpointing,
        model_init_kwargs=init_kwargs,
        save_strategy="steps" if cfg.save_steps > 0 else "no",
        save_steps=cfg.save_steps if cfg.save_steps > 0 else 500,
        save_total_limit=cfg.save_total_limit,
        logging_steps=1,  # every step reaches metrics.jsonl; the console line follows cfg.logging_steps
        report_to=resolve_report_to(cfg.report_to) or "none",  # transformers' meaning; "all" resolved once
        disable_tqdm=cfg.disable_tqdm,
        run_name=run_name,
        project=project,
        remove_unused_columns=False,  # the reward function needs example_id
        shuffle_dataset=cfg.data_order == "trl",  # rgsd order: rows are already laid out step by step
        log_completions=cfg.log_completions,
        num_completions_to_print=2,
        use_vllm=cfg.use_vllm,
    )
    if cfg.use_vllm:
        kwargs.update(
            vllm_mode=cfg.vllm_mode,
            vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
            vllm_server_host=cfg.vllm_server_host,
            vllm_server_port=cfg.vllm_server_port,
        )
    return GRPOConfig(**kwargs)


def _peft_config(cfg: GRPORunConfig) -> Any:
    if not cfg.use_lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_target_modules),
        task_type="CAUSAL_LM",
    )


def train_grpo(cfg: GRPORunConfig, resume: bool = False) -> Path:
    """Run judge-based GRPO; return the run folder (``config.yaml, metrics.jsonl, costs.json, final/``).

    ``resume`` continues from the newest ``checkpoint-N`` in ``output_dir`` (TRL's own checkpointing); the
    cost totals continue from that checkpoint's copy and log lines after it are dropped.
    """
    from transformers.trainer_utils import get_last_checkpoint

    from rgsd.data.training import load_training_examples
    from rgsd.grpo.rewards import RubricReward
    from rgsd.grpo.trl_shim import require_compatible_trl
    from rgsd.hub import finish_model_folder, push_folder
    from rgsd.models import load_tokenizer, resolve_model_path
    from rgsd.options import save as save_config

    cfg.validate()
    require_compatible_trl()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = get_last_checkpoint(str(out)) if resume else None
    if resume and checkpoint is None:
        raise FileNotFoundError(
            f"--resume: no checkpoint-N folder in {out} (set save_steps > 0 to write them)"
        )
    rank = int(os.environ.get("RANK", "0"))  # set by accelerate/torchrun launchers
    criteria_log = out / (
        "criteria.jsonl" if rank == 0 else f"criteria.rank{rank}.jsonl"
    )  # one writer per file
    if rank == 0:
        save_config(cfg, out / "config.yaml")

    model_path = resolve_model_path(cfg.model_name_or_path)
    tokenizer = load_tokenizer(model_path)
    examples = load_training_examples(cfg)  # the same loader (and max_examples cut) as `rgsd train`
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dataset, skipped = build_dataset(examples, tokenizer, cfg, world)
    if skipped:
        log.warning(
            "skipped %d prompts longer than max_prompt_tokens=%d (never truncated)",
            skipped,
            cfg.max_prompt_tokens,
        )
    if len(dataset) < cfg.prompts_per_step(world):
        raise ValueError(
            f"{cfg.dataset_name}: {len(dataset)} usable prompts, fewer than one step's per_device_train_batch_size x "
            f"gradient_accumulation_steps x processes / num_generations = {cfg.prompts_per_step(world)}"
        )

    cost = CostRecord(method="grpo")
    if checkpoint is not None:
        step = int(Path(checkpoint).name.split("-")[-1])
        if (Path(checkpoint) / "costs.json").exists():
            cost = CostRecord.load(Path(checkpoint) / "costs.json")
        for path in ([out / "metrics.jsonl"] if rank == 0 else []) + [criteria_log]:
            truncate_metrics(path, step)
    else:
        for path in ([out / "metrics.jsonl"] if rank == 0 else []) + [criteria_log]:
            path.unlink(missing_ok=True)  # a fresh run does not append to an old run's logs

    by_id: dict[str, Any] = {}
    for ex in examples:
        if str(ex.id) in by_id:
            raise ValueError(
                f"{cfg.dataset_name}: example id {ex.id!r} appears twice; the reward finds rubrics by id"
            )
        by_id[str(ex.id)] = ex
    judge = make_judge(cfg)
    reward = RubricReward(
        by_id,
        judge,
        reward=cfg.reward,
        dynamic_weights=cfg.dynamic_weights,
        eps=cfg.dynamic_weights_eps,
        criteria_log=criteria_log,
    )
    callback = CostCallback(cost, reward, judge, out, cfg.logging_steps, prices=cfg.price_table(),
                            judge_model=cfg.judge_model if cfg.judge == "openai" else None)
    trackers = ConfigToTrackers(cfg)
    apply_project(cfg.tracker_names()[1], resolve_report_to(cfg.report_to), explicit=cfg.project is not None)
    trainer = timed_grpo_trainer_class()(
        model=model_path,
        reward_funcs=reward,
        args=trl_config(cfg, _dtype(cfg)),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[callback, trackers],
        peft_config=_peft_config(cfg),
    )
    callback.attach(trainer)
    trackers.attach(trainer)
    point_tensorboard(trainer.callback_handler.callbacks, tensorboard_dir(out, cfg.tracker_names()[0]))
    quiet_console(trainer)
    if cfg.dynamic_weights and trainer.accelerator.num_processes > 1:
        log.warning(
            "dynamic_weights with %d processes: a group's rollouts are split across processes and each "
            "process computes pass rates from its own share",
            trainer.accelerator.num_processes,
        )
    trainer.train(resume_from_checkpoint=checkpoint)

    final = out / "final"
    trainer.save_model(str(final))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(final))
        finish_model_folder(final, out)  # the base model as the user named it (not rgsd's cache) + model card
        if cfg.push_to_hub:  # final/ once, with its card (TRL's own push would send every checkpoint)
            repo = push_folder(final, cfg, out.resolve().name, f"rgsd grpo: {trainer.state.global_step} steps")
            log.info("pushed %s to the hub: %s", final, repo)
        callback.finish()
        if reward.stats.budget_exhausted:
            log.warning(
                "stopped early at step %d: the judge call budget (judge_max_calls=%s) was reached",
                trainer.state.global_step,
                cfg.judge_max_calls,
            )
        log.info("GRPO run written to %s (costs: %s)", out, json.dumps(cost.to_dict()))
    return out
