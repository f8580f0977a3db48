"""``rgsd grpo [--config FILE] [--field value ...] [--resume]``: the judge-based GRPO baseline."""

from __future__ import annotations

import argparse

from rgsd.grpo.config import GRPORunConfig
from rgsd.options import add_command, options

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
    p = add_command(sub, "grpo", [GRPORunConfig], run, HELP,
                    epilog="Every option is also a YAML key of --config FILE (see recipes/); flags override it.")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
