"""``rgsd compare-evals A_DIR B_DIR``: the paired difference of two evaluations of the same prompts (how it is
computed: :mod:`rgsd.evaluate.paired`), with a Student-t interval and the one-sided sign-flip p-value. Several B
folders (comma-separated) are training seeds, pooled; ``--explain`` adds what the gain is made of
(:mod:`rgsd.evaluate.explain`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rgsd.checks import SEED
from rgsd.evaluate.paired import compare_dirs, render
from rgsd.options import add_command, arg, options


def run(args: argparse.Namespace) -> int:
    """``rgsd compare-evals``: print the table, write ``paired.json`` next to B (or to ``--out``)."""
    import sys

    try:
        opts = options(args, PairedArgs)
        res = compare_dirs(args.a_dir, args.b_dir, opts.dataset_name, opts.seed)
        expl = None
        if opts.explain or opts.teacher_dir:
            from rgsd.evaluate.explain import explain_dirs, render_explain

            expl = explain_dirs(args.a_dir, args.b_dir, opts.teacher_dir, opts.dataset_name)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if res["n_shared_prompts"] == 0:
        print(f"error: {args.a_dir} and {args.b_dir} share no scored prompt ids", file=sys.stderr)
        return 2
    text = render(res)
    print(text)
    extext = render_explain(expl) if expl else ""
    if expl:
        print("\n" + extext)
    if opts.out:
        out = Path(opts.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "paired.json").write_text(json.dumps(res, indent=2) + "\n")
        (out / "paired.md").write_text(text + "\n")
        if expl:
            (out / "explain.json").write_text(json.dumps(expl, indent=2) + "\n")
            (out / "explain.md").write_text(extext + "\n")
    return 0


@dataclass
class PairedArgs:
    """``rgsd compare-evals`` options (besides the two folders)."""

    DEPRECATED: ClassVar[dict[str, str]] = {"data": "dataset_name"}

    dataset_name: str | None = arg(None, "The evaluated rubric data, for per-tag differences.")
    out: str | None = arg(None, "Write paired.json and paired.md here.")
    seed: int = arg(0, "Bootstrap seed.", check=SEED)
    explain: bool = arg(False, "Also print what the gain is made of (A = base, B = trained): met rate per criterion, "
                        "opening words, persona phrases, length; with --out, write explain.json and explain.md.")
    teacher_dir: str | None = arg(None, "An eval folder of the teacher (the rubric in context) for --explain "
                                  "(implies --explain).")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``rgsd compare-evals``."""
    p = add_command(sub, "compare-evals", [PairedArgs], run,
                    help="Paired difference (B - A) of two `rgsd eval` folders, with a bootstrap 95%% CI over "
                    "prompts, per tag with --dataset-name.", description=__doc__)
    p.add_argument("a_dir", help="baseline eval folder (results.jsonl); several, comma-separated: one per "
                                 "training seed of B")
    p.add_argument("b_dir", help="the other eval folder, on the same prompts; several, comma-separated: training "
                                 "seeds, pooled")
    p.usage = "%(prog)s A_DIR B_DIR [OPTIONS]"
