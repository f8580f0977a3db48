"""``rgsd diagnose``: reward-hacking diagnostics across the checkpoints of RGSD and GRPO runs.

Exit codes: 0 done, 2 bad input or configuration, 3 a judge budget ran out (rerun with a larger budget:
cached responses are not regenerated and cached judge replies are not paid again).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from rgsd.checks import AT_LEAST_ONE, NON_NEGATIVE, SEED
from rgsd.data.options import EvalDataArgs
from rgsd.evaluate.command import Placement, close, quiet_http_logs, reject_unused, require_kind, require_out
from rgsd.judges.options import JudgeOptions, check
from rgsd.options import add_command, arg, options, prefixed, unprefixed

log = logging.getLogger(__name__)
EXIT_BAD_INPUT, EXIT_BUDGET = 2, 3


@dataclass
class DiagnoseArgs:
    """The base model, where results go, how every checkpoint generates, and the measured gap's probe."""

    base: str | None = arg(None, "Base model (default: the 'model' of the runs' config.yaml).")
    out: str = arg("", "Output folder, required (also holds the response and judge caches).")
    samples: int = arg(1, "Responses per prompt and checkpoint.", check=AT_LEAST_ONE)
    max_new_tokens: int = arg(256, "Longest generated response in tokens.", check=AT_LEAST_ONE)
    temperature: float = arg(0.0, "Sampling temperature; 0 = greedy (needs --samples 1).", check=NON_NEGATIVE)
    batch_size: int = arg(8, "Generation batch size.", check=AT_LEAST_ONE)
    dtype: Literal["float32", "bfloat16", "float16", "fp32", "bf16", "fp16", "auto"] = arg("float32", "Model dtype.")
    device: str | None = arg(None, "Model device (default: cuda if available, else cpu).")
    seed: int = arg(0, "Random seed (generation and bootstrap).", check=SEED)
    taxonomy_max: int = arg(200, "Classify at most this many exploited credits.", check=NON_NEGATIVE)
    sig_source: Literal["auto", "measure"] = arg(
        "auto", "auto: the run's metrics.jsonl where it logged the gap at that step, else measured.")
    sig_k: int = arg(2, "Samples per prompt for a measured gap (0 = skip).", check=NON_NEGATIVE)
    sig_prompts: int = arg(8, "Prompts for a measured gap.", check=AT_LEAST_ONE)
    sig_max_new_tokens: int = arg(64, "Longest response in tokens for a measured gap.", check=AT_LEAST_ONE)
    sig_placement: Placement = arg(
        "user_suffix", "Rubric placement of the teacher prompt for a measured gap (use the run's).")
    sig_teacher_style: Literal["full", "compact"] = arg(
        "full", "Rubric wording of the teacher prompt for a measured gap (use the run's).")


def role_options(prefix: str, **defaults: Any) -> type:
    """JudgeOptions of one role (``--reference-judge-model`` ...); the role's old names warn, like the proxy's."""
    cls = prefixed(JudgeOptions, prefix, **defaults)
    cls.DEPRECATED = {f"{prefix}_{old}": f"{prefix}_{new}" for old, new in JudgeOptions.DEPRECATED.items()}
    return cls


# The reference panel rejects a credit only when every member does (unanimous), as --panel-rule all did.
ROLE_OPTIONS = {"reference": role_options("reference", judge_panel_rule="unanimous"),
                "pairwise": role_options("pairwise", judge="none"),
                "classifier": role_options("classifier", judge="none")}
KINDS = {"proxy": ("openai", "regex"), "reference": ("openai", "regex"), "pairwise": ("openai", "none"),
         "classifier": ("openai", "none")}
UNUSED = ("judge_max_failure_rate", "judge_price_in", "judge_price_out", "judge_prices")  # diagnose reports no cost
UNUSED_ASKING = UNUSED + ("judge_mode", "judge_panel_rule")  # pairwise and classifier ask one model for JSON
PANEL_RULES = {"unanimous": "all", "majority": "majority"}  # judge_panel_rule -> diagnose.core's name


def _prefix(role: str) -> str:
    return "" if role == "proxy" else f"{role}-"


def role_judge_options(args: argparse.Namespace) -> dict[str, JudgeOptions]:
    """Each role's options, checked for what diagnose can use (``ValueError`` names the flag)."""
    roles = {"proxy": options(args, JudgeOptions)}
    roles.update({role: unprefixed(args, JudgeOptions, role) for role in ROLE_OPTIONS})
    if args.legacy_panel_rule is not None:
        warnings.warn("--panel-rule is deprecated and will be removed in the next release; use "
                      "--reference-judge-panel-rule (all = unanimous)", FutureWarning, stacklevel=2)
        rule = {"all": "unanimous", "majority": "majority"}[args.legacy_panel_rule]
        roles["reference"] = replace(roles["reference"], judge_panel_rule=rule)
    for role, opts in roles.items():
        require_kind(opts, KINDS[role], "rgsd diagnose", _prefix(role))
        asking = role in ("pairwise", "classifier")
        reject_unused(opts, UNUSED_ASKING if asking else UNUSED, "rgsd diagnose", _prefix(role))
        if opts.judge != "none":
            _named(role, check, opts)
        if not asking and opts.judge_mode == "holistic":
            raise ValueError(f"--{_prefix(role)}judge-mode holistic gives no per-criterion verdicts: rgsd diagnose "
                             "needs per-criterion or batched")
    return roles


def role_judge(opts: JudgeOptions, role: str, out: Path) -> Any:
    """The judge of a role (None when skipped); 'auto' caches in OUT/cache/ROLE.sqlite."""
    from rgsd.judges.options import build_judge

    return _named(role, build_judge, opts, out / "cache", cache_name=f"{role}.sqlite")


def _named(role: str, fn: Any, *a: Any, **kw: Any) -> Any:
    """``fn(*a, **kw)``, its ``ValueError`` naming the role's flag (``--reference-judge-model``, not ``--judge-model``)."""
    try:
        return fn(*a, **kw)
    except ValueError as err:
        if role == "proxy":
            raise
        raise ValueError(str(err).replace("--judge", f"--{role}-judge")) from None


def _members(judge: Any) -> list[Any]:
    """A reference panel's members (graded one by one; they share the panel's cache and budget)."""
    return list(getattr(judge, "members", None) or ([] if judge is None else [judge]))


def _checkpoints(args: argparse.Namespace, base: str | None) -> tuple[Any, dict[str, list[Any]], list[str]]:
    from rgsd.diagnose.checkpoints import Checkpoint, base_model_of, discover, parse_checkpoint_list

    notes: list[str] = []
    runs: dict[str, list[Any]] = {}
    run_dirs = [Path(r) for r in args.run or []]
    names = [r.resolve().name for r in run_dirs]
    if len(set(names)) != len(names):
        names = [f"{n}-{i}" for i, n in enumerate(names, 1)]
    if args.checkpoints:
        if len(run_dirs) > 1:
            raise ValueError("--checkpoints lists one run's checkpoints: give at most one --run with it")
        name = names[0] if names else "checkpoints"
        runs[name] = parse_checkpoint_list(args.checkpoints, name)
    else:
        if not run_dirs:
            raise ValueError("give --run RUN_DIR (one or more) or --checkpoints")
        for run, name in zip(run_dirs, names):
            runs[name], skipped = discover(run, name)
            notes += skipped
    if base is None:
        bases = {base_model_of(r) for r in run_dirs} - {None}
        if len(bases) != 1:
            raise ValueError(
                "--base is needed: " + ("the runs name different base models" if bases else "no run config names its model")
            )
        base = bases.pop()
    return Checkpoint("base", None, 0, str(base)), runs, notes


def _sig_from_metrics(run_dir: Path | None, step: int | None) -> float | None:
    from rgsd.diagnose.checkpoints import run_metrics

    if run_dir is None or step is None:
        return None
    for m in run_metrics(run_dir):
        if m.get("step") == step and isinstance(m.get("self_internalization_gap"), (int, float)):
            return float(m["self_internalization_gap"])
    return None


def _run(args: argparse.Namespace) -> int:
    from rgsd.diagnose.core import BudgetStop, Judges, Options, diagnose
    from rgsd.diagnose.report import render_table, write_report
    from rgsd.diagnose.responses import GenerationSettings, responses_for
    from rgsd.judges.openai_judge import JudgeConfigError
    from rgsd.judges.usage import BudgetExhausted

    quiet_http_logs()
    built: dict[str, Any] = {}
    try:
        from rgsd.data.loaders import load_examples

        d, data = options(args, DiagnoseArgs), options(args, EvalDataArgs)
        roles = role_judge_options(args)
        out = require_out(d.out)
        if not data.dataset_name:
            raise ValueError("--dataset-name is required (the evaluation rubric data)")
        examples = load_examples(data.dataset_name, **data.source_kwargs()).examples
        if not examples:
            raise ValueError(f"{data.dataset_name}: file: no examples")
        base, runs, notes = _checkpoints(args, d.base)
        gen = GenerationSettings(
            samples=d.samples, max_new_tokens=d.max_new_tokens, temperature=d.temperature,
            seed=d.seed, batch_size=d.batch_size, sig_k=d.sig_k, sig_prompts=d.sig_prompts,
            sig_max_new_tokens=d.sig_max_new_tokens, sig_placement=d.sig_placement,
            sig_style=d.sig_teacher_style,
        )
        gen.validate()
        out.mkdir(parents=True, exist_ok=True)
        for role, opts in roles.items():
            built[role] = role_judge(opts, role, out)
        for role in ("pairwise", "classifier"):
            if built[role] is not None:
                from rgsd.diagnose.asking import require_llm_judge

                require_llm_judge(built[role], role)
    except (ValueError, JudgeConfigError) as err:
        _close(built)
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT

    import torch

    device = d.device or ("cuda" if torch.cuda.is_available() else None)
    run_dir_of = dict(zip(runs, [Path(r) for r in args.run or []]))
    try:
        base_resp = responses_for(base, examples, gen, out, dtype=d.dtype, device=device, progress=True)
        run_resp = {
            name: [
                responses_for(
                    c, examples, gen, out, dtype=d.dtype, device=device, progress=True,
                    sig_from_metrics=_sig_from_metrics(run_dir_of.get(name), c.step) if d.sig_source == "auto" else None,
                )
                for c in ckpts
            ]
            for name, ckpts in runs.items()
        }
    except (ValueError, RuntimeError) as err:
        _close(built)
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    all_resp = [base_resp] + [r for rs in run_resp.values() for r in rs]
    rule = PANEL_RULES[roles["reference"].judge_panel_rule]
    opts = Options(panel_rule=rule, seed=d.seed, taxonomy_max=d.taxonomy_max, notes=notes, progress=True)
    judges = {"proxy": [built["proxy"]], "reference": _members(built["reference"]),
              "pairwise": _members(built["pairwise"]), "classifier": _members(built["classifier"])}
    try:
        diag = diagnose(
            examples, base_resp, run_resp,
            Judges(built["proxy"], judges["reference"], built["pairwise"], built["classifier"]),
            opts,
        )
        code = 0
    except (BudgetStop, BudgetExhausted) as err:
        print(f"judge budget exhausted: {err}. Rerun with a larger budget; cached responses and judge replies "
              "are reused.", file=sys.stderr)
        code = EXIT_BUDGET
    except (ValueError, JudgeConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    finally:
        _close(built)
    if code:
        return code
    diag["generation"] = {
        "checkpoints_generated": sum(r.generated for r in all_resp),
        "responses_generated": sum(len(r.keys) for r in all_resp if r.generated),
        "samples_per_prompt": gen.samples, "max_new_tokens": gen.max_new_tokens, "temperature": gen.temperature,
    }
    diag["judges"] = {
        role: [{"name": getattr(j, "name", type(j).__name__),
                "usage": j.usage.to_dict() if hasattr(j, "usage") else None} for j in js]
        for role, js in judges.items()
    }
    diag["judge_calls"] = sum((d_["usage"] or {}).get("calls", 0) for js in diag["judges"].values() for d_ in js)
    diag["data"] = {"path": data.dataset_name, "n_examples": len(examples)}
    write_report(diag, out)
    print(render_table(diag))
    print(f"generated {diag['generation']['responses_generated']} responses "
          f"({diag['generation']['checkpoints_generated']} checkpoints); judge calls {diag['judge_calls']}; "
          f"wrote {out / 'diagnostics.json'} and {out / 'report.md'}")
    return 0


def _close(built: dict[str, Any]) -> None:
    for judge in built.values():
        if judge is not None:
            close(judge)


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "diagnose", [EvalDataArgs, DiagnoseArgs, JudgeOptions, *ROLE_OPTIONS.values()], _run,
        help="is a gain real? proxy vs reference judge, exploitation, pairwise preference across checkpoints",
        description="Generate once per checkpoint (cached), then: proxy vs reference scores and their gap's "
        "slope, exploitation rate between checkpoints, failure taxonomy, rubric-free pairwise preference vs "
        "the base, presence/absence criteria vs length, self-internalization gap and a recommended stop.\n\n"
        "Judges: the proxy (training) judge takes --judge-*; the reference judge or panel --reference-judge-* "
        "(its --reference-judge-panel-rule: a credit is rejected when every member (unanimous) or most "
        "(majority) reject it); the rubric-free pairwise judge --pairwise-judge-* and the failure-taxonomy "
        "classifier --classifier-judge-* (none = skip).",
        epilog="exit codes: 0 done; 2 bad input or configuration; 3 a judge budget ran out (rerun with a larger "
        "budget: cached responses are not regenerated and cached judge replies are not paid again)",
    )
    p.add_argument("--run", action="append", help="run folder (RGSD or GRPO layout); repeat for several")
    p.add_argument("--checkpoints", action="append",
                   help="explicit checkpoints instead of discovery: PATH or STEP=PATH, comma-separated or repeated")
    # diagnose's own --panel-rule all|majority, now the reference role's judge_panel_rule (one release)
    p.renames.pop("panel_rule", None)  # not the proxy's judge_panel_rule
    p.add_argument("--panel-rule", dest="legacy_panel_rule", choices=["all", "majority"], default=None,
                   help=argparse.SUPPRESS)
