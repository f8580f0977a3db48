"""Judges: grade responses against rubrics (an OpenAI-compatible LLM judge, or the offline regex judge).

Commands build their judge from :class:`rgsd.judges.options.JudgeOptions` with
:func:`rgsd.judges.options.build_judge` (which calls :func:`make_judge`); any other JSON question to an LLM
judge goes through :func:`rgsd.judges.asking.ask_json`. Both are importable from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_LAZY = {  # imported on first use: the openai SDK is slow to import and the regex judge needs none of it
    "ask_json": "rgsd.judges.asking",
    "ask_all": "rgsd.judges.asking",
    "Answer": "rgsd.judges.asking",
    "JudgeOptions": "rgsd.judges.options",
    "build_judge": "rgsd.judges.options",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_judge(
    kind: str,
    model: str | None = None,
    *,
    cache_path: str | Path | None = None,
    max_calls: int | None = None,
    max_tokens_budget: int | None = None,
    panel_rule: str = "majority",
    **openai_options: Any,
) -> Any:
    """The judge every command builds: ``"regex"`` or ``"openai"`` (any OpenAI-compatible endpoint).

    ``cache_path`` (SQLite) and the budget caps apply to the LLM judge; ``openai_options`` are passed to
    :class:`rgsd.judges.openai_judge.OpenAIJudge` (base_url, api_key_env, mode, concurrency, timeout, ...).
    A comma-separated ``model`` (``"a,b,c"``) builds a :class:`rgsd.judges.panel.PanelJudge` voting by
    ``panel_rule`` (majority or unanimous; ``all`` = unanimous); ``base_url`` is then one URL for all, or as many comma-separated URLs as models. The
    members share the cache and one budget (the caps apply to their sum).
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
    models = [m.strip() for m in model.split(",")]
    if any(not m for m in models):
        raise ValueError(f"--judge-model: empty model name in {model!r}")
    if len(models) == 1:
        cache = JudgeCache(Path(cache_path)) if cache_path else None
        return OpenAIJudge(model, cache=cache, budget=budget, **openai_options)
    from rgsd.judges.panel import PanelJudge

    base = openai_options.pop("base_url", None)
    urls = [u.strip() or None for u in base.split(",")] if base else [None]
    if len(urls) == 1:
        urls = urls * len(models)
    if len(urls) != len(models):
        raise ValueError(f"--judge-base-url: {len(urls)} URLs for {len(models)} judge models (give one, or one per model)")
    members = []
    for m, url in zip(models, urls):
        # One cache connection per member: each member runs on its own event loop thread.
        cache = JudgeCache(Path(cache_path)) if cache_path else None
        members.append(OpenAIJudge(m, base_url=url, cache=cache, budget=budget, **openai_options))
    if budget is not None:
        budget.pool = [j.usage for j in members]
    return PanelJudge(members, rule=panel_rule)
