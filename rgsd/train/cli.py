"""``rgsd train [--config FILE] [--field value ...] [--resume]``."""

from __future__ import annotations

import argparse
import os

from rgsd.options import add_command, options
from rgsd.train.config import RGSDConfig

HELP = "Train with Rubric-Guided Self-Distillation (no judge)."


def _run(args: argparse.Namespace) -> int:
    from rgsd.train.trainer import train

    cfg = options(args, RGSDConfig)
    out = train(cfg, resume=args.resume)
    if os.environ.get("RANK", "0") == "0":  # once per run, not once per process
        print(f"done: trained model in {out / 'final'}, metrics in {out / 'metrics.jsonl'}, costs in {out / 'costs.json'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "train", [RGSDConfig], _run, HELP,
                    epilog="Every option is also a YAML key of --config FILE (see recipes/); flags override it.")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
