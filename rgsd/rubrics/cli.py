"""``rgsd rubrics generate --data IN --out OUT.jsonl --judge openai --judge-model M --base-url URL``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``rgsd rubrics`` with its ``generate`` subcommand."""
    top = subparsers.add_parser("rubrics", help="write rubrics for prompts with an LLM")
    sub = top.add_subparsers(dest="rubrics_command", metavar="SUBCOMMAND")
    top.set_defaults(func=lambda args: (top.print_help(), 2)[1])
    p = sub.add_parser(
        "generate",
        help="write a RaR-style rubric for every prompt, from its reference answer when there is one",
        description="Write a rubric (Essential / Important / Optional / Pitfall criteria) for every prompt of "
        "IN into OUT (canonical JSONL). Resumable: a rerun keeps what OUT has and replays paid replies from "
        "the cache.",
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, help="any supported rubric format, or JSONL/JSON/parquet/HF dataset "
                   "with a prompt and (optionally) a reference answer")
    d.add_argument("--out", required=True, help="canonical JSONL to write")
    d.add_argument("--split", default=None, help="split of a Hugging Face dataset")
    d.add_argument("--config-name", default=None, help="configuration (subset) of a Hugging Face hub dataset")
    d.add_argument("--prompt-column", default=None, help="field holding the prompt (string or chat messages)")
    d.add_argument("--reference-column", default=None, help="field holding the reference answer (a.b reaches into an object)")
    d.add_argument("--id-column", default=None, help="field holding the example id")
    d.add_argument("--limit", type=int, default=None, help="use only the first N prompts")
    d.add_argument("--on-error", choices=("strict", "skip"), default="strict",
                   help="strict: stop on any bad input record (default); skip: list and skip them")
    r = p.add_argument_group("rubric")
    r.add_argument("--min-criteria", type=int, default=7)
    r.add_argument("--max-criteria", type=int, default=20)
    r.add_argument("--weights", default="", help="weight ranges per category, e.g. "
                   "'Essential=5,Important=3:4,Optional=1:2,Pitfall=-2:-1' (the default)")
    r.add_argument("--copy-words", type=int, default=10,
                   help="flag a criterion holding this many consecutive words of the reference (0 = off)")
    r.add_argument("--drop-copies", action="store_true", help="drop flagged copies instead of tagging them")
    g = p.add_argument_group("generator (an OpenAI-compatible endpoint)")
    g.add_argument("--judge", choices=("openai",), default="openai", help="the generator's API (openai-compatible)")
    g.add_argument("--judge-model", required=True, help="model name the endpoint serves")
    g.add_argument("--base-url", default=None, help="endpoint, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    g.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    g.add_argument("--judge-timeout", type=float, default=120.0, help="seconds per request")
    g.add_argument("--max-retries", type=int, default=5, help="retries on 429/5xx/timeouts per request")
    g.add_argument("--max-reasks", type=int, default=2, help="re-asks after an unusable reply")
    g.add_argument("--judge-temperature", type=float, default=0.0)
    g.add_argument("--judge-max-tokens", type=int, default=2048, help="max tokens of one reply")
    g.add_argument("--structured", choices=("auto", "on", "off"), default="auto",
                   help="send a JSON schema as response_format (auto: drop it if the endpoint rejects it)")
    g.add_argument("--cache", default="auto", help="SQLite reply cache: auto (= OUT.cache.sqlite), none, or a path")
    g.add_argument("--max-calls", type=int, default=None, help="stop after this many requests")
    g.add_argument("--max-tokens-budget", type=int, default=None, help="stop after this many tokens")
    p.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from rgsd.data.loaders import DataError
    from rgsd.judges import make_judge
    from rgsd.judges.openai_judge import JudgeConfigError
    from rgsd.rubrics.generate import Settings, failures_path, generate_rubrics
    from rgsd.rubrics.inputs import read_tasks
    from rgsd.rubrics.parse import parse_weight_map

    out = Path(args.out)
    try:
        settings = Settings(
            min_criteria=args.min_criteria,
            max_criteria=args.max_criteria,
            weights=parse_weight_map(args.weights),
            copy_words=args.copy_words,
            drop_copies=args.drop_copies,
            max_reasks=args.max_reasks,
            structured=args.structured,
        )
    except ValueError as err:
        print(f"rgsd rubrics generate: error: {err}", file=sys.stderr)
        return 2
    try:
        tasks, issues = read_tasks(
            args.data, args.split, args.prompt_column, args.reference_column, args.id_column,
            args.on_error, args.limit, args.config_name,
        )
    except (DataError, FileNotFoundError) as err:
        print(err, file=sys.stderr)
        print(f"nothing written to {out}", file=sys.stderr)
        return 1
    for issue in issues:
        print(issue, file=sys.stderr)
    cache = None if args.cache == "none" else (out.with_name(out.name + ".cache.sqlite") if args.cache == "auto" else args.cache)
    try:
        judge = make_judge(
            "openai", args.judge_model, cache_path=cache, max_calls=args.max_calls,
            max_tokens_budget=args.max_tokens_budget, base_url=args.base_url, api_key_env=args.api_key_env,
            concurrency=args.concurrency, timeout=args.judge_timeout, max_retries=args.max_retries,
            temperature=args.judge_temperature, max_tokens=args.judge_max_tokens,
        )
    except (JudgeConfigError, ValueError) as err:
        print(f"rgsd rubrics generate: error: {err}", file=sys.stderr)
        return 2
    try:
        report = generate_rubrics(tasks, out, judge, settings)
    except JudgeConfigError as err:
        print(f"rgsd rubrics generate: error: {err}", file=sys.stderr)
        return 2
    except DataError as err:
        print(f"{out}: {err}", file=sys.stderr)
        return 1
    finally:
        judge.close()
    u = report.usage
    print(
        f"wrote {report.written:,} rubrics to {out} ({report.generated:,} new, {report.kept:,} kept from the "
        f"previous run); {len(report.failed):,} failed; {report.merged:,} duplicate criteria merged; "
        f"{report.copies:,} criteria copy the reference{' (dropped)' if settings.drop_copies else ' (tagged copies-reference)'}"
    )
    print(
        f"generator: {u['calls']:,} calls, {u['cache_hits']:,} cache hits, {u['reasks']:,} re-asks, "
        f"{u['retries']:,} retries, {u['total_tokens']:,} tokens"
    )
    for f in report.failed[:20]:
        print(f"{f['where']}: rubric: {f['error']}", file=sys.stderr)
    if report.failed:
        print(f"failures listed in {failures_path(out)}; rerun to try them again", file=sys.stderr)
    if report.budget_stop:
        print(f"stopped: {report.budget_stop}; rerun to continue (paid replies are cached)", file=sys.stderr)
        return 3
    return 1 if report.failed else 0
