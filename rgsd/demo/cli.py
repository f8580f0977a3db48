"""``rgsd demo``: its flags, then :func:`rgsd.demo.run.run_demo`."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path

from rgsd.checks import AT_LEAST_ONE, NOT_EMPTY, POSITIVE, SEED, OneOf
from rgsd.demo.run import CONTROLS, DemoSettings
from rgsd.options import add_command, arg, field_values, options

_D = DemoSettings()


@dataclass
class DemoArgs:
    """The demo's options (the defaults are :class:`rgsd.demo.run.DemoSettings`')."""

    out: str = arg(str(_D.out), "Output folder (report.md, summary.json, plots, checkpoint).", check=NOT_EMPTY)
    model: str = arg(_D.model, "Model to demo (default: the embedded offline SmolLM2-135M).", check=NOT_EMPTY)
    steps: int = arg(_D.steps, "RGSD optimizer steps.", check=AT_LEAST_ONE)
    seed: int = arg(_D.seed, "Seed of everything (the demo is deterministic given it).", check=SEED)
    seeds: list[int] = arg(
        [], "Training seeds, pooled (e.g. 2,3,4): one RGSD run (and one run of each control) per seed; effects "
            "average over seeds and prompts, their interval resamples both. Empty: --seed alone.", check=SEED)
    control: list[str] = arg(
        [], "Control arms trained with the same seeds as RGSD: neutral-system (the teacher's template, no "
            "criteria: the persona/format effect), shuffled (another prompt's criteria). Reported as RGSD minus "
            "each control with its test.", check=OneOf(tuple(CONTROLS)))
    train_prompts: int = arg(_D.train_prompts, "Train on (and evaluate) N demo training prompts.",
                             check=AT_LEAST_ONE)
    first_train_prompt: int = arg(_D.first_train_prompt, "The first of them (1-based).", check=AT_LEAST_ONE)
    heldout_prompts: str = arg(
        _D.heldout_prompts, "Held-out prompts: heldout (the held-out file) or A-B, demo training prompts A..B "
                            "(1-based) that no run trains on.", check=NOT_EMPTY)
    eval_samples: int = arg(_D.eval_samples, "Sampled responses per prompt.", check=AT_LEAST_ONE)
    base_eval_samples: int = arg(
        _D.base_eval_samples, "Sampled responses per prompt of the base model (the reference of every paired "
                              "difference).", check=AT_LEAST_ONE)
    eval_temperature: float = arg(_D.eval_temperature, "Sampling temperature of the evaluations (> 0).",
                                  check=POSITIVE)
    threads: int | None = arg(None, "Torch CPU threads (default: the CPUs this process may use that are idle at "
                                    "the start, at least 1).", check=AT_LEAST_ONE)
    max_new_tokens: int = arg(_D.max_new_tokens, "Response length in training and evaluation.", check=AT_LEAST_ONE)
    with_grpo: bool = arg(False, "Also train the judge-based GRPO baseline and compare.")
    rgsd_set: list[str] = field(default_factory=list, metadata={
        "help": "FIELD=VALUE: override a field of the RGSD training config (recipes/rgsd-smollm2-cpu.yaml), "
                "repeatable; the same syntax as `rgsd compare --rgsd-set`.",
        "action": "append", "aliases": ["--set"], "metavar": "FIELD=VALUE"})


def settings(a: DemoArgs) -> DemoSettings:
    return DemoSettings(out=Path(a.out), model=a.model, steps=a.steps, seed=a.seed, seeds=list(a.seeds),
                        controls=list(a.control), train_prompts=a.train_prompts,
                        first_train_prompt=a.first_train_prompt, heldout_prompts=a.heldout_prompts,
                        eval_samples=a.eval_samples, base_eval_samples=a.base_eval_samples,
                        eval_temperature=a.eval_temperature, threads=a.threads, max_new_tokens=a.max_new_tokens,
                        with_grpo=a.with_grpo, train_overrides=field_values(a.rgsd_set, "--rgsd-set"))


def _run(args: argparse.Namespace) -> int:
    from rgsd.demo.run import run_demo

    logging.getLogger("rgsd").setLevel(logging.WARNING)
    s = settings(options(args, DemoArgs))
    summary = run_demo(s)
    print(f"[demo] total {summary['wall_time_s']:.0f} s; report: {s.out / 'report.md'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from rgsd.demo import run

    add_command(sub, "demo", [DemoArgs], _run,
                "End-to-end RGSD demo on the offline model (CPU, no judge API, ~10 min).", description=run.__doc__)
