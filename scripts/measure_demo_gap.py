"""Measure the conditioning gap of the demo rubric set on the offline base model (regex judge).

For a subset of prompts, sample responses from the base model without the rubric (the student's view) and
with it (the teacher's view, for each placement and optionally alternative wordings), grade every response
with the criteria's regex patterns and print the mean normalized score per condition:
``(sum_{pos} w*met + sum_{neg} w*(1-met)) / sum w``. The gap (with - without) is what RGSD can move into
the model. Generation is batched and bounded (prompts x conditions x K x max_new_tokens).

    python scripts/measure_demo_gap.py --n 12 --k 1 --temperature 0       # greedy
    python scripts/measure_demo_gap.py --n 12 --k 3 --temperature 1.0
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from rgsd.data.schema import Criterion, Example

DATA_DIR = Path(__file__).resolve().parents[1] / "rgsd" / "demo_data"
# Words that show the teacher talking about its instructions instead of answering.
LEAK = re.compile(r"\b(?:criteri\w*|rubric|hidden|evaluat\w*|this note)\b", re.IGNORECASE)


def load_examples(path: Path) -> list[Example]:
    """Read canonical JSONL records into :class:`Example` objects."""
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            rubric = [Criterion(**c) for c in d["rubric"]]
            out.append(Example(d["id"], d["prompt"], rubric, d.get("reference"), d.get("metadata", {})))
    return out


def regex_met(example: Example, response: str) -> list[bool]:
    """Per-criterion verdicts: the pattern matches the response (case-insensitive)."""
    return [bool(re.search(c.pattern or "(?!)", response, re.IGNORECASE)) for c in example.rubric]


def normalized_score(example: Example, met: list[bool]) -> float:
    """Normalized rubric score in [0, 1]; a met negative criterion loses its weight."""
    total = sum(c.weight for c in example.rubric)
    got = sum(c.weight * (m if c.polarity == "positive" else 1 - m) for c, m in zip(example.rubric, met))
    return got / total if total else 0.0


def _bullets(example: Example) -> str:
    lines = []
    for c in example.rubric:
        lines.append(f"- Do not: {c.text}" if c.polarity == "negative" else f"- {c.text}")
    return "\n".join(lines)


def alt_messages(example: Example, wording: str) -> list[dict[str, str]]:
    """Alternative teacher wordings, to compare with :func:`rgsd.method.teacher_prompt.teacher_messages`."""
    question = example.prompt[-1]["content"]
    if wording == "plain_suffix":  # short, imperative, no meta words a small model might echo
        return [{"role": "user", "content": f"{question}\n\nIn your answer:\n{_bullets(example)}"}]
    if wording == "plain_system":
        system = f"You are a helpful assistant. When you answer, make sure to:\n{_bullets(example)}"
        return [{"role": "system", "content": system}, {"role": "user", "content": question}]
    raise ValueError(f"unknown wording {wording!r}")


def conditions_for(example: Example, names: list[str]) -> dict[str, list[dict[str, str]]]:
    from rgsd.method.teacher_prompt import student_messages, teacher_messages

    out = {}
    for name in names:
        if name == "none":
            out[name] = student_messages(example)
        elif name in ("user_suffix", "system"):
            out[name] = teacher_messages(example, placement=name)
        else:
            out[name] = alt_messages(example, name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="train", choices=["train", "heldout"])
    ap.add_argument("--n", type=int, default=12, help="prompts, evenly spaced over the split")
    ap.add_argument("--k", type=int, default=1, help="samples per prompt and condition")
    ap.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--conditions", default="none,user_suffix,system",
                    help="comma list of none, user_suffix, system, plain_suffix, plain_system")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write all responses and verdicts as JSON here")
    ap.add_argument("--show", type=int, default=0, help="print this many responses per condition")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 behaves best on a busy machine)")
    ap.add_argument("--rescore", type=Path, help="re-grade a saved --out file with the current patterns")
    args = ap.parse_args()

    examples = load_examples(DATA_DIR / f"{args.split}.jsonl")
    stride = max(1, len(examples) // args.n)
    examples = examples[::stride][: args.n]
    if args.rescore:
        saved = json.loads(args.rescore.read_text())
        by_id = {ex.id: ex for ex in load_examples(DATA_DIR / f"{args.split}.jsonl")}
        examples = [by_id[i] for i in dict.fromkeys(r["id"] for r in saved)]
        names = list(dict.fromkeys(r["condition"] for r in saved))
        records = []
        for r in saved:
            ex = by_id[r["id"]]
            met = regex_met(ex, r["text"])
            records.append({**r, "met": met, "score": normalized_score(ex, met), "leak": bool(LEAK.search(r["text"]))})
        print(f"rescored {args.rescore} ({len(records)} responses)")
        report(records, names, args.show)
        return

    import torch

    from rgsd.method.rollout import chat_prompt_ids, generate
    from rgsd.models import load_model

    torch.set_num_threads(args.threads)
    names = args.conditions.split(",")
    model, tok = load_model()
    jobs = []  # (condition, example index, prompt ids)
    for i, ex in enumerate(examples):
        for name, msgs in conditions_for(ex, names).items():
            jobs += [(name, i, chat_prompt_ids(tok, msgs))] * args.k
    jobs.sort(key=lambda j: names.index(j[0]))  # batch like-length prompts together: less left padding
    greedy = args.temperature <= 0
    t0 = time.time()
    rollouts = generate(model, tok, [j[2] for j in jobs], max_new_tokens=args.max_new_tokens,
                        temperature=args.temperature if not greedy else 1.0, do_sample=not greedy,
                        batch_size=args.batch_size, generator_seed=args.seed, progress=True)
    secs = time.time() - t0
    ntok = sum(len(r.response_ids) for r in rollouts)
    records = []
    for (name, i, _), r in zip(jobs, rollouts):
        met = regex_met(examples[i], r.text)
        records.append({"condition": name, "id": examples[i].id, "score": normalized_score(examples[i], met),
                        "met": met, "leak": bool(LEAK.search(r.text)), "tokens": len(r.response_ids),
                        "finished": r.finished, "text": r.text})
    setting = "greedy" if greedy else f"T={args.temperature:g}"
    print(f"split={args.split} prompts={len(examples)} k={args.k} {setting} max_new_tokens={args.max_new_tokens} "
          f"generated {ntok} tokens in {secs:.0f}s ({ntok / secs:.1f} tok/s)")
    report(records, names, args.show)
    if args.out:
        args.out.write_text(json.dumps(records, indent=1))


def report(records: list[dict], names: list[str], show: int = 0) -> None:
    """Print mean score, gap to "none", leak rate and length per condition, and per-prompt direction."""
    base = None
    for name in names:
        rs = [r for r in records if r["condition"] == name]
        mean = sum(r["score"] for r in rs) / len(rs)
        per_prompt = {}
        for r in rs:
            per_prompt.setdefault(r["id"], []).append(r["score"])
        base = mean if name == "none" else base
        gap = "" if base is None or name == "none" else f" gap={mean - base:+.3f}"
        print(f"  {name:13s} score={mean:.3f}{gap} leak={sum(r['leak'] for r in rs) / len(rs):.2f} "
              f"len={sum(r['tokens'] for r in rs) / len(rs):.0f} "
              f"per-prompt={[round(sum(v) / len(v), 2) for v in per_prompt.values()]}")
    if base is not None:
        for name in names:
            if name == "none":
                continue
            a = {}
            for r in records:
                if r["condition"] in ("none", name):
                    a.setdefault(r["id"], {}).setdefault(r["condition"], []).append(r["score"])
            diffs = [sum(v[name]) / len(v[name]) - sum(v["none"]) / len(v["none"]) for v in a.values()]
            print(f"  {name}: prompts improved {sum(d > 0 for d in diffs)}, worse {sum(d < 0 for d in diffs)}, "
                  f"same {sum(d == 0 for d in diffs)}")
    for name in names:
        for r in [r for r in records if r["condition"] == name][:show]:
            print(f"--- {name} {r['id']} score={r['score']:.2f}\n{r['text']}")


if __name__ == "__main__":
    main()
