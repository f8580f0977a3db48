"""Ablation study of the demo's RGSD setup: one row per configuration, paired gains with 95% CIs.

Every row trains RGSD from the same base model on the same prompts with the same seed (unless the row varies
the seed) and is evaluated with the same protocol (:mod:`rgsd.demo.protocol`: the first 16 demo training
prompts, which are also the training data, and the 16 held-out prompts; 2 samples per prompt at T 0.7, the
base model 6, 64 new tokens, regex judge). The base model and each teacher context's conditioning gap are
evaluated once per process. Each finished row is appended to ``OUT/rows.jsonl`` at once (its graded responses
to ``OUT/rowNN/eval_*.jsonl``), so a stopped study keeps its rows; ``--budget-s`` skips the rows that would
start after the budget. Several processes may share one ``--out`` (each row is claimed by one of them), which
is how the 2-core study in docs/ablations.md ran: two or three workers at one torch thread each.

    python bench/ablate_demo.py --out runs/ablate --threads 1 --ref-base-samples 16 &   # worker 1
    python bench/ablate_demo.py --out runs/ablate --threads 1 &                          # worker 2
    python bench/ablate_demo.py --out runs/ablate --table-only   # the table of a finished study, seeds pooled

Results depend on the torch thread count (float rounding changes the sampled tokens): rerun with
``--threads 1`` to reproduce docs/ablations.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
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
    ("lr 1e-4", {"learning_rate": 1e-4}),
    ("lr 1e-3 *", {"learning_rate": 1e-3}),
    ("clip 0.05 entry (the paper's tau) *", {"clip": 0.05, "clip_mode": "entry"}),
    ("clip 0.05 token", {"clip": 0.05, "clip_mode": "token"}),
    ("loss T 1.0 (untempered) *", {"loss_temperature": 1.0}),
    ("rollout T 1.0 (loss T follows)", {"temperature": 1.0}),
    ("12 steps", {"max_steps": 12}),
    ("max_new_tokens 128 (training)", {"max_new_tokens": 128}),
    ("teacher: full wording, user suffix", {"teacher_style": "full"}),
    ("teacher: compact, system message *", {"teacher_placement": "system"}),
    ("teacher: key points before the question (user_prefix, compact) *", {"teacher_placement": "user_prefix"}),
    ("beta 0 (forward KL)", {"beta": 0.0}),
    ("beta 1 (reverse KL) *", {"beta": 1.0}),
    ("16 prompts per step (all of them), 6 steps", {"per_device_train_batch_size": 16, "generation_batch_size": 16}),
    ("D, seed 1 *", {"seed": 1}),
    ("lr 1e-3, seed 1 *", {"learning_rate": 1e-3, "seed": 1}),
    ("clip 0.05 entry, seed 1 *", {"clip": 0.05, "clip_mode": "entry", "seed": 1}),
    ("loss T 1.0, seed 1 *", {"loss_temperature": 1.0, "seed": 1}),
    ("teacher: compact, system message, seed 1 *", {"teacher_placement": "system", "seed": 1}),
    ("teacher: user_prefix, seed 1 *", {"teacher_placement": "user_prefix", "seed": 1}),
    ("beta 1, seed 1 *", {"beta": 1.0, "seed": 1}),
    ("control: shuffled rubrics, seed 1", {"shuffle": True, "seed": 1}),
    ("48 steps (8x the demo's budget), probe every 12", {"max_steps": 48, "probe_steps": 12, "save_steps": 12,
                                                         "save_total_limit": None}),
    ("teacher: compact, system message, 12 steps *", {"teacher_placement": "system", "max_steps": 12}),
    ("teacher: compact, system message, 12 steps, seed 1 *", {"teacher_placement": "system", "max_steps": 12,
                                                               "seed": 1}),
    ("control: shuffled rubrics, system message, 12 steps", {"shuffle": True, "teacher_placement": "system",
                                                              "max_steps": 12}),
]


def _write_records(records: list[dict[str, Any]], path: Path) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def _done(out: Path) -> set[str]:
    rows = out / "rows.jsonl"
    return {json.loads(x)["name"] for x in rows.read_text().splitlines() if x.strip()} if rows.exists() else set()


def _claim(run_dir: Path) -> bool:
    """Claim a row for this process (a ``.claim`` file with its pid); a claim whose process is gone is taken over."""
    run_dir.mkdir(parents=True, exist_ok=True)
    claim = run_dir / ".claim"
    try:
        fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            os.kill(int(claim.read_text() or 0), 0)
            return False  # its worker is alive
        except (ProcessLookupError, ValueError):
            claim.write_text(str(os.getpid()))
            return True
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def _context(cfg: dict[str, Any]) -> tuple[str, str]:
    return cfg["teacher_placement"], cfg["teacher_style"]


def run_study(args: argparse.Namespace) -> None:
    import torch

    from rgsd.demo import RECIPE
    from rgsd.demo.protocol import (
        Protocol,
        eval_sets,
        evaluate_set,
        paired,
        run_summary,
        shuffled_rubric_data,
        subset_data,
    )
    from rgsd.judges.regex_judge import RegexJudge
    from rgsd.method.teacher_prompt import teacher_messages
    from rgsd.models import load_model
    from rgsd.options import build
    from rgsd.train.config import RGSDConfig
    from rgsd.train.trainer import train

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    proto = Protocol(train_prompts=args.train_prompts, samples=args.samples, base_samples=args.base_samples, seed=0)
    sets = eval_sets(proto)
    judge = RegexJudge()
    data = subset_data(sets["train"], out / "train_subset.jsonl")
    shuffled = shuffled_rubric_data(sets["train"], out / "train_shuffled.jsonl")
    start = time.perf_counter()
    base_model, tok = load_model(args.model)
    base = {k: evaluate_set(base_model, tok, ex, judge, proto, k, samples=proto.base_samples)
            for k, ex in sets.items()}
    for k, e in base.items():
        _write_records(e.records, out / f"base_{k}.jsonl")
    print(f"[ablate] base: train {base['train'].score:.3f}, held-out {base['heldout'].score:.3f} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    if args.ref_base_samples and not (out / "base_ref_heldout.jsonl").exists():
        # A second, larger base sample with other seeds: how far the protocol's base draw sits from the base
        # model's expected score (an offset shared by every row's gain).
        for k, ex in sets.items():
            ref = evaluate_set(base_model, tok, ex, judge, proto, f"ref_{k}", samples=args.ref_base_samples)
            _write_records(ref.records, out / f"base_ref_{k}.jsonl")
            print(f"[ablate] reference base ({args.ref_base_samples} samples), {k}: {ref.score:.3f}", flush=True)
    cond: dict[tuple[str, str], dict[str, Any]] = {}
    rows = ROWS[: args.rows] if args.rows else ROWS
    shard_k, shard_n = (int(x) for x in args.shard.split("/"))
    only = {int(x) for x in args.only.split(",")} if args.only else set()
    for name, change in rows:
        idx = ROWS.index((name, change))
        if idx not in only if only else idx % shard_n != shard_k:
            continue
        elapsed = time.perf_counter() - start
        if args.budget_s and elapsed > args.budget_s:
            print(f"[ablate] budget reached after {elapsed:.0f} s: skipping {name!r}", flush=True)
            continue
        run_dir = out / f"row{idx:02d}"
        if name in _done(out) or not _claim(run_dir):  # finished, or another worker on this --out runs it
            continue
        t0 = time.perf_counter()
        row_cfg = {**BASE, **{k: v for k, v in change.items() if k not in ("shuffle",)}}
        ctx = _context(row_cfg)
        if ctx not in cond:  # conditioning gap of this teacher context on the training prompts
            with_r = evaluate_set(base_model, tok, sets["train"], judge, proto, "with_rubric",
                                  messages_fn=lambda ex, c=ctx: teacher_messages(ex, c[0], style=c[1]))
            cond[ctx] = {"score": with_r.score, "gap": paired(base["train"], with_r),
                         "mean_tokens": with_r.mean_tokens}
        overrides = {"model_name_or_path": args.model, "dataset_name": str(shuffled if change.get("shuffle") else data),
                     "output_dir": str(run_dir), "probe_steps": row_cfg["max_steps"], "progress": False,
                     "generation_batch_size": args.gen_batch, **row_cfg}  # a row's own probe_steps wins
        if args.steps_scale != 1.0:
            overrides["max_steps"] = max(1, int(round(row_cfg["max_steps"] * args.steps_scale)))
            overrides["probe_steps"] = overrides["max_steps"]
            if row_cfg.get("save_steps"):
                overrides["save_steps"] = max(1, int(round(row_cfg["save_steps"] * args.steps_scale)))
        cfg = build(RGSDConfig, RECIPE, overrides)
        train(cfg)
        curve = []  # rows that save intermediate checkpoints: the gains along the run
        for ckpt in sorted((run_dir / "checkpoints").glob("step-*")) if row_cfg.get("save_steps") else []:
            step = int(ckpt.name.split("-")[1])
            if step < overrides["max_steps"]:
                mid, _ = load_model(str(ckpt / "model"))
                mev = {k: evaluate_set(mid, tok, ex, judge, proto, k) for k, ex in sets.items()}
                curve.append({"step": step, **{f"{k}_gain": paired(base[k], mev[k]) for k in mev}})
                del mid
        trained, _ = load_model(str(run_dir / "final"))
        ev = {k: evaluate_set(trained, tok, ex, judge, proto, k) for k, ex in sets.items()}
        del trained
        for k, e in ev.items():  # the graded responses, for reading what a row taught
            _write_records(e.records, run_dir / f"eval_{k}.jsonl")
        row = {
            "name": name, "config": row_cfg | {"shuffled_rubrics": bool(change.get("shuffle"))},
            "train_gain": paired(base["train"], ev["train"]), "heldout_gain": paired(base["heldout"], ev["heldout"]),
            "train_score": ev["train"].score, "heldout_score": ev["heldout"].score,
            "mean_tokens": ev["train"].mean_tokens, "eos_rate": ev["train"].eos_rate,
            "conditioning": cond[ctx], "run": run_summary(run_dir), "wall_s": time.perf_counter() - t0,
            "curve": curve,
        }
        with (out / "rows.jsonl").open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"[ablate] {name}: {fmt_row(row)} ({row['wall_s']:.0f} s)", flush=True)
    meta_path = out / "meta.json"  # shared by the workers: each adds the teacher contexts it measured
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"conditioning": {}}
    meta.update({"base": {k: v.to_dict() for k, v in base.items()}, "protocol": proto.__dict__,
                 "threads": args.threads})
    meta["conditioning"].update({f"{k[0]}/{k[1]}": v for k, v in cond.items()})
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")


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
    if not (out / "rows.jsonl").exists():
        return f"(no finished rows in {out})"
    order = {name: i for i, (name, _) in enumerate(ROWS)}
    rows = [json.loads(x) for x in (out / "rows.jsonl").read_text().splitlines() if x.strip()]
    rows.sort(key=lambda r: order.get(r["name"], len(order)))
    ref = (out / "base_ref_train.jsonl").exists()
    head = ("| row | train gain [95% CI] | held-out gain [95% CI] | "
            + ("train / held-out gain vs the reference base | " if ref else "")
            + "cond. gap (train) | tokens | EOS | "
            "clipped pos. | clip-removed mass | sampled-token log q/p | div. 0-7 / 8-31 / 32+ | SI gap end |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        run = r["run"]
        div = run.get("divergence_by_position_step1") or {}
        gaps = run.get("si_gap") or []
        vs_ref = ""
        if ref:
            row_dir = out / f"row{order.get(r['name'], -1):02d}"
            vs_ref = " / ".join(_seed_pooled(out, "base_ref", [row_dir], k) for k in ("train", "heldout")) + " | "
        lines.append(
            f"| {r['name']} | {_ci(r['train_gain'])} | {_ci(r['heldout_gain'])} | {vs_ref}"
            f"{_ci(r['conditioning']['gap'])} | {_f(r['mean_tokens'], '.0f')} | {_f(r['eos_rate'], '.2f')} | "
            f"{_f(run.get('clipped_position_share'), '.2f')} | {_f(run.get('clip_removed_share'), '.2f')} | "
            f"{_f(run.get('sampled_token_logratio'), '+.3f')} | "
            + " / ".join(_f(v, ".3f") for v in div.values()) + " | "
            + (_f(gaps[-1][1], "+.3f") if gaps else "n/a") + " |")
    return "\n".join(lines)


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def pooled_table(out: Path) -> str:
    """Rows run with several seeds: per-prompt gains averaged over the seeds, with a paired bootstrap 95% CI."""
    if not (out / "rows.jsonl").exists():
        return ""
    order = {name: i for i, (name, _) in enumerate(ROWS)}
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in _read(out / "rows.jsonl"):
        key = json.dumps({k: v for k, v in r["config"].items() if k != "seed"}, sort_keys=True)
        groups.setdefault(key, []).append(r)
    bases = ["base"] + (["base_ref"] if (out / "base_ref_train.jsonl").exists() else [])
    head = ("| configuration (seed-0 row) | seeds | train gain, seeds pooled [95% CI] | held-out gain, pooled |"
            + (" train gain vs the reference base | held-out vs the reference base |" if len(bases) > 1 else ""))
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for rows in groups.values():
        rows = [r for r in rows if (out / f"row{order.get(r['name'], -1):02d}" / "eval_train.jsonl").exists()]
        if len(rows) < 2:
            continue
        dirs = [out / f"row{order[r['name']]:02d}" for r in rows]
        cells = [_seed_pooled(out, base, dirs, k) for base in bases for k in ("train", "heldout")]
        first = min(rows, key=lambda r: order.get(r["name"], len(order)))
        lines.append(f"| {first['name']} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def _seed_pooled(out: Path, base: str, row_dirs: list[Path], split: str) -> str:
    """Per-prompt gain against ``OUT/{base}_{split}.jsonl``, averaged over the rows' saved responses, with CI."""
    from rgsd.evaluate.paired import prompt_means
    from rgsd.stats import paired_summary

    files = [d / f"eval_{split}.jsonl" for d in row_dirs]
    if not (out / f"{base}_{split}.jsonl").exists() or not all(f.exists() for f in files):
        return "n/a"
    ref = prompt_means(_read(out / f"{base}_{split}.jsonl"))
    per_seed = [prompt_means(_read(f)) for f in files]
    ids = sorted(set(ref).intersection(*per_seed))
    return _ci(paired_summary([sum(m[i] for m in per_seed) / len(per_seed) - ref[i] for i in ids]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/ablate")
    ap.add_argument("--model", default="smollm2-offline")
    ap.add_argument("--train-prompts", type=int, default=16)
    ap.add_argument("--samples", type=int, default=2, help="evaluation samples per prompt")
    ap.add_argument("--base-samples", type=int, default=6, help="evaluation samples per prompt of the base model")
    ap.add_argument("--ref-base-samples", type=int, default=0,
                    help="also sample the base model N times per prompt under other seeds (base_ref_*.jsonl) and "
                         "add each row's gain against that larger base sample to the table (0 = off)")
    ap.add_argument("--gen-batch", type=int, default=8, help="rollout generation batch size")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--rows", type=int, default=0, help="run only the first N rows (0 = all)")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="scale every row's steps (smoke tests)")
    ap.add_argument("--budget-s", type=float, default=0, help="start no row after this many seconds (0 = none)")
    ap.add_argument("--shard", default="0/1", metavar="K/N",
                    help="run only the rows whose index is K modulo N (start N processes on one --out to split a study)")
    ap.add_argument("--only", default="", help="comma-separated row indices to run (overrides --shard)")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    logging.getLogger("rgsd").setLevel(logging.WARNING)
    if not args.table_only:
        run_study(args)
    print(table(Path(args.out)))
    pooled = pooled_table(Path(args.out))
    if pooled:
        print("\n" + pooled)


if __name__ == "__main__":
    main()
