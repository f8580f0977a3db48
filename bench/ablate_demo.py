"""Ablation study of the demo's RGSD setup: one row per configuration, paired gains with 95% CIs.

Every row trains RGSD from the same base model on the same prompts with the same seed (unless the row varies
the seed) and is evaluated with the same protocol (:mod:`rgsd.demo_protocol`: the first 16 demo training
prompts, which are also the training data, and the 16 held-out prompts; 2 samples per prompt at T 0.7, 64 new
tokens, regex judge). The base model and each teacher context's conditioning gap are evaluated once. Rows run
in order and each finished row is appended to ``OUT/rows.jsonl`` at once, so a stopped study keeps its rows;
``--budget-s`` skips the rows that would start after the budget.

    python bench/ablate_demo.py --out runs/ablate --budget-s 3000
    python bench/ablate_demo.py --out runs/ablate --table-only      # print the table of a finished study
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

# The candidate default ("D") and one change per row. Rows marked * decide defaults and run with 2 seeds.
BASE: dict[str, Any] = {
    "max_steps": 6, "learning_rate": 3e-4, "clip": None, "clip_mode": "entry", "loss_temperature": None,
    "temperature": 0.7, "max_new_tokens": 64, "teacher_style": "compact", "teacher_placement": "user_suffix",
}
ROWS: list[tuple[str, dict[str, Any]]] = [
    ("D: no clip, loss T = rollout T 0.7, lr 3e-4, 6 steps, compact suffix *", {}),
    ("control: shuffled rubrics (teacher reads another prompt's rubric)", {"shuffle": True}),
    ("lr 1e-3 *", {"learning_rate": 1e-3}),
    ("clip 0.05 entry *", {"clip": 0.05, "clip_mode": "entry"}),
    ("loss T 1.0 (untempered) *", {"loss_temperature": 1.0}),
    ("teacher: key points before the question (user_prefix, compact) *", {"teacher_placement": "user_prefix"}),
    ("12 steps", {"max_steps": 12}),
    ("lr 1e-4", {"learning_rate": 1e-4}),
    ("teacher: full wording, user suffix", {"teacher_style": "full"}),
    ("teacher: compact, system message", {"teacher_placement": "system"}),
    ("D, seed 1 *", {"seed": 1}),
    ("lr 1e-3, seed 1 *", {"learning_rate": 1e-3, "seed": 1}),
    ("clip 0.05 token", {"clip": 0.05, "clip_mode": "token"}),
    ("rollout T 1.0 (loss T follows)", {"temperature": 1.0}),
    ("max_new_tokens 128 (training)", {"max_new_tokens": 128}),
    ("clip 0.05 entry, seed 1 *", {"clip": 0.05, "clip_mode": "entry", "seed": 1}),
    ("loss T 1.0, seed 1 *", {"loss_temperature": 1.0, "seed": 1}),
]


def _context(cfg: dict[str, Any]) -> tuple[str, str]:
    return cfg["teacher_placement"], cfg["teacher_style"]


def run_study(args: argparse.Namespace) -> None:
    import torch

    from rgsd.compare import _fresh_accelerate_state
    from rgsd.config import build_config
    from rgsd.demo import RECIPE
    from rgsd.demo_protocol import (
        Protocol,
        eval_sets,
        evaluate_set,
        paired,
        run_summary,
        shuffled_rubric_data,
        subset_data,
    )
    from rgsd.judges.regex_judge import RegexJudge
    from rgsd.models import load_model
    from rgsd.teacher_prompt import teacher_messages
    from rgsd.train.config import RGSDConfig
    from rgsd.train.trainer import train

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    proto = Protocol(train_prompts=args.train_prompts, samples=args.samples, seed=0)
    sets = eval_sets(proto)
    judge = RegexJudge()
    data = subset_data(sets["train"], out / "train_subset.jsonl")
    shuffled = shuffled_rubric_data(sets["train"], out / "train_shuffled.jsonl")
    start = time.perf_counter()
    base_model, tok = load_model(args.model)
    base = {k: evaluate_set(base_model, tok, ex, judge, proto, k) for k, ex in sets.items()}
    print(f"[ablate] base: train {base['train'].score:.3f}, held-out {base['heldout'].score:.3f} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    cond: dict[tuple[str, str], dict[str, Any]] = {}
    done = {json.loads(x)["name"] for x in (out / "rows.jsonl").read_text().splitlines()} \
        if (out / "rows.jsonl").exists() else set()
    rows = ROWS[: args.rows] if args.rows else ROWS
    for name, change in rows:
        if name in done:
            continue
        elapsed = time.perf_counter() - start
        if args.budget_s and elapsed > args.budget_s:
            print(f"[ablate] budget reached after {elapsed:.0f} s: skipping {name!r}", flush=True)
            continue
        t0 = time.perf_counter()
        row_cfg = {**BASE, **{k: v for k, v in change.items() if k not in ("shuffle",)}}
        ctx = _context(row_cfg)
        if ctx not in cond:  # conditioning gap of this teacher context on the training prompts
            with_r = evaluate_set(base_model, tok, sets["train"], judge, proto, "with_rubric",
                                  messages_fn=lambda ex, c=ctx: teacher_messages(ex, c[0], style=c[1]))
            cond[ctx] = {"score": with_r.score, "gap": paired(base["train"], with_r),
                         "mean_tokens": with_r.mean_tokens}
        run_dir = out / f"row{ROWS.index((name, change)):02d}"
        overrides = {"model": args.model, "data": str(shuffled if change.get("shuffle") else data),
                     "output_dir": str(run_dir), "probe_steps": row_cfg["max_steps"], "progress": False,
                     "generation_batch_size": args.gen_batch, **row_cfg}
        if args.steps_scale != 1.0:
            overrides["max_steps"] = max(1, int(round(row_cfg["max_steps"] * args.steps_scale)))
            overrides["probe_steps"] = overrides["max_steps"]
        cfg = build_config(RGSDConfig, RECIPE, overrides)
        _fresh_accelerate_state()
        train(cfg)
        trained, _ = load_model(str(run_dir / "final"))
        ev = {k: evaluate_set(trained, tok, ex, judge, proto, k) for k, ex in sets.items()}
        del trained
        row = {
            "name": name, "config": row_cfg | {"shuffled_rubrics": bool(change.get("shuffle"))},
            "train_gain": paired(base["train"], ev["train"]), "heldout_gain": paired(base["heldout"], ev["heldout"]),
            "train_score": ev["train"].score, "heldout_score": ev["heldout"].score,
            "mean_tokens": ev["train"].mean_tokens, "eos_rate": ev["train"].eos_rate,
            "conditioning": cond[ctx], "run": run_summary(run_dir), "wall_s": time.perf_counter() - t0,
        }
        with (out / "rows.jsonl").open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"[ablate] {name}: {fmt_row(row)} ({row['wall_s']:.0f} s)", flush=True)
    meta = {"base": {k: v.to_dict() for k, v in base.items()}, "protocol": proto.__dict__,
            "conditioning": {f"{k[0]}/{k[1]}": v for k, v in cond.items()},
            "wall_s": time.perf_counter() - start, "threads": args.threads}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def _ci(d: dict[str, Any] | None) -> str:
    if not d or d.get("mean") is None:
        return "n/a"
    return f"{d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"


def _f(v: Any, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def fmt_row(row: dict[str, Any]) -> str:
    return f"train {_ci(row['train_gain'])} held-out {_ci(row['heldout_gain'])}"


def table(out: Path) -> str:
    """The Markdown table of ``OUT/rows.jsonl``."""
    rows = [json.loads(x) for x in (out / "rows.jsonl").read_text().splitlines() if x.strip()]
    head = ("| row | train gain [95% CI] | held-out gain [95% CI] | cond. gap (train) | tokens | EOS | "
            "clipped pos. | clip-removed mass | sampled-token log q/p | div. 0-7 / 8-31 / 32+ | SI gap end |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        run = r["run"]
        div = run.get("divergence_by_position_step1") or {}
        gaps = run.get("si_gap") or []
        lines.append(
            f"| {r['name']} | {_ci(r['train_gain'])} | {_ci(r['heldout_gain'])} | "
            f"{_ci(r['conditioning']['gap'])} | {_f(r['mean_tokens'], '.0f')} | {_f(r['eos_rate'], '.2f')} | "
            f"{_f(run.get('clipped_position_share'), '.2f')} | {_f(run.get('clip_removed_share'), '.2f')} | "
            f"{_f(run.get('sampled_token_logratio'), '+.3f')} | "
            + " / ".join(_f(v, ".3f") for v in div.values()) + " | "
            + (_f(gaps[-1][1], "+.3f") if gaps else "n/a") + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/ablate")
    ap.add_argument("--model", default="smollm2-offline")
    ap.add_argument("--train-prompts", type=int, default=16)
    ap.add_argument("--samples", type=int, default=2, help="evaluation samples per prompt")
    ap.add_argument("--gen-batch", type=int, default=8, help="rollout generation batch size")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--rows", type=int, default=0, help="run only the first N rows (0 = all)")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="scale every row's steps (smoke tests)")
    ap.add_argument("--budget-s", type=float, default=0, help="start no row after this many seconds (0 = none)")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    logging.getLogger("rgsd").setLevel(logging.WARNING)
    if not args.table_only:
        run_study(args)
    print(table(Path(args.out)))


if __name__ == "__main__":
    main()
