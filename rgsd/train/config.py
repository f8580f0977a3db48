"""RGSDConfig: every knob of an RGSD run, with its default and why.

Defaults follow the method's description: beta 0.5, entry-wise clip 0.05, one rollout per prompt at
temperature 1.0, a teacher frozen at the initial weights, the thinking mask, AdamW (0.9, 0.999, 1e-8, wd 0.01).
The fields shared with ``rgsd grpo`` (data, model, LoRA, optimizer, schedule, run folder) are
:class:`rgsd.trainer_args.TrainerArgs`, in TRL's and transformers' names; the hub's (``push_to_hub`` ...) are
:class:`rgsd.hub.HubArgs`, transformers' too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from rgsd.checks import AT_LEAST_ONE, NON_NEGATIVE, NOT_EMPTY, PORT, POSITIVE, SHARE, UNIT_OPEN_LOW
from rgsd.hub import HubArgs
from rgsd.options import arg
from rgsd.trainer_args import TrainerArgs

if TYPE_CHECKING:
    from rgsd.method.losses import LossOptions


@dataclass
class ModelArgs(HubArgs, TrainerArgs):
    """The fields of an RGSD run outside the method: model, data, optimization, generation, checkpoints, logging,
    the hub."""

    DEPRECATED: ClassVar[dict] = {
        **TrainerArgs.DEPRECATED, "per_device_batch_size": "per_device_train_batch_size",
        # rgsd 0.1's "constant" warmed up: that is transformers' constant_with_warmup
        "lr_scheduler": ("lr_scheduler_type", {"constant": "constant_with_warmup"})}

    per_device_train_batch_size: int = arg(
        4, "Prompts per device per micro-step (as TRL's SFT/GKD count examples; each prompt gets "
           "rollouts_per_prompt samples). Unlike `rgsd grpo`, where TRL counts completions.", check=AT_LEAST_ONE)
    # generation
    max_prompt_tokens: int = arg(
        2048, "Longest student/teacher prompt in tokens (see on_long_prompt).", check=AT_LEAST_ONE)
    max_new_tokens: int = arg(256, "Longest sampled response.", check=AT_LEAST_ONE)
    temperature: float = arg(1.0, "Sampling temperature of the on-policy rollouts (0 = greedy).", check=NON_NEGATIVE)
    top_p: float = arg(1.0, "Nucleus sampling for the rollouts (1.0 = off).", check=UNIT_OPEN_LOW)
    generation_batch_size: int = arg(16, "Prompts per generate() call.", check=AT_LEAST_ONE)
    progress: bool = arg(True, "Show a progress bar.")


@dataclass
class RGSDConfig(ModelArgs):
    """RGSD: the rubric-conditioned frozen base model teaches the plain-prompt student."""

    # method
    beta: float = arg(0.5, "Generalized JSD beta: 0 = forward KL(teacher||student), 1 = reverse KL.", check=SHARE)
    clip: float | None = arg(0.05, "Clip tau of the divergence (null = no clip).", check=POSITIVE)
    clip_mode: Literal["entry", "token"] = arg(
        "entry", "entry: cap each per-vocabulary term before the vocabulary sum; token: cap the per-position sum.")
    top_k: int | None = arg(None, "Restrict the divergence to the teacher's top-k tokens (renormalized); null = full vocab.",
                            check=AT_LEAST_ONE)
    loss_chunk_size: int = arg(1024, "Response positions per chunk of the memory-efficient loss.", check=AT_LEAST_ONE)
    loss_impl: Literal["auto", "fused", "checkpointed"] = arg(
        "auto", "fused: gradients computed chunk by chunk in the forward pass (fastest); checkpointed: calls the "
                "head module per chunk (safe when FSDP2 shards the weights); auto picks checkpointed when sharded.")
    rollouts_per_prompt: int = arg(1, "On-policy samples per prompt (the paper uses 1).", check=AT_LEAST_ONE)
    teacher: Literal["frozen", "live", "ema"] = arg(
        "frozen", "frozen = the initial model for the whole run (the method); live/ema are ablations only.")
    ema_decay: float = arg(0.99, "EMA decay when teacher = ema.", check=SHARE)
    teacher_placement: Literal["user_suffix", "system", "user_prefix", "system_keep"] = arg(
        "user_suffix", "Where the rubric goes in the teacher prompt (user_prefix: as key points before the "
                       "question; system_keep: appended to the student's own system message, the chat "
                       "template's default included, a minimal pair; see rgsd/method/teacher_prompt.py).")
    teacher_style: Literal["full", "compact"] = arg(
        "full", "full: criteria introduced as hidden evaluation criteria to meet without mentioning them; "
                "compact: a bare bullet list (works better on very small models, e.g. the offline SmolLM2).")
    show_weights: bool = arg(False, "Show criterion weights to the teacher.")
    teacher_context: Literal["rubric", "neutral", "shuffled"] = arg(
        "rubric", "What the teacher reads: rubric = the prompt's own criteria (the method); the controls: neutral "
                  "= the template without criteria, shuffled = another prompt's criteria (a fixed derangement).")
    # loss temperature and signal diagnostics
    loss_temperature: float | None = arg(
        None, "Temperature at which both distributions are compared in the loss (logits / T on both sides); "
              "null = the rollout temperature (as TRL's GKD), 1.0 = untempered (rgsd 0.1.0). The paper leaves "
              "this open.", check=POSITIVE)
    signal_diagnostics: bool = arg(
        True, "Log signal_* diagnostics (divergence by response position, tokens the teacher raises, clip "
              "shares, sampled-token log-ratio) in metrics.jsonl; fused loss only.")

    def loss_temperature_value(self) -> float:
        """The loss temperature in effect: ``loss_temperature``, else the rollout temperature (1.0 if greedy)."""
        if self.loss_temperature is not None:
            return float(self.loss_temperature)
        return float(self.temperature) if self.temperature > 0 else 1.0

    on_long_prompt: Literal["skip", "error"] = arg(
        "skip", "A teacher prompt over max_prompt_tokens is never truncated: skip and count it, or stop.")
    thinking: bool | None = arg(
        None, "Mask the thinking block (response start through the first </think>) from the loss; "
              "null = on when the tokenizer has a </think> token.")
    generation_backend: Literal["transformers", "vllm-server", "vllm-colocate"] = arg(
        "transformers", "transformers generate (tested path), or vLLM through trl.generation.VLLMGeneration: "
                        "a TRL vLLM server (trl vllm-serve) or vLLM colocated on the training GPUs (GPU only).")
    vllm_server_host: str = arg("127.0.0.1", "Host of the TRL vLLM server.", check=NOT_EMPTY)
    vllm_server_port: int = arg(8000, "Port of the TRL vLLM server.", check=PORT)
    # scaling: torch DDP / FSDP2, launched by torchrun
    sharding: Literal["none", "ddp", "fsdp2"] = arg(
        "none", "none: one process (under a multi-process launcher it means ddp); ddp: torch "
                "DistributedDataParallel; fsdp2: torch fully_shard per decoder layer, then the root (sharded "
                "full fine-tuning or LoRA). Launch several processes with torchrun (or accelerate launch as a "
                "plain launcher); the same code runs on gloo (CPU) and NCCL (GPU).")
    # pre-flight: does the rubric itself change the base model's answers (rgsd.evaluate.arms)?
    preflight: int = arg(
        0, "Before step 1, sample the base model on the first N training prompts under each context (none, "
           "neutral, shuffled, rubric), grade with the regex judge (only when every criterion has a pattern) and "
           "log the pre-flight verdict; warns, never stops (0 = off; rank 0 only).", check=NON_NEGATIVE)
    preflight_samples: int = arg(2, "Samples per prompt and context of the pre-flight (at the rollout temperature; "
                                    "1 when it is 0).", check=AT_LEAST_ONE)
    # self-internalization gap probe
    probe_steps: int = arg(0, "Measure the self-internalization gap every N steps (0 = off).", check=NON_NEGATIVE)
    probe_prompts: int = arg(8, "Prompts in the fixed probe set (first N training examples).", check=AT_LEAST_ONE)
    probe_samples: int = arg(2, "Rubric-conditioned samples per probe prompt.", check=AT_LEAST_ONE)
    probe_max_new_tokens: int = arg(64, "Length of the probe samples.", check=AT_LEAST_ONE)

    def loss_options(self) -> LossOptions:
        """The divergence's options (building them validates them: the one place they are checked)."""
        from rgsd.method.losses import LossOptions  # torch: not at import, so `rgsd --help` stays fast

        return LossOptions(beta=self.beta, clip=self.clip, clip_mode=self.clip_mode, top_k=self.top_k,
                           chunk_size=self.loss_chunk_size, temperature=self.loss_temperature_value(),
                           impl=self.loss_impl, diagnostics=self.signal_diagnostics)

    def validate(self) -> None:
        super().validate()
        self.loss_options()  # beta, clip, clip mode, top-k and the loss temperature: checked there, once
        if self.rollouts_per_prompt < 1 or self.per_device_train_batch_size < 1:
            raise ValueError("rollouts_per_prompt and per_device_train_batch_size must be >= 1")
