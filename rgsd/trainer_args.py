"""The option fields both trainers share (``rgsd train`` and ``rgsd grpo``), in TRL's and transformers' names.

The data fields come from :class:`rgsd.data.options.TrainDataArgs`; on top: the policy model and its LoRA
adapter, the optimizer and its schedule, checkpoints and trackers. Each trainer's config inherits these and
changes only defaults, so a name means the same in both (``rgsd.grpo`` never imports ``rgsd.train``).

Warm-up, one rule in both trainers: ``warmup_steps`` as in transformers 5 (an integer >= 1 = steps, a float in
(0, 1) = a share of ``max_steps``, rounded up); when it is 0, ``warmup_ratio`` (transformers 4's name) is the
share, rounded down (RGSD's rule since 0.1). ``lr_scheduler_type`` is transformers' name and meaning:
``constant`` ignores the warm-up, ``constant_with_warmup`` does not.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rgsd.checks import AT_LEAST_ONE, NON_NEGATIVE, NOT_EMPTY, POSITIVE, SEED, SHARE_BELOW_ONE, OneOf
from rgsd.data.options import TrainDataArgs
from rgsd.options import add_command, arg
from rgsd.trackers import TRACKERS

Scheduler = Literal["constant", "constant_with_warmup", "cosine", "linear"]


@dataclass
class PolicyArgs(TrainDataArgs):
    """The training data, the policy model and its LoRA adapter: the same fields in every trainer."""

    model_name_or_path: str = arg(
        "smollm2-offline", "Hub name, local folder, or 'smollm2-offline' (the embedded default).", check=NOT_EMPTY)
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = arg(
        "auto", "Training dtype; auto = bf16 on GPU, fp32 on CPU.")
    bf16: bool | None = arg(
        None, "TRL's switch: true = dtype bf16, false = fp32 (instead of auto); null = dtype decides.")
    use_lora: bool = arg(True, "Train a LoRA adapter (PEFT); false = full fine-tuning.")
    lora_r: int = arg(16, "LoRA rank.", check=AT_LEAST_ONE)
    lora_alpha: int = arg(32, "LoRA alpha.", check=AT_LEAST_ONE)
    lora_dropout: float = arg(0.0, "LoRA dropout.", check=SHARE_BELOW_ONE)
    lora_target_modules: list[str] = arg(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "Module names that get LoRA adapters.")
    gradient_checkpointing: bool = arg(False, "Recompute activations in backward to save memory (GPU recipes).")
    attn_implementation: str | None = arg(None, "Attention kernel passed to from_pretrained (e.g. sdpa).")

    def check_policy(self) -> None:
        """Reject a missing dataset or a bf16/dtype conflict; fold ``bf16`` into ``dtype`` (which the trainers read)."""
        if not self.dataset_name:
            raise ValueError("dataset_name is required: a rubric dataset file, folder or hub name")
        if self.bf16 is True:
            if self.dtype not in ("auto", "bf16"):
                raise ValueError(f"bf16: true contradicts dtype {self.dtype}")
            self.dtype = "bf16"
        elif self.bf16 is False:
            if self.dtype == "bf16":
                raise ValueError("bf16: false contradicts dtype bf16")
            if self.dtype == "auto":
                self.dtype = "fp32"


@dataclass
class OptimArgs:
    """AdamW, the learning-rate schedule and the seed (transformers' names and meanings)."""

    max_steps: int = arg(100, "Optimizer steps.", check=AT_LEAST_ONE)
    gradient_accumulation_steps: int = arg(1, "Micro-batches per optimizer step.", check=AT_LEAST_ONE)
    learning_rate: float = arg(
        1e-4, "Peak learning rate (1e-4 suits LoRA; ~5e-6 for full fine-tuning).", check=POSITIVE)
    lr_scheduler_type: Scheduler = arg(
        "constant_with_warmup", "transformers' schedule: constant ignores the warm-up, constant_with_warmup, "
                                "cosine and linear start with it.")
    warmup_ratio: float = arg(
        0.05, "Share of max_steps in linear warm-up, rounded down (used when warmup_steps is 0).",
        check=SHARE_BELOW_ONE)
    warmup_steps: float = arg(
        0, "Linear warm-up as in transformers 5: an integer >= 1 = steps, a float in (0, 1) = share of "
           "max_steps (rounded up); 0 = warmup_ratio decides.", check=NON_NEGATIVE)
    max_grad_norm: float | None = arg(1.0, "Gradient clipping norm; null (or 0) disables.", check=NON_NEGATIVE)
    weight_decay: float = arg(0.01, "AdamW weight decay.", check=NON_NEGATIVE)
    adam_beta1: float = arg(0.9, "AdamW beta1.", check=SHARE_BELOW_ONE)
    adam_beta2: float = arg(0.999, "AdamW beta2.", check=SHARE_BELOW_ONE)
    adam_epsilon: float = arg(1e-8, "AdamW epsilon.", check=POSITIVE)
    seed: int = arg(0, "Seed for data order, sampling and initialization.", check=SEED)

    def num_warmup_steps(self) -> int:
        """Warm-up steps in effect (the module doc's rule)."""
        if self.warmup_steps >= 1:
            return int(self.warmup_steps)
        if self.warmup_steps > 0:
            return math.ceil(self.warmup_steps * self.max_steps)
        return int(self.warmup_ratio * self.max_steps)

    def check_optim(self) -> None:
        if self.warmup_steps < 0 or (self.warmup_steps >= 1 and self.warmup_steps != int(self.warmup_steps)):
            raise ValueError(f"warmup_steps must be an integer >= 0 or a share in [0, 1), got {self.warmup_steps}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be a share in [0, 1), got {self.warmup_ratio}")
        if self.gradient_accumulation_steps < 1:
            raise ValueError("gradient_accumulation_steps must be >= 1")


@dataclass
class RunArgs:
    """The run folder, checkpoints, log lines and tracker names (transformers' names)."""

    output_dir: str = arg("runs/rgsd", "Run folder: config, metrics.jsonl, costs.json, checkpoints, final model.",
                          check=NOT_EMPTY)
    save_steps: int = arg(0, "Save a resumable checkpoint every N steps (0 = only at the end).", check=NON_NEGATIVE)
    save_total_limit: int | None = arg(2, "Keep only the newest N step checkpoints (null or 0 = all).",
                                       check=NON_NEGATIVE)
    logging_steps: int = arg(1, "Print a log line every N steps (metrics.jsonl gets every step).",
                             check=AT_LEAST_ONE)
    report_to: list[str] = arg(
        [], "Trackers, as transformers' report_to: none, all (every installed one) or names (tensorboard, wandb, "
            "trackio, mlflow, ...); a tracker not installed exits 2 naming its package. Keys as TRL's: train/loss...",
        check=OneOf(TRACKERS))
    run_name: str | None = arg(None, "Run name shown by W&B / TensorBoard (null = the output folder's name).")
    project: str | None = arg(
        None, "W&B project (null = the output folder's parent name, or 'rgsd' when that is '.' or empty).")

    def tracker_names(self) -> tuple[str, str]:
        """``(run_name, project)``, defaulting from ``output_dir`` (``runs/exp1`` -> ``exp1``, ``runs``)."""
        out = Path(self.output_dir).resolve()
        parent = out.parent.name
        return self.run_name or out.name, self.project or (parent if parent not in ("", ".") else "rgsd")

    def check_trackers(self) -> None:
        """Unknown or uninstalled trackers fail here, before any model loads."""
        from rgsd.trackers import check_report_to

        check_report_to(self.report_to)


@dataclass
class TrainerArgs(RunArgs, OptimArgs, PolicyArgs):
    """Every field both trainers share; ``validate()`` checks them (each trainer adds its own checks)."""

    DEPRECATED = {**TrainDataArgs.DEPRECATED, "model": "model_name_or_path"}

    def validate(self) -> None:
        self.check_policy()
        self.check_optim()
        self.check_trackers()


def add_trainer_command(sub: argparse._SubParsersAction, name: str, config: type[TrainerArgs],
                        run: Callable[[argparse.Namespace], int], help: str) -> None:  # noqa: A002
    """Register a trainer's ``rgsd NAME``: the fields of ``config`` as flags (and YAML keys), and ``--resume``."""
    p = add_command(sub, name, [config], run, help,
                    epilog="Every option is also a YAML key of --config FILE (see recipes/); flags override it.")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
