"""``rgsd train``'s trackers: transformers' integration callbacks (:class:`rgsd.trackers.Trackers`), fed TRL's
metric names.

What TRL's trainers also log goes by TRL's name (``loss``, ``grad_norm``, ``learning_rate``, ``epoch``,
``completions/mean_length``, ``completions/clipped_ratio``), so the callbacks write ``train/loss``... exactly
as for ``rgsd grpo``; the rest of a ``metrics.jsonl`` line goes under ``rgsd/`` (``train/rgsd/...``), as TRL's
own self-distillation trainers keep theirs under ``self_distillation/``. ``metrics.jsonl`` keeps its keys.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rgsd.trackers import Trackers, apply_project, resolve_report_to
from rgsd.train.config import RGSDConfig

# metrics.jsonl key -> TRL's name (the callbacks prefix "train/")
TRL_NAMES = {"loss": "loss", "grad_norm": "grad_norm", "learning_rate": "learning_rate", "epoch": "epoch",
             "mean_response_tokens": "completions/mean_length"}
# the same number twice in metrics.jsonl (old and new name): once is enough on a chart
_SKIP = {"step", "lr", "clipped_fraction"}


def tracker_logs(metrics: dict[str, Any]) -> dict[str, float]:
    """One metrics.jsonl line as tracker scalars: TRL's names, the rest under ``rgsd/``; mappings flattened,
    strings, lists and missing values left out (trackers chart numbers)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key in _SKIP:
            continue
        if key == "eos_rate" and _is_number(value):  # TRL logs the complement: completions cut at the limit
            out["completions/clipped_ratio"] = 1.0 - value
            continue
        name = TRL_NAMES.get(key, f"rgsd/{key}")
        if isinstance(value, dict):
            out.update({f"{name}/{k}": v for k, v in value.items() if _is_number(v)})
        elif _is_number(value):
            out[name] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def start_trackers(cfg: RGSDConfig, model: Any, step: int) -> Trackers | None:
    """The run's trackers (main process), started at ``step``; None when ``report_to`` names none."""
    names = resolve_report_to(cfg.report_to)
    if not names:
        return None
    run_name, project = cfg.tracker_names()
    apply_project(project, names, explicit=cfg.project is not None)
    shared = dict(  # the TrainingArguments fields RGSD has, so trackers show them as for a Trainer run
        max_steps=cfg.max_steps, learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.num_warmup_steps(), weight_decay=cfg.weight_decay, adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2, adam_epsilon=cfg.adam_epsilon, max_grad_norm=cfg.max_grad_norm or 0.0,
        seed=cfg.seed, per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps)
    trackers = Trackers(names, cfg.output_dir, run_name, project, dataclasses.asdict(cfg), shared, model=model)
    trackers.begin(step)
    return trackers
