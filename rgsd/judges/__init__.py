"""Judges: grade responses against rubrics (an OpenAI-compatible LLM judge, or the offline regex judge)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def make_judge(
    kind: str,
    model: str | None = None,
    *,
    cache_path: str | Path | None = None,
    max_calls: int | None = None,
    max_tokens_budget: int | None = None,
    **openai_options: Any,
) -> Any:
    """The judge every command builds: ``"regex"`` or ``"openai"`` (any OpenAI-compatible endpoint).

    ``cache_path`` (SQLite) and the budget caps apply to the LLM judge; ``openai_options`` are passed to
    :class:`rgsd.judges.openai_judge.OpenAIJudge` (base_url, api_key_env, mode, concurrency, timeout, ...).
    """
    if kind == "regex":
        from rgsd.judges.regex_judge import RegexJudge

        return RegexJudge()
    if kind != "openai":
        raise ValueError(f"judge must be 'regex' or 'openai', got {kind!r}")
    if not model:
        raise ValueError("an OpenAI-compatible judge needs a model name (--judge-model / judge_model)")
    from rgsd.judges.cache import JudgeCache
    from rgsd.judges.openai_judge import OpenAIJudge
    from rgsd.judges.usage import Budget

    budget = None
    if max_calls is not None or max_tokens_budget is not None:
        budget = Budget(max_calls=max_calls, max_tokens=max_tokens_budget)
    cache = JudgeCache(Path(cache_path)) if cache_path else None
    return OpenAIJudge(model, cache=cache, budget=budget, **openai_options)
