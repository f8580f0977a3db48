"""JudgeOptions: every option of a judge, defined once, and the judge they describe.

Every command that talks to a judge (``eval``, ``gap``, ``compare``, ``diagnose`` with role prefixes such as
``--reference-``, ``rubrics generate``, and GRPO's config) builds its judge flags from these fields: the same
name, choices, default and help text everywhere, and builds its judge with :func:`build_judge` (after
:func:`check`) and its price table with :func:`prices`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from rgsd.checks import AT_LEAST_ONE, NON_NEGATIVE, NOT_EMPTY, POSITIVE, SHARE
from rgsd.options import arg

if TYPE_CHECKING:
    from rgsd.costs import PriceTable
    from rgsd.judges.base import Judge

JudgeKind = Literal["openai", "regex", "none"]
JudgeMode = Literal["per-criterion", "batched", "holistic"]


@dataclass
class JudgeOptions:
    """Where the judge is, how it is asked, what it may spend, and what it costs."""

    # The names ``rgsd eval`` used before every judge option started with ``judge_`` (one release).
    DEPRECATED: ClassVar[dict[str, str]] = {
        name: f"judge_{name}"
        for name in ("mode", "concurrency", "base_url", "api_key_env", "max_retries", "max_reasks", "max_calls",
                     "max_tokens_budget", "cache", "panel_rule", "structured", "max_failure_rate", "price_in",
                     "price_out", "prices")
    }

    judge: JudgeKind = arg(
        "openai", "openai: any OpenAI-compatible endpoint; regex: the offline pattern stand-in (criteria need a "
                  "'pattern'); none: skip the judged part (where a command allows it).")
    judge_model: str | None = arg(
        None, "Model name sent to the endpoint (required for openai); 'a,b,c' = a panel of judges.")
    judge_base_url: str | None = arg(
        None, "Endpoint, e.g. http://127.0.0.1:8000/v1 (a panel: one URL, or one per model, comma-separated).")
    judge_api_key_env: str = arg("OPENAI_API_KEY", "Environment variable holding the API key.", check=NOT_EMPTY)
    judge_mode: JudgeMode = arg(
        "per-criterion", "per-criterion: one request per criterion; batched: all criteria of a response in one "
                         "request; holistic: one 1-10 rating per response (no per-criterion verdicts).")
    judge_concurrency: int = arg(8, "Judge requests in flight at once.", check=AT_LEAST_ONE)
    judge_timeout: float = arg(60.0, "Seconds per judge request.", check=POSITIVE)
    judge_max_retries: int = arg(5, "Retries of one request on 429/5xx/timeouts.", check=NON_NEGATIVE)
    judge_max_reasks: int = arg(2, "Re-asks of an unreadable reply before it counts as a failure.", check=NON_NEGATIVE)
    judge_max_consecutive_failures: int = arg(
        3, "Mark the judge down after this many requests in a row failed after all their retries (a hung or dead "
           "endpoint): every later request then fails at once as a counted failure (0 = never).", check=NON_NEGATIVE)
    judge_temperature: float = arg(0.0, "Sampling temperature of the judge.", check=NON_NEGATIVE)
    judge_max_tokens: int = arg(1024, "Longest judge reply in tokens.", check=AT_LEAST_ONE)
    judge_max_calls: int | None = arg(
        None, "Stop cleanly once the judge sent this many requests (a panel: all members together; null = no cap).",
        check=NON_NEGATIVE)
    judge_max_tokens_budget: int | None = arg(
        None, "Stop cleanly once the judge used this many tokens (a panel: all members together; null = no cap).",
        check=NON_NEGATIVE)
    judge_cache: str = arg(
        "auto", "SQLite cache of judge replies: a path, 'auto' (a file in the output folder) or 'none'.",
        check=NOT_EMPTY)
    judge_panel_rule: Literal["majority", "unanimous"] = arg(
        "majority", "How a panel (judge_model a,b,c) decides a verdict; it stands only if a majority answered.")
    judge_structured: Literal["auto", "on", "off"] = arg(
        "auto", "auto: request a JSON schema (response_format), falling back to plain JSON once the endpoint "
                "refuses it; on: always, never falling back (a refusal is a judge failure); off: never.")
    judge_max_failure_rate: float = arg(
        0.05, "Fail the command (exit 4) when more than this share of verdicts are judge failures.", check=SHARE)
    judge_price_in: float | None = arg(None, "Judge price, dollars per million prompt tokens.", check=NON_NEGATIVE)
    judge_price_out: float | None = arg(
        None, "Judge price, dollars per million completion tokens.", check=NON_NEGATIVE)
    judge_prices: str | None = arg(
        None, "YAML price table: MODEL: {input: $/Mtok, output: $/Mtok} (and 'default').")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check(opts: JudgeOptions) -> None:
    """Reject impossible judge options: ``ValueError`` naming the flag (``--judge-max-retries must be >= 0``)."""
    for name in ("judge_max_retries", "judge_max_reasks", "judge_max_calls", "judge_max_tokens_budget",
                 "judge_max_consecutive_failures"):
        value = getattr(opts, name)
        if value is not None and value < 0:
            raise ValueError(f"{_flag(name)} must be >= 0, got {value}")
    for name in ("judge_concurrency", "judge_max_tokens"):
        if getattr(opts, name) < 1:
            raise ValueError(f"{_flag(name)} must be >= 1, got {getattr(opts, name)}")
    if not opts.judge_timeout > 0:
        raise ValueError(f"--judge-timeout must be > 0 seconds, got {opts.judge_timeout}")
    if not 0 <= opts.judge_max_failure_rate <= 1:
        raise ValueError(f"--judge-max-failure-rate must be from 0 to 1, got {opts.judge_max_failure_rate}")
    if opts.judge == "openai" and not opts.judge_model:
        raise ValueError("--judge-model is required with --judge openai (the model name the endpoint serves)")


def prices(opts: JudgeOptions) -> PriceTable | None:
    """The price table of ``judge_price_in/judge_price_out/judge_prices`` (None when no price was given)."""
    from rgsd.costs import load_prices

    if (opts.judge_price_in is None) != (opts.judge_price_out is None):  # costs.py names no flag of ours
        raise ValueError("--judge-price-in and --judge-price-out go together (dollars per million input/output "
                         "tokens)")
    try:
        table = load_prices(opts.judge_prices, opts.judge_price_in, opts.judge_price_out)
    except ValueError as err:  # the file's problem, under the option that named the file
        raise ValueError(f"--judge-prices: {err}" if opts.judge_prices is not None else str(err)) from None
    return table if table else None


def build_judge(
    opts: JudgeOptions, out_dir: str | Path | None, *, cache_name: str = "judge_cache.sqlite"
) -> Judge | None:
    """The judge the options describe, after :func:`check` (``None`` for judge 'none').

    ``judge_cache``: 'auto' = ``out_dir / cache_name`` (no cache when ``out_dir`` is None), 'none' = no cache,
    anything else a path. ``judge_model`` 'a,b,c' builds a :class:`~rgsd.judges.panel.PanelJudge` whose
    members share the cache file and one budget (``judge_max_calls`` caps the sum over members); a caller
    that grades members one by one (diagnose's reference panel) takes ``panel.members``.
    """
    if opts.judge == "none":
        return None
    from rgsd.judges import make_judge

    check(opts)
    cache: str | Path | None = opts.judge_cache
    if cache == "none" or (cache == "auto" and out_dir is None):
        cache = None
    elif cache == "auto":
        cache = Path(out_dir) / cache_name  # type: ignore[arg-type]
    llm = {"panel_rule": opts.judge_panel_rule, "structured": opts.judge_structured} if opts.judge == "openai" else {}
    return make_judge(
        opts.judge,
        opts.judge_model,
        cache_path=cache,
        max_calls=opts.judge_max_calls,
        max_tokens_budget=opts.judge_max_tokens_budget,
        **llm,
        base_url=opts.judge_base_url,
        api_key_env=opts.judge_api_key_env,
        mode=opts.judge_mode,
        concurrency=opts.judge_concurrency,
        max_retries=opts.judge_max_retries,
        timeout=opts.judge_timeout,
        temperature=opts.judge_temperature,
        max_tokens=opts.judge_max_tokens,
        max_reasks=opts.judge_max_reasks,
        max_consecutive_failures=opts.judge_max_consecutive_failures,
    )
