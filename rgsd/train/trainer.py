"""The RGSD training loop, top to bottom.

One optimizer step:
  1. take the step's prompts (a deterministic function of seed and step, so a resumed run sees the same data);
  2. sample one on-policy response per prompt from the student (plain prompt, temperature 1.0);
  3. build teacher (prompt + rubric + response) and student (prompt + response) sequences on the same ids;
  4. teacher forward (frozen initial model, no grad) -> final hidden states at the response positions;
  5. student forward + chunked generalized JSD against the teacher, divided by the number of scored tokens
     of the whole global batch (so gradient accumulation and data parallelism give the same mean);
  6. clip, AdamW step, schedule step; log; every N steps probe the self-internalization gap and checkpoint.
Zero judge calls.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from rgsd.method.chunked_loss import chunked_jsd_from_hidden
from rgsd.options import save as save_config
from rgsd.costs import CostRecord
from rgsd.data.schema import Example
from rgsd.method.rollout import Rollout, chat_prompt_ids
from rgsd.method.teacher_prompt import student_messages, teacher_messages
from rgsd.train import checkpoint, setup
from rgsd.method.alignment import align, gather_hidden, loss_mask, thinking_end_id
from rgsd.train.config import RGSDConfig
from rgsd.train.distributed import fsdp_root, local_param_count
from rgsd.method.sharded_loss import checkpointed_jsd_from_hidden
from rgsd.method.signal import SignalStats, response_positions
from rgsd.train.teacher import check_hidden_is_final, final_hidden

log = logging.getLogger(__name__)


class StudentLoss(nn.Module):
    """Student forward and divergence in one module, so DDP/FSDP see every trainable weight used."""

    def __init__(self, lm: nn.Module, sharded: bool = False):
        super().__init__()
        self.lm = lm
        self.sharded = sharded  # weights sharded (FSDP2): call the head as a module

    def forward(self, input_ids, attention_mask, positions, teacher_hidden, teacher_head, cfg: RGSDConfig,
                targets=None):
        hidden = gather_hidden(final_hidden(self.lm, input_ids, attention_mask), positions)
        impl = cfg.loss_impl if cfg.loss_impl != "auto" else ("checkpointed" if self.sharded else "fused")
        loss_fn = checkpointed_jsd_from_hidden if impl == "checkpointed" else chunked_jsd_from_hidden
        # signal diagnostics (issue 9): fused path only, computed from buffers the loss already holds
        diag = {"targets": targets, "diagnostics": True} if impl == "fused" and cfg.signal_diagnostics else {}
        return loss_fn(
            hidden,
            teacher_hidden,
            self.lm.get_output_embeddings(),
            teacher_head,
            beta=cfg.beta,
            clip=cfg.clip,
            clip_mode=cfg.clip_mode,
            top_k=cfg.top_k,
            chunk_size=cfg.loss_chunk_size,
            temperature=cfg.loss_temperature_value(),
            **diag,
        )


def tokenize_examples(examples: list[Example], tokenizer, cfg: RGSDConfig) -> tuple[list[dict], int]:
    """Chat-template both prompts once. Over-long prompts are never truncated: skipped and counted, or fatal."""
    items, skipped = [], 0
    for ex in examples:
        s_ids = chat_prompt_ids(tokenizer, student_messages(ex))
        t_ids = chat_prompt_ids(tokenizer, teacher_messages(ex, cfg.teacher_placement, cfg.show_weights, cfg.teacher_style))
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


@functools.lru_cache(maxsize=4)
def _epoch_order(n_items: int, seed: int, epoch: int) -> list[int]:
    return torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()


def step_indices(step: int, n_items: int, global_batch: int, seed: int) -> list[int]:
    """Dataset indices of one optimizer step: epochs of seeded permutations, read in order.

    A pure function of (step, seed), so a resumed run reads exactly the prompts the killed run would have.
    """
    positions = range(step * global_batch, (step + 1) * global_batch)
    return [_epoch_order(n_items, seed, k // n_items)[k % n_items] for k in positions]


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
    dist, wrapper, tok, opt, sched = run.dist, run.wrapper, run.tokenizer, run.optimizer, run.scheduler
    out_dir = Path(cfg.output_dir)
    student, teacher, dev = run.student, run.teacher, run.dist.device  # student: the sharded module itself
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

    world, rank = dist.world, dist.rank
    per_rank = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    global_batch = per_rank * world
    cost = CostRecord(method="rgsd")
    state = {"step": 0, "skipped_long_prompts": n_long, "dropped_unclosed_thinking": 0}
    if run.resume_dir is not None:
        state, cost = checkpoint.load(run, run.resume_dir)
        log.info("resumed from %s at step %d", run.resume_dir, state["step"])
        if dist.is_main:  # steps logged after the checkpoint by the killed run are redone: drop them
            checkpoint.truncate_metrics(out_dir / "metrics.jsonl", state["step"])
    elif dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")
        (out_dir / "metrics.jsonl").unlink(missing_ok=True)
    trackers = _trackers(cfg, out_dir) if dist.is_main else []
    log.info("RGSD: sharding %s, world size %d, parameters per rank %s", run.sharding, world, params_per_rank)
    log.info("RGSD: %d examples (%d skipped: prompt > %d tokens), global batch %d prompts x %d rollouts",
             len(items), n_long, cfg.max_prompt_tokens, global_batch, cfg.rollouts_per_prompt)

    bar = None
    if cfg.progress and dist.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_steps, initial=state["step"], desc="rgsd", unit="step")
    start_wall = time.perf_counter() - cost.wall_time
    while state["step"] < cfg.max_steps:
        step = state["step"]
        # 1. this rank's prompts for the step (rank-major slices of the global batch)
        idx = step_indices(step, len(items), global_batch, cfg.seed)[rank * per_rank : (rank + 1) * per_rank]
        batch = [items[i] for i in idx for _ in range(cfg.rollouts_per_prompt)]

        # 2. on-policy rollouts from the student, plain prompt
        t0 = time.perf_counter()
        with cost.timed("time_generation"):
            rollouts = run.generate_fn(student, [b["student_ids"] for b in batch])
        gen_time = time.perf_counter() - t0

        # 3. loss masks (thinking) and aligned micro-batches
        masks, kept, dropped = [], [], 0
        for b, r in zip(batch, rollouts):
            m = loss_mask(r.response_ids, think_end) if r.response_ids else None
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
        n_micro = cfg.gradient_accumulation_steps
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
            with cost.timed("time_optimization"), _no_sync(wrapper, fsdp, last):
                with autocast:
                    lsum, stats = wrapper(ab.student.input_ids.to(dev), ab.student.attention_mask.to(dev),
                                          ab.student.positions, t_hidden, teacher.head(student), cfg,
                                          targets=ab.targets.to(dev))
                (lsum * weight).backward()
            if weight:
                loss_sum += float(lsum.detach())
                clip_sum += float(stats["clipped_fraction"]) * ab.n_tokens
                signal.add(stats, response_positions(mchunks[ci]))
        with cost.timed("time_optimization"):
            grad_norm = None
            if cfg.max_grad_norm:
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    [p for p in wrapper.parameters() if p.requires_grad], cfg.max_grad_norm)
                grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            teacher.update(student)
        train_time = time.perf_counter() - t1

        # 6. bookkeeping and logging (global sums over ranks)
        resp_tokens = sum(len(r.response_ids) for r in rollouts)
        totals = dist.sum([loss_sum, clip_sum, float(resp_tokens), float(len(rollouts)),
                           float(sum(r.finished for r in rollouts)), float(dropped)])
        g_loss, g_clip, g_resp, g_n, g_eos, g_dropped = totals
        state["dropped_unclosed_thinking"] += int(g_dropped)  # summed over ranks
        cost.add(prompts_seen=len(idx) * world, rollouts=int(g_n), generated_tokens=int(g_resp),
                 teacher_scored_tokens=global_tokens)
        state["step"] = step + 1
        cost.wall_time = time.perf_counter() - start_wall
        metrics = {
            "step": step + 1,
            "loss": g_loss / global_tokens if global_tokens else 0.0,
            "clipped_fraction": g_clip / global_tokens if global_tokens else 0.0,
            # the same number under a name that says what it is: the share of vocabulary entries capped
            "clipped_entry_fraction": g_clip / global_tokens if global_tokens else 0.0,
            **signal.metrics(tok),
            "grad_norm": float(grad_norm) if grad_norm is not None else None,
            "lr": sched.get_last_lr()[0],
            "mean_response_tokens": g_resp / max(g_n, 1),
            "eos_rate": g_eos / max(g_n, 1),
            "scored_tokens": global_tokens,
            "skipped_long_prompts": state["skipped_long_prompts"],
            "dropped_unclosed_thinking": state["dropped_unclosed_thinking"],
            "time_generation": gen_time,
            "time_train": train_time,
            "generated_tokens_per_s": g_resp / max(gen_time, 1e-9),
            "trained_tokens_per_s": global_tokens / max(train_time, 1e-9),
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
                         metrics["eos_rate"], gen_time, train_time)
        for tracker in trackers:
            tracker(metrics, step + 1)
        if cfg.save_steps and (step + 1) % cfg.save_steps == 0 and step + 1 < cfg.max_steps:
            checkpoint.save(run, out_dir, state, cost, cfg.save_total_limit)

    if bar is not None:
        bar.close()
    cost.wall_time = time.perf_counter() - start_wall
    checkpoint.save_final(run, out_dir, cost)
    return out_dir


def _no_sync(wrapper: nn.Module, fsdp, last: bool):
    """Skip the gradient reduction on all but the last micro-batch (DDP no_sync; FSDP2 gradient sync off)."""
    if fsdp is not None:
        fsdp.set_requires_gradient_sync(last)
        return nullcontext()
    if hasattr(wrapper, "no_sync") and not last:
        return wrapper.no_sync()
    return nullcontext()


def _trackers(cfg: RGSDConfig, out_dir: Path) -> list:
    """Metric sinks from ``report_to`` (rank 0 only): tensorboard, wandb; each also records the whole config.

    Run name and project default from the output folder (``runs/exp1`` -> run ``exp1``, project ``runs``),
    as for ``rgsd grpo``.
    """
    import dataclasses

    import yaml

    run_name, project = cfg.tracker_names()
    config = dataclasses.asdict(cfg)
    sinks = []
    for name in cfg.report_to:
        if name == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out_dir / "tensorboard" / run_name))
            writer.add_text("rgsd_config", "```yaml\n" + yaml.safe_dump(config, sort_keys=False) + "```", 0)
            sinks.append(lambda m, s, w=writer: [w.add_scalar(k, v, s) for k, v in m.items()
                                                  if isinstance(v, (int, float)) and not isinstance(v, bool)])
        elif name == "wandb":
            import wandb

            wandb.init(project=project, name=run_name, dir=str(out_dir), config=config)
            sinks.append(lambda m, s: wandb.log({k: v for k, v in m.items() if not isinstance(v, (list, str))}, step=s))
        else:
            raise ValueError(f"report_to: unknown sink {name!r} (tensorboard, wandb)")
    return sinks


def _eos_only(tok) -> Rollout:
    return Rollout(prompt_ids=[], response_ids=[tok.eos_token_id], text="", finished=True)
