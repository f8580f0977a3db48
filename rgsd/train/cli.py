"""``rgsd train --config FILE [--field value ...] [--resume]``."""

from __future__ import annotations

import argparse
import os

from rgsd.config import add_config_command, config_from_args
from rgsd.train.config import RGSDConfig


def _run(args: argparse.Namespace) -> int:
    from rgsd.train.trainer import train

    cfg = config_from_args(args, args.overrides)
    out = train(cfg, resume=args.resume)
    if os.environ.get("RANK", "0") == "0":  # once per run, not once per process
        print(f"done: trained model in {out / 'final'}, metrics in {out / 'metrics.jsonl'}, costs in {out / 'costs.json'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    add_config_command(sub, "train", RGSDConfig, "Train with Rubric-Guided Self-Distillation (no judge).", _run)
