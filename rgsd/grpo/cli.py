"""``rgsd grpo [--config FILE] [--field value ...] [--resume]``: the judge-based GRPO baseline."""

from __future__ import annotations

import argparse

from rgsd.grpo.config import GRPORunConfig
from rgsd.options import options
from rgsd.trainer_args import add_trainer_command

HELP = (
    "Judge-based GRPO baseline (TRL GRPOTrainer; every rollout graded by a judge against its rubric). "
    "dynamic_weights is a POW3R-style approximation."
)


def run(args: argparse.Namespace) -> int:
    from rgsd.grpo.trainer import train_grpo

    cfg = options(args, GRPORunConfig)
    out = train_grpo(cfg, resume=args.resume)
    print(f"GRPO run written to {out} (final model: {out / 'final'}, costs: {out / 'costs.json'})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    add_trainer_command(sub, "grpo", GRPORunConfig, run, HELP)
