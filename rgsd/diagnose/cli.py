"""``rgsd diagnose``: reward-hacking diagnostics across the checkpoints of RGSD and GRPO runs.

Exit codes: 0 done, 2 bad input or configuration, 3 a judge budget ran out (rerun with a larger budget:
cached responses are not regenerated and cached judge replies are not paid again).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from rgsd.data.source_args import add_source_args
from rgsd.method.teacher_prompt import PLACEMENTS

log = logging.getLogger(__name__)
EXIT_BAD_INPUT, EXIT_BUDGET = 2, 3
ROLES = ("proxy", "reference", "pairwise", "classifier")


def _opt(role: str, name: str) -> str:
    """CLI spelling: the proxy (training) judge keeps ``rgsd eval``'s names, other roles are prefixed."""
    return f"--{name}" if role == "proxy" else f"--{role}-{name}"


def add_role_args(p: argparse.ArgumentParser, role: str) -> None:
    """The judge options of ``rgsd eval`` for one role (``--judge ...`` for the proxy, ``--reference-judge ...``)."""
    required = role in ("proxy", "reference")
    g = p.add_argument_group(f"{role} judge")
    d = f"{role}_"
    choices = ["openai", "regex"] if required else ["openai", "none"]
    g.add_argument(_opt(role, "judge"), dest=d + "judge", choices=choices,
                   default="openai" if required else "none",
                   help={"proxy": "the training (proxy) judge", "reference": "the stronger judge or panel",
                         "pairwise": "rubric-free pairwise judge (none = skip)",
                         "classifier": "failure-taxonomy classifier (none = skip)"}[role])
    g.add_argument(_opt(role, "judge-model"), dest=d + "judge_model", default=None,
                   help="model name(s) at the endpoint" + ("; comma-separated = a panel" if role == "reference" else ""))
    g.add_argument(_opt(role, "base-url"), dest=d + "base_url", default=None, help="endpoint, e.g. http://127.0.0.1:8000/v1")
    g.add_argument(_opt(role, "api-key-env"), dest=d + "api_key_env", default="OPENAI_API_KEY",
                   help="environment variable holding the API key")
    if role in ("proxy", "reference"):
        g.add_argument(_opt(role, "mode"), dest=d + "mode", choices=["per-criterion", "batched"], default="per-criterion")
    g.add_argument(_opt(role, "concurrency"), dest=d + "concurrency", type=int, default=8, help="requests in flight")
    g.add_argument(_opt(role, "judge-timeout"), dest=d + "judge_timeout", type=float, default=60.0)
    g.add_argument(_opt(role, "max-retries"), dest=d + "max_retries", type=int, default=5)
    g.add_argument(_opt(role, "max-reasks"), dest=d + "max_reasks", type=int, default=2,
                   help="re-asks of an unreadable reply before it counts as a failure")
    g.add_argument(_opt(role, "judge-temperature"), dest=d + "judge_temperature", type=float, default=0.0)
    g.add_argument(_opt(role, "judge-max-tokens"), dest=d + "judge_max_tokens", type=int, default=1024)
    g.add_argument(_opt(role, "max-calls"), dest=d + "max_calls", type=int, default=None)
    g.add_argument(_opt(role, "max-tokens-budget"), dest=d + "max_tokens_budget", type=int, default=None)
    g.add_argument(_opt(role, "cache"), dest=d + "cache", default="auto",
                   help=f"SQLite reply cache: a path, 'auto' (OUT/cache/{role}.sqlite) or 'none'")


def build_role(args: argparse.Namespace, role: str, out: Path) -> list[Any]:
    """The judge(s) of a role (several for a reference panel; empty for a skipped role)."""
    from rgsd.judges import make_judge

    a = lambda name: getattr(args, f"{role}_{name}")  # noqa: E731
    kind = a("judge")
    if kind == "none":
        return []
    if kind == "regex":
        return [make_judge("regex")]
    models = [m.strip() for m in (a("judge_model") or "").split(",") if m.strip()]
    if not models:
        raise ValueError(f"{_opt(role, 'judge-model')} is required with {_opt(role, 'judge')} openai")
    cache = a("cache")
    cache_path = None if cache == "none" else (out / "cache" / f"{role}.sqlite" if cache == "auto" else cache)
    return [
        make_judge(
            "openai", m, cache_path=cache_path, max_calls=a("max_calls"), max_tokens_budget=a("max_tokens_budget"),
            base_url=a("base_url"), api_key_env=a("api_key_env"), mode=getattr(args, f"{role}_mode", "per-criterion"),
            concurrency=a("concurrency"), max_retries=a("max_retries"), timeout=a("judge_timeout"),
            temperature=a("judge_temperature"), max_tokens=a("judge_max_tokens"), max_reasks=a("max_reasks"),
        )
        for m in models
    ]


def _checkpoints(args: argparse.Namespace) -> tuple[Any, dict[str, list[Any]], list[str]]:
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
    base = args.base
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

    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # the HTTP client logs every request at INFO
        for name in ("httpx", "httpx2", "httpcore", "httpcore2", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)
    out = Path(args.out)
    judges: dict[str, list[Any]] = {}
    try:
        from rgsd.data.loaders import load_examples
        from rgsd.data.source_args import source_kwargs

        examples = load_examples(args.data, format=args.format, limit=args.limit, **source_kwargs(args)).examples
        if not examples:
            raise ValueError(f"{args.data}: file: no examples")
        base, runs, notes = _checkpoints(args)
        gen = GenerationSettings(
            samples=args.samples, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
            seed=args.seed, batch_size=args.batch_size, sig_k=args.sig_k, sig_prompts=args.sig_prompts,
            sig_max_new_tokens=args.sig_max_new_tokens, sig_placement=args.sig_placement,
            sig_style=args.sig_teacher_style,
        )
        gen.validate()
        out.mkdir(parents=True, exist_ok=True)
        for role in ROLES:
            judges[role] = build_role(args, role, out)
        for role in ("pairwise", "classifier"):
            if judges[role]:
                from rgsd.diagnose.asking import require_llm_judge

                require_llm_judge(judges[role][0], role)
    except (ValueError, JudgeConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else None)
    run_dir_of = dict(zip(runs, [Path(r) for r in args.run or []]))
    try:
        base_resp = responses_for(base, examples, gen, out, dtype=args.dtype, device=device)
        run_resp = {
            name: [
                responses_for(
                    c, examples, gen, out, dtype=args.dtype, device=device,
                    sig_from_metrics=_sig_from_metrics(run_dir_of.get(name), c.step) if args.sig_source == "auto" else None,
                )
                for c in ckpts
            ]
            for name, ckpts in runs.items()
        }
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    all_resp = [base_resp] + [r for rs in run_resp.values() for r in rs]
    opts = Options(panel_rule=args.panel_rule, seed=args.seed, taxonomy_max=args.taxonomy_max, notes=notes)
    try:
        diag = diagnose(
            examples, base_resp, run_resp,
            Judges(judges["proxy"][0], judges["reference"],
                   (judges["pairwise"] or [None])[0], (judges["classifier"] or [None])[0]),
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
        for js in judges.values():
            for j in js:
                if hasattr(j, "close"):
                    j.close()
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
    diag["judge_calls"] = sum((d["usage"] or {}).get("calls", 0) for js in diag["judges"].values() for d in js)
    diag["data"] = {"path": str(args.data), "n_examples": len(examples)}
    write_report(diag, out)
    print(render_table(diag))
    print(f"generated {diag['generation']['responses_generated']} responses "
          f"({diag['generation']['checkpoints_generated']} checkpoints); judge calls {diag['judge_calls']}; "
          f"wrote {out / 'diagnostics.json'} and {out / 'report.md'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose",
        help="is a gain real? proxy vs reference judge, exploitation, pairwise preference across checkpoints",
        description="Generate once per checkpoint (cached), then: proxy vs reference scores and their gap's "
        "slope, exploitation rate between checkpoints, failure taxonomy, rubric-free pairwise preference vs "
        "the base, presence/absence criteria vs length, self-internalization gap and a recommended stop.",
    )
    p.add_argument("--run", action="append", help="run folder (RGSD or GRPO layout); repeat for several")
    p.add_argument("--checkpoints", action="append",
                   help="explicit checkpoints instead of discovery: PATH or STEP=PATH, comma-separated or repeated")
    p.add_argument("--base", default=None, help="base model (default: the 'model' of the runs' config.yaml)")
    p.add_argument("--data", required=True, help="evaluation rubric data (any supported format)")
    p.add_argument("--format", default="auto")
    add_source_args(p)
    p.add_argument("--limit", type=int, default=None, help="use only the first N examples")
    p.add_argument("--out", required=True, help="output folder (also holds the response and judge caches)")
    p.add_argument("--samples", type=int, default=1, help="responses per prompt and checkpoint")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (needs --samples 1)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--panel-rule", choices=["all", "majority"], default="all",
                   help="a credit is rejected by the reference panel when every judge (all) or most reject it")
    p.add_argument("--taxonomy-max", type=int, default=200, help="classify at most this many exploited credits")
    p.add_argument("--sig-source", choices=["auto", "measure"], default="auto",
                   help="auto: the run's metrics.jsonl where it logged the gap at that step, else measured")
    p.add_argument("--sig-k", type=int, default=2, help="samples per prompt for a measured gap (0 = skip)")
    p.add_argument("--sig-prompts", type=int, default=8, help="prompts for a measured gap")
    p.add_argument("--sig-max-new-tokens", type=int, default=64)
    p.add_argument("--sig-placement", choices=list(PLACEMENTS), default="user_suffix",
                   help="rubric placement of the teacher prompt for a measured gap (use the run's)")
    p.add_argument("--sig-teacher-style", choices=["full", "compact"], default="full",
                   help="rubric wording of the teacher prompt for a measured gap (use the run's)")
    for role in ROLES:
        add_role_args(p, role)
    p.set_defaults(func=_run)
