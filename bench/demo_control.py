"""Add a control arm to a finished `rgsd demo` run without running it again: train the control with the run's
settings, recipe, training prompts and seeds, evaluate it with the run's protocol, and print the control's gain
over the run's base model and RGSD minus the control, pooled over the seeds (the numbers `rgsd demo --control`
would have printed for those seeds).

    python bench/demo_control.py --run runs/confirmation --control shuffled --seeds 2 --out runs/confirmation-shuffled

The run must have kept its evaluations (``RUN/eval``) and its training prompts (``RUN/train_prompts.jsonl``);
the control's trained model and graded responses go to ``--out`` (``control-NAME-seedS/``, ``eval/``) and the
result to ``--out/control.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def _records(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main() -> None:
    import torch

    from rgsd.demo.protocol import SetEval, eval_sets, joined, pooled
    from rgsd.demo.run import (
        DemoSettings,
        arm_config,
        arm_key,
        ci_text,
        seed_protocol,
        train_and_evaluate,
        write_eval,
    )
    from rgsd.judges.regex_judge import RegexJudge
    from rgsd.method.teacher_prompt import CONTROLS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a finished rgsd demo output folder")
    ap.add_argument("--control", choices=sorted(CONTROLS), default="shuffled")
    ap.add_argument("--seeds", default="", help="comma-separated training seeds (default: the run's)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    summary = json.loads((a.run / "summary.json").read_text())
    settings = {**summary["settings"], "out": a.out}
    s = DemoSettings(**settings)
    run_seeds = s.seeds or [s.seed]
    seeds = [int(x) for x in a.seeds.split(",")] if a.seeds else run_seeds
    if not set(seeds) <= set(run_seeds):
        raise SystemExit(f"error: seeds {seeds}: the run trained RGSD with seeds {run_seeds}")
    torch.set_num_threads(s.threads or torch.get_num_threads())

    def evaluation(name: str, splits: tuple[str, ...]) -> SetEval:  # a saved evaluation, splits joined
        return joined(*(SetEval(_records(a.run / "eval" / f"{name}_{x}" / "results.jsonl"), 0.0, 0.0, None)
                        for x in splits))

    def rgsd_name(seed: int) -> str:
        return "rgsd" if len(run_seeds) == 1 else f"rgsd_seed{seed}"

    sets = eval_sets(seed_protocol(s, run_seeds[0]))
    data = a.run / "train_prompts.jsonl"
    judge, timings, per_seed = RegexJudge(), {}, []
    start = time.perf_counter()
    for seed in seeds:
        cfg = arm_config(s, data, seed, CONTROLS[a.control], f"control-{a.control}-seed{seed}")
        _, got = train_and_evaluate(cfg, sets, seed_protocol(s, seed), judge, f"control {a.control}, seed {seed}", timings)
        for split in sets:
            write_eval(got[split], a.out / "eval" / f"{arm_key(a.control)}_seed{seed}_{split}")
        per_seed.append(got)
    result: dict[str, Any] = {"run": str(a.run), "control": a.control, "seeds": seeds, "timings_s": timings,
                              "wall_time_s": time.perf_counter() - start}
    for split in (*sets, "all"):
        splits = tuple(sets) if split == "all" else (split,)
        base = evaluation("base", splits)
        gain = pooled([(base, g[split]) for g in per_seed], run_seeds[0])
        minus = pooled([(g[split], evaluation(rgsd_name(seed), splits)) for seed, g in zip(seeds, per_seed)],
                       run_seeds[0])
        result[split] = {"control_gain": gain, "rgsd_minus_control": minus}
        print(f"{split}: control gain {ci_text(gain)}; RGSD minus control {ci_text(minus)}", flush=True)
    (a.out / "control.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
