"""Paired comparison of two evaluations of the same prompts (the library of ``rgsd compare-evals``,
:mod:`rgsd.evaluate.paired_cli`).

Two models answered the same prompts (possibly several samples each): the per-prompt mean scores are paired
by prompt id and the difference ``B - A`` gets a paired bootstrap 95% CI (resampling prompts, percentile
interval). Pairing removes the prompt-to-prompt spread that dominates an unpaired comparison of two means on
a few dozen prompts. Per-tag differences use the normalized score restricted to each tag's criteria.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rgsd import scoring
from rgsd.stats import paired_summary
from rgsd.stats import prompt_means as stats_prompt_means

__all__ = ["compare_dirs", "paired_compare", "pooled_compare", "prompt_means", "read_records", "render",
           "split_dirs"]



def read_records(eval_dir: str | Path) -> list[dict[str, Any]]:
    """The ``results.jsonl`` records of an ``rgsd eval`` output folder (clear error when missing/malformed)."""
    path = Path(eval_dir) / "results.jsonl"
    if not path.is_file():
        raise ValueError(f"{path}: file: not found (is {eval_dir} an `rgsd eval` output folder?)")
    from rgsd.jsonl import read_jsonl

    out = []
    for n, rec in read_jsonl(path):
        if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
            raise ValueError(f"{path}:{n}: id: expected a record with a string id")
        out.append(rec)
    return out


def _tag_score(rec: dict[str, Any], crit_tags: dict[str, list[str]], tag: str) -> float | None:
    pts, met = [], []
    for v in rec.get("verdicts") or []:
        if tag in crit_tags.get(v["criterion_id"], []) and v.get("met") is not None:
            pts.append(v["points"])
            met.append(v["met"])
    if not pts:
        return None
    try:
        return scoring.normalized_score(pts, met)
    except ValueError:
        return None


def prompt_means(
    records: list[dict[str, Any]], key: str = "score_normalized", crit_tags: dict | None = None,
    tag: str | None = None,
) -> dict[str, float]:
    """Mean score per prompt id over its samples (records with no score, e.g. judge failures, are skipped); with
    ``tag``, the normalized score restricted to that tag's criteria (:func:`rgsd.stats.prompt_means` otherwise)."""
    if not tag:
        return stats_prompt_means(records, key)
    return stats_prompt_means([{"id": r["id"], "v": _tag_score(r, crit_tags or {}, tag)} for r in records], "v")


def paired_compare(
    a: list[dict[str, Any]], b: list[dict[str, Any]], crit_tags: dict[str, list[str]] | None = None,
    key: str = "score_normalized", seed: int = 0,
) -> dict[str, Any]:
    """``B - A`` over the prompts both evaluated: overall and, with ``crit_tags`` (criterion id -> tags), per tag."""
    ma, mb = prompt_means(a, key), prompt_means(b, key)
    shared = sorted(set(ma) & set(mb))
    out: dict[str, Any] = {
        "key": key, "n_shared_prompts": len(shared), "only_a": len(set(ma) - set(mb)),
        "only_b": len(set(mb) - set(ma)),
        "mean_a": float(np.mean([ma[i] for i in shared])) if shared else None,
        "mean_b": float(np.mean([mb[i] for i in shared])) if shared else None,
        "diff": paired_summary([mb[i] - ma[i] for i in shared], seed=seed),
        "tags": {},
    }
    if crit_tags:
        for tag in sorted({t for ts in crit_tags.values() for t in ts}):
            ta, tb = prompt_means(a, crit_tags=crit_tags, tag=tag), prompt_means(b, crit_tags=crit_tags, tag=tag)
            ids = sorted(set(ta) & set(tb))
            if ids:
                out["tags"][tag] = paired_summary([tb[i] - ta[i] for i in ids], seed=seed)
    return out


def pooled_compare(
    a_sets: list[list[dict[str, Any]]], b_sets: list[list[dict[str, Any]]], crit_tags: dict[str, list[str]] | None = None,
    key: str = "score_normalized", seed: int = 0,
) -> dict[str, Any]:
    """:func:`paired_compare` over several training seeds: ``b_sets[k] - a_sets[k]`` per seed (one ``a`` set is
    every seed's reference), pooled by :func:`rgsd.stats.pooled_summary` on the prompts every set scored."""
    from rgsd.stats import pooled_summary

    if len(a_sets) == 1 and len(b_sets) == 1:
        return paired_compare(a_sets[0], b_sets[0], crit_tags, key, seed)
    if len(a_sets) not in (1, len(b_sets)):
        raise ValueError(f"{len(a_sets)} A folders for {len(b_sets)} B folders: give one A, or one per B (per seed)")
    a_sets = a_sets * len(b_sets) if len(a_sets) == 1 else a_sets
    pairs = [(prompt_means(a, key), prompt_means(b, key)) for a, b in zip(a_sets, b_sets)]
    union = set().union(*(set(ma) | set(mb) for ma, mb in pairs))
    shared = sorted(set.intersection(*(set(ma) & set(mb) for ma, mb in pairs)))
    out: dict[str, Any] = {
        "key": key, "n_shared_prompts": len(shared), "n_seeds": len(pairs), "not_shared": len(union - set(shared)),
        "only_a": 0, "only_b": 0,
        "mean_a": float(np.mean([[ma[i] for i in shared] for ma, _ in pairs])) if shared else None,
        "mean_b": float(np.mean([[mb[i] for i in shared] for _, mb in pairs])) if shared else None,
        "diff": pooled_summary([[mb[i] - ma[i] for i in shared] for ma, mb in pairs], seed=seed) if shared
        else paired_summary([]),
        "tags": {},
    }
    if crit_tags:
        for tag in sorted({t for ts in crit_tags.values() for t in ts}):
            tp = [(prompt_means(a, crit_tags=crit_tags, tag=tag), prompt_means(b, crit_tags=crit_tags, tag=tag))
                  for a, b in zip(a_sets, b_sets)]
            ids = sorted(set.intersection(*(set(ta) & set(tb) for ta, tb in tp)))
            if ids:
                out["tags"][tag] = pooled_summary([[tb[i] - ta[i] for i in ids] for ta, tb in tp], seed=seed)
    return out


def criterion_tags(examples: list[Any]) -> dict[str, list[str]]:
    """Criterion id -> its tags plus its example's tags (``Example.metadata['tags']`` when present)."""
    out = {}
    for ex in examples:
        ex_tags = list((getattr(ex, "metadata", None) or {}).get("tags", []) or [])
        for c in ex.rubric:
            out[c.id] = list(c.tags) + ex_tags
    return out


def compare_dirs(a_dir: str | Path | list, b_dir: str | Path | list, data: str | None = None, seed: int = 0
                 ) -> dict[str, Any]:
    """:func:`pooled_compare` of ``rgsd eval`` folders (a folder, or one per training seed: a list or a
    comma-separated string); ``data`` (the dataset) enables per-tag rows."""
    tags = None
    if data:
        from rgsd.data.loaders import load_examples

        tags = criterion_tags(load_examples(data).examples)
    a_dirs, b_dirs = split_dirs(a_dir), split_dirs(b_dir)
    res = pooled_compare([read_records(d) for d in a_dirs], [read_records(d) for d in b_dirs], tags, seed=seed)
    res.update(a=",".join(a_dirs), b=",".join(b_dirs))
    return res


def split_dirs(value: str | Path | list) -> list[str]:
    """Eval folders given as one path, a comma-separated list (one per training seed) or a list."""
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(x) for x in items if str(x)]


def _ci(d: dict[str, Any]) -> str:
    if d["mean"] is None:
        return "n/a"
    return f"{d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"


def _t(d: dict[str, Any]) -> str:
    t = d.get("t_ci95")
    return "n/a" if not t else f"[{t[0]:+.3f}, {t[1]:+.3f}]"


def _p(d: dict[str, Any]) -> str:
    return "n/a" if d.get("p_value") is None else f"{d['p_value']:.4f}"


def render(res: dict[str, Any]) -> str:
    """Markdown table of a :func:`paired_compare` result."""
    d = res["diff"]
    seeds = res.get("n_seeds", 1)
    over = (f"{seeds} training seeds pooled: the bootstrap resamples seeds and prompts; t and p over prompts' "
            "seed means" if seeds > 1 else "bootstrap over prompts")
    lines = [
        f"Paired comparison over {res['n_shared_prompts']} shared prompts ({res['key']}, B - A; {over}; p: "
        "one-sided sign-flip permutation test of B > A):", "",
        "| | A | B | B - A [95% CI] | t 95% CI | p | prompts better / worse |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| all | {res['mean_a']:.3f} | {res['mean_b']:.3f} | {_ci(d)} | {_t(d)} | {_p(d)} | "
        f"{d.get('better', 0)} / {d.get('worse', 0)} |"
        if res["mean_a"] is not None else "| all | n/a | n/a | n/a | | | |",
    ]
    for tag, t in res["tags"].items():
        lines.append(f"| {tag} | | | {_ci(t)} | {_t(t)} | {_p(t)} | {t.get('better', 0)} / {t.get('worse', 0)} |")
    if res["only_a"] or res["only_b"]:
        lines += ["", f"Unpaired prompts left out: {res['only_a']} only in A, {res['only_b']} only in B."]
    if res.get("not_shared"):
        lines += ["", f"Prompts left out (not scored in every folder): {res['not_shared']}."]
    return "\n".join(lines)
