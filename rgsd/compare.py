"""``rgsd compare``: RGSD vs judge-based GRPO on matched prompts and steps, judged by one evaluation judge.

Runs (or reads, with ``--rgsd-run`` / ``--grpo-run``) an RGSD run and a GRPO run on the same data, steps,
prompts per step, seed and response length; generates with the base model and both final models on the
evaluation set; grades all three with the same evaluation judge; and writes ``compare.md``,
``compare.json`` and two plots (rubric score against wall time and against training-time judge calls).

Cost per point gained is measured on the normalized rubric score in percentage points (pp); it is n/a when
the gain is <= 0. When the evaluation judge is GRPO's training judge the table says so: a policy trained
against a judge learns its blind spots, so that setting favours GRPO.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
from pathlib import Path
from typing import Any

from rgsd.data.source_args import add_source_args

log = logging.getLogger(__name__)

# Fields both runs must share so that the comparison is step for step (GRPO takes RGSD's values): RGSD name
# -> GRPO name (GRPO keeps TRL's names). The prompts per step are matched too, by grpo_matched(): RGSD's
# per_device_batch_size counts prompts, TRL's per_device_train_batch_size counts completions.
MATCHED = {"data": "data", "format": "format", "polarity": "polarity", "max_examples": "max_examples",
           "model": "model", "max_steps": "max_steps", "seed": "seed", "max_new_tokens": "max_completion_length",
           "max_prompt_tokens": "max_prompt_tokens", "temperature": "temperature"}


def prompts_per_step(config: dict[str, Any]) -> int | None:
    """Prompts per optimizer step (per process) of a saved RGSD or GRPO run config."""
    if "per_device_train_batch_size" in config:
        g = config.get("num_generations") or 1
        return config["per_device_train_batch_size"] * config.get("gradient_accumulation_steps", 1) // g
    if "per_device_batch_size" in config:
        return config["per_device_batch_size"] * config.get("gradient_accumulation_steps", 1)
    return None


def grpo_matched(rgsd_cfg: Any, num_generations: int, micro: int | None = None) -> dict[str, Any]:
    """GRPO field values that match ``rgsd_cfg`` step for step (same prompts per step, steps, lengths, ...).

    ``micro`` (GRPO's per_device_train_batch_size, in completions) is kept when it divides the step's
    completions, so a GRPO recipe's memory-sized micro-batch survives the matching.
    """
    values = {g: getattr(rgsd_cfg, r) for r, g in MATCHED.items()}
    completions = rgsd_cfg.per_device_batch_size * rgsd_cfg.gradient_accumulation_steps * num_generations
    if micro and completions % micro == 0:
        values.update(per_device_train_batch_size=micro, gradient_accumulation_steps=completions // micro)
    else:
        values.update(per_device_train_batch_size=rgsd_cfg.per_device_batch_size * num_generations,
                      gradient_accumulation_steps=rgsd_cfg.gradient_accumulation_steps)
    return values


# ---- judges ------------------------------------------------------------------------------------------------
def judge_spec(kind: str, model: str | None, base_url: str | None, mode: str | None) -> dict[str, Any]:
    """A judge description (what the table shows and what sameness is decided on)."""
    if kind == "regex":
        return {"judge": "regex", "model": None, "base_url": None, "mode": None}
    return {"judge": kind, "model": model, "base_url": base_url, "mode": mode}


def same_judge(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same grader (kind, model and endpoint); the request mode does not change whose blind spots they are."""
    return (a["judge"], a["model"], a["base_url"]) == (b["judge"], b["model"], b["base_url"])


def build_eval_judge(spec: dict[str, Any], api_key_env: str, concurrency: int, cache: Path | None) -> Any:
    from rgsd.judges import make_judge

    return make_judge(spec["judge"], spec["model"], cache_path=cache, base_url=spec["base_url"],
                      api_key_env=api_key_env, mode=spec["mode"], concurrency=concurrency)


# ---- runs --------------------------------------------------------------------------------------------------
def _build(cls: type, config: str | None, values: dict[str, Any]) -> Any:
    from rgsd.config import build_config

    return build_config(cls, config, values)  # unknown fields (a typo in --*-set) are errors


def plan_runs(args: argparse.Namespace, out: Path) -> tuple[Any, Any, list[str]]:
    """The RGSD and GRPO configs with the matched fields forced equal; returns them and what was changed."""
    from rgsd.grpo.config import GRPORunConfig
    from rgsd.train.config import RGSDConfig

    common = {"data": args.data, "model": args.model, "max_steps": args.steps, "seed": args.seed}
    if args.format:
        common["format"] = args.format
    from rgsd.data.source_args import source_kwargs

    src = source_kwargs(args)  # training data source options become the same config fields of both runs
    for key, value in {"data_split": src["split"], "data_config_name": src["config_name"],
                       **{f"{k}_column": v for k, v in (src["columns"] or {}).items()}}.items():
        if value is not None:
            common[key] = value
    rgsd_values = {**_overrides(args.rgsd_set), **common, "output_dir": str(out / "rgsd")}
    rgsd_cfg = _build(RGSDConfig, args.rgsd_config, rgsd_values)
    judge = {"judge": args.judge or "regex", "judge_model": args.judge_model, "base_url": args.base_url,
             "api_key_env": args.api_key_env, "judge_mode": args.judge_mode}
    grpo_values = {**_overrides(args.grpo_set), **judge, **common, "output_dir": str(out / "grpo")}
    grpo_cfg = _build(GRPORunConfig, args.grpo_config, grpo_values)
    changed = []
    explicit = set(_overrides(args.grpo_set))
    for name, want in grpo_matched(rgsd_cfg, grpo_cfg.num_generations, grpo_cfg.per_device_train_batch_size).items():
        if getattr(grpo_cfg, name) != want:
            if name not in common and (args.grpo_config or name in explicit):  # the user asked otherwise
                changed.append(f"{name}: {getattr(grpo_cfg, name)!r} -> {want!r}")
            setattr(grpo_cfg, name, want)
    grpo_cfg.validate()
    return rgsd_cfg, grpo_cfg, changed


def _overrides(items: list[str] | None) -> dict[str, str]:
    """``["max_steps=4", "max-new-tokens=32"]`` -> field values for an inner run (``--rgsd-set``/``--grpo-set``)."""
    from rgsd.config import ConfigError

    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--rgsd-set/--grpo-set take FIELD=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = value
    return out


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """A finished run folder: its config (as a dict), cost record and final model path."""
    import yaml

    from rgsd.costs import CostRecord

    run = Path(run_dir)
    for need in ("config.yaml", "costs.json", "final"):
        if not (run / need).exists():
            raise FileNotFoundError(f"{run}: not a finished run (missing {need})")
    return {"dir": str(run), "config": yaml.safe_load((run / "config.yaml").read_text()) or {},
            "cost": CostRecord.load(run / "costs.json"), "final": str(run / "final")}


# ---- evaluation --------------------------------------------------------------------------------------------
def evaluate_model(path: str, examples: list, judge: Any, args: argparse.Namespace, out: Path) -> dict:
    """``--samples`` responses per prompt (greedy unless --temperature), graded; the evaluation's summary."""
    import torch

    from rgsd.evaluate.run import evaluate
    from rgsd.evaluate.sampling import sample_responses, sample_summary
    from rgsd.models import load_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tok = load_model(path, dtype=torch.bfloat16 if device == "cuda" else torch.float32, device=device)
    reps, rollouts = sample_responses(model, tok, examples, args.samples, temperature=args.temperature,
                                      max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed)
    del model
    gc.collect()
    result = evaluate(reps, [r.text for r in rollouts], judge,
                      response_tokens=[len(r.response_ids) for r in rollouts], seed=args.seed)
    if args.samples > 1:
        result.summary.update(sample_summary(result.records, args.samples, args.temperature))
    result.write(out, report=False)
    return result.summary


# ---- table and plots ---------------------------------------------------------------------------------------
def _pp(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _per_pp(cost: float, gain_pp: float | None) -> str:
    if gain_pp is None or gain_pp <= 0:
        return "n/a (no gain)"
    return f"{cost / gain_pp:.3g}"


def _gain(name: str, value: float | None, base: float | None) -> float | None:
    return None if name == "base" or value is None or base is None else 100 * (value - base)


def build_rows(summaries: dict[str, dict], costs: dict[str, Any], same: bool) -> list[dict[str, Any]]:
    """One row per model (base, rgsd, grpo) with every column of the table."""
    base = summaries["base"]
    rows = []
    for name in ("base", "rgsd", "grpo"):
        s, c = summaries[name], costs.get(name)
        norm, hb = s.get("score_normalized"), s.get("score")
        gain = _gain(name, norm, base.get("score_normalized"))
        row = {"model": name, "normalized": norm, "normalized_std": s.get("score_normalized_std"),
               "healthbench": hb, "healthbench_std": s.get("score_std"), "gain_normalized_pp": gain,
               "gain_healthbench_pp": _gain(name, hb, base.get("score")),
               "mean_response_tokens": s.get("mean_response_tokens"), "eval_failures": s.get("n_failures")}
        if c is not None:
            gained = gain is not None and gain > 0
            row.update(judge_calls=c.judge_calls, rollouts=c.rollouts, generated_tokens=c.generated_tokens,
                       wall_time=c.wall_time, prompts_seen=c.prompts_seen,
                       judge_calls_per_pp=c.judge_calls / gain if gained else None,
                       wall_s_per_pp=c.wall_time / gain if gained else None)
        row["eval_judge_is_training_judge"] = {"base": None, "rgsd": False, "grpo": same}[name]
        rows.append(row)
    return rows


def render_table(rows: list[dict[str, Any]], same: bool, notes: list[str]) -> str:
    head = (
        "| model | rubric score, normalized (pp ± std) | gain (pp) | HealthBench score (pp ± std) "
        "| gain (pp) | mean response length (tokens) | training judge calls | rollouts | generated tokens "
        "| wall time (s) | judge calls per pp | wall s per pp | eval judge = training judge |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        base = r["model"] == "base"
        flag = {"base": "-", "rgsd": "n/a (RGSD uses no judge)",
                "grpo": "YES: favours GRPO (reward hacking goes unseen)" if same else "no"}[r["model"]]
        gain, gain_hb = r["gain_normalized_pp"], r["gain_healthbench_pp"]
        cells = [
            r["model"],
            f"{_pp(r['normalized'])} ± {_pp(r['normalized_std'])}",
            "-" if base else ("n/a" if gain is None else f"{gain:+.1f}"),
            f"{_pp(r['healthbench'])} ± {_pp(r['healthbench_std'])}",
            "-" if base else ("n/a" if gain_hb is None else f"{gain_hb:+.1f}"),
            "n/a" if r["mean_response_tokens"] is None else f"{r['mean_response_tokens']:.1f}",
            "-" if base else str(r["judge_calls"]),
            "-" if base else str(r["rollouts"]),
            "-" if base else str(r["generated_tokens"]),
            "-" if base else f"{r['wall_time']:.1f}",
            "-" if base else _per_pp(r["judge_calls"], gain),
            "-" if base else _per_pp(r["wall_time"], gain),
            flag,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    if same:
        text = (
            "**The evaluation judge is the same judge GRPO trained against. This favours GRPO: its reward "
            "hacking of that judge counts as gain here. Use a different (stronger) --eval-judge for a fair "
            "comparison.**\n\n" + text
        )
    return text + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def plot(rows: list[dict[str, Any]], out: Path) -> list[str]:
    """Rubric score (normalized, pp) against wall time and against training judge calls; base at x = 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = next(r for r in rows if r["model"] == "base")
    files = []
    for key, label, name in (("wall_time", "training wall time (s)", "score_vs_wall_time.png"),
                             ("judge_calls", "training-time judge calls", "score_vs_judge_calls.png")):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for r in rows:
            if r["model"] == "base" or r["normalized"] is None or base["normalized"] is None:
                continue
            style = "o-" if r["model"] == "rgsd" else "s--"
            ys = [100 * base["normalized"], 100 * r["normalized"]]
            ax.plot([0, r[key]], ys, style, label=r["model"].upper())
        if base["normalized"] is not None:
            ax.plot([0], [100 * base["normalized"]], "k^", label="base")
        ax.set_xlabel(label)
        ax.set_ylabel("rubric score, normalized (pp)")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        files.append(name)
    return files


# ---- command -----------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    from rgsd.data.loaders import load_examples

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    runs: dict[str, dict[str, Any]] = {}
    matched: dict[str, Any] = {}
    if (args.rgsd_run is None) != (args.grpo_run is None):
        raise SystemExit("rgsd compare: give both --rgsd-run and --grpo-run (finished runs), or neither")
    if args.rgsd_run:
        runs["rgsd"], runs["grpo"] = read_run(args.rgsd_run), read_run(args.grpo_run)
        rc, gc = runs["rgsd"]["config"], runs["grpo"]["config"]
        for name, a, b in [(r, rc.get(r), gc.get(g)) for r, g in MATCHED.items()] + [
                ("prompts_per_step", prompts_per_step(rc), prompts_per_step(gc))]:
            matched[name] = a
            if a != b:
                notes.append(f"NOT MATCHED: {name} differs between the runs (RGSD {a!r}, GRPO {b!r}).")
    else:
        from rgsd.grpo.trainer import train_grpo
        from rgsd.train.trainer import train

        rgsd_cfg, grpo_cfg, changed = plan_runs(args, out)
        matched = {name: getattr(rgsd_cfg, name) for name in MATCHED}
        matched["prompts_per_step"] = grpo_cfg.prompts_per_step()
        if changed:
            notes.append("GRPO config values replaced to match RGSD: " + "; ".join(changed) + ".")
        log.info("compare: training RGSD (%d steps) into %s", rgsd_cfg.max_steps, rgsd_cfg.output_dir)
        runs["rgsd"] = read_run(train(rgsd_cfg))
        log.info("compare: training GRPO (%d steps) into %s", grpo_cfg.max_steps, grpo_cfg.output_dir)
        # rgsd train opens no Accelerator (torch.distributed directly), so TRL's is the process's first
        runs["grpo"] = read_run(train_grpo(grpo_cfg))
    gc_ = runs["grpo"]["config"]
    train_spec = judge_spec(gc_.get("judge", "regex"), gc_.get("judge_model"), gc_.get("base_url"),
                            gc_.get("judge_mode"))
    if args.eval_judge is None and args.judge is None:  # read mode, nothing given: GRPO's own training judge
        eval_spec = dict(train_spec)
        notes.append("No --eval-judge (nor --judge) given: evaluating with GRPO's training judge.")
    else:
        eval_spec = judge_spec(args.eval_judge or args.judge, args.eval_judge_model or args.judge_model,
                               args.eval_base_url or args.base_url, args.eval_judge_mode or args.judge_mode)
        if args.eval_judge is None:
            notes.append("No --eval-judge given: evaluating with the same judge as --judge.")
    if eval_spec["judge"] == "openai" and eval_spec["mode"] is None:
        eval_spec["mode"] = "batched"
    same = same_judge(eval_spec, train_spec)
    if train_spec["judge"] == "regex":
        n = runs["grpo"]["cost"].rollouts
        notes.append(f"GRPO trained with the offline regex judge, which sends no requests: its 'training judge "
                     f"calls' read 0. An LLM judge would have graded all {n} rollouts: {n} calls in batched mode, "
                     f"{n} x criteria in per-criterion mode.")
    if same:
        notes.append("Evaluation judge = GRPO's training judge: this favours GRPO (its reward hacking counts "
                     "as gain).")
    base_model = matched.get("model") or args.model
    notes.append(f"Matched between the runs: {', '.join(f'{k}={v!r}' for k, v in matched.items())}.")
    notes.append("Gain and cost per point use the normalized rubric score, in percentage points (pp); "
                 "'n/a' where the gain is <= 0. Wall time is each run's training loop; std: bootstrap std.")

    from rgsd.data.source_args import source_kwargs

    eval_examples = load_examples(args.eval_data, format=args.eval_format, **source_kwargs(args, "eval")).examples
    if args.eval_limit:
        eval_examples = eval_examples[: args.eval_limit]
    judge = build_eval_judge(eval_spec, args.eval_api_key_env or args.api_key_env, args.judge_concurrency,
                             None if eval_spec["judge"] == "regex" else out / "eval_judge_cache.sqlite")
    if getattr(judge, "note", None):
        notes.append(judge.note)
    summaries = {}
    models = (("base", base_model), ("rgsd", runs["rgsd"]["final"]), ("grpo", runs["grpo"]["final"]))
    for name, path in models:
        log.info("compare: evaluating %s (%s) on %d examples", name, path, len(eval_examples))
        summaries[name] = evaluate_model(path, eval_examples, judge, args, out / "eval" / name)
    rows = build_rows(summaries, {k: runs[k]["cost"] for k in ("rgsd", "grpo")}, same)
    if args.price_in is not None or args.prices:  # judge cost in dollars (issue 11)
        from rgsd.costs import add_money_to_rows, load_prices

        try:
            prices = load_prices(args.prices, args.price_in, args.price_out)
            notes.append(add_money_to_rows(rows, {k: runs[k]["cost"] for k in ("rgsd", "grpo")},
                                           train_spec.get("model"), prices))
        except ValueError as err:  # a bad price table must not lose a finished comparison
            notes.append(f"No judge cost in dollars: {err}")
    table = render_table(rows, same, notes)
    # issue 9: paired differences over prompts with a bootstrap 95% CI (rgsd/evaluate/paired.py)
    from rgsd.evaluate.paired import compare_dirs
    from rgsd.evaluate.paired import render as render_paired

    paired = {n: compare_dirs(out / "eval" / "base", out / "eval" / n, seed=args.seed) for n in ("rgsd", "grpo")}
    table += "".join(f"\n\n**{n.upper()} - base**, {render_paired(p)}\n" for n, p in paired.items())
    plots = plot(rows, out)
    images = "".join(f"![{p}]({p})\n" for p in plots)
    (out / "compare.md").write_text("# RGSD vs judge-based GRPO\n\n" + table + "\n" + images)
    report = {"rows": rows, "eval_judge": eval_spec, "training_judge": train_spec,
              "eval_judge_is_training_judge": same, "matched": matched, "notes": notes, "plots": plots,
              "runs": {k: {"dir": v["dir"], "final": v["final"]} for k, v in runs.items()},
              "eval_data": args.eval_data, "eval_examples": len(eval_examples), "paired": paired}
    (out / "compare.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(table)
    print(f"written: {out / 'compare.md'}, {out / 'compare.json'}, " + ", ".join(str(out / p) for p in plots))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="RGSD vs judge-based GRPO: matched runs, one evaluation judge, cost per point gained",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="training data (both methods)")
    p.add_argument("--format", default=None, help="training data format (default: the configs' value, auto)")
    add_source_args(p)  # of the training data
    p.add_argument("--eval-data", required=True, help="held-out evaluation data")
    p.add_argument("--eval-format", default="auto")
    add_source_args(p, "eval")
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate on the first N examples only")
    p.add_argument("--model", default="smollm2-offline", help="base model (both methods start from it)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (both methods)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder (runs, evaluations, compare.md/json, plots)")
    g = p.add_argument_group("GRPO's training judge (and the evaluation judge unless --eval-judge is given)")
    # With --grpo-run these describe the evaluation judge only: the training judge is read from the run.
    g.add_argument("--judge", choices=["regex", "openai"], default=None,
                   help="GRPO's training judge (default regex; with --grpo-run the run's own judge is read)")
    g.add_argument("--judge-model", default="gpt-4.1-mini")
    g.add_argument("--base-url", default=None)
    g.add_argument("--api-key-env", default="OPENAI_API_KEY")
    g.add_argument("--judge-mode", choices=["per-criterion", "batched", "holistic"], default="batched")
    g.add_argument("--judge-concurrency", type=int, default=16)
    g.add_argument("--price-in", type=float, default=None, help="judge $ per million prompt tokens (issue 11)")
    g.add_argument("--price-out", type=float, default=None, help="judge $ per million completion tokens")
    g.add_argument("--prices", default=None, help="YAML: MODEL: {input: $/Mtok, output: $/Mtok}")
    e = p.add_argument_group("evaluation judge (defaults to the training judge; the table then says so)")
    e.add_argument("--eval-judge", choices=["regex", "openai"], default=None)
    e.add_argument("--eval-judge-model", default=None)
    e.add_argument("--eval-base-url", default=None)
    e.add_argument("--eval-api-key-env", default=None)
    e.add_argument("--eval-judge-mode", choices=["per-criterion", "batched", "holistic"], default=None)
    r = p.add_argument_group("runs")
    r.add_argument("--rgsd-config", default=None, help="RGSD recipe (default: RGSDConfig defaults)")
    r.add_argument("--grpo-config", default=None, help="GRPO recipe (default: GRPORunConfig defaults)")
    r.add_argument("--rgsd-set", action="append", metavar="FIELD=VALUE", help="override an RGSD config field")
    r.add_argument("--grpo-set", action="append", metavar="FIELD=VALUE", help="override a GRPO config field")
    r.add_argument("--rgsd-run", default=None, help="read this finished RGSD run instead of training")
    r.add_argument("--grpo-run", default=None, help="read this finished GRPO run instead of training")
    v = p.add_argument_group("evaluation generation")
    v.add_argument("--max-new-tokens", type=int, default=256)
    v.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    v.add_argument("--samples", type=int, default=1,
                   help="responses per prompt (> 1 needs --temperature > 0); the paired differences use the "
                        "per-prompt means, so a gain is not one draw per prompt")
    v.add_argument("--batch-size", type=int, default=8)
    p.set_defaults(func=_checked_run)


def _checked_run(args: argparse.Namespace) -> int:
    if not args.rgsd_run and (not args.data or not args.steps):
        raise SystemExit("rgsd compare: --data and --steps are required unless --rgsd-run/--grpo-run given")
    if args.samples < 1 or (args.samples > 1 and args.temperature <= 0):
        from rgsd.config import ConfigError

        raise ConfigError(f"rgsd compare: --samples {args.samples}: needs >= 1, and --temperature > 0 when > 1 "
                          "(greedy decoding gives the same response every time)")
    return run(args)
