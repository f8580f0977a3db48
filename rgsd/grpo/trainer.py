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
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from rgsd.costs import CostRecord
from rgsd.grpo.config import GRPORunConfig

log = logging.getLogger(__name__)


def make_judge(cfg: GRPORunConfig) -> Any:
    """The training judge described by the config (regex, or an OpenAI-compatible LLM judge)."""
    if cfg.judge == "regex":
        from rgsd.judges.regex_judge import RegexJudge

        return RegexJudge()
    from rgsd.judges.cache import JudgeCache
    from rgsd.judges.openai_judge import OpenAIJudge
    from rgsd.judges.usage import Budget

    cache = None
    if cfg.judge_cache:
        path = Path(cfg.output_dir) / "judge_cache.sqlite" if cfg.judge_cache == "auto" else Path(cfg.judge_cache)
        cache = JudgeCache(path)
    budget = Budget(max_calls=cfg.judge_max_calls) if cfg.judge_max_calls else None
    return OpenAIJudge(
        model=cfg.judge_model, base_url=cfg.base_url, api_key_env=cfg.api_key_env, mode=cfg.judge_mode,
        concurrency=cfg.judge_concurrency, cache=cache, budget=budget,
    )


def build_dataset(examples: list, tokenizer: Any, cfg: GRPORunConfig, world_size: int = 1) -> tuple[Any, int]:
    """A ``datasets.Dataset`` with ``prompt`` (chat messages) and ``example_id``; over-long prompts skipped.

    Prompts are never truncated (same rule as RGSD); the number skipped is returned. With ``data_order:
    rgsd`` the rows are laid out step by step in the order ``rgsd train`` visits them (its seeded
    :func:`rgsd.train.trainer.step_indices`), and TRL reads them unshuffled, so both methods see the same
    prompts at every step (exactly so when neither skips a prompt for length).
    """
    from datasets import Dataset

    from rgsd.rollout import chat_prompt_ids
    from rgsd.teacher_prompt import student_messages

    rows, skipped = [], 0
    for ex in examples:
        messages = student_messages(ex)
        if len(chat_prompt_ids(tokenizer, messages)) > cfg.max_prompt_tokens:
            skipped += 1
            continue
        rows.append({"prompt": [{"role": m["role"], "content": m["content"]} for m in messages],
                     "example_id": str(ex.id)})
    if cfg.data_order == "rgsd" and rows:
        from rgsd.train.trainer import step_indices

        global_batch = cfg.prompts_per_step(world_size)
        rows = [rows[i] for step in range(cfg.max_steps) for i in step_indices(step, len(rows), global_batch, cfg.seed)]
    return Dataset.from_list(rows), skipped


def _dtype(cfg: GRPORunConfig) -> str:
    import torch

    if cfg.dtype != "auto":
        return cfg.dtype
    return "bf16" if torch.cuda.is_available() else "fp32"


def trl_config(cfg: GRPORunConfig, resolved_dtype: str) -> Any:
    """Map our fields onto ``trl.GRPOConfig`` (checked against TRL 1.16.0's argument names)."""
    import torch
    from trl import GRPOConfig

    micro, accum = cfg.trl_batching()
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[resolved_dtype]
    init_kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if cfg.attn_implementation:
        init_kwargs["attn_implementation"] = cfg.attn_implementation
    kwargs: dict[str, Any] = dict(
        output_dir=cfg.output_dir,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum,
        steps_per_generation=accum,  # one generation pass = one optimizer step: always on-policy
        num_generations=cfg.num_generations,
        learning_rate=cfg.learning_rate,
        # constant needs the with-warmup schedule to honour the warm-up; warm-up is given in steps.
        lr_scheduler_type=cfg.lr_scheduler if cfg.lr_scheduler != "constant" else "constant_with_warmup",
        warmup_steps=round(cfg.warmup_ratio * cfg.max_steps),
        weight_decay=cfg.weight_decay,
        adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2,
        adam_epsilon=cfg.adam_epsilon,
        max_grad_norm=cfg.max_grad_norm if cfg.max_grad_norm is not None else 0.0,
        seed=cfg.seed,
        data_seed=cfg.seed,
        max_completion_length=cfg.max_new_tokens,
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
        report_to=list(cfg.report_to) or "none",
        disable_tqdm=not cfg.progress,
        remove_unused_columns=False,  # the reward function needs example_id
        shuffle_dataset=cfg.data_order == "trl",  # rgsd order: rows are already laid out step by step
        log_completions=cfg.log_completions,
        num_completions_to_print=2,
        use_vllm=cfg.use_vllm,
    )
    if cfg.use_vllm:
        kwargs.update(vllm_mode=cfg.vllm_mode, vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
                      vllm_server_host=cfg.vllm_server_host, vllm_server_port=cfg.vllm_server_port)
    return GRPOConfig(**kwargs)


def _peft_config(cfg: GRPORunConfig) -> Any:
    if not cfg.use_lora:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_target_modules), task_type="CAUSAL_LM")


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else float("nan")


_COUNTERS = ("completions", "generated_tokens", "unscored", "judge_calls", "judge_cache_hits", "judge_failures",
             "judge_prompt_tokens", "judge_completion_tokens")


class CostCallback(TrainerCallback):
    """Keeps the run's :class:`CostRecord`, ``metrics.jsonl`` and console lines (a ``TrainerCallback``).

    Per optimizer step: generation time comes from the trainer's timed ``_generate``, scoring time from the
    reward function, optimization = the rest of the step (log-prob passes, backward, optimizer). Counts are
    summed over processes; times are this process's wall clock.
    """

    def __init__(self, cost: CostRecord, reward: Any, judge: Any, out: Path, logging_steps: int) -> None:
        self.cost, self.reward, self.judge, self.out = cost, reward, judge, out
        self.logging_steps = max(1, logging_steps)
        self.trainer: Any = None
        self._base_wall = cost.wall_time
        self._t0 = time.perf_counter()
        self._step_t0 = 0.0
        self._snap: tuple[list[float], float, float] = ([0.0] * len(_COUNTERS), 0.0, 0.0)

    def attach(self, trainer: Any) -> None:
        self.trainer = trainer

    def _local(self) -> tuple[list[float], float, float]:
        st, usage = self.reward.stats, getattr(self.judge, "usage", None)
        counts = [st.completions, st.generated_tokens, st.unscored,
                  getattr(usage, "calls", 0), getattr(usage, "cache_hits", 0), getattr(usage, "failures", 0),
                  getattr(usage, "prompt_tokens", 0), getattr(usage, "completion_tokens", 0)]
        gen_time = getattr(self.trainer, "generation_time", 0.0) if self.trainer is not None else 0.0
        return [float(c) for c in counts], gen_time, st.time_scoring

    def _sum_over_processes(self, values: list[float]) -> list[float]:
        acc = getattr(self.trainer, "accelerator", None)
        if acc is None or acc.num_processes == 1:
            return values
        import torch

        return acc.reduce(torch.tensor(values, dtype=torch.float64, device=acc.device), reduction="sum").tolist()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._base_wall = self.cost.wall_time
        self._t0 = time.perf_counter()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._step_t0 = time.perf_counter()
        self._snap = self._local()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
        step_wall = time.perf_counter() - self._step_t0
        counts, gen_time, score_time = self._local()
        delta = self._sum_over_processes([a - b for a, b in zip(counts, self._snap[0])])
        d = dict(zip(_COUNTERS, delta))
        gen, scoring = gen_time - self._snap[1], score_time - self._snap[2]
        g = self.trainer.num_generations if self.trainer is not None else 1
        self.cost.add(
            prompts_seen=int(round(d["completions"] / g)), rollouts=int(d["completions"]),
            generated_tokens=int(d["generated_tokens"]), judge_calls=int(d["judge_calls"]),
            judge_cache_hits=int(d["judge_cache_hits"]), judge_failures=int(d["judge_failures"]),
            judge_prompt_tokens=int(d["judge_prompt_tokens"]),
            judge_completion_tokens=int(d["judge_completion_tokens"]),
            time_generation=gen, time_scoring=scoring, time_optimization=max(0.0, step_wall - gen - scoring),
        )
        self._unscored_step = int(d["unscored"])
        self.cost.wall_time = self._base_wall + time.perf_counter() - self._t0
        if self.reward.stats.budget_exhausted:
            control.should_training_stop = True
        return control

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        # Same flat layout as `rgsd train`: step metrics, then running totals as total_<cost field>.
        line = {"step": state.global_step, **{k: v for k, v in logs.items() if k != "total_flos"},
                "unscored_completions": getattr(self, "_unscored_step", 0),
                **{f"total_{k}": v for k, v in self.cost.to_dict().items() if k != "method"}}
        with (self.out / "metrics.jsonl").open("a") as fh:
            fh.write(json.dumps(line) + "\n")
        self.cost.save(self.out / "costs.json")
        if state.global_step % self.logging_steps == 0 or state.global_step == state.max_steps:
            c = self.cost
            log.info("step %d/%d reward %.4f loss %.4g | rollouts %d, tokens %d, judge calls %d (cache %d, "
                     "failures %d), wall %.1fs (gen %.1f, judge %.1f, opt %.1f)", state.global_step, state.max_steps,
                     _num(logs.get("reward")), _num(logs.get("loss")), c.rollouts,
                     c.generated_tokens, c.judge_calls, c.judge_cache_hits, c.judge_failures, c.wall_time,
                     c.time_generation, c.time_scoring, c.time_optimization)

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        # A copy of the totals inside the checkpoint, so a resume continues from the checkpoint's numbers.
        ckpt = self.out / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and ckpt.is_dir():
            self.cost.save(ckpt / "costs.json")

    def finish(self) -> None:
        self.cost.wall_time = self._base_wall + time.perf_counter() - self._t0
        self.cost.save(self.out / "costs.json")


def make_trainer_class() -> type:
    """``trl.GRPOTrainer`` with its generation timed (``generation_time``) and no per-step log dump on screen."""
    import transformers
    from trl import GRPOTrainer

    class TimedGRPOTrainer(GRPOTrainer):
        generation_time = 0.0

        def _generate(self, prompts: list):  # noqa: D401 - TRL's hook
            t0 = time.perf_counter()
            try:
                return super()._generate(prompts)
            finally:
                self.generation_time += time.perf_counter() - t0

    return TimedGRPOTrainer


def _quiet_console(trainer: Any) -> None:
    """TRL logs every step (for metrics.jsonl); keep the progress bar but drop its raw dict dumps."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class _Bar(ProgressCallback):
        def on_log(self, *a: Any, **kw: Any) -> None:
            return None

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(_Bar)


def _truncate_jsonl(path: Path, last_step: int) -> None:
    """Drop lines logged after ``last_step`` (a resume redoes those steps)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= last_step]
    path.write_text("".join(ln + "\n" for ln in keep))


def train_grpo(cfg: GRPORunConfig, resume: bool = False) -> Path:
    """Run judge-based GRPO; return the run folder (``config.yaml, metrics.jsonl, costs.json, final/``).

    ``resume`` continues from the newest ``checkpoint-N`` in ``output_dir`` (TRL's own checkpointing); the
    cost totals continue from that checkpoint's copy and log lines after it are dropped.
    """
    from transformers.trainer_utils import get_last_checkpoint

    from rgsd.config import save_config
    from rgsd.grpo.rewards import RubricReward
    from rgsd.models import load_tokenizer, resolve_model_path
    from rgsd.train.setup import load_training_examples

    cfg.validate()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = get_last_checkpoint(str(out)) if resume else None
    if resume and checkpoint is None:
        raise FileNotFoundError(f"--resume: no checkpoint-N folder in {out} (set save_steps > 0 to write them)")
    save_config(cfg, out / "config.yaml")

    model_path = resolve_model_path(cfg.model)
    tokenizer = load_tokenizer(model_path)
    examples = load_training_examples(cfg)  # the same loader (and max_examples cut) as `rgsd train`
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dataset, skipped = build_dataset(examples, tokenizer, cfg, world)
    if skipped:
        log.warning("skipped %d prompts longer than max_prompt_tokens=%d (never truncated)", skipped,
                    cfg.max_prompt_tokens)
    if len(dataset) < cfg.prompts_per_step(world):
        raise ValueError(
            f"{cfg.data}: {len(dataset)} usable prompts, fewer than one step's per_device_batch_size x "
            f"gradient_accumulation_steps x processes = {cfg.prompts_per_step(world)}")

    cost = CostRecord(method="grpo")
    if checkpoint is not None:
        step = int(Path(checkpoint).name.split("-")[-1])
        if (Path(checkpoint) / "costs.json").exists():
            cost = CostRecord.load(Path(checkpoint) / "costs.json")
        for name in ("metrics.jsonl", "criteria.jsonl"):
            _truncate_jsonl(out / name, step)
    else:
        for name in ("metrics.jsonl", "criteria.jsonl"):  # a fresh run does not append to an old one's logs
            (out / name).unlink(missing_ok=True)

    judge = make_judge(cfg)
    reward = RubricReward(
        {str(ex.id): ex for ex in examples}, judge, reward=cfg.reward, dynamic_weights=cfg.dynamic_weights,
        eps=cfg.dynamic_weights_eps, criteria_log=out / "criteria.jsonl",
    )
    callback = CostCallback(cost, reward, judge, out, cfg.logging_steps)
    trainer = make_trainer_class()(
        model=model_path,
        reward_funcs=reward,
        args=trl_config(cfg, _dtype(cfg)),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[callback],
        peft_config=_peft_config(cfg),
    )
    callback.attach(trainer)
    _quiet_console(trainer)
    if cfg.dynamic_weights and trainer.accelerator.num_processes > 1:
        log.warning("dynamic_weights with %d processes: a group's rollouts are split across processes and each "
                    "process computes pass rates from its own share", trainer.accelerator.num_processes)
    trainer.train(resume_from_checkpoint=checkpoint)

    final = out / "final"
    trainer.save_model(str(final))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(final))
        callback.finish()
        if reward.stats.budget_exhausted:
            log.warning("stopped early at step %d: the judge call budget (judge_max_calls=%s) was reached",
                        trainer.state.global_step, cfg.judge_max_calls)
        log.info("GRPO run written to %s (costs: %s)", out, json.dumps(cost.to_dict()))
    return out
