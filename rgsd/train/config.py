"""RGSDConfig: every knob of an RGSD run, with its default and why.

Defaults follow ``rgsd.md``: beta 0.5, entry-wise clip 0.05, one rollout per prompt at temperature 1.0, a
teacher frozen at the initial weights, the thinking mask, AdamW (0.9, 0.999, 1e-8, wd 0.01).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


def _f(default, help: str, **kw):  # noqa: A002 - "help" reads best in the field definitions
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class DataArgs:
    """Where the training data comes from: shared by every trainer (RGSD and GRPO)."""

    data: str = _f("", "Training data: a file (JSONL/JSON/Parquet), a local HF dataset folder, or a hub name.")
    format: Literal["auto", "healthbench", "rar", "rubrichub", "canonical", "generic"] = _f(
        "auto", "Data format: auto (detected from the first records), healthbench, rar, rubrichub, canonical, generic.")
    polarity: str = _f("sign", "Polarity policy for negative weights (see docs/data-formats.md).")
    max_examples: int | None = _f(None, "Use only the first N examples.")
    data_split: str | None = _f(None, "Split of a Hugging Face dataset (e.g. train).")
    data_config_name: str | None = _f(None, "Configuration (subset) name of a Hugging Face hub dataset.")
    prompt_column: str | None = _f(None, "Source column holding the prompt (null = the format's own name).")
    rubric_column: str | None = _f(None, "Source column holding the rubric (null = the format's own name).")
    id_column: str | None = _f(None, "Source column holding the example id (null = the format's own name).")


@dataclass
class PolicyArgs(DataArgs):
    """The policy model and its LoRA adapter: the same fields (names, defaults, meaning) in every trainer."""

    model: str = _f("smollm2-offline", "Hub name, local folder, or 'smollm2-offline' (the embedded default).")
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = _f(
        "auto", "Training dtype; auto = bf16 on GPU, fp32 on CPU.")
    use_lora: bool = _f(True, "Train a LoRA adapter (PEFT); false = full fine-tuning.")
    lora_r: int = _f(16, "LoRA rank.")
    lora_alpha: int = _f(32, "LoRA alpha.")
    lora_dropout: float = _f(0.0, "LoRA dropout.")
    lora_target_modules: list[str] = _f(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "Module names that get LoRA adapters.")
    gradient_checkpointing: bool = _f(False, "Recompute activations in backward to save memory (GPU recipes).")
    attn_implementation: str | None = _f(None, "Attention kernel passed to from_pretrained (e.g. sdpa).")


@dataclass
class AdamWArgs:
    """AdamW's settings and the run seed (transformers' names; the companion paper's values)."""

    weight_decay: float = _f(0.01, "AdamW weight decay.")
    adam_beta1: float = _f(0.9, "AdamW beta1.")
    adam_beta2: float = _f(0.999, "AdamW beta2.")
    adam_epsilon: float = _f(1e-8, "AdamW epsilon.")
    seed: int = _f(0, "Seed for data order, sampling and initialization.")


@dataclass
class RunArgs:
    """Checkpoints, log lines and tracker names (transformers' names)."""

    save_steps: int = _f(0, "Save a resumable checkpoint every N steps (0 = only at the end).")
    save_total_limit: int | None = _f(2, "Keep only the newest N step checkpoints.")
    logging_steps: int = _f(1, "Print a log line every N steps (metrics.jsonl gets every step).")
    run_name: str | None = _f(None, "Run name shown by W&B / TensorBoard (null = the output folder's name).")
    project: str | None = _f(
        None, "W&B project (null = the output folder's parent name, or 'rgsd' when that is '.' or empty).")

    def tracker_names(self) -> tuple[str, str]:
        """``(run_name, project)``, defaulting from ``output_dir`` (``runs/exp1`` -> ``exp1``, ``runs``)."""
        out = Path(self.output_dir).resolve()  # type: ignore[attr-defined]  # every RunArgs config has one
        parent = out.parent.name
        return self.run_name or out.name, self.project or (parent if parent not in ("", ".") else "rgsd")


@dataclass
class ModelArgs(RunArgs, AdamWArgs, PolicyArgs):
    """The fields of an RGSD run outside the method: model, data, optimization, checkpointing, logging."""

    # optimization
    max_steps: int = _f(100, "Optimizer steps.")
    per_device_batch_size: int = _f(4, "Prompts per device per micro-batch.")
    gradient_accumulation_steps: int = _f(1, "Micro-batches per optimizer step.")
    learning_rate: float = _f(1e-4, "Peak learning rate (1e-4 suits LoRA; ~5e-6 for full fine-tuning).")
    lr_scheduler: Literal["constant", "cosine", "linear"] = _f("constant", "Schedule after warm-up.")
    warmup_ratio: float = _f(0.05, "Share of max_steps spent in linear warm-up.")
    max_grad_norm: float | None = _f(1.0, "Gradient clipping norm; null disables.")
    # generation
    max_prompt_tokens: int = _f(2048, "Longest student/teacher prompt in tokens (see on_long_prompt).")
    max_new_tokens: int = _f(256, "Longest sampled response.")
    temperature: float = _f(1.0, "Sampling temperature of the on-policy rollouts.")
    top_p: float = _f(1.0, "Nucleus sampling for the rollouts (1.0 = off).")
    generation_batch_size: int = _f(16, "Prompts per generate() call.")
    # checkpointing and logging
    output_dir: str = _f("runs/rgsd", "Run folder: config, metrics.jsonl, costs.json, checkpoints, final model.")
    report_to: list[str] = _f([], "Extra metric sinks: tensorboard, wandb.")
    progress: bool = _f(True, "Show a progress bar.")


@dataclass
class RGSDConfig(ModelArgs):
    """RGSD: the rubric-conditioned frozen base model teaches the plain-prompt student."""

    output_dir: str = _f("runs/rgsd", "Run folder: config, metrics.jsonl, costs.json, checkpoints, final model.")
    # method
    beta: float = _f(0.5, "Generalized JSD beta: 0 = forward KL(teacher||student), 1 = reverse KL.")
    clip: float | None = _f(0.05, "Clip tau of the divergence (null = no clip).")
    clip_mode: Literal["entry", "token"] = _f(
        "entry", "entry: cap each per-vocabulary term before the vocabulary sum; token: cap the per-position sum.")
    top_k: int | None = _f(None, "Restrict the divergence to the teacher's top-k tokens (renormalized); null = full vocab.")
    loss_chunk_size: int = _f(1024, "Response positions per chunk of the memory-efficient loss.")
    loss_impl: Literal["auto", "fused", "checkpointed"] = _f(
        "auto", "fused: gradients computed chunk by chunk in the forward pass (fastest); checkpointed: calls the "
                "head module per chunk (safe when FSDP2 shards the weights); auto picks checkpointed when sharded.")
    rollouts_per_prompt: int = _f(1, "On-policy samples per prompt (the paper uses 1).")
    teacher: Literal["frozen", "live", "ema"] = _f(
        "frozen", "frozen = the initial model for the whole run (the method); live/ema are ablations only.")
    ema_decay: float = _f(0.99, "EMA decay when teacher = ema.")
    teacher_placement: Literal["user_suffix", "system", "user_prefix"] = _f(
        "user_suffix", "Where the rubric goes in the teacher prompt (user_prefix: as key points before the "
                       "question, see rgsd/method/teacher_prompt.py).")
    teacher_style: Literal["full", "compact"] = _f(
        "full", "full: criteria introduced as hidden evaluation criteria to meet without mentioning them; "
                "compact: a bare bullet list (works better on very small models, e.g. the offline SmolLM2).")
    show_weights: bool = _f(False, "Show criterion weights to the teacher.")
    # loss temperature and signal diagnostics (issue 9)
    loss_temperature: float | None = _f(
        None, "Temperature at which both distributions are compared in the loss (logits / T on both sides); "
              "null = the rollout temperature (as TRL's GKD), 1.0 = untempered (rgsd 0.1.0). The paper leaves "
              "this open.")
    signal_diagnostics: bool = _f(
        True, "Log signal_* diagnostics (divergence by response position, tokens the teacher raises, clip "
              "shares, sampled-token log-ratio) in metrics.jsonl; fused loss only.")

    def loss_temperature_value(self) -> float:
        """The loss temperature in effect: ``loss_temperature``, else the rollout temperature (1.0 if greedy)."""
        if self.loss_temperature is not None:
            return float(self.loss_temperature)
        return float(self.temperature) if self.temperature > 0 else 1.0

    on_long_prompt: Literal["skip", "error"] = _f(
        "skip", "A teacher prompt over max_prompt_tokens is never truncated: skip and count it, or stop.")
    thinking: bool | None = _f(
        None, "Mask the thinking block (response start through the first </think>) from the loss; "
              "null = on when the tokenizer has a </think> token.")
    generation_backend: Literal["transformers", "vllm-server", "vllm-colocate"] = _f(
        "transformers", "transformers generate (tested path), or vLLM through trl.generation.VLLMGeneration: "
                        "a TRL vLLM server (trl vllm-serve) or vLLM colocated on the training GPUs (GPU only).")
    vllm_server_host: str = _f("127.0.0.1", "Host of the TRL vLLM server.")
    vllm_server_port: int = _f(8000, "Port of the TRL vLLM server.")
    # scaling (issue 10): torch DDP / FSDP2, launched by torchrun
    sharding: Literal["none", "ddp", "fsdp2"] = _f(
        "none", "none: one process (under a multi-process launcher it means ddp); ddp: torch "
                "DistributedDataParallel; fsdp2: torch fully_shard per decoder layer, then the root (sharded "
                "full fine-tuning or LoRA). Launch several processes with torchrun (or accelerate launch as a "
                "plain launcher); the same code runs on gloo (CPU) and NCCL (GPU).")
    # self-internalization gap probe
    probe_steps: int = _f(0, "Measure the self-internalization gap every N steps (0 = off).")
    probe_prompts: int = _f(8, "Prompts in the fixed probe set (first N training examples).")
    probe_samples: int = _f(2, "Rubric-conditioned samples per probe prompt.")
    probe_max_new_tokens: int = _f(64, "Length of the probe samples.")

    def validate(self) -> None:
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        if self.loss_temperature is not None and not self.loss_temperature > 0:
            raise ValueError(f"loss_temperature must be positive or null, got {self.loss_temperature}")
        if self.clip is not None and self.clip <= 0:
            raise ValueError(f"clip must be positive or null, got {self.clip}")
        if self.rollouts_per_prompt < 1 or self.per_device_batch_size < 1:
            raise ValueError("rollouts_per_prompt and per_device_batch_size must be >= 1")
        if not self.data:
            raise ValueError("data is required: a rubric dataset file, folder or hub name")
