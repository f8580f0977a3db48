"""Writing the pre-flight of :mod:`rgsd.evaluate.arms`: ``criteria.jsonl`` and ``report.md``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rgsd.evaluate.arms import LIFTS, ArmsResult

_ORDER = {"taught": 0, "hurt": 1, "indistinguishable": 2, "unknown": 3}


def _num(x: float | None, sign: bool = False) -> str:
    return "-" if x is None else (f"{x:+.3f}" if sign else f"{x:.3f}")


def _ci(ci: list[float | None] | None) -> str:
    return "-" if not ci or ci[0] is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def _lift_cell(lift: dict[str, Any] | None) -> str:
    return "-" if not lift else f"{lift['mean']:+.2f} {_ci(lift['ci95'])}"


def report_markdown(summary: dict[str, Any], rows: list[dict[str, Any]], arms: tuple[str, ...]) -> str:
    """The arms, the lifts, the verdict and the per-criterion table as markdown."""
    lines = ["# Pre-flight: the rubric vs its context", "",
             f"Verdict: **{summary['preflight_verdict']}**", "",
             f"{summary['samples_per_prompt']} sample(s) per prompt and arm at temperature "
             f"{summary['sample_temperature']:g}; every arm graded against the prompt's own criteria.", "",
             "| arm | mean normalized score |", "|---|---|"]
    lines += [f"| {arm} | {_num(summary['conditioning_arms'][arm])} |" for arm in arms]
    lines += ["", "| lift | arms | mean | 95% CI (bootstrap) | 95% CI (t) | p (one-sided) | n |",
              "|---|---|---|---|---|---|---|"]
    for name, s in summary["conditioning_lift"].items():
        a, b = LIFTS[name]
        p = "-" if s["p_value"] is None else f"{s['p_value']:.3g}"
        lines.append(f"| {name} | {b} - {a} | {_num(s['mean'], True)} | {_ci(s['ci95'])} | {_ci(s['t_ci95'])} "
                     f"| {p} | {s['n']} |")
    lines += ["", "## Criteria", "",
              "Met rate per arm; the lifts are rubric minus shuffled (what these words teach) and rubric minus none, "
              "with Newcombe (Wilson hybrid score) 95% intervals over the criterion's samples. `taught`: the "
              "rubric - shuffled interval excludes 0 on the good side (up, or down for a pitfall); "
              "`indistinguishable`: it contains 0.", "",
              "| criterion | prompt | " + " | ".join(arms) + " | rubric - shuffled | rubric - none | n | |",
              "|---|---|" + "---|" * len(arms) + "---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (_ORDER[r["taught"]], -(r["lift_vs_shuffled"] or {}).get("mean", 0))):
        text = r["text"].replace("|", "/")
        text = text if len(text) <= 60 else text[:57] + "..."
        rates = " | ".join(_num(r["met_rate"].get(a)) for a in arms)
        n = max(r["n"].values(), default=0)
        lines.append(f"| {text}{' (pitfall)' if r['polarity'] == 'negative' else ''} | {r['prompt_id']} | {rates} "
                     f"| {_lift_cell(r['lift_vs_shuffled'])} | {_lift_cell(r['lift_vs_none'])} | {n} "
                     f"| {r['taught']} |")
    counts = {k: sum(r["taught"] == k for r in rows) for k in _ORDER}
    lines += ["", f"Taught from its own context: {counts['taught']} of {len(rows)} criteria; indistinguishable "
              f"from zero: {counts['indistinguishable']}; hurt: {counts['hurt']}; no interval: {counts['unknown']}.",
              ""]
    return "\n".join(lines)


def write_arms(result: ArmsResult, out: str | Path, summary: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``criteria.jsonl`` (one line per criterion) and ``report.md`` in ``out``; returns the criteria rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summary or result.summary()
    rows = result.criteria()
    (out / "criteria.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    (out / "report.md").write_text(report_markdown(summary, rows, result.arms))
    return rows
