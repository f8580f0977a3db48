"""``rgsd demo``: the whole idea, end to end, on a laptop CPU with the embedded offline model.

1. the base model with and without the rubric in its context, on training and held-out prompts (the
   conditioning gap: what RGSD can move into the model);
2. RGSD training (no judge) on the training prompts, probing the self-internalization gap as it goes;
3. evaluation of the trained model on the same prompts;
4. optionally (``--with-grpo``) the judge-based GRPO baseline and the comparison table.
Every evaluation samples ``--eval-samples`` responses per prompt at the rollout temperature; gaps and gains are
paired differences over prompts with a bootstrap 95% CI (``rgsd.demo.protocol``). The judge is the offline
``regex`` judge: a pattern check standing in for an LLM judge; every report says so.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rgsd.recipes import path as recipe_path

log = logging.getLogger(__name__)
RECIPE = recipe_path("rgsd-smollm2-cpu.yaml")  # found inside the package once installed (the wheel ships recipes)


@dataclass
class DemoSettings:
    out: Path = Path("runs/demo")
    model: str = "smollm2-offline"
    steps: int = 12
    seed: int = 0
    train_prompts: int = 16  # the first N demo training prompts: RGSD trains on them and they are evaluated
    eval_samples: int = 2  # sampled responses per prompt in each evaluation (paired over prompts)
    base_eval_samples: int = 6  # the base model is every comparison's reference: sampled more (demo_protocol)
    eval_temperature: float = 0.7  # the rollout temperature: the distribution RGSD moves
    max_new_tokens: int = 64
    with_grpo: bool = False
    grpo_generations: int = 4
    threads: int | None = None  # torch CPU threads (None: the idle usable CPUs, rgsd.cpu.auto_threads)
    train_overrides: dict[str, Any] = field(default_factory=dict)


class Stage:
    """Prints one line per stage with its wall time."""

    def __init__(self, name: str, timings: dict[str, float]):
        self.name, self.timings = name, timings

    def __enter__(self):
        print(f"[demo] {self.name} ...", flush=True)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.timings[self.name] = time.perf_counter() - self.start
        print(f"[demo] {self.name}: {self.timings[self.name]:.0f} s", flush=True)
        return False


def _scores(ev) -> dict[str, Any]:
    return {"normalized": ev.score, "response_tokens": ev.mean_tokens, "eos_rate": ev.eos_rate,
            "n_responses": len(ev.records)}


def _write_eval(ev, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.jsonl").open("w", encoding="utf-8") as fh:
        for rec in ev.records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


def run_demo(s: DemoSettings) -> dict[str, Any]:
    """Run every stage; write ``report.md``, ``summary.json`` and plots to ``s.out``; return the summary."""
    import torch

    from rgsd.demo.protocol import Protocol, eval_sets, evaluate_set, paired, run_summary, subset_data
    from rgsd.judges.regex_judge import RegexJudge
    from rgsd.method.teacher_prompt import teacher_messages
    from rgsd.models import load_model
    from rgsd.options import build
    from rgsd.train.config import RGSDConfig
    from rgsd.train.trainer import train

    wall0 = time.perf_counter()
    from rgsd.cpu import auto_threads

    threads = s.threads or auto_threads()
    torch.set_num_threads(threads)
    print(f"[demo] torch threads: {threads}" + ("" if s.threads else " (the idle CPUs this process may use)"),
          flush=True)
    torch.manual_seed(s.seed)
    s.out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    proto = Protocol(train_prompts=s.train_prompts, samples=s.eval_samples, base_samples=s.base_eval_samples,
                     temperature=s.eval_temperature,
                     max_new_tokens=s.max_new_tokens, seed=s.seed)
    sets = eval_sets(proto)
    judge = RegexJudge()
    data = subset_data(sets["train"], s.out / "train_prompts.jsonl")
    cfg = build(RGSDConfig, RECIPE, {"model_name_or_path": s.model, "max_steps": s.steps, "seed": s.seed,
                                     "max_new_tokens": s.max_new_tokens, "dataset_name": str(data),
                                     "output_dir": str(s.out / "rgsd-run"), **s.train_overrides})
    model, tok = load_model(s.model)
    ev: dict[str, Any] = {}

    def teacher(ex):
        return teacher_messages(ex, cfg.teacher_placement, cfg.show_weights, cfg.teacher_style)

    with Stage("1/4 base model with and without the rubric in context", timings):
        for split, examples in sets.items():
            ev[f"base_{split}"] = evaluate_set(model, tok, examples, judge, proto, split, samples=proto.base_samples)
            ev[f"with_rubric_{split}"] = evaluate_set(model, tok, examples, judge, proto, f"with_rubric_{split}",
                                                      messages_fn=teacher)
    cond = {k: paired(ev[f"base_{k}"], ev[f"with_rubric_{k}"], s.seed) for k in sets}
    print(f"[demo] conditioning gap (with - without rubric, training prompts): {_ci(cond['train'])}")
    del model

    with Stage(f"2/4 RGSD training ({cfg.max_steps} steps, no judge)", timings):
        run_dir = train(cfg)
    with Stage("3/4 trained model evaluation (training and held-out prompts)", timings):
        trained, tok = load_model(str(run_dir / "final"))
        for split, examples in sets.items():
            ev[f"rgsd_{split}"] = evaluate_set(trained, tok, examples, judge, proto, split)
        del trained
    gain = {k: paired(ev[f"base_{k}"], ev[f"rgsd_{k}"], s.seed) for k in sets}
    for name, e in ev.items():
        _write_eval(e, s.out / "eval" / name)

    compare = None
    if s.with_grpo:
        with Stage(f"GRPO baseline ({cfg.max_steps} steps, regex judge) and comparison", timings):
            compare = grpo_baseline(s, cfg, run_dir)

    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    costs = json.loads((run_dir / "costs.json").read_text())
    summary = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in s.__dict__.items()},
        "model": s.model, "train_prompts": len(sets["train"]), "heldout_prompts": len(sets["heldout"]),
        "judge": judge.name, "judge_note": judge.note,
        "conditioning_gap": cond, "rgsd_gain": gain,
        "training": {k: getattr(cfg, k) for k in ("max_steps", "per_device_train_batch_size", "learning_rate",
                                                  "temperature", "loss_temperature", "max_new_tokens", "beta",
                                                  "clip", "clip_mode", "teacher_placement", "teacher_style",
                                                  "use_lora", "lora_r")},
        "loss_temperature_in_effect": cfg.loss_temperature_value(),
        "scores": {k: _scores(e) for k, e in ev.items()}, "timings_s": timings, "torch_threads": threads, "rgsd_costs": costs,
        "signal": run_summary(run_dir),
        "self_internalization_gap": [(m["step"], m["self_internalization_gap"]) for m in metrics
                                     if "self_internalization_gap" in m],
        "loss": [(m["step"], m["loss"]) for m in metrics], "checkpoint": str(run_dir / "final"),
        "compare": compare,
    }
    summary["target"] = target(cond["train"], gain["train"])
    summary["wall_time_s"] = time.perf_counter() - wall0
    (s.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    from rgsd.demo.report import print_table, write_report

    write_report(summary, s.out)
    print_table(summary)
    return summary


def target(gap: dict[str, Any], gain: dict[str, Any]) -> dict[str, Any]:
    """The demo's bar on the training prompts: gain >= half the conditioning gap, with its CI above 0."""
    half = 0.5 * gap["mean"] if gap.get("mean") is not None else None
    met = (half is not None and gain.get("mean") is not None and gain["mean"] >= half and gain["ci95"][0] > 0)
    return {"half_conditioning_gap": half, "gain": gain.get("mean"), "gain_ci95_low": gain["ci95"][0], "met": met}


def _ci(d: dict[str, Any]) -> str:
    return f"{d['mean']:+.3f} [95% CI {d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"


def grpo_baseline(s: DemoSettings, rgsd_cfg: Any, rgsd_dir: Path) -> dict[str, Any]:
    """Train GRPO (regex judge) on the same prompts and steps, then compare the two finished runs."""
    from rgsd.compare.options import CompareArgs, CompareOptions
    from rgsd.compare.plan import grpo_matched
    from rgsd.compare.run import run_compare
    from rgsd.data.options import EvalDataArgs
    from rgsd.grpo.config import GRPORunConfig
    from rgsd.grpo.trainer import train_grpo
    from rgsd.options import build

    matched = grpo_matched(rgsd_cfg, s.grpo_generations)
    grpo_cfg = build(GRPORunConfig, recipe_path("grpo-smollm2-cpu.yaml"),
                     {**matched, "num_generations": s.grpo_generations, "output_dir": str(s.out / "grpo-run")})
    grpo_dir = train_grpo(grpo_cfg)
    out = s.out / "compare"
    run_compare(CompareOptions(
        run=CompareArgs(out=str(out), rgsd_run=str(rgsd_dir), grpo_run=str(grpo_dir), max_new_tokens=s.max_new_tokens,
                        seed=s.seed, samples=s.eval_samples, temperature=s.eval_temperature),
        eval_data=EvalDataArgs(dataset_name="demo:heldout")))
    report = json.loads((out / "compare.json").read_text())
    report["table_markdown"] = (out / "compare.md").read_text()
    return report
