"""The comparison's table (one row per model: score, gain, costs, cost per point) and its two plots.

Cost per point gained is measured on the normalized rubric score in percentage points (pp); it is n/a when
the gain is <= 0. When the evaluation judge is GRPO's training judge the table says so: a policy trained
against a judge learns its blind spots, so that setting favours GRPO.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rgsd.plots import pyplot, save_figure


def _pp(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _per_pp(cost: float, gain_pp: float | None) -> str:
    if gain_pp is None or gain_pp <= 0:
        return "n/a (no gain)"
    return f"{cost / gain_pp:.3g}"


def _gain(name: str, value: float | None, base: float | None) -> float | None:
    return None if name == "base" or value is None or base is None else 100 * (value - base)


def build_rows(summaries: dict[str, dict], costs: dict[str, Any], same: bool) -> list[dict[str, Any]]:
    """One row per model (base, rgsd, grpo, then any RGSD control) with every column of the table."""
    base = summaries["base"]
    rows = []
    for name in summaries:
        s, c = summaries[name], costs.get(name)
        norm, hb = s.get("score_normalized"), s.get("score")
        gain = _gain(name, norm, base.get("score_normalized"))
        row = {"model": name, "normalized": norm, "normalized_std": s.get("score_normalized_std"),
               "healthbench": hb, "healthbench_std": s.get("score_std"), "gain_normalized_pp": gain,
               "gain_healthbench_pp": _gain(name, hb, base.get("score")),
               "mean_response_tokens": s.get("mean_response_tokens"), "eval_failures": s.get("n_failures")}
        if c is not None:
            gained = gain is not None and gain > 0
            row.update(judge_calls=c.judge_calls, rollouts=c.rollouts, generated_tokens=c.generated_tokens,
                       wall_time=c.wall_time, prompts_seen=c.prompts_seen,
                       judge_calls_per_pp=c.judge_calls / gain if gained else None,
                       wall_s_per_pp=c.wall_time / gain if gained else None)
        row["eval_judge_is_training_judge"] = {"base": None, "grpo": same}.get(name, False)
        rows.append(row)
    return rows


def render_table(rows: list[dict[str, Any]], same: bool, notes: list[str]) -> str:
    head = (
        "| model | rubric score, normalized (pp ± std) | gain (pp) | HealthBench score (pp ± std) "
        "| gain (pp) | mean response length (tokens) | training judge calls | rollouts | generated tokens "
        "| wall time (s) | judge calls per pp | wall s per pp | eval judge = training judge |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        base = r["model"] == "base"
        flag = {"base": "-", "grpo": "YES: favours GRPO (reward hacking goes unseen)" if same else "no"}.get(
            r["model"], "n/a (RGSD uses no judge)")
        gain, gain_hb = r["gain_normalized_pp"], r["gain_healthbench_pp"]
        cells = [
            r["model"],
            f"{_pp(r['normalized'])} ± {_pp(r['normalized_std'])}",
            "-" if base else ("n/a" if gain is None else f"{gain:+.1f}"),
            f"{_pp(r['healthbench'])} ± {_pp(r['healthbench_std'])}",
            "-" if base else ("n/a" if gain_hb is None else f"{gain_hb:+.1f}"),
            "n/a" if r["mean_response_tokens"] is None else f"{r['mean_response_tokens']:.1f}",
            "-" if base else str(r["judge_calls"]),
            "-" if base else str(r["rollouts"]),
            "-" if base else str(r["generated_tokens"]),
            "-" if base else f"{r['wall_time']:.1f}",
            "-" if base else _per_pp(r["judge_calls"], gain),
            "-" if base else _per_pp(r["wall_time"], gain),
            flag,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    if same:
        text = (
            "**The evaluation judge is the same judge GRPO trained against. This favours GRPO: its reward "
            "hacking of that judge counts as gain here. Use a different (stronger) --eval-judge for a fair "
            "comparison.**\n\n" + text
        )
    return text + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def plot(rows: list[dict[str, Any]], out: Path) -> list[str]:
    """Rubric score (normalized, pp) against wall time and against training judge calls; base at x = 0."""
    plt = pyplot()
    base = next(r for r in rows if r["model"] == "base")
    files = []
    for key, label, name in (("wall_time", "training wall time (s)", "score_vs_wall_time.png"),
                             ("judge_calls", "training-time judge calls", "score_vs_judge_calls.png")):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for r in rows:
            if r["model"] == "base" or r["normalized"] is None or base["normalized"] is None:
                continue
            style = "o-" if r["model"] == "rgsd" else "s--"
            ys = [100 * base["normalized"], 100 * r["normalized"]]
            ax.plot([0, r[key]], ys, style, label=r["model"].upper() if r["model"] in ("rgsd", "grpo")
                    else f"RGSD control {r['model']}")
        if base["normalized"] is not None:
            ax.plot([0], [100 * base["normalized"]], "k^", label="base")
        save_figure(fig, ax, out / name, xlabel=label, ylabel="rubric score, normalized (pp)", dpi=120,
                    grid_alpha=0.3)
        files.append(name)
    return files
