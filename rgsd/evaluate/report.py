"""Markdown report of an evaluation: headline scores, judge usage, a per-tag bar chart, worst examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHART_NAME = "per_tag_scores.png"


def _fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plot_tags(
    tags: dict[str, dict[str, Any]], path: str | Path, title: str = "Per-tag HealthBench score"
) -> Path:
    """Horizontal bar chart of per-tag scores with bootstrap std error bars (matplotlib Agg, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(tags, key=lambda t: tags[t]["score"])
    height = max(2.0, 0.28 * len(names) + 1.0)
    fig, ax = plt.subplots(figsize=(8, height))
    ax.barh(
        range(len(names)),
        [tags[t]["score"] for t in names],
        xerr=[tags[t].get("std") or 0.0 for t in names],
        color="#4C72B0",
        ecolor="#333333",
        capsize=2,
    )
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([f"{t} (n={tags[t]['n']})" for t in names], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("score (clipped mean; error bar = bootstrap std)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _worst(records: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    graded = [r for r in records if r.get("score") is not None]
    return sorted(graded, key=lambda r: (r["score"], r.get("score_normalized") or 0.0))[:k]


def write_report(
    records: list[dict[str, Any]], summary: dict[str, Any], out_dir: str | Path, worst: int = 5,
    title: str = "Evaluation report",
) -> Path:
    """Write ``report.md`` (and the per-tag chart when there are tag scores) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = summary
    lines = [f"# {title}", ""]
    if s.get("note"):
        lines += [f"> **Note:** {s['note']}", ""]
    if not s.get("complete", True):
        lines += [
            f"> **Partial results:** {s.get('budget_stop')}; {len(s.get('pending_ids', []))} examples "
            "not graded. Rerun with a larger budget: cached verdicts are not paid again.",
            "",
        ]
    lines += [
        "| metric | value |",
        "| --- | --- |",
        f"| judge | {s.get('judge_name')} ({s.get('judge_mode', 'n/a')}) |",
        f"| examples scored | {s.get('n')} of {s.get('n_examples')} |",
        f"| HealthBench score (clipped mean ± bootstrap std) | {_fmt(s.get('score'))} ± {_fmt(s.get('score_std'))} |",
        f"| normalized score | {_fmt(s.get('score_normalized'))} |",
        f"| strict completion | {_fmt(s.get('strict_completion'))} |",
        f"| judge failures (excluded) | {s.get('n_failures', 0)} ({100 * (s.get('failure_rate') or 0):.1f}% of verdicts) |",
        f"| mean response length | {_fmt(s.get('mean_response_tokens'), 1)} {s.get('response_length_unit', '')} |",
    ]
    usage = s.get("judge")
    if usage:
        lines.append(
            f"| judge usage | {usage['calls']} calls, {usage['cache_hits']} cache hits, {usage['retries']} retries, "
            f"{usage['reasks']} re-asks, {usage['total_tokens']} tokens, {usage['wall_time']:.1f} s |"
        )
    if s.get("judge_cost_usd") is not None:
        lines.append(f"| judge cost | ${s['judge_cost_usd']:.4f} |")
    panel = s.get("panel")
    if panel:
        agree = ", ".join(
            f"{m['name']} {_fmt(m['agreement'], 2)}" for m in panel["members"]
        )
        lines.append(
            f"| judge panel ({panel['rule']}) | {panel['decided']} decided, {panel['undecided']} undecided; "
            f"agreement with the panel: {agree} |"
        )
    lines.append("")
    tags = s.get("tags") or {}
    if tags:
        plot_tags(tags, out / CHART_NAME)
        lines += [
            "## Per-tag scores",
            "",
            f"![per-tag scores]({CHART_NAME})",
            "",
            "| tag | score | std | n |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {t} | {_fmt(v['score'])} | {_fmt(v.get('std'))} | {v['n']} |" for t, v in sorted(tags.items())
        ]
        lines.append("")
    rows = _worst(records, worst)
    if rows:
        lines += [f"## The {len(rows)} lowest-scoring examples", ""]
    for r in rows:
        lines += [
            f"### {r['id']}: score {_fmt(r['score'])}, normalized {_fmt(r.get('score_normalized'))}",
            "",
            f"**Response** ({r['response_tokens']} {s.get('response_length_unit', '')}): "
            f"{_clip(r['response'], 600)}",
            "",
        ]
        missed = [
            v for v in r.get("verdicts", []) if v["met"] is not None and (v["met"] != (v["points"] > 0))
        ]
        for v in missed:
            what = "missed" if v["points"] > 0 else "penalty triggered"
            lines.append(f"- {what} ({v['points']:+g}): {_clip(v['criterion'], 200)}")
        lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
