"""The whole comparison: train (or read) both runs, evaluate base, RGSD and GRPO with one judge, write the report."""

from __future__ import annotations

import copy
import dataclasses
import gc
import json
import logging
from pathlib import Path
from typing import Any

from rgsd.compare.options import CompareArgs, CompareOptions
from rgsd.compare.plan import MATCHED, judge_spec, plan_runs, prompts_per_step, read_run, same_judge, saved
from rgsd.compare.table import build_rows, plot, render_table
from rgsd.method.teacher_prompt import CONTROLS

log = logging.getLogger(__name__)


def evaluate_model(path: str, examples: list, judge: Any, run: CompareArgs, out: Path) -> dict:
    """``run.samples`` responses per prompt (greedy unless a temperature is set), graded; the summary."""
    import torch

    from rgsd.evaluate.run import evaluate
    from rgsd.evaluate.sampling import sample_responses, sample_summary
    from rgsd.models import load_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tok = load_model(path, dtype=torch.bfloat16 if device == "cuda" else torch.float32, device=device)
    reps, rollouts = sample_responses(model, tok, examples, run.samples, temperature=run.temperature,
                                      max_new_tokens=run.max_new_tokens, batch_size=run.batch_size, seed=run.seed,
                                      progress=f"generate {Path(path).name}")
    del model
    gc.collect()
    result = evaluate(reps, [r.text for r in rollouts], judge,
                      response_tokens=[len(r.response_ids) for r in rollouts], seed=run.seed,
                      progress=f"judge {Path(path).name}")
    if run.samples > 1:
        result.summary.update(sample_summary(result.records, run.samples, run.temperature))
    result.write(out, report=False)
    return result.summary


def _runs(opts: CompareOptions, out: Path, notes: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Both runs (read, or trained matched; with every control run) and the values they share."""
    run = opts.run
    if run.rgsd_run:
        runs = {"rgsd": read_run(run.rgsd_run), "grpo": read_run(run.grpo_run)}
        rc, gc_ = runs["rgsd"]["config"], runs["grpo"]["config"]
        matched = {}
        for name, a, b in [(r, saved(rc, r), saved(gc_, g)) for r, g in MATCHED.items()] + [
                ("prompts_per_step", prompts_per_step(rc), prompts_per_step(gc_))]:
            matched[name] = a
            if a != b:
                notes.append(f"NOT MATCHED: {name} differs between the runs (RGSD {a!r}, GRPO {b!r}).")
        return runs, matched
    from rgsd.grpo.trainer import train_grpo
    from rgsd.train.trainer import train

    rgsd_cfg, grpo_cfg, changed = plan_runs(opts, out)
    matched = {name: getattr(rgsd_cfg, name) for name in MATCHED}
    matched["prompts_per_step"] = grpo_cfg.prompts_per_step()
    if changed:
        notes.append("GRPO config values replaced to match RGSD: " + "; ".join(changed) + ".")
    log.info("compare: training RGSD (%d steps) into %s", rgsd_cfg.max_steps, rgsd_cfg.output_dir)
    runs = {"rgsd": read_run(train(rgsd_cfg))}
    log.info("compare: training GRPO (%d steps) into %s", grpo_cfg.max_steps, grpo_cfg.output_dir)
    for control in opts.run.control:  # the same run, the teacher reading a control context
        c_cfg = copy.deepcopy(rgsd_cfg)
        c_cfg.teacher_context, c_cfg.output_dir = CONTROLS[control], str(out / f"control-{control}")
        log.info("compare: training control %s into %s", control, c_cfg.output_dir)
        runs[control] = read_run(train(c_cfg))
    # rgsd train opens no Accelerator (torch.distributed directly), so TRL's is the process's first
    runs["grpo"] = read_run(train_grpo(grpo_cfg))
    return runs, matched


def _mean_summary(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """One model's evaluation summaries over training seeds: each number the mean over seeds."""
    if len(summaries) == 1:
        return summaries[0]
    out = dict(summaries[0])
    for key, value in summaries[0].items():
        vals = [s.get(key) for s in summaries]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and all(
                isinstance(v, (int, float)) for v in vals):
            out[key] = sum(vals) / len(vals)
    return out


def run_compare(opts: CompareOptions) -> dict[str, Any]:
    """Run the comparison; write ``compare.md``, ``compare.json`` and the plots to ``opts.run.out``; return the report.

    Raises ``SystemExit`` (with the reason) when neither finished runs nor data and steps are given.
    """
    from rgsd.data.loaders import load_examples
    from rgsd.judges.options import build_judge, prices

    run = opts.run
    if (run.rgsd_run is None) != (run.grpo_run is None):
        raise SystemExit("rgsd compare: give both --rgsd-run and --grpo-run (finished runs), or neither")
    if not run.rgsd_run and (not opts.data.dataset_name or not run.max_steps):
        raise SystemExit("rgsd compare: --dataset-name and --max-steps are required unless --rgsd-run/--grpo-run "
                         "given")
    out = Path(run.out)
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    seeds = run.seeds or [run.seed]
    per_seed = []  # (seed, runs) per training seed
    for k in seeds:
        opts_k = dataclasses.replace(opts, run=dataclasses.replace(run, seed=k))
        runs_k, matched = _runs(opts_k, out if len(seeds) == 1 else out / f"seed-{k}", notes if k == seeds[0] else [])
        per_seed.append((k, runs_k))
    runs = per_seed[0][1]
    if len(seeds) > 1:
        notes.append(f"Training seeds {', '.join(map(str, seeds))}: scores are means over seeds; costs are the "
                     f"first seed's runs; the paired differences pool seeds and prompts.")
    gc_ = runs["grpo"]["config"]
    trained = {"judge": gc_.get("judge", "regex"), "judge_model": gc_.get("judge_model"),
               "judge_base_url": saved(gc_, "judge_base_url"), "judge_mode": gc_.get("judge_mode")}
    train_spec = judge_spec(trained["judge"], trained["judge_model"], trained["judge_base_url"],
                            trained["judge_mode"])
    if opts.eval_judge.get("judge") is None and opts.judge.judge is None:  # nothing given: GRPO's own judge
        eval_opts = opts.eval_judge_options({k: v for k, v in trained.items() if v is not None})
        notes.append("No --eval-judge (nor --judge) given: evaluating with GRPO's training judge.")
    else:
        eval_opts = opts.eval_judge_options()
        if opts.eval_judge.get("judge") is None:
            notes.append("No --eval-judge given: evaluating with the same judge as --judge.")
    eval_spec = judge_spec(eval_opts.judge, eval_opts.judge_model, eval_opts.judge_base_url, eval_opts.judge_mode)
    same = same_judge(eval_spec, train_spec)
    if train_spec["judge"] == "regex":
        n = runs["grpo"]["cost"].rollouts
        notes.append(f"GRPO trained with the offline regex judge, which sends no requests: its 'training judge "
                     f"calls' read 0. An LLM judge would have graded all {n} rollouts: {n} calls in batched mode, "
                     f"{n} x criteria in per-criterion mode.")
    if same:
        notes.append("Evaluation judge = GRPO's training judge: this favours GRPO (its reward hacking counts "
                     "as gain).")
    base_model = matched.get("model_name_or_path") or run.model_name_or_path
    notes.append(f"Matched between the runs: {', '.join(f'{k}={v!r}' for k, v in matched.items())}.")
    notes.append("Gain and cost per point use the normalized rubric score, in percentage points (pp); "
                 "'n/a' where the gain is <= 0. Wall time is each run's training loop; std: bootstrap std.")

    ev = opts.eval_data
    eval_examples = load_examples(ev.dataset_name, **ev.source_kwargs()).examples
    judge = build_judge(eval_opts, out, cache_name="eval_judge_cache.sqlite")
    if getattr(judge, "note", None):
        notes.append(judge.note)
    names = ["rgsd", "grpo", *run.control]
    log.info("compare: evaluating base (%s) on %d examples", base_model, len(eval_examples))
    summaries = {"base": evaluate_model(base_model, eval_examples, judge, dataclasses.replace(run, seed=seeds[0]),
                                        out / "eval" / "base")}
    dirs: dict[str, list[Path]] = {name: [] for name in names}
    for k, runs_k in per_seed:
        for name in names:
            d = out / "eval" / (name if len(seeds) == 1 else f"{name}-seed{k}")
            log.info("compare: evaluating %s (%s) on %d examples", name, runs_k[name]["final"], len(eval_examples))
            got = evaluate_model(runs_k[name]["final"], eval_examples, judge, dataclasses.replace(run, seed=k), d)
            summaries.setdefault(name, []).append(got)
            dirs[name].append(d)
    for name in names:
        summaries[name] = _mean_summary(summaries[name])
    costs = {k: runs[k]["cost"] for k in names}
    rows = build_rows(summaries, costs, same)
    if opts.judge.judge_price_in is not None or opts.judge.judge_prices:  # the training judge's cost in dollars
        from rgsd.costs import add_money_to_rows

        try:
            notes.append(add_money_to_rows(rows, costs, train_spec.get("model"), prices(opts.judge)))
        except ValueError as err:  # a bad price table must not lose a finished comparison
            notes.append(f"No judge cost in dollars: {err}")
    table = render_table(rows, same, notes)
    # paired differences over prompts with a bootstrap 95% CI
    from rgsd.evaluate.paired import compare_dirs
    from rgsd.evaluate.paired import render as render_paired

    paired = {n: compare_dirs(out / "eval" / "base", dirs[n], seed=seeds[0]) for n in names}
    minus = {c: compare_dirs(dirs[c], dirs["rgsd"], seed=seeds[0]) for c in run.control}
    table += "".join(f"\n\n**{n.upper() if n in ('rgsd', 'grpo') else 'control ' + n} - base**, "
                     f"{render_paired(p)}\n" for n, p in paired.items())
    table += "".join(f"\n\n**RGSD - control {c}** (same seeds), {render_paired(p)}\n" for c, p in minus.items())
    plots = plot(rows, out)
    images = "".join(f"![{p}]({p})\n" for p in plots)
    (out / "compare.md").write_text("# RGSD vs judge-based GRPO\n\n" + table + "\n" + images)
    report = {"rows": rows, "eval_judge": eval_spec, "training_judge": train_spec,
              "eval_judge_is_training_judge": same, "matched": matched, "notes": notes, "plots": plots,
              "runs": {k: {"dir": v["dir"], "final": v["final"]} for k, v in runs.items()},
              "eval_data": ev.dataset_name, "eval_examples": len(eval_examples), "paired": paired, "seeds": seeds,
              "control_gain": {c: paired[c]["diff"] for c in run.control},
              "rgsd_minus_control": {c: m["diff"] for c, m in minus.items()}}
    (out / "compare.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(table)
    print(f"written: {out / 'compare.md'}, {out / 'compare.json'}, " + ", ".join(str(out / p) for p in plots))
    return report
