"""GRPORunConfig: the judge-based GRPO baseline (TRL's ``GRPOTrainer``) with the same shared fields as RGSD.

Batch semantics match RGSD so that runs compare step for step: one optimizer step sees
``per_device_batch_size x gradient_accumulation_steps x processes`` *prompts*, each with
``num_generations`` completions (RGSD: one). ``completions_per_micro_batch`` only splits that work into
smaller forward/backward chunks to fit memory; it does not change what a step sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rgsd.train.config import ModelArgs, _f

REWARDS = ("normalized", "healthbench", "rar-implicit")


@dataclass
class GRPORunConfig(ModelArgs):
    """Judge-based GRPO: G rollouts per prompt, each graded by a judge against the prompt's rubric."""

    output_dir: str = _f(
        "runs/grpo", "Run folder: config, metrics.jsonl, costs.json, checkpoints, final model."
    )
    learning_rate: float = _f(
        1e-5, "Peak learning rate (LoRA GRPO; the companion paper's full fine-tuning used 4.2e-6)."
    )
    generation_batch_size: int = _f(
        16, "Unused by GRPO: TRL samples all completions of an optimizer step in one generation pass."
    )
    data_order: Literal["rgsd", "trl"] = _f(
        "rgsd",
        "rgsd = the same seeded prompts per step as `rgsd train` (matched comparisons); "
        "trl = TRL's own shuffled sampler.",
    )
    # GRPO
    num_generations: int = _f(
        16, "Rollouts per prompt (G; 16 in the paper, TRL's default is 8; must be >= 2)."
    )
    completions_per_micro_batch: int | None = _f(
        None,
        "Completions per forward/backward chunk (null = all of a micro-batch's prompts x G at once); "
        "must divide per_device_batch_size x num_generations x gradient_accumulation_steps.",
    )
    beta: float = _f(
        0.0, "KL coefficient against the initial model (TRL's beta; 0 = TRL default, no reference model)."
    )
    epsilon: float = _f(0.2, "PPO-style clip range of the importance ratio (TRL's epsilon).")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = _f(
        "dapo", "TRL loss aggregation (TRL default dapo)."
    )
    scale_rewards: Literal["group", "batch", "none"] = _f(
        "group",
        "Divide advantages by the group's reward std (group), the batch's (batch), or not at all (none).",
    )
    mask_truncated_completions: bool = _f(False, "Exclude completions cut at max_new_tokens from the loss.")
    log_completions: bool = _f(
        False,
        "Write every completion with its reward and advantage to output_dir/completions/*.parquet (TRL's "
        "log) and print two per step; unscored completions show reward NaN and advantage 0.",
    )
    # generation backend
    use_vllm: bool = _f(False, "Generate with vLLM (needs the vllm extra and a GPU).")
    vllm_mode: Literal["colocate", "server"] = _f(
        "colocate", "colocate = vLLM inside the training process; server = a separate `trl vllm-serve`."
    )
    vllm_server_host: str = _f("127.0.0.1", "Host of the TRL vLLM server (vllm_mode server).")
    vllm_server_port: int = _f(8000, "Port of the TRL vLLM server (vllm_mode server).")
    vllm_gpu_memory_utilization: float = _f(0.3, "GPU memory share vLLM may take (colocate mode).")
    # judge and reward
    judge: Literal["regex", "openai"] = _f(
        "regex",
        "regex = offline pattern stand-in (tests, smoke runs); openai = any OpenAI-compatible LLM judge.",
    )
    judge_model: str = _f("gpt-4.1-mini", "Judge model name (judge openai).")
    base_url: str | None = _f(None, "Judge server URL (null = the OpenAI API or $OPENAI_BASE_URL).")
    api_key_env: str = _f("OPENAI_API_KEY", "Environment variable that holds the judge's API key.")
    judge_mode: Literal["per-criterion", "batched", "holistic"] = _f(
        "batched",
        "per-criterion = one call per rubric item; batched = all items in one call; "
        "holistic = one 1-10 rating (needed by reward rar-implicit).",
    )
    judge_concurrency: int = _f(16, "Judge requests in flight at once.")
    judge_cache: str | None = _f(
        "auto", "SQLite cache of judge replies (auto = output_dir/judge_cache.sqlite; null = no cache)."
    )
    judge_max_calls: int | None = _f(
        None, "Stop cleanly (and save) once the judge sent this many requests (per process; null = no cap)."
    )
    reward: Literal["normalized", "healthbench", "rar-implicit"] = _f(
        "normalized",
        "Reward per completion: normalized rubric score in [0, 1], HealthBench score (met points / "
        "positive points), or rar-implicit (the judge's holistic rating mapped to [0, 1]).",
    )
    dynamic_weights: bool = _f(
        False,
        "POW3R-style dynamic criterion weights for the training reward (an approximation: the paper's "
        "exact formula was not available). Per group of G rollouts: p_j = share earning criterion j's "
        "credit, c_j = sqrt(p_j (1 - p_j)), weight w_j * (c_j + eps) / mean over j's category of "
        "(c_k + eps); "
        "category = (polarity, category field). Evaluation always uses the static weights.",
    )
    dynamic_weights_eps: float = _f(0.1, "eps of the dynamic weights (larger = closer to static weights).")

    def prompts_per_step(self, processes: int = 1) -> int:
        return self.per_device_batch_size * self.gradient_accumulation_steps * processes

    def trl_batching(self) -> tuple[int, int]:
        """(TRL per_device_train_batch_size, TRL gradient_accumulation_steps), both counted in completions."""
        per_step = self.per_device_batch_size * self.num_generations * self.gradient_accumulation_steps
        micro = self.completions_per_micro_batch or self.per_device_batch_size * self.num_generations
        return micro, per_step // micro

    def validate(self) -> None:
        if not self.data:
            raise ValueError("data is required: a rubric dataset file, folder or hub name")
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 (GRPO needs a group), got {self.num_generations}")
        if self.per_device_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("per_device_batch_size and gradient_accumulation_steps must be >= 1")
        per_step = self.per_device_batch_size * self.num_generations * self.gradient_accumulation_steps
        micro = self.completions_per_micro_batch
        if micro is not None and (micro < 1 or per_step % micro):
            raise ValueError(
                f"completions_per_micro_batch ({micro}) must divide per_device_batch_size x "
                f"num_generations x gradient_accumulation_steps = {per_step}"
            )
        if self.reward == "rar-implicit" and self.judge_mode != "holistic":
            raise ValueError("reward rar-implicit needs judge_mode holistic (one 1-10 rating per response)")
        if self.judge_mode == "holistic" and self.reward != "rar-implicit":
            raise ValueError(
                f"judge_mode holistic gives no per-criterion verdicts: reward {self.reward} needs "
                "per-criterion or batched (or set reward rar-implicit)"
            )
        if self.reward == "rar-implicit" and self.judge != "openai":
            raise ValueError(
                "reward rar-implicit needs an LLM judge (judge openai); the regex judge has no rating"
            )
        if self.dynamic_weights and self.reward == "rar-implicit":
            raise ValueError(
                "dynamic_weights needs per-criterion verdicts; it does not apply to rar-implicit"
            )
        if self.dynamic_weights_eps <= 0:
            raise ValueError(f"dynamic_weights_eps must be > 0, got {self.dynamic_weights_eps}")
        if self.judge_concurrency < 1:
            raise ValueError(f"judge_concurrency must be >= 1, got {self.judge_concurrency}")
