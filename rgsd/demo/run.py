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
from typing import TYPE_CHECKING, Any

from rgsd.method.teacher_prompt import CONTROLS
from rgsd.recipes import path as recipe_path

if TYPE_CHECKING:
    from rgsd.demo.protocol import Protocol, SetEval

log = logging.getLogger(__name__)
RECIPE = recipe_path("rgsd-smollm2-cpu.yaml")  # found inside the package once installed (the wheel ships recipes)
ALPHA = 0.05  # the demo's bar and the confirmation's test: one-sided sign-flip p below this


@dataclass
class DemoSettings:
    out: Path = Path("runs/demo")
    model: str = "smollm2-offline"
    steps: int = 12
    seed: int = 0
    seeds: list[int] = field(default_factory=list)  # training seeds pooled (empty: [seed]); the base uses the first
    controls: list[str] = field(default_factory=list)  # control arms trained with the same seeds (CONTROLS)
    train_prompts: int = 16  # N demo training prompts from first_train_prompt: RGSD trains on them, they are evaluated
    first_train_prompt: int = 1
    heldout_prompts: str = "heldout"  # the held-out file, or "A-B": demo training prompts no run trains on
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


def write_eval(ev: SetEval, out: Path) -> None:
    """One evaluation's graded responses as ``out/results.jsonl`` (what ``rgsd compare-evals`` reads)."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.jsonl").open("w", encoding="utf-8") as fh:
        for rec in ev.records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


def arm_key(name: str) -> str:
    """The name of a trained arm's evaluations (``scores`` keys, ``eval/`` folders): ``rgsd``, or ``control-NAME``
    (a control called ``shuffled`` must not overwrite stage 1's base model under the ``shuffled`` context)."""
    return name if name == "rgsd" else f"control-{name}"


def seed_protocol(s: DemoSettings, seed: int) -> Protocol:
    """How the demo evaluates the models of one training seed (:class:`rgsd.demo.protocol.Protocol`)."""
    from rgsd.demo.protocol import Protocol

    return Protocol(train_prompts=s.train_prompts, samples=s.eval_samples, base_samples=s.base_eval_samples,
                    temperature=s.eval_temperature, max_new_tokens=s.max_new_tokens, seed=seed,
                    first_train_prompt=s.first_train_prompt, heldout_prompts=s.heldout_prompts)


def arm_config(s: DemoSettings, data: Path, seed: int, context: str, out_name: str) -> Any:
    """The RGSD training config of one arm (``context``: rubric for RGSD, a control's context otherwise): the
    demo recipe with the settings' model, steps, length and overrides, trained on ``data``."""
    from rgsd.options import build
    from rgsd.train.config import RGSDConfig

    return build(RGSDConfig, RECIPE, {"model_name_or_path": s.model, "max_steps": s.steps, "seed": seed,
                                      "max_new_tokens": s.max_new_tokens, "dataset_name": str(data),
                                      "output_dir": str(s.out / out_name), **s.train_overrides,
                                      "teacher_context": context})


def train_and_evaluate(cfg: Any, sets: dict[str, list], proto: Protocol, judge: Any, label: str,
                       timings: dict[str, float]) -> tuple[Path, dict[str, Any]]:
    """Train one arm, evaluate the trained model on every prompt set (and ``all``, both joined)."""
    from rgsd.demo.protocol import evaluate_set, joined
    from rgsd.models import load_model
    from rgsd.train.trainer import train

    with Stage(f"2/4 {label} training ({cfg.max_steps} steps, no judge)", timings):
        run_dir = train(cfg)
    with Stage(f"3/4 {label}: evaluation (training and held-out prompts)", timings):
        trained, tok = load_model(str(run_dir / "final"))
        got = {split: evaluate_set(trained, tok, examples, judge, proto, split)
               for split, examples in sets.items()}
        del trained
    got["all"] = joined(got["train"], got["heldout"])
    return run_dir, got


def run_demo(s: DemoSettings) -> dict[str, Any]:
    """Run every stage; write ``report.md``, ``summary.json`` and plots to ``s.out``; return the summary."""
    import torch

    from rgsd.demo.protocol import (
        eval_sets,
        evaluate_set,
        joined,
        paired,
        pooled,
        run_summary,
        subset_data,
    )
    from rgsd.judges.regex_judge import RegexJudge
    from rgsd.method.lift import arms_summary
    from rgsd.method.teacher_prompt import context_messages, default_system_prompt
    from rgsd.models import load_model
    from rgsd.train.config import RGSDConfig

    wall0 = time.perf_counter()
    from rgsd.cpu import auto_threads

    threads = s.threads or auto_threads()
    torch.set_num_threads(threads)
    print(f"[demo] torch threads: {threads}" + ("" if s.threads else " (the idle CPUs this process may use)"),
          flush=True)
    unknown = sorted(set(s.controls) - set(CONTROLS))
    if unknown:
        raise ValueError(f"controls: unknown {unknown}; choose from {sorted(CONTROLS)}")
    seeds = s.seeds or [s.seed]
    torch.manual_seed(seeds[0])
    s.out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    proto = seed_protocol(s, seeds[0])
    sets = eval_sets(proto)
    judge = RegexJudge()
    data = subset_data(sets["train"], s.out / "train_prompts.jsonl")

    def config(seed: int, context: str = "rubric", name: str = "rgsd-run") -> RGSDConfig:
        return arm_config(s, data, seed, context, name if len(seeds) == 1 else f"{name}-seed{seed}")

    cfg = config(seeds[0])
    model, tok = load_model(s.model)
    ev: dict[str, Any] = {}

    default_system = default_system_prompt(tok) if cfg.teacher_placement == "system_keep" else None

    def chats(examples: list, context: str) -> Any:  # the teacher's chat of each prompt under a context
        by_id = {ex.id: chat for ex, chat in zip(examples, context_messages(
            examples, context, cfg.teacher_placement, cfg.show_weights, cfg.teacher_style,  # type: ignore[arg-type]
            default_system=default_system))}
        return lambda ex: by_id[ex.id]

    # the base model under each context (rgsd.method.lift): its own (base), the template without criteria
    # (neutral), another prompt's criteria (shuffled), its own criteria (with_rubric: the teacher)
    contexts = {"with_rubric": "rubric", "neutral": "neutral", "shuffled": "shuffled"}
    with Stage("1/4 base model under four contexts (none, neutral, shuffled, rubric)", timings):
        for split, examples in sets.items():
            ev[f"base_{split}"] = evaluate_set(model, tok, examples, judge, proto, split, samples=proto.base_samples)
            for arm, context in contexts.items():
                ev[f"{arm}_{split}"] = evaluate_set(model, tok, examples, judge, proto, f"{arm}_{split}",
                                                    messages_fn=chats(examples, context))
    for arm in ("base", *contexts):
        ev[f"{arm}_all"] = joined(ev[f"{arm}_train"], ev[f"{arm}_heldout"])
        for split in sets:  # on disk at once: a stopped run keeps what it measured
            write_eval(ev[f"{arm}_{split}"], s.out / "eval" / f"{arm}_{split}")
    splits = (*sets, "all")
    cond = {k: paired(ev[f"base_{k}"], ev[f"with_rubric_{k}"], seeds[0]) for k in splits}
    preflight = {k: arms_summary({"none": ev[f"base_{k}"].records, "neutral": ev[f"neutral_{k}"].records,
                                  "shuffled": ev[f"shuffled_{k}"].records, "rubric": ev[f"with_rubric_{k}"].records},
                                 s.eval_samples, s.eval_temperature, seeds[0]) for k in splits}
    print(f"[demo] conditioning gap (with - without rubric, training prompts): {ci_text(cond['train'])}")
    print(f"[demo] pre-flight (training prompts): {preflight['train']['preflight_verdict']}")
    del model

    # 2-3. each arm (RGSD, then every control) trained and evaluated once per seed
    arms = [("rgsd", "rubric")] + [(c, CONTROLS[c]) for c in s.controls]
    per_seed: dict[str, list[dict[str, SetEval]]] = {name: [] for name, _ in arms}
    runs: dict[str, list[Path]] = {name: [] for name, _ in arms}
    for name, context in arms:
        for seed in seeds:
            label = ("RGSD" if name == "rgsd" else f"control {name}") + ("" if len(seeds) == 1 else f", seed {seed}")
            c = config(seed, context, "rgsd-run" if name == "rgsd" else f"control-{name}")
            run_dir, got = train_and_evaluate(c, sets, seed_protocol(s, seed), judge, label, timings)
            per_seed[name].append(got)
            runs[name].append(run_dir)
            for split in sets:
                key = f"{arm_key(name)}_{split}" if len(seeds) == 1 else f"{arm_key(name)}_seed{seed}_{split}"
                write_eval(got[split], s.out / "eval" / key)
    for name, _ in arms:
        for split in splits:
            ev[f"{arm_key(name)}_{split}"] = joined(*(g[split] for g in per_seed[name]))
    gain = {k: pooled([(ev[f"base_{k}"], g[k]) for g in per_seed["rgsd"]], seeds[0]) for k in splits}
    control_gain = {c: {k: pooled([(ev[f"base_{k}"], g[k]) for g in per_seed[c]], seeds[0]) for k in splits}
                    for c in s.controls}
    rgsd_minus_control = {c: {k: pooled([(g_c[k], g_r[k]) for g_c, g_r in zip(per_seed[c], per_seed["rgsd"])],
                                         seeds[0]) for k in splits} for c in s.controls}
    run_dir = runs["rgsd"][0]

    compare = None
    if s.with_grpo:
        with Stage(f"GRPO baseline ({cfg.max_steps} steps, regex judge) and comparison", timings):
            compare = grpo_baseline(s, cfg, run_dir)

    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    costs = json.loads((run_dir / "costs.json").read_text())
    summary = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in s.__dict__.items()},
        "model": s.model, "train_prompts": len(sets["train"]), "heldout_prompts": len(sets["heldout"]),
        "prompt_ids": {k: [ex.id for ex in v] for k, v in sets.items()}, "seeds": seeds,
        "judge": judge.name, "judge_note": judge.note,
        "conditioning_gap": cond, "preflight": preflight, "rgsd_gain": gain, "control_gain": control_gain,
        "rgsd_minus_control": rgsd_minus_control,
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
        "checkpoints": {name: [str(r / "final") for r in rs] for name, rs in runs.items()},
        "compare": compare,
    }
    # what the gain is made of: per-criterion rates, opening words, persona phrases, length, end of turn
    from rgsd.evaluate.explain import explain
    from rgsd.evaluate.paired import criterion_tags

    models = {"base": ev["base_all"].records, "RGSD": ev["rgsd_all"].records,
              "teacher": ev["with_rubric_all"].records, **{c: ev[f"{arm_key(c)}_all"].records for c in s.controls}}
    summary["gain_composition"] = explain(models, criterion_tags(sets["train"] + sets["heldout"]))
    summary["target"] = target(cond["train"], gain["train"])
    summary["wall_time_s"] = time.perf_counter() - wall0
    (s.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    from rgsd.demo.report import print_table, write_report

    write_report(summary, s.out)
    print_table(summary)
    return summary


def target(gap: dict[str, Any], gain: dict[str, Any]) -> dict[str, Any]:
    """The demo's bar on the training prompts, as a test: the gain is above 0 by a one-sided sign-flip test over
    prompts (p < ALPHA) and at least half the conditioning gap (the effect size RGSD should move)."""
    half = 0.5 * gap["mean"] if gap.get("mean") is not None else None
    p = gain.get("p_value")
    met = (half is not None and gain.get("mean") is not None and p is not None and p < ALPHA
           and gain["mean"] >= half)
    return {"test": f"one-sided sign-flip over training prompts, alpha {ALPHA}", "p_value": p,
            "half_conditioning_gap": half, "gain": gain.get("mean"), "gain_ci95_low": gain["ci95"][0],
            "gain_t_ci95": gain.get("t_ci95"), "met": met}


def ci_text(d: dict[str, Any]) -> str:
    """A paired effect as ``+0.048 [95% CI +0.011, +0.087]``."""
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
