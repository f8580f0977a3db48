"""The RGSD training loop: :func:`train_step` is one optimizer step, :func:`train` the run around it.

One optimizer step (:func:`train_step`, top to bottom):
  1. take the step's prompts (a deterministic function of seed and step, so a resumed run sees the same data);
  2. sample one on-policy response per prompt from the student (plain prompt, the configured temperature);
  3. build teacher (prompt + rubric + response) and student (prompt + response) sequences on the same ids;
  4. teacher forward (frozen initial model, no grad) -> final hidden states at the response positions;
  5. student forward + generalized JSD against the teacher (:class:`rgsd.method.student_loss.StudentLoss`),
     divided by the number of scored tokens of the whole global batch (so gradient accumulation and data
     parallelism give the same mean);
  6. clip, AdamW step, schedule step; the step's statistics, summed over ranks.
The run (:func:`train`) logs them (metrics.jsonl, trackers, progress bar), probes the self-internalization gap
every N steps and checkpoints. Zero judge calls.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rgsd.costs import CostRecord
from rgsd.data.order import step_indices
from rgsd.data.schema import Example
from rgsd.hub import push_folder
from rgsd.method.alignment import align, gather_hidden, loss_mask, thinking_end_id
from rgsd.method.hidden import check_hidden_is_final
from rgsd.method.rollout import Rollout, chat_prompt_ids
from rgsd.method.signal import SignalStats, response_positions
from rgsd.method.teacher_prompt import context_messages, default_system_prompt, student_messages
from rgsd.options import save as save_config
from rgsd.runlog import truncate_metrics
from rgsd.train import checkpoint, setup
from rgsd.train.config import RGSDConfig
from rgsd.train.distributed import fsdp_root, local_param_count
from rgsd.train.tracking import start_trackers, tracker_logs

log = logging.getLogger(__name__)


def tokenize_examples(examples: list[Example], tokenizer: Any, cfg: RGSDConfig) -> tuple[list[dict], int]:
    """Chat-template both prompts once. Over-long prompts are never truncated: skipped and counted, or fatal."""
    items, skipped = [], 0
    default_system = default_system_prompt(tokenizer) if cfg.teacher_placement == "system_keep" else None
    teacher_chats = context_messages(examples, cfg.teacher_context, cfg.teacher_placement, cfg.show_weights,
                                     cfg.teacher_style, default_system=default_system)
    for ex, t_chat in zip(examples, teacher_chats):
        s_ids = chat_prompt_ids(tokenizer, student_messages(ex))
        t_ids = chat_prompt_ids(tokenizer, t_chat)
        if max(len(s_ids), len(t_ids)) > cfg.max_prompt_tokens:
            if cfg.on_long_prompt == "error":
                raise ValueError(
                    f"example {ex.id}: teacher prompt has {len(t_ids)} tokens > max_prompt_tokens="
                    f"{cfg.max_prompt_tokens}; raise the limit or set on_long_prompt: skip"
                )
            skipped += 1
            continue
        items.append({"example": ex, "student_ids": s_ids, "teacher_ids": t_ids})
    return items, skipped


@dataclass
class StepPlan:
    """What every step of a run shares: the tokenized data, batch geometry and the precision context."""

    items: list[dict]  # from tokenize_examples
    per_rank: int  # prompts per rank per optimizer step
    global_batch: int  # prompts per optimizer step over all ranks
    rollouts_per_prompt: int
    micro_batches: int  # gradient accumulation steps
    max_grad_norm: float | None
    seed: int
    think_end: int | None  # </think> id whose span is left out of the loss (None = score every token)
    autocast: AbstractContextManager = field(default_factory=nullcontext)
    fsdp: Any = None  # the FSDP2 root, or None


@dataclass
class StepStats:
    """One optimizer step's statistics; the sums are over all ranks."""

    prompts: int  # prompts of this rank
    scored_tokens: int  # tokens that entered the loss (global)
    loss_sum: float  # summed divergence over the scored tokens (global)
    clip_sum: float  # summed clipped fraction x tokens (global)
    response_tokens: float
    rollouts: float
    finished: float  # rollouts that ended with EOS
    dropped: float  # rollouts dropped for an unclosed thinking span
    grad_norm: float | None
    lr: float
    time_generation: float
    time_train: float
    signal: SignalStats  # this rank's signal diagnostics


def train_step(run: setup.Run, plan: StepPlan, step: int, cost: CostRecord) -> StepStats:
    """One RGSD optimizer step on this rank; the phases are timed into ``cost``."""
    dist, wrapper, tok, teacher, student = run.dist, run.wrapper, run.tokenizer, run.teacher, run.student
    dev, world, rank, autocast = dist.device, dist.world, dist.rank, plan.autocast
    # 1. this rank's prompts for the step (rank-major slices of the global batch)
    order = step_indices(step, len(plan.items), plan.global_batch, plan.seed)
    idx = order[rank * plan.per_rank : (rank + 1) * plan.per_rank]
    batch = [plan.items[i] for i in idx for _ in range(plan.rollouts_per_prompt)]

    # 2. on-policy rollouts from the student, plain prompt
    t0 = time.perf_counter()
    with cost.timed("time_generation"):
        rollouts = run.generate_fn(student, [b["student_ids"] for b in batch])
    gen_time = time.perf_counter() - t0

    # 3. loss masks (thinking) and aligned micro-batches
    masks, kept, dropped = [], [], 0
    for b, r in zip(batch, rollouts):
        m = loss_mask(r.response_ids, plan.think_end) if r.response_ids else None
        if m is None or not any(m):
            dropped += int(m is None and bool(r.response_ids))
            continue
        masks.append(m)
        kept.append((b, r))
    local_tokens = sum(sum(m) for m in masks)
    global_tokens = int(dist.sum([float(local_tokens)])[0])
    scale = world / global_tokens if global_tokens else 0.0  # DDP/FSDP average over ranks: undo it, then / N
    # Every rank runs exactly gradient_accumulation_steps micro-batches (teacher forward, student forward,
    # backward): under FSDP2 each is a collective. A rank with fewer kept rollouts pads with zero-weighted
    # one-token passes.
    n_micro = plan.micro_batches
    micro = max(1, math.ceil(len(kept) / n_micro))
    chunks = [kept[i * micro : (i + 1) * micro] for i in range(n_micro)]
    mchunks = [masks[i * micro : (i + 1) * micro] for i in range(n_micro)]

    # 4-5. teacher forward, student forward/backward, per micro-batch
    t1 = time.perf_counter()
    loss_sum, clip_sum = 0.0, 0.0
    signal = SignalStats()
    wrapper.train()
    for ci in range(n_micro if global_tokens else 0):
        weight = scale
        if not chunks[ci]:  # nothing scorable in this slot here (elsewhere there is): same calls, weight 0
            chunks[ci], mchunks[ci], weight = [(batch[0], _eos_only(tok))], [[True]], 0.0
        ab = align([b["student_ids"] for b, _ in chunks[ci]], [b["teacher_ids"] for b, _ in chunks[ci]],
                   [r.response_ids for _, r in chunks[ci]], mchunks[ci], tok.pad_token_id)
        with cost.timed("time_scoring"), autocast:
            t_hidden = gather_hidden(
                teacher.hidden(student, ab.teacher.input_ids.to(dev), ab.teacher.attention_mask.to(dev)),
                ab.teacher.positions,
            )
        last = ci == n_micro - 1
        with cost.timed("time_optimization"), _no_sync(wrapper, plan.fsdp, last):
            with autocast:
                lsum, stats = wrapper(ab.student.input_ids.to(dev), ab.student.attention_mask.to(dev),
                                      ab.student.positions, t_hidden, teacher.head(student),
                                      targets=ab.targets.to(dev))
            (lsum * weight).backward()
        if weight:
            loss_sum += float(lsum.detach())
            clip_sum += float(stats.clipped_fraction) * ab.n_tokens
            signal.add(stats, response_positions(mchunks[ci]))

    # 6. clip, AdamW, schedule (and the EMA teacher, when it is one)
    with cost.timed("time_optimization"):
        grad_norm = None
        if plan.max_grad_norm:
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in wrapper.parameters() if p.requires_grad], plan.max_grad_norm)
            grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        teacher.update(student)
    train_time = time.perf_counter() - t1

    totals = dist.sum([loss_sum, clip_sum, float(sum(len(r.response_ids) for r in rollouts)), float(len(rollouts)),
                       float(sum(r.finished for r in rollouts)), float(dropped)])
    return StepStats(
        prompts=len(idx), scored_tokens=global_tokens, loss_sum=totals[0], clip_sum=totals[1],
        response_tokens=totals[2], rollouts=totals[3], finished=totals[4], dropped=totals[5],
        grad_norm=float(grad_norm) if grad_norm is not None else None, lr=run.scheduler.get_last_lr()[0],
        time_generation=gen_time, time_train=train_time, signal=signal,
    )


def train(cfg: RGSDConfig, resume: bool = False) -> Path:
    """Run RGSD as configured; returns the run folder (``final/`` holds the trained model).

    ``resume=True`` continues from the newest checkpoint in ``cfg.output_dir``.
    """
    run = setup.prepare_run(cfg, resume)  # process group, model (+LoRA, sharded), tokenizer, data, optimizer
    try:
        return _train(cfg, run)
    finally:
        run.dist.close()


def _train(cfg: RGSDConfig, run: setup.Run) -> Path:
    """The loop around :func:`train_step`: resume, metrics.jsonl, trackers, progress, probe, checkpoints."""
    dist, tok = run.dist, run.tokenizer
    out_dir = Path(cfg.output_dir)
    student, dev = run.student, run.dist.device  # student: the sharded module itself
    fsdp = fsdp_root(student)
    params_per_rank = dist.gather_int(local_param_count(student))  # before any forward: FSDP2 keeps the root
    check_hidden_is_final(student, student.get_output_embeddings(), dev)  # unsharded after a forward
    # bf16 full fine-tuning without FSDP2: fp32 master weights under autocast (FSDP2 casts by its own policy)
    autocast = (torch.autocast(dev.type, dtype=run.compute_dtype)
                if run.compute_dtype != torch.float32 and fsdp is None and not cfg.use_lora else nullcontext())
    think_end = thinking_end_id(tok) if cfg.thinking in (None, True) else None
    if cfg.thinking and think_end is None:
        raise ValueError("thinking: true but the tokenizer has no single </think> token")

    items, n_long = tokenize_examples(run.examples, tok, cfg)
    if not items:
        raise ValueError(f"no usable training examples ({n_long} skipped for prompts over max_prompt_tokens)")
    probe_examples = [it["example"] for it in items[: cfg.probe_prompts]]

    world = dist.world
    per_rank = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    plan = StepPlan(items=items, per_rank=per_rank, global_batch=per_rank * world,
                    rollouts_per_prompt=cfg.rollouts_per_prompt, micro_batches=cfg.gradient_accumulation_steps,
                    max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, think_end=think_end, autocast=autocast,
                    fsdp=fsdp)
    cost = CostRecord(method="rgsd")
    state = {"step": 0, "skipped_long_prompts": n_long, "dropped_unclosed_thinking": 0}
    if run.resume_dir is not None:
        state, cost = checkpoint.load(run, run.resume_dir)
        log.info("resumed from %s at step %d", run.resume_dir, state["step"])
        if dist.is_main:  # steps logged after the checkpoint by the killed run are redone: drop them
            truncate_metrics(out_dir / "metrics.jsonl", state["step"])
    elif dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")
        (out_dir / "metrics.jsonl").unlink(missing_ok=True)
    trackers = start_trackers(cfg, student, state["step"]) if dist.is_main else None
    log.info("RGSD: sharding %s, world size %d, parameters per rank %s", run.sharding, world, params_per_rank)
    log.info("RGSD: %d examples (%d skipped: prompt > %d tokens), global batch %d prompts x %d rollouts",
             len(items), n_long, cfg.max_prompt_tokens, plan.global_batch, cfg.rollouts_per_prompt)
    if cfg.preflight and state["step"] == 0 and dist.is_main:  # before step 1, rank 0 only; never stops the run
        from rgsd.train.preflight import preflight

        preflight(cfg, student, tok, [it["example"] for it in items], out_dir, sharded=fsdp is not None)

    bar = None
    if cfg.progress and dist.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_steps, initial=state["step"], desc="rgsd", unit="step")
    start_wall = time.perf_counter() - cost.wall_time
    while state["step"] < cfg.max_steps:
        step = state["step"]
        st = train_step(run, plan, step, cost)

        # bookkeeping and logging (the statistics are global sums over ranks)
        global_tokens = st.scored_tokens
        state["dropped_unclosed_thinking"] += int(st.dropped)
        cost.add(prompts_seen=st.prompts * world, rollouts=int(st.rollouts),
                 generated_tokens=int(st.response_tokens), teacher_scored_tokens=global_tokens)
        state["step"] = step + 1
        cost.wall_time = time.perf_counter() - start_wall
        metrics = {
            "step": step + 1,
            "loss": st.loss_sum / global_tokens if global_tokens else 0.0,
            "clipped_fraction": st.clip_sum / global_tokens if global_tokens else 0.0,
            # the same number under a name that says what it is: the share of vocabulary entries capped
            "clipped_entry_fraction": st.clip_sum / global_tokens if global_tokens else 0.0,
            **st.signal.metrics(tok),
            "grad_norm": st.grad_norm,
            "lr": st.lr,
            "learning_rate": st.lr,  # transformers' name (as in rgsd grpo's metrics.jsonl); "lr" kept for readers
            "epoch": (step + 1) * plan.global_batch / len(items),  # passes over the usable prompts
            "mean_response_tokens": st.response_tokens / max(st.rollouts, 1),
            "eos_rate": st.finished / max(st.rollouts, 1),
            "scored_tokens": global_tokens,
            "skipped_long_prompts": state["skipped_long_prompts"],
            "dropped_unclosed_thinking": state["dropped_unclosed_thinking"],
            "time_generation": st.time_generation,
            "time_train": st.time_train,
            "generated_tokens_per_s": st.response_tokens / max(st.time_generation, 1e-9),
            "trained_tokens_per_s": global_tokens / max(st.time_train, 1e-9),
            "judge_calls": 0,
            "sharding": run.sharding,
            "world_size": world,
            "params_per_rank": params_per_rank,
            **{f"total_{k}": v for k, v in cost.to_dict().items() if k != "method"},
        }
        if cfg.probe_steps and (step + 1) % cfg.probe_steps == 0:
            metrics["self_internalization_gap"] = run.probe_fn(student, probe_examples, step + 1)
        if dist.is_main:
            with open(out_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
            cost.save(out_dir / "costs.json")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", len=f"{metrics['mean_response_tokens']:.0f}")
            if cfg.logging_steps and (step + 1) % cfg.logging_steps == 0 and bar is None:
                log.info("step %d loss %.5f clipped %.3f len %.1f eos %.2f gen %.1fs train %.1fs", step + 1,
                         metrics["loss"], metrics["clipped_fraction"], metrics["mean_response_tokens"],
                         metrics["eos_rate"], st.time_generation, st.time_train)
        if trackers is not None:
            trackers.log(tracker_logs(metrics), step + 1, metrics["epoch"])
        if cfg.save_steps and (step + 1) % cfg.save_steps == 0 and step + 1 < cfg.max_steps:
            checkpoint.save(run, out_dir, state, cost, cfg.save_total_limit)

    if bar is not None:
        bar.close()
    if trackers is not None:
        trackers.end()
    cost.wall_time = time.perf_counter() - start_wall
    final = checkpoint.save_final(run, out_dir, cost)
    if cfg.push_to_hub and dist.is_main:
        repo = push_folder(final, cfg, out_dir.resolve().name, f"rgsd train: {state['step']} steps")
        log.info("pushed %s to the hub: %s", final, repo)
    return out_dir


def _no_sync(wrapper: nn.Module, fsdp: Any, last: bool) -> AbstractContextManager:
    """Skip the gradient reduction on all but the last micro-batch (DDP no_sync; FSDP2 gradient sync off)."""
    if fsdp is not None:
        fsdp.set_requires_gradient_sync(last)
        return nullcontext()
    if hasattr(wrapper, "no_sync") and not last:
        return wrapper.no_sync()
    return nullcontext()


def _eos_only(tok: Any) -> Rollout:
    return Rollout(prompt_ids=[], response_ids=[tok.eos_token_id], text="", finished=True)
