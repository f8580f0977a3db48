"""Audit the demo regex judge: where did an old pattern match text that is not its criterion?

Samples the offline base model (``smollm2-offline``) on all 64 demo prompts (``demo:train`` + ``demo:heldout``)
in the student's context (plain prompt) and the teacher's (``teacher_messages(ex, "system", False, "compact")``),
2 samples each at T = 0.7, 64 new tokens, seed 1000, 1 torch thread; saves them to ``--responses`` (read back
instead of sampling when the file exists). Then grades those responses and every record's
``metadata.pattern_examples`` texts with the OLD patterns (``git show 95908e2:rgsd/demo_data/<split>.jsonl``,
or ``--old DIR`` holding ``train.jsonl``/``heldout.jsonl``) and the CURRENT ones, and writes
``docs/judge-audit.md``: a summary, every old match the current pattern rejects, and every changed verdict.

Run (from the repository root, on a shared machine)::

    HF_HUB_OFFLINE=1 nice -n 10 python bench/audit_demo_judge.py  # --responses docs/judge-audit-responses.jsonl (read if present)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path
from typing import Any

from rgsd.data.loaders import load_examples
from rgsd.data.schema import Example

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "95908e2"
SPLITS = ("train", "heldout")
SEED = 1000


def sample(path: Path) -> list[dict[str, Any]]:
    """The base model's responses (student and teacher contexts), sampled once and cached in ``path``."""
    if path.exists():
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    import torch

    from rgsd.evaluate.sampling import sample_responses
    from rgsd.method.teacher_prompt import teacher_messages
    from rgsd.models import load_model

    torch.set_num_threads(1)
    model, tok = load_model("smollm2-offline")
    examples = [ex for s in SPLITS for ex in load_examples(f"demo:{s}").examples]
    contexts = {"base": None, "teacher": lambda ex: teacher_messages(ex, "system", False, "compact")}
    rows = []
    for ctx, fn in contexts.items():
        reps, rollouts = sample_responses(model, tok, examples, 2, temperature=0.7, max_new_tokens=64,
                                          batch_size=32, seed=SEED, messages_fn=fn)
        rows += [{"context": ctx, "id": ex.id, "text": r.text} for ex, r in zip(reps, rollouts)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


def old_patterns(old: Path | None) -> dict[str, str]:
    """Criterion id -> pattern at ``OLD_COMMIT`` (or in ``old/<split>.jsonl``)."""
    out = {}
    for s in SPLITS:
        text = ((old / f"{s}.jsonl").read_text(encoding="utf-8") if old else subprocess.run(
            ["git", "show", f"{OLD_COMMIT}:rgsd/demo_data/{s}.jsonl"], cwd=ROOT, capture_output=True,
            text=True, check=True).stdout)
        for line in text.splitlines():
            if line.strip():
                out.update({c["id"]: c["pattern"] for c in json.loads(line)["rubric"]})
    return out


def met(pattern: str, text: str) -> re.Match[str] | None:
    return re.search(pattern, text, re.IGNORECASE)


def score(ex: Example, text: str, patterns: dict[str, str]) -> float:
    """Normalized rubric score: met positives and unmet negatives earn their weight, over the total weight."""
    earned = sum(c.weight for c in ex.rubric if bool(met(patterns[c.id], text)) == (c.polarity == "positive"))
    return earned / sum(c.weight for c in ex.rubric)


def context(text: str, m: re.Match[str], width: int = 60) -> str:
    lo = max(0, m.start() - (width - len(m.group(0))) // 2)
    return " ".join(text[lo:lo + max(width, len(m.group(0)))].split()).replace("|", "/")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--responses", type=Path, default=ROOT / "docs" / "judge-audit-responses.jsonl")
    ap.add_argument("--old", type=Path, default=None, help="folder with the old train.jsonl/heldout.jsonl")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "judge-audit.md")
    args = ap.parse_args()

    examples = {ex.id: ex for s in SPLITS for ex in load_examples(f"demo:{s}").examples}
    old = old_patterns(args.old)
    new = {c.id: c.pattern or "" for ex in examples.values() for c in ex.rubric}
    texts = [(r["context"], r["id"], r["text"]) for r in sample(args.responses)]
    for ex in examples.values():
        texts += [(f"example:{k}", ex.id, ex.metadata["pattern_examples"][k]) for k in ("good", "bad")]

    false_friends, flips = [], []
    for ctx, eid, text in texts:
        for c in examples[eid].rubric:
            mo, mn = met(old[c.id], text), met(new[c.id], text)
            if mo and not mn:
                false_friends.append(f"| {c.id} | {c.text} | {mo.group(0)!r} | {context(text, mo)} | {ctx} |")
            if bool(mo) != bool(mn):
                flips.append(f"| {ctx} | {c.id} | {c.polarity} | {bool(mo)} -> {bool(mn)} |")
    means = {}
    for ctx in ("base", "teacher"):
        rows = [(examples[e], t) for k, e, t in texts if k == ctx]
        if rows:
            means[ctx] = tuple(sum(score(ex, t, p) for ex, t in rows) / len(rows) for p in (old, new))
    changed = sum(old[k] != new[k] for k in new)
    n_resp = sum(k in ("base", "teacher") for k, _, _ in texts)
    flipped = len({(k, e, t) for k, e, t in texts if k in ("base", "teacher")
                   and any(bool(met(old[c.id], t)) != bool(met(new[c.id], t)) for c in examples[e].rubric)})
    table = ["| criterion | criterion text | old match | context | source |", "| --- | --- | --- | --- | --- |",
             *false_friends]
    lines = [
        "# Demo regex judge audit", "",
        f"Generated by `bench/audit_demo_judge.py` (old patterns: {args.old or OLD_COMMIT}; responses: "
        f"smollm2-offline, all 64 demo prompts, student and teacher (system, compact) contexts, 2 samples each, "
        f"T = 0.7, 64 new tokens, seed {SEED}; plus every record's `pattern_examples`).", "",
        f"- criteria audited: {len(new)}; patterns changed: {changed}",
        f"- sampled responses: {n_resp}; responses with at least one changed verdict: {flipped}",
        *(f"- {ctx} mean normalized score: old {o:.3f}, new {n:.3f}" for ctx, (o, n) in means.items()), "",
        "## Old-pattern matches that are not the criterion (old met, new not)", "", *table, "",
        "## Changed verdicts (old -> new)", "", "| source | criterion | polarity | met |", "| --- | --- | --- | --- |",
        *flips, "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(table))


if __name__ == "__main__":
    main()
