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

The fields shared with ``rgsd train`` (data, ``model_name_or_path``, ``dtype``/``bf16``, LoRA, optimizer,
schedule, run folder) are :class:`rgsd.trainer_args.TrainerArgs`, the judge's are
:class:`rgsd.judges.options.JudgeOptions` (the names and defaults of ``rgsd eval``), the hub's
:class:`rgsd.hub.HubArgs` (transformers' ``push_to_hub``, ``hub_model_id``, ``hub_private_repo``, ``hub_token``;
rgsd pushes ``final/`` itself, with its model card, rather than TRL's every-save push); on top:
``max_prompt_tokens`` (TRL 1.16 has no prompt limit; over-long prompts are skipped, never truncated), the
reward fields, and ``project`` for the trackers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from rgsd.checks import AT_LEAST_ONE, NON_NEGATIVE, NOT_EMPTY, PORT, POSITIVE, UNIT_OPEN_LOW, Range
from rgsd.hub import HubArgs
from rgsd.judges.options import JudgeOptions
from rgsd.options import arg, redefault
from rgsd.trainer_args import TrainerArgs

REWARDS = ("normalized", "healthbench", "rar-implicit")


@dataclass
class GRPORunConfig(JudgeOptions, HubArgs, TrainerArgs):
    """Judge-based GRPO: G rollouts per prompt, each graded by a judge against the prompt's rubric."""

    DEPRECATED: ClassVar[dict] = {
        **TrainerArgs.DEPRECATED, "base_url": "judge_base_url", "api_key_env": "judge_api_key_env",
        "judge_cache": ("judge_cache", {None: "none", "null": "none"})}

    data_order: Literal["rgsd", "trl"] = arg(
        "rgsd",
        "rgsd = the same seeded prompts per step as `rgsd train` (matched comparisons); "
        "trl = TRL's own shuffled sampler.",
    )
    max_prompt_tokens: int = arg(
        2048, "Longest prompt in tokens; longer prompts are skipped and counted, never truncated (not a TRL field).",
        check=AT_LEAST_ONE)
    # optimization (TRL / transformers names and meanings)
    max_steps: int = redefault(TrainerArgs, "max_steps", 100)
    per_device_train_batch_size: int = arg(
        16, "Completions (not prompts) per device per micro-batch, as in TRL; with gradient_accumulation_steps "
            "it sets the prompts per step (see prompts_per_step).", check=AT_LEAST_ONE)
    gradient_accumulation_steps: int = arg(
        4, "Micro-batches per optimizer step (TRL's meaning; all are sampled in one generation pass).",
        check=AT_LEAST_ONE)
    learning_rate: float = arg(
        1e-5, "Peak learning rate (LoRA GRPO; the companion paper's full fine-tuning used 4.2e-6).", check=POSITIVE)
    warmup_ratio: float = redefault(TrainerArgs, "warmup_ratio", 0.0)
    warmup_steps: float = redefault(TrainerArgs, "warmup_steps", 0.05)
    max_grad_norm: float | None = redefault(TrainerArgs, "max_grad_norm", 1.0)
    # generation
    num_generations: int = arg(
        16, "Rollouts per prompt (G; 16 in the paper, TRL's default is 8; must be >= 2).", check=Range(2))
    max_completion_length: int = arg(256, "Longest sampled completion in tokens (TRL's name).", check=AT_LEAST_ONE)
    temperature: float = arg(1.0, "Sampling temperature of the rollouts (> 0: GRPO samples).", check=POSITIVE)
    top_p: float = arg(1.0, "Nucleus sampling for the rollouts (1.0 = off).", check=UNIT_OPEN_LOW)
    # GRPO loss (TRL)
    beta: float = arg(
        0.0, "TRL's KL coefficient against the reference (initial) model; 0 = TRL's default, no reference "
             "model is loaded. Not RGSD's divergence mixing weight.", check=NON_NEGATIVE)
    epsilon: float = arg(0.2, "PPO-style clip range of the importance ratio (TRL's epsilon).", check=POSITIVE)
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = arg("dapo", "TRL loss aggregation (TRL default dapo).")
    scale_rewards: Literal["group", "batch", "none"] = arg(
        "group",
        "Divide advantages by the group's reward std (group), the batch's (batch), or not at all (none).",
    )
    mask_truncated_completions: bool = arg(False, "Exclude completions cut at max_completion_length from the loss.")
    log_completions: bool = arg(
        False,
        "Write every completion with its reward and advantage to output_dir/completions/*.parquet (TRL's "
        "log) and print two per step; unscored completions show reward NaN and advantage 0.",
    )
    # generation backend (TRL)
    use_vllm: bool = arg(False, "Generate with vLLM (needs the vllm extra and a GPU).")
    vllm_mode: Literal["colocate", "server"] = arg(
        "colocate", "colocate = vLLM inside the training process; server = a separate `trl vllm-serve`."
    )
    vllm_server_host: str = arg("127.0.0.1", "Host of the TRL vLLM server (vllm_mode server).", check=NOT_EMPTY)
    vllm_server_port: int = arg(8000, "Port of the TRL vLLM server (vllm_mode server).", check=PORT)
    vllm_gpu_memory_utilization: float = arg(
        0.3, "GPU memory share vLLM may take (colocate mode).", check=UNIT_OPEN_LOW)
    # checkpointing and logging (TRL / transformers names)
    output_dir: str = redefault(TrainerArgs, "output_dir", "runs/grpo")
    disable_tqdm: bool = arg(False, "Hide the progress bar.")
    # reward (the judge's fields are JudgeOptions'; judge_max_calls counts per process)
    reward: Literal["normalized", "healthbench", "rar-implicit"] = arg(
        "normalized",
        "Reward per completion: normalized rubric score in [0, 1], HealthBench score (met points / "
        "positive points), or rar-implicit (the judge's holistic rating mapped to [0, 1]).",
    )
    dynamic_weights: bool = arg(
        False,
        "POW3R-style dynamic criterion weights for the training reward (an approximation: the paper's "
        "exact formula was not available). Per group of G rollouts: p_j = share earning criterion j's "
        "credit, c_j = sqrt(p_j (1 - p_j)), weight w_j * (c_j + eps) / mean over j's category of "
        "(c_k + eps); "
        "category = (polarity, category field). Evaluation always uses the static weights.",
    )
    dynamic_weights_eps: float = arg(
        0.1, "eps of the dynamic weights (larger = closer to static weights).", check=POSITIVE)

    def completions_per_step(self, processes: int = 1) -> int:
        """Completions one optimizer step trains on (TRL's generation_batch_size)."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * processes

    def prompts_per_step(self, processes: int = 1) -> int:
        """Distinct prompts per optimizer step: completions per step / num_generations."""
        return self.completions_per_step(processes) // self.num_generations

    def price_table(self):
        """The judge's :class:`rgsd.costs.PriceTable`, or None when no price was given."""
        from rgsd.judges.options import prices

        return prices(self)

    def validate(self) -> None:
        from rgsd.judges.options import check

        super().validate()
        if self.judge == "none":
            raise ValueError("judge none: GRPO needs a judge for its reward (regex or openai)")
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 (GRPO needs a group), got {self.num_generations}")
        if self.per_device_train_batch_size < 1:
            raise ValueError("per_device_train_batch_size must be >= 1")
        per_step = self.completions_per_step()
        if per_step % self.num_generations:
            raise ValueError(
                f"per_device_train_batch_size x gradient_accumulation_steps = {per_step} completions per step "
                f"must be a multiple of num_generations ({self.num_generations}): TRL counts completions, "
                f"e.g. per_device_train_batch_size {self.num_generations} = one prompt with its "
                f"{self.num_generations} rollouts"
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
        self.price_table()  # a bad price or price file fails before any training
        check(self)  # the judge options every command checks (a missing judge_model among them)
