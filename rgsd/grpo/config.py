"""GRPORunConfig: the judge-based GRPO baseline (TRL's ``GRPOTrainer``), in TRL's own field names.

Every field that ``trl.GRPOConfig`` (TRL 1.16) also has keeps TRL's name and meaning, so a TRL recipe reads
the same here:

* ``per_device_train_batch_size`` counts *completions* per device per micro-batch, as in TRL;
  ``gradient_accumulation_steps`` micro-batches make one optimizer step, which therefore sees
  ``per_device_train_batch_size x gradient_accumulation_steps x processes / num_generations`` prompts, each
  with ``num_generations`` completions. All of a step's completions are sampled in one generation pass
  (``steps_per_generation = gradient_accumulation_steps``): always on-policy.
* ``beta`` is TRL's KL coefficient against the reference model (RGSD's own ``beta`` in ``rgsd train`` is
  the generalized-JSD mixing weight, a different thing; nothing here is named after it).
* ``max_completion_length``, ``lr_scheduler_type``, ``warmup_steps``, ``epsilon``, ``loss_type``,
  ``scale_rewards``, ``disable_tqdm``, ``run_name`` ... mean what TRL / transformers say.

On top: the model and LoRA fields of ``rgsd train`` (``model``, ``dtype``, ``use_lora``, ``lora_*``), the data
fields, ``max_prompt_tokens`` (TRL 1.16 has no prompt limit; over-long prompts are skipped, never
truncated), the judge and reward fields, and ``project`` for the trackers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rgsd.train.config import AdamWArgs, PolicyArgs, RunArgs, _f

REWARDS = ("normalized", "healthbench", "rar-implicit")


@dataclass
class GRPORunConfig(RunArgs, AdamWArgs, PolicyArgs):
    """Judge-based GRPO: G rollouts per prompt, each graded by a judge against the prompt's rubric."""

    data_order: Literal["rgsd", "trl"] = _f(
        "rgsd",
        "rgsd = the same seeded prompts per step as `rgsd train` (matched comparisons); "
        "trl = TRL's own shuffled sampler.",
    )
    max_prompt_tokens: int = _f(
        2048, "Longest prompt in tokens; longer prompts are skipped and counted, never truncated (not a TRL field).")
    # optimization (TRL / transformers names and meanings)
    max_steps: int = _f(100, "Optimizer steps.")
    per_device_train_batch_size: int = _f(
        16, "Completions (not prompts) per device per micro-batch, as in TRL; with gradient_accumulation_steps "
            "it sets the prompts per step (see prompts_per_step).")
    gradient_accumulation_steps: int = _f(
        4, "Micro-batches per optimizer step (TRL's meaning; all are sampled in one generation pass).")
    learning_rate: float = _f(
        1e-5, "Peak learning rate (LoRA GRPO; the companion paper's full fine-tuning used 4.2e-6).")
    lr_scheduler_type: Literal["constant", "constant_with_warmup", "cosine", "linear"] = _f(
        "constant_with_warmup", "transformers' scheduler name (constant ignores warmup_steps).")
    warmup_steps: float = _f(
        0.05, "Linear warm-up: an integer >= 1 = steps, a float in [0, 1) = share of max_steps (transformers).")
    max_grad_norm: float | None = _f(1.0, "Gradient clipping norm; null (or 0) disables.")
    # generation
    num_generations: int = _f(16, "Rollouts per prompt (G; 16 in the paper, TRL's default is 8; must be >= 2).")
    max_completion_length: int = _f(256, "Longest sampled completion in tokens (TRL's name).")
    temperature: float = _f(1.0, "Sampling temperature of the rollouts.")
    top_p: float = _f(1.0, "Nucleus sampling for the rollouts (1.0 = off).")
    # GRPO loss (TRL)
    beta: float = _f(
        0.0, "TRL's KL coefficient against the reference (initial) model; 0 = TRL's default, no reference "
             "model is loaded. Not RGSD's divergence mixing weight.")
    epsilon: float = _f(0.2, "PPO-style clip range of the importance ratio (TRL's epsilon).")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = _f("dapo", "TRL loss aggregation (TRL default dapo).")
    scale_rewards: Literal["group", "batch", "none"] = _f(
        "group",
        "Divide advantages by the group's reward std (group), the batch's (batch), or not at all (none).",
    )
    mask_truncated_completions: bool = _f(False, "Exclude completions cut at max_completion_length from the loss.")
    log_completions: bool = _f(
        False,
        "Write every completion with its reward and advantage to output_dir/completions/*.parquet (TRL's "
        "log) and print two per step; unscored completions show reward NaN and advantage 0.",
    )
    # generation backend (TRL)
    use_vllm: bool = _f(False, "Generate with vLLM (needs the vllm extra and a GPU).")
    vllm_mode: Literal["colocate", "server"] = _f(
        "colocate", "colocate = vLLM inside the training process; server = a separate `trl vllm-serve`."
    )
    vllm_server_host: str = _f("127.0.0.1", "Host of the TRL vLLM server (vllm_mode server).")
    vllm_server_port: int = _f(8000, "Port of the TRL vLLM server (vllm_mode server).")
    vllm_gpu_memory_utilization: float = _f(0.3, "GPU memory share vLLM may take (colocate mode).")
    # checkpointing and logging (TRL / transformers names)
    output_dir: str = _f("runs/grpo", "Run folder: config, metrics.jsonl, costs.json, checkpoints, final model.")
    report_to: list[str] = _f([], "Extra metric sinks: tensorboard, wandb (the config is logged with the run).")
    disable_tqdm: bool = _f(False, "Hide the progress bar.")
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
    judge_price_in: float | None = _f(
        None, "Judge price, dollars per million prompt tokens (with judge_price_out): costs.json gets judge_cost_usd.")
    judge_price_out: float | None = _f(None, "Judge price, dollars per million completion tokens.")
    judge_prices: str | None = _f(
        None, "YAML price table (model: {input: $, output: $}, optional default:), instead of or beside the two above.")
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

    def completions_per_step(self, processes: int = 1) -> int:
        """Completions one optimizer step trains on (TRL's generation_batch_size)."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * processes

    def prompts_per_step(self, processes: int = 1) -> int:
        """Distinct prompts per optimizer step: completions per step / num_generations."""
        return self.completions_per_step(processes) // self.num_generations

    def price_table(self):
        """The judge's :class:`rgsd.costs.PriceTable`, or None when no price was given."""
        from rgsd.costs import load_prices

        if self.judge_prices is None and self.judge_price_in is None and self.judge_price_out is None:
            return None
        return load_prices(self.judge_prices, self.judge_price_in, self.judge_price_out)

    def validate(self) -> None:
        self.price_table()  # a bad price or price file fails before any training
        if not self.data:
            raise ValueError("data is required: a rubric dataset file, folder or hub name")
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 (GRPO needs a group), got {self.num_generations}")
        if self.per_device_train_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("per_device_train_batch_size and gradient_accumulation_steps must be >= 1")
        per_step = self.completions_per_step()
        if per_step % self.num_generations:
            raise ValueError(
                f"per_device_train_batch_size x gradient_accumulation_steps = {per_step} completions per step "
                f"must be a multiple of num_generations ({self.num_generations}): TRL counts completions, "
                f"e.g. per_device_train_batch_size {self.num_generations} = one prompt with its "
                f"{self.num_generations} rollouts"
            )
        if self.warmup_steps < 0 or (self.warmup_steps >= 1 and self.warmup_steps != int(self.warmup_steps)):
            raise ValueError(
                f"warmup_steps must be an integer >= 0 or a share in [0, 1), got {self.warmup_steps}")
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
