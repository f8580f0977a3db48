"""``rgsd train [--config FILE] [--field value ...] [--resume]``."""

from __future__ import annotations

import argparse
import os
import sys

from rgsd.options import options
from rgsd.train.config import RGSDConfig
from rgsd.trainer_args import add_trainer_command

HELP = "Train with Rubric-Guided Self-Distillation (no judge)."


def _run(args: argparse.Namespace) -> int:
    from rgsd.train.checkpoint import CheckpointError
    from rgsd.train.trainer import train

    cfg = options(args, RGSDConfig)
    try:
        out = train(cfg, resume=args.resume)
    except CheckpointError as err:  # --resume on a checkpoint this run cannot use: one line, no traceback
        print(f"rgsd train: error: {err}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":  # once per run, not once per process
        print(f"done: trained model in {out / 'final'}, metrics in {out / 'metrics.jsonl'}, costs in {out / 'costs.json'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    add_trainer_command(sub, "train", RGSDConfig, _run, HELP)
