"""``OUT/diagnostics.json``, ``OUT/report.md`` with its plots, and the table printed to the terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rgsd.plots import pyplot, save_figure

HEADER = ["checkpoint", "step", "proxy", "reference", "gap", "exploit.", "win rate", "pos. bias", "tokens", "SIG"]


def _f(v: Any, digits: int = 3, signed: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def table_rows(diag: dict[str, Any]) -> list[list[str]]:
    rows = []
    for e in diag["checkpoints"]:
        pw = e.get("pairwise") or {}
        rows.append([
            e["label"],
            "-" if e["step"] is None else str(e["step"]),
            _f(e["proxy_score"]),
            _f(e["reference_score"]),
            _f(e["proxy_reference_gap"], signed=True),
            _f(e["exploitation_rate"]),
            _f(e["pairwise_win_rate"]),
            _f(pw.get("position_bias_rate")),
            _f(e["mean_response_tokens"], 1),
            _f(e["self_internalization_gap"], 4, signed=True),
        ])
    return rows


def render_table(diag: dict[str, Any]) -> str:
    """The fixed-width table (also used in report.md inside a code block)."""
    rows = table_rows(diag)
    widths = [max(len(r[i]) for r in rows + [HEADER]) for i in range(len(HEADER))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(HEADER), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]
    for name, run in diag["runs"].items():
        slope = run["gap_slope"]
        ci = slope.get("ci95")
        pick = lambda p: "-" if p is None else p["label"]  # noqa: E731
        out.append(
            f"{name}: gap slope {_f(slope.get('per_100_steps'), signed=True)} per 100 steps "
            f"(95% CI {'-' if ci is None else f'{ci[0]:+.3f} .. {ci[1]:+.3f}'}) | stop at (SIG argmax) "
            f"{pick(run['recommended_stop'])} | proxy picks {pick(run['proxy_pick'])} | reference picks "
            f"{pick(run['reference_pick'])}"
        )
    tax = diag.get("taxonomy")
    if tax and tax.get("n_classified"):
        shares = ", ".join(f"{k} {v:.0%}" for k, v in tax["shares"].items() if v is not None)
        out.append(f"taxonomy of {tax['n_classified']} exploited credits: {shares}")
    return "\n".join(out)


def _plots(diag: dict[str, Any], out: Path) -> list[str]:
    plt = pyplot()
    base = diag["checkpoints"][0]
    files = []
    specs = [
        ("proxy_vs_reference.png", "normalized rubric score", [("proxy_score", "proxy"), ("reference_score", "reference")]),
        ("exploitation_rate.png", "exploitation rate", [("exploitation_rate", "exploitation")]),
        ("win_rate.png", "pairwise win rate vs base", [("pairwise_win_rate", "win rate")]),
        ("length.png", "mean response tokens", [("mean_response_tokens", "tokens")]),
    ]
    for fname, ylabel, series in specs:
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        drawn = False
        for name, run in diag["runs"].items():
            entries = [e for e in diag["checkpoints"] if e["label"] in run["checkpoints"] and e["step"] is not None]
            for key, what in series:
                pts = [(e["step"], e[key]) for e in entries if e.get(key) is not None]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{name} {what}")
                    drawn = True
        if not drawn:
            plt.close(fig)
            continue
        if fname == "win_rate.png":
            ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        save_figure(fig, ax, out / fname, xlabel="training step (0 = base model)", ylabel=ylabel, dpi=110,
                    legend_fontsize=7)
        files.append(fname)
    del base
    return files


def write_report(diag: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``diagnostics.json``, the plots and ``report.md``; returns the report path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnostics.json").write_text(json.dumps(diag, indent=2, ensure_ascii=False) + "\n")
    plots = _plots(diag, out)
    lines = [
        "# rgsd diagnose",
        "",
        "Is a rubric-score gain real? Proxy = the training judge; reference = the stronger judge or panel "
        f"(panel rule: {diag['panel_rule']}). Scores are normalized rubric scores with 95% bootstrap CIs over "
        "prompts in diagnostics.json. Exploitation rate: weight share of newly credited proxy items that the "
        "reference rejects. Win rate: rubric-free pairwise preference of the checkpoint over the base, both "
        "orders. SIG: self-internalization gap (closer to 0 = more internalized).",
        "",
        "```",
        render_table(diag),
        "```",
        "",
    ]
    lines += [f"![{p}]({p})" for p in plots] + [""]
    lc = diag["length_correlation"]
    share = lc.get("presence_weight_share")
    lines += ["## Presence vs absence criteria and length", ""]
    lines.append(f"Share of rubric weight that rewards adding content (presence criteria): {_f(share)}.")
    for role in ("proxy", "reference"):
        r = lc[role]
        lines.append(
            f"- {role} judge, within-prompt correlation of satisfaction with response length: presence "
            f"r = {_f(r['presence']['r'], signed=True)} (n = {r['presence']['n_responses']}), absence "
            f"r = {_f(r['absence']['r'], signed=True)} (n = {r['absence']['n_responses']})"
        )
    tax = diag.get("taxonomy")
    lines += ["", "## Failure taxonomy of exploited credits", ""]
    if not tax:
        lines.append("Not run (no --classifier-judge).")
    else:
        lines.append(
            f"{tax['n_classified']} of {tax['n_credits']} classified ({tax['n_failures']} classifier failures; "
            f"{tax['n_exploited_total']} exploited credits in all)."
        )
        lines += ["", "| category | count | share |", "|---|---|---|"]
        for k, n in tax["counts"].items():
            lines.append(f"| {k} | {n} | {_f(tax['shares'][k])} |")
        for k, exs in tax["examples"].items():
            for ex in exs[:2]:
                resp = ex["response"].replace("\n", " ")[:240]
                lines.append(f"\n*{k}* ({ex['checkpoint']}, {ex['prompt_id']}): criterion \"{ex['criterion']}\"; "
                             f"response: \"{resp}\"")
    if diag.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in diag["notes"]]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
