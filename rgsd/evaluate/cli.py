"""``rgsd eval`` (generate or read responses, grade, score, report) and ``rgsd gap`` (conditioning and
self-internalization gaps).

Exit codes (also in ``rgsd eval --help``): 0 done; 2 bad input or configuration (including a judge that
rejects the key/URL/model mid-run: the results graded so far are written); 3 judge budget exhausted (partial
results written; rerun with a larger budget and the same cache to finish, paying each verdict once); 4 the
judge failed: every verdict failed, or the share of failed verdicts is above ``--max-failure-rate``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rgsd.data.source_args import add_source_args
from rgsd.method.teacher_prompt import PLACEMENTS

log = logging.getLogger(__name__)
EXIT_BAD_INPUT, EXIT_BUDGET, EXIT_JUDGE_FAILED = 2, 3, 4
DEFAULT_MAX_FAILURE_RATE = 0.05
EXIT_CODES_HELP = (
    "exit codes: 0 done; 2 bad input or configuration (also a judge rejecting the key, URL or model mid-run: "
    "results graded so far are written); 3 judge budget exhausted (partial results written; rerun with a "
    "larger budget and the same --cache); 4 judge failed (every verdict failed, or more than "
    "--max-failure-rate of them)"
)


# ---- judge options ----------------------------------------------------------------------------------------
def add_judge_args(p: argparse.ArgumentParser, allow_none: bool = False) -> None:
    """The judge options shared by ``eval`` and ``gap``."""
    choices = ["openai", "regex"] + (["none"] if allow_none else [])
    g = p.add_argument_group("judge")
    g.add_argument(
        "--judge",
        choices=choices,
        default="openai",
        help="openai: any OpenAI-compatible endpoint; regex: offline pattern stand-in (criteria need "
        "a 'pattern')" + ("; none: skip the judged part" if allow_none else ""),
    )
    g.add_argument(
        "--judge-model",
        default=None,
        help="model name sent to the judge endpoint (required for openai); a,b,c = a panel of judges",
    )
    g.add_argument(
        "--base-url",
        default=None,
        help="judge endpoint, e.g. http://127.0.0.1:8000/v1 (a panel: one URL, or one per model, comma-separated)",
    )
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    g.add_argument("--mode", choices=["per-criterion", "batched", "holistic"], default="per-criterion")
    g.add_argument("--concurrency", type=int, default=8, help="judge requests in flight")
    g.add_argument("--judge-timeout", type=float, default=60.0, help="seconds per judge request")
    g.add_argument("--max-retries", type=int, default=5, help="retries on 429/5xx/timeouts per request")
    g.add_argument(
        "--max-reasks", type=int, default=2, help="re-asks of an unreadable reply before a failure"
    )
    g.add_argument("--judge-temperature", type=float, default=0.0)
    g.add_argument("--judge-max-tokens", type=int, default=1024, help="max tokens of one judge reply")
    g.add_argument("--max-calls", type=int, default=None, help="stop after this many judge requests")
    g.add_argument("--max-tokens-budget", type=int, default=None, help="stop after this many judge tokens")
    g.add_argument(
        "--cache",
        default="auto",
        help="SQLite judge cache: a path, 'auto' (OUT/judge_cache.sqlite) or 'none'",
    )
    # -- judge robustness, panels, prices (issue 11)
    g.add_argument(
        "--panel-rule",
        choices=["majority", "unanimous"],
        default="majority",
        help="how a panel (--judge-model a,b,c) decides a verdict; it stands only if a majority answered",
    )
    g.add_argument(
        "--structured",
        choices=["auto", "off"],
        default="auto",
        help="auto: request a JSON schema (response_format), falling back when the endpoint refuses it",
    )
    g.add_argument(
        "--max-failure-rate",
        type=float,
        default=DEFAULT_MAX_FAILURE_RATE,
        help="fail the command (exit 4) when more than this share of verdicts are judge failures "
        f"(default {DEFAULT_MAX_FAILURE_RATE})",
    )
    g.add_argument("--price-in", type=float, default=None, help="judge dollars per million prompt tokens")
    g.add_argument("--price-out", type=float, default=None, help="judge dollars per million completion tokens")
    g.add_argument(
        "--prices", default=None, help="YAML price table: MODEL: {input: $/Mtok, output: $/Mtok} (and 'default')"
    )


def check_judge_args(args: argparse.Namespace) -> None:
    """Reject impossible judge options with a message (instead of an assertion deep inside)."""
    for name in ("max_retries", "max_reasks", "max_calls", "max_tokens_budget"):
        value = getattr(args, name, None)
        if value is not None and value < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    for name in ("concurrency", "judge_max_tokens"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.judge_timeout > 0:
        raise ValueError(f"--judge-timeout must be > 0 seconds, got {args.judge_timeout}")
    if not 0 <= args.max_failure_rate <= 1:
        raise ValueError(f"--max-failure-rate must be from 0 to 1, got {args.max_failure_rate}")


def build_prices(args: argparse.Namespace) -> Any:
    """The price table of ``--price-in/--price-out/--prices`` (None when no price was given)."""
    from rgsd.costs import load_prices

    table = load_prices(args.prices, args.price_in, args.price_out)
    return table if table else None


def judge_failed(summary: dict[str, Any], max_rate: float) -> str | None:
    """Why the judge counts as failed for this summary (None when it did its job)."""
    total, failed = summary.get("n_verdicts", 0), summary.get("n_judge_failures", 0)
    if not failed:
        return None
    first = summary.get("first_failure")
    detail = f" (first failure: {first})" if first else ""
    if failed == total:
        return f"the judge failed: all {total} verdicts are judge failures{detail}"
    if failed / total > max_rate:
        return (
            f"the judge failed: {failed} of {total} verdicts ({100 * failed / total:.1f}%) are judge failures, "
            f"above --max-failure-rate {max_rate}{detail}"
        )
    return None


def build_judge(args: argparse.Namespace, out_dir: Path) -> Any:
    """The judge the options describe (``None`` for ``--judge none``)."""
    if args.judge == "none":
        return None
    from rgsd.judges import make_judge

    if args.judge == "openai" and not args.judge_model:
        raise ValueError("--judge-model is required with --judge openai (the model name the endpoint serves)")
    check_judge_args(args)
    cache = None if args.cache == "none" else (out_dir / "judge_cache.sqlite" if args.cache == "auto" else args.cache)
    return make_judge(
        args.judge,
        args.judge_model,
        cache_path=cache,
        max_calls=args.max_calls,
        max_tokens_budget=args.max_tokens_budget,
        **({"panel_rule": args.panel_rule, "structured": args.structured} if args.judge == "openai" else {}),
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        mode=args.mode,
        concurrency=args.concurrency,
        max_retries=args.max_retries,
        timeout=args.judge_timeout,
        temperature=args.judge_temperature,
        max_tokens=args.judge_max_tokens,
        max_reasks=args.max_reasks,
    )


# ---- responses files -------------------------------------------------------------------------------------
@dataclass
class ResponseLine:
    prompt_id: str | None
    response: str
    line: int


def read_responses(path: str | Path) -> list[ResponseLine]:
    """Read ``{"prompt_id"?: str, "response": str}`` per line (``id`` is accepted for ``prompt_id``)."""
    out: list[ResponseLine] = []
    try:
        fh = Path(path).open("rb")
    except OSError as err:
        raise ValueError(f"{path}: file: cannot read responses: {err}") from None
    with fh:
        for n, raw in enumerate(fh, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(
                    f"{path}:{n}: encoding: not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})"
                ) from None
            if not text.strip():
                continue
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{path}:{n}: record: malformed JSON: {err.msg} (column {err.colno})"
                ) from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{n}: record: expected a JSON object, got {type(rec).__name__}")
            if not isinstance(rec.get("response"), str):
                got = "missing" if "response" not in rec else f"a {type(rec['response']).__name__}"
                raise ValueError(f"{path}:{n}: response: expected a string, {got}")
            pid = rec.get("prompt_id", rec.get("id"))
            if pid is not None and not isinstance(pid, (str, int)):
                raise ValueError(f"{path}:{n}: prompt_id: expected a string, got {type(pid).__name__}")
            out.append(ResponseLine(None if pid is None else str(pid), rec["response"], n))
    if not out:
        raise ValueError(f"{path}: file: no responses")
    return out


def match_responses(
    examples: list[Any],
    lines: list[ResponseLine],
    path: str | Path,
    skip_missing: bool = False,
    limited: bool = False,
) -> tuple[list[Any], list[str], list[str]]:
    """Pair examples with responses: by ``prompt_id`` when the file has ids, else by line order.

    Returns ``(examples, responses, skipped_ids)``; ``skipped_ids`` are examples without a response, dropped
    only with ``skip_missing`` (otherwise an error names them). ``limited`` (``--limit`` given) tolerates
    responses for examples that were not loaded.
    """
    with_id = [ln for ln in lines if ln.prompt_id is not None]
    if with_id and len(with_id) != len(lines):
        first = next(ln for ln in lines if ln.prompt_id is None)
        raise ValueError(
            f"{path}:{first.line}: prompt_id: missing, but other lines have one (use ids on all or none)"
        )
    if not with_id:
        if len(lines) < len(examples) or (len(lines) > len(examples) and not limited):
            raise ValueError(
                f"{path}: file: {len(lines)} responses (matched by line order, no prompt_id) but "
                f"{len(examples)} examples"
            )
        return list(examples), [ln.response for ln in lines[: len(examples)]], []
    by_id: dict[str, ResponseLine] = {}
    for ln in lines:
        if ln.prompt_id in by_id:
            raise ValueError(
                f"{path}:{ln.line}: prompt_id: duplicate {ln.prompt_id!r} (first on line "
                f"{by_id[ln.prompt_id].line})"
            )
        by_id[ln.prompt_id] = ln  # type: ignore[index]
    known = {ex.id for ex in examples}
    unknown = [ln for ln in lines if ln.prompt_id not in known]
    if unknown and not limited:
        raise ValueError(
            f"{path}:{unknown[0].line}: prompt_id: {unknown[0].prompt_id!r} is not an example id of "
            f"the data ({len(unknown)} such lines)"
        )
    missing = [ex.id for ex in examples if ex.id not in by_id]
    if missing and not skip_missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{path}: file: no response for {len(missing)} examples ({shown}); add them or pass "
            "--skip-missing to evaluate only the examples that have one"
        )
    kept = [ex for ex in examples if ex.id in by_id]
    return kept, [by_id[ex.id].response for ex in kept], missing


# ---- commands ---------------------------------------------------------------------------------------------
def _load(args: argparse.Namespace) -> list[Any]:
    from rgsd.data.loaders import load_examples, require_unique_ids

    if args.limit is not None and args.limit <= 0:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    from rgsd.data.source_args import source_kwargs

    result = require_unique_ids(load_examples(args.data, format=args.format, limit=args.limit, **source_kwargs(args)))
    if not result.examples:
        raise ValueError(f"{args.data}: file: no examples")
    return result.examples


def _model(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch

    from rgsd.models import load_model

    device = args.device or ("cuda" if torch.cuda.is_available() else None)
    # bf16 on a GPU (as in training and compare), float32 on CPU, unless --dtype says otherwise
    dtype = args.dtype or ("bfloat16" if str(device).startswith("cuda") else "float32")
    return load_model(args.model, dtype=dtype, device=device)


def _quiet_http_logs() -> None:
    # The HTTP client logs every request at INFO; keep those lines for -v only.
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        for name in ("httpx", "httpx2", "httpcore", "httpcore2", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _finish(summary: dict[str, Any], out: Path, max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE) -> int:
    if summary.get("judge_error"):
        print(
            f"error: {summary['judge_error']}. {summary.get('n_graded')} of {summary.get('n_examples')} "
            f"examples graded before it; partial results in {out} (rerun with the same --cache to finish).",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    failed = judge_failed(summary, max_failure_rate)
    if failed:
        print(f"error: {failed}; results in {out}", file=sys.stderr)
        return EXIT_JUDGE_FAILED
    if not summary.get("complete", True):
        print(
            f"judge budget exhausted: {summary.get('budget_stop')}. {summary.get('n_graded')} of "
            f"{summary.get('n_examples')} examples graded; partial results in {out}. Rerun with a larger "
            "--max-calls/--max-tokens-budget and the same --cache to finish (cached verdicts are not paid again).",
            file=sys.stderr,
        )
        return EXIT_BUDGET
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from rgsd.judges.openai_judge import JudgeConfigError

    _quiet_http_logs()
    out = Path(args.out)
    try:
        examples = _load(args)
        skipped: list[str] = []
        tokens = tokenizer = None
        if args.responses:
            examples, responses, skipped = match_responses(
                examples,
                read_responses(args.responses),
                args.responses,
                args.skip_missing,
                args.limit is not None,
            )
            if args.tokenizer or args.model:
                from rgsd.models import load_tokenizer

                tokenizer = load_tokenizer(args.tokenizer or args.model)
        elif args.model:
            from rgsd.evaluate.sampling import sample_responses

            model, tok = _model(args)
            # --samples responses per prompt (1 = one each; rgsd/evaluate/sampling.py)
            examples, rollouts = sample_responses(
                model, tok, examples, args.samples, temperature=args.temperature,
                max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed, progress=True)
            responses, tokens = [r.text for r in rollouts], [len(r.response_ids) for r in rollouts]
            out.mkdir(parents=True, exist_ok=True)
            with (out / "responses.jsonl").open("w", encoding="utf-8") as fh:  # reusable with --responses
                for ex, r in zip(examples, responses):
                    fh.write(json.dumps({"prompt_id": ex.id, "response": r}, ensure_ascii=False) + "\n")
        else:
            raise ValueError("give --model (generate responses) or --responses FILE")
        out.mkdir(parents=True, exist_ok=True)
        prices = build_prices(args)
        judge = build_judge(args, out)
    except (ValueError, JudgeConfigError) as err:  # DataError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from rgsd.evaluate.run import JudgeRejected, evaluate

    extra: dict[str, Any] = {"data": str(args.data), "model": args.model, "responses_file": args.responses}
    if skipped:
        extra["skipped_no_response"] = skipped
    try:
        result = evaluate(
            examples,
            responses,
            judge,
            response_tokens=tokens,
            tokenizer=tokenizer,
            seed=args.seed,
            progress=True,
            extra_summary=extra,
            prices=prices,
        )
    except JudgeRejected as err:  # a 401 mid-run: keep what was graded, exit 2 below
        result = err.result
    finally:
        if hasattr(judge, "close"):
            judge.close()
    if getattr(args, "samples", 1) > 1:
        from rgsd.evaluate.sampling import sample_summary

        result.summary.update(sample_summary(result.records, args.samples, args.temperature))
    result.summary["max_failure_rate"] = args.max_failure_rate
    result.summary["judge_failed"] = judge_failed(result.summary, args.max_failure_rate)  # None = judge did its job
    result.write(out)
    s = result.summary
    print(
        json.dumps(
            {
                k: s.get(k)
                for k in (
                    "n",
                    "score",
                    "score_std",
                    "score_normalized",
                    "n_failures",
                    "failure_rate",
                    "mean_response_tokens",
                    "judge_name",
                    "judge_cost_usd",
                )
            }
        )
    )
    if skipped:
        print(f"note: {len(skipped)} examples had no response and were skipped (listed in summary.json)")
    return _finish(s, out, args.max_failure_rate)


def _run_gap(args: argparse.Namespace) -> int:
    from rgsd.evaluate.gap import conditioning_gap, self_internalization_gap
    from rgsd.judges.openai_judge import JudgeConfigError

    _quiet_http_logs()
    out = Path(args.out)
    try:
        examples = _load(args)
        out.mkdir(parents=True, exist_ok=True)
        judge = build_judge(args, out)
    except (ValueError, JudgeConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    model, tok = _model(args)
    failed: str | None = None
    report: dict[str, Any] = {
        "data": str(args.data),
        "model": args.model,
        "n_examples": len(examples),
        "placement": args.placement,
        "teacher_style": args.teacher_style,
    }
    code = 0
    if judge is not None:
        try:
            cg = conditioning_gap(
                model,
                tok,
                examples,
                judge,
                max_new_tokens=args.max_new_tokens,
                temperature=args.temperature,
                placement=args.placement,
                style=args.teacher_style,
                batch_size=args.batch_size,
                seed=args.seed,
            )
        except JudgeConfigError as err:  # the judge rejected its key, URL or model (possibly mid-run)
            print(f"error: {err}; the judge cache keeps every verdict paid for", file=sys.stderr)
            return EXIT_BAD_INPUT
        finally:
            if hasattr(judge, "close"):
                judge.close()
        cg.without_rubric.write(out / "without_rubric")
        cg.with_rubric.write(out / "with_rubric")
        report["conditioning_gap"] = cg.to_dict()
        report["judge_name"] = cg.with_rubric.summary.get("judge_name")
        if cg.with_rubric.summary.get("note"):
            report["note"] = cg.with_rubric.summary["note"]
        if not cg.complete:
            code = EXIT_BUDGET
        for side in (cg.without_rubric, cg.with_rubric):
            failed = failed or judge_failed(side.summary, args.max_failure_rate)
        if failed:
            code = EXIT_JUDGE_FAILED
    sig = self_internalization_gap(
        model,
        tok,
        examples,
        k=args.k,
        max_new_tokens=args.sig_max_new_tokens,
        seed=args.seed,
        placement=args.placement,
        style=args.teacher_style,
        temperature=args.sig_temperature,
        batch_size=args.batch_size,
    )
    report["self_internalization_gap"] = sig.to_dict()
    (out / "gap.json").write_text(json.dumps(report, indent=2) + "\n")
    brief = {"self_internalization_gap": sig.gap}
    if "conditioning_gap" in report:
        c = report["conditioning_gap"]
        brief.update(
            conditioning_gap_normalized=c["normalized"]["mean"],
            ci95=c["normalized"]["ci95_bootstrap"],
            conditioning_gap_healthbench=c["healthbench"]["mean"],
        )
    print(json.dumps(brief))
    if failed:
        print(f"error: {failed} (conditioning gap)", file=sys.stderr)
    if code == EXIT_BUDGET:
        print(
            "judge budget exhausted: the conditioning gap is partial; rerun with a larger budget",
            file=sys.stderr,
        )
    return code


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="rubric dataset (any supported format)")
    p.add_argument(
        "--format", default="auto", help="data format (auto, healthbench, rar, rubrichub, canonical, generic)"
    )
    add_source_args(p)
    p.add_argument("--limit", type=int, default=None, help="use only the first N examples")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--batch-size", type=int, default=8, help="generation batch size")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16", "auto"],
                   help="model dtype (default: bfloat16 on CUDA, float32 on CPU)")
    p.add_argument("--device", default=None, help="model device (default: cuda if available, else cpu)")
    p.add_argument("--seed", type=int, default=0)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="grade a model's (or a file's) responses against rubrics with a judge",
        description="Generate one response per prompt with --model (or read --responses), grade "
        "every criterion with the judge, write results.jsonl, summary.json, report.md.",
        epilog=EXIT_CODES_HELP,
    )
    _common(p)
    p.add_argument("--model", default=None, help="model to generate with (or 'smollm2-offline')")
    p.add_argument("--samples", type=int, default=1,
                   help="with --model: responses per prompt at --temperature (> 0); scores are means over "
                   "prompts of the per-prompt means (compare two such folders with `rgsd compare-evals`)")
    p.add_argument(
        "--responses",
        default=None,
        help="JSONL of {prompt_id, response}; matched by prompt_id, or by line order without ids",
    )
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="with --responses: evaluate only examples that have a response (listed in summary.json)",
    )
    p.add_argument(
        "--tokenizer",
        default=None,
        help="with --responses: tokenizer for mean_response_tokens (default: --model's, else "
        "whitespace-separated words)",
    )
    add_judge_args(p)
    p.set_defaults(func=_run_eval)

    g = sub.add_parser(
        "gap",
        help="conditioning gap (judge) and self-internalization gap (judge-free)",
        description="Measure whether the rubric in context changes the model's answers (same judge, "
        "with vs without rubric) and the self-internalization gap Delta.",
        epilog=EXIT_CODES_HELP,
    )
    _common(g)
    g.add_argument("--model", default="smollm2-offline")
    g.add_argument("--placement", choices=list(PLACEMENTS), default="user_suffix")
    g.add_argument("--teacher-style", choices=["full", "compact"], default="full",
                   help="rubric wording in the teacher prompt (compact suits very small models)")
    g.add_argument(
        "--k", type=int, default=4, help="samples per prompt for the self-internalization gap (paper: 10)"
    )
    g.add_argument("--sig-max-new-tokens", type=int, default=128)
    g.add_argument("--sig-temperature", type=float, default=1.0)
    add_judge_args(g, allow_none=True)
    g.set_defaults(func=_run_gap)
