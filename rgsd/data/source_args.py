"""Data-source flags for the commands not yet on :mod:`rgsd.data.options` (eval, gap, diagnose).

The trainers, ``rgsd compare`` and ``rgsd data`` take :class:`rgsd.data.options.DatasetArgs` instead; this
module goes once the last command has moved.
"""

from __future__ import annotations

import argparse
from typing import Any

COLUMN_TARGETS = ("prompt", "rubric", "id")


def add_source_args(parser: argparse.ArgumentParser | Any, prefix: str = "") -> None:
    """Add ``--split``, ``--config-name`` and ``--{prompt,rubric,id}-column`` (optionally ``--PREFIX-split`` ...)."""
    p = f"--{prefix}-" if prefix else "--"
    what = f" of the {prefix} data" if prefix else ""
    parser.add_argument(f"{p}split", default=None, help=f"Hugging Face dataset split{what} (e.g. train)")
    parser.add_argument(f"{p}config-name", default=None, help=f"Hugging Face dataset configuration{what}")
    for target in COLUMN_TARGETS:
        parser.add_argument(f"{p}{target}-column", default=None,
                            help=f"source column holding the {target}{what} (dotted names reach into objects)")


def source_kwargs(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """``load_examples`` keyword arguments from the options :func:`add_source_args` added."""
    p = f"{prefix}_" if prefix else ""
    columns = {t: getattr(args, f"{p}{t}_column") for t in COLUMN_TARGETS if getattr(args, f"{p}{t}_column", None)}
    return {"split": getattr(args, f"{p}split", None), "config_name": getattr(args, f"{p}config_name", None),
            "columns": columns or None}
