"""Bookkeeping around TRL's ``GRPOTrainer``: cost record, ``metrics.jsonl``, console lines.

Generation time comes from the trainer's ``generation_time`` (:func:`rgsd.grpo.trl_shim.timed_grpo_trainer_class`);
scoring time from the reward function; optimization is the rest of each optimizer step (log-prob passes,
backward, optimizer).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from rgsd.costs import CostRecord

log = logging.getLogger("rgsd.grpo.trainer")  # one logger name for the whole GRPO run


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else float("nan")


_COUNTERS = (
    "completions",
    "generated_tokens",
    "unscored",
    "judge_calls",
    "judge_cache_hits",
    "judge_failures",
    "judge_prompt_tokens",
    "judge_completion_tokens",
)


class CostCallback(TrainerCallback):
    """Keeps the run's :class:`CostRecord`, ``metrics.jsonl`` and console lines (a ``TrainerCallback``).

    Per optimizer step: generation time comes from the trainer's ``generation_time``, scoring time from the
    reward function, optimization = the rest of the step (log-prob passes, backward, optimizer). Counts are
    summed over processes; times are this process's wall clock.
    """

    def __init__(self, cost: CostRecord, reward: Any, judge: Any, out: Path, logging_steps: int,
                 prices: Any = None, judge_model: str | None = None) -> None:
        self.cost, self.reward, self.judge, self.out = cost, reward, judge, out
        self.prices, self.judge_model = prices, judge_model
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
        counts = [
            st.completions,
            st.generated_tokens,
            st.unscored,
            getattr(usage, "calls", 0),
            getattr(usage, "cache_hits", 0),
            getattr(usage, "failures", 0),
            getattr(usage, "prompt_tokens", 0),
            getattr(usage, "completion_tokens", 0),
        ]
        gen_time = getattr(self.trainer, "generation_time", 0.0) if self.trainer is not None else 0.0
        return [float(c) for c in counts], gen_time, st.time_scoring

    def _sum_over_processes(self, values: list[float]) -> list[float]:
        acc = getattr(self.trainer, "accelerator", None)
        if acc is None or acc.num_processes == 1:
            return values
        import torch

        return acc.reduce(
            torch.tensor(values, dtype=torch.float64, device=acc.device), reduction="sum"
        ).tolist()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._base_wall = self.cost.wall_time
        self._t0 = time.perf_counter()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._step_t0 = time.perf_counter()
        self._snap = self._local()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
        step_wall = time.perf_counter() - self._step_t0
        counts, gen_time, score_time = self._local()
        # one collective for the counts and the budget flag, so every process stops at the same step
        summed = self._sum_over_processes(
            [a - b for a, b in zip(counts, self._snap[0])] + [float(self.reward.stats.budget_exhausted)]
        )
        d = dict(zip(_COUNTERS, summed))
        gen, scoring = gen_time - self._snap[1], score_time - self._snap[2]
        g = self.trainer.num_generations if self.trainer is not None else 1
        self.cost.add(
            prompts_seen=round(d["completions"] / g),
            rollouts=int(d["completions"]),
            generated_tokens=int(d["generated_tokens"]),
            judge_calls=int(d["judge_calls"]),
            judge_cache_hits=int(d["judge_cache_hits"]),
            judge_failures=int(d["judge_failures"]),
            judge_prompt_tokens=int(d["judge_prompt_tokens"]),
            judge_completion_tokens=int(d["judge_completion_tokens"]),
            time_generation=gen,
            time_scoring=scoring,
            time_optimization=max(0.0, step_wall - gen - scoring),
        )
        self._unscored_step = int(d["unscored"])
        if self.prices is not None:
            from rgsd.costs import record_usd

            self.cost.judge_cost_usd = record_usd(self.cost, self.prices, self.judge_model)
        self.cost.wall_time = self._base_wall + time.perf_counter() - self._t0
        if summed[-1] > 0:
            control.should_training_stop = True
        return control

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        # Same flat layout as `rgsd train`: step metrics, then running totals as total_<cost field>.
        line = {
            "step": state.global_step,
            **{k: v for k, v in logs.items() if k != "total_flos"},
            "unscored_completions": getattr(self, "_unscored_step", 0),
            **{f"total_{k}": v for k, v in self.cost.to_dict().items() if k != "method"},
        }
        with (self.out / "metrics.jsonl").open("a") as fh:
            fh.write(json.dumps(line) + "\n")
        self.cost.save(self.out / "costs.json")
        if state.global_step % self.logging_steps == 0 or state.global_step == state.max_steps:
            c = self.cost
            log.info(
                "step %d/%d reward %.4f loss %.4g | rollouts %d, tokens %d, judge calls %d (cache %d, "
                "failures %d), wall %.1fs (gen %.1f, judge %.1f, opt %.1f)",
                state.global_step,
                state.max_steps,
                _num(logs.get("reward")),
                _num(logs.get("loss")),
                c.rollouts,
                c.generated_tokens,
                c.judge_calls,
                c.judge_cache_hits,
                c.judge_failures,
                c.wall_time,
                c.time_generation,
                c.time_scoring,
                c.time_optimization,
            )

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        # A copy of the totals inside the checkpoint, so a resume continues from the checkpoint's numbers.
        ckpt = self.out / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and ckpt.is_dir():
            self.cost.save(ckpt / "costs.json")

    def finish(self) -> None:
        self.cost.wall_time = self._base_wall + time.perf_counter() - self._t0
        self.cost.save(self.out / "costs.json")


def quiet_console(trainer: Any) -> None:
    """TRL logs every step (for metrics.jsonl); keep the progress bar but drop its raw dict dumps."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class _Bar(ProgressCallback):
        def on_log(self, *a: Any, **kw: Any) -> None:
            return None

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(_Bar)
