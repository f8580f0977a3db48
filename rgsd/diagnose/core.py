"""Grade every checkpoint's cached responses with each judge role and assemble the diagnostics.

:func:`diagnose` is the in-process entry point (the CLI discovers checkpoints and generates the responses,
then calls it). It never generates: it only reads :class:`CheckpointResponses`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rgsd.data.schema import Example
from rgsd.diagnose import metrics
from rgsd.diagnose.responses import CheckpointResponses

log = logging.getLogger(__name__)


class BudgetStop(RuntimeError):
    """A judge's call or token budget ran out; rerun with a larger one (cached replies are not paid again)."""


@dataclass
class Graded:
    """One judge's view of one checkpoint's responses."""

    normalized: dict[metrics.Key, float | None]
    healthbench: dict[metrics.Key, float | None]
    credits: dict[metrics.ItemKey, bool | None]
    failures: int = 0


@dataclass
class Judges:
    """The judge of each role; ``reference`` lists one judge or a panel's members (each graded on its own)."""

    proxy: Any
    reference: list[Any]
    pairwise: Any | None = None
    classifier: Any | None = None


@dataclass
class Options:
    panel_rule: str = "all"
    seed: int = 0
    n_boot: int = metrics.N_BOOT
    taxonomy_max: int = 200
    notes: list[str] = field(default_factory=list)
    progress: bool = False  # bars on stderr for each judge pass (the CLI sets it)


def grade(judge: Any, examples: dict[str, Example], cr: CheckpointResponses, progress: bool | str = False) -> Graded:
    """Grade a checkpoint's responses (criterion by criterion) through :func:`rgsd.evaluate.run.evaluate`."""
    from rgsd.evaluate.run import evaluate

    if getattr(judge, "mode", None) == "holistic":
        raise ValueError(f"judge {judge.name}: holistic mode gives no per-criterion verdicts; use per-criterion or batched")
    exs = [examples[pid] for pid, _ in cr.keys]
    result = evaluate(exs, list(cr.texts), judge, response_tokens=list(cr.tokens), progress=progress)
    if not result.complete:
        raise BudgetStop(str(result.summary.get("budget_stop")))
    g = Graded({}, {}, {})
    for key, ex, rec in zip(cr.keys, exs, result.records):
        g.normalized[key] = rec.get("score_normalized")
        g.healthbench[key] = rec.get("score")
        verdicts = {v["criterion_id"]: v["met"] for v in rec.get("verdicts", [])}
        for c in ex.rubric:
            g.credits[(key[0], key[1], c.id)] = metrics.credited(c.polarity, verdicts.get(c.id))
        g.failures += int(rec.get("failures") or 0)
    return g


def _score_block(per_response: dict[metrics.Key, float | None], opts: Options, clip: bool) -> dict[str, Any]:
    per_prompt = metrics.per_prompt_means(per_response)
    return metrics.bootstrap_mean_ci(list(per_prompt.values()), opts.n_boot, opts.seed, (0.0, 1.0) if clip else None)


def _panel_mean(maps: Sequence[dict[metrics.Key, float | None]]) -> dict[metrics.Key, float | None]:
    out: dict[metrics.Key, float | None] = {}
    for key in maps[0]:
        vals = [m.get(key) for m in maps if m.get(key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
    return out


def _satisfaction(
    examples: dict[str, Example], cr: CheckpointResponses, credit_maps: Sequence[dict], kind: str
) -> list[tuple[str, float, float]]:
    """(prompt, weighted share of ``kind`` criteria credited, tokens) per response; failures skipped."""
    rows = []
    for key, n_tok in zip(cr.keys, cr.tokens):
        ex = examples[key[0]]
        num = den = 0.0
        for c in ex.rubric:
            if metrics.criterion_kind(c.text, c.polarity) != kind:
                continue
            vals = [m.get((key[0], key[1], c.id)) for m in credit_maps]
            if any(v is None for v in vals):
                continue
            num += c.weight * float(np.mean(vals))
            den += c.weight
        if den > 0:
            rows.append((key[0], num / den, float(n_tok)))
    return rows


def _argmax(entries: list[dict[str, Any]], field_name: str) -> dict[str, Any] | None:
    have = [e for e in entries if e.get(field_name) is not None]
    if not have:
        return None
    best = max(have, key=lambda e: e[field_name])
    return {"label": best["label"], "step": best["step"], "value": best[field_name]}


def diagnose(
    examples: list[Example],
    base: CheckpointResponses,
    runs: dict[str, list[CheckpointResponses]],
    judges: Judges,
    opts: Options | None = None,
) -> dict[str, Any]:
    """All diagnostics for the base and each run's checkpoints (in step order); see docs/diagnose.md."""
    from rgsd.diagnose import pairwise, taxonomy

    opts = opts or Options()
    by_id = {ex.id: ex for ex in examples}
    weights = {(ex.id, c.id): abs(c.points) for ex in examples for c in ex.rubric}
    ordered = [base] + [cr for crs in runs.values() for cr in crs]
    def bar(what: str, cr: CheckpointResponses) -> bool | str:
        return opts.progress and f"{what} {cr.checkpoint.label}"

    proxy = {cr.checkpoint.label: grade(judges.proxy, by_id, cr, bar("proxy judge", cr)) for cr in ordered}
    refs = {cr.checkpoint.label: [grade(j, by_id, cr, bar("reference judge", cr)) for j in judges.reference]
            for cr in ordered}

    entries: dict[str, dict[str, Any]] = {}
    for cr in ordered:
        lab = cr.checkpoint.label
        p, rs = proxy[lab], refs[lab]
        ref_norm = _panel_mean([r.normalized for r in rs])
        ref_hb = _panel_mean([r.healthbench for r in rs])
        e: dict[str, Any] = cr.checkpoint.to_dict()
        e["proxy"] = {"normalized": _score_block(p.normalized, opts, False),
                      "healthbench": _score_block(p.healthbench, opts, True), "failures": p.failures}
        e["reference"] = {"normalized": _score_block(ref_norm, opts, False),
                          "healthbench": _score_block(ref_hb, opts, True), "failures": sum(r.failures for r in rs)}
        if len(rs) > 1:
            e["reference"]["per_judge"] = [_score_block(r.normalized, opts, False)["mean"] for r in rs]
        e["proxy_score"] = e["proxy"]["normalized"]["mean"]
        e["reference_score"] = e["reference"]["normalized"]["mean"]
        pn, rn = metrics.per_prompt_means(p.normalized), metrics.per_prompt_means(ref_norm)
        e["_gap_per_prompt"] = {k: pn[k] - rn[k] for k in pn.keys() & rn.keys()}
        e["proxy_reference_gap"] = (
            None if e["proxy_score"] is None or e["reference_score"] is None else e["proxy_score"] - e["reference_score"]
        )
        e["exploitation_rate"] = None
        e["exploitation"] = None
        e["pairwise_win_rate"] = None
        e["mean_response_tokens"] = float(np.mean(cr.tokens)) if cr.tokens else None
        e["self_internalization_gap"] = cr.sig["gap"] if cr.sig else None
        e["self_internalization_gap_source"] = cr.sig.get("source") if cr.sig else None
        e["n_responses"] = len(cr.keys)
        entries[lab] = e

    credits_to_classify: list[taxonomy.ExploitedCredit] = []
    run_summaries: dict[str, Any] = {}
    for name, crs in runs.items():
        seq = [base] + list(crs)
        for prev, cur in zip(seq, seq[1:]):
            lab = cur.checkpoint.label
            ex_ = metrics.exploitation_rate(
                proxy[prev.checkpoint.label].credits, proxy[lab].credits,
                [r.credits for r in refs[lab]], weights, opts.panel_rule,
            )
            entries[lab]["exploitation"] = {**ex_.to_dict(), "since": prev.checkpoint.label}
            entries[lab]["exploitation_rate"] = ex_.rate
            text_of = dict(zip(cur.keys, cur.texts))
            for pid, s, cid in ex_.exploited:
                crit = next(c for c in by_id[pid].rubric if c.id == cid)
                credits_to_classify.append(taxonomy.ExploitedCredit(lab, pid, s, crit, text_of[(pid, s)]))
        run_entries = [entries[cr.checkpoint.label] for cr in seq]
        stepped = [e for e in run_entries if e["step"] is not None]
        slope = metrics.slope_per_100_steps(
            [e["step"] for e in stepped], [e["_gap_per_prompt"] for e in stepped], opts.n_boot, opts.seed
        )
        sig_entries = [e for e in run_entries if e["self_internalization_gap"] is not None]
        sources = {e["self_internalization_gap_source"] for e in sig_entries}
        note = None
        if len(sources) > 1:  # e.g. training probes for the steps, a measured value for the base
            sig_entries = [e for e in sig_entries if e["self_internalization_gap_source"] == "metrics"]
            note = "gap values come from different sources; the argmax uses the run's own metrics only"
        run_summaries[name] = {
            "checkpoints": [e["label"] for e in run_entries],
            "gap_slope": slope,
            "recommended_stop": _argmax(sig_entries, "self_internalization_gap"),
            "proxy_pick": _argmax(run_entries, "proxy_score"),
            "reference_pick": _argmax(run_entries, "reference_score"),
            "note": note,
        }

    if judges.pairwise is not None:
        base_text = dict(zip(base.keys, base.texts))
        for cr in ordered[1:]:
            keys = [k for k in cr.keys if k in base_text]
            res = pairwise.compare_to_base(
                judges.pairwise, by_id, keys, [dict(zip(cr.keys, cr.texts))[k] for k in keys],
                [base_text[k] for k in keys], progress=bar("pairwise", cr),
            )
            summary = metrics.pairwise_summary(res["outcomes"], opts.n_boot, opts.seed)
            summary["scale_deltas"] = res["scale_deltas"]
            entries[cr.checkpoint.label]["pairwise"] = summary
            entries[cr.checkpoint.label]["pairwise_win_rate"] = summary["win_rate"]

    tax = None
    if judges.classifier is not None:
        chosen = credits_to_classify[: opts.taxonomy_max]
        tax = taxonomy.classify(judges.classifier, by_id, chosen, progress=opts.progress and "classify credits")
        tax["n_exploited_total"] = len(credits_to_classify)
    criteria = [(c.text, c.polarity, c.weight) for ex in examples for c in ex.rubric]
    lengths: dict[str, Any] = {"presence_weight_share": metrics.presence_weight_share(criteria)}
    for role, maps in (("proxy", lambda lab: [proxy[lab].credits]),
                       ("reference", lambda lab: [r.credits for r in refs[lab]])):
        lengths[role] = {
            kind: metrics.within_prompt_correlation(
                [row for cr in ordered for row in _satisfaction(by_id, cr, maps(cr.checkpoint.label), kind)]
            )
            for kind in ("presence", "absence")
        }
    for e in entries.values():
        e.pop("_gap_per_prompt")
    return {
        "checkpoints": [entries[cr.checkpoint.label] for cr in ordered],
        "runs": run_summaries,
        "recommended_stop": {n: s["recommended_stop"] for n, s in run_summaries.items()},
        "taxonomy": tax,
        "length_correlation": lengths,
        "panel_rule": opts.panel_rule,
        "notes": list(opts.notes),
    }
