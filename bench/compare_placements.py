"""Two teacher placements' pre-flights on the same prompts, side by side: each arm's score, each lift, and the
per-prompt difference of every lift (B minus A) with a two-sided sign-flip p and a t interval over prompts.

    python bench/compare_placements.py runs/confirmation/eval runs/placement-keep-stage1-eval --names system,system_keep

Each folder holds a `rgsd demo` stage 1 (``base_*``, ``neutral_*``, ``shuffled_*``, ``with_rubric_*``, each with
``results.jsonl``; ``*`` = train and heldout). Prompts are paired by id; only prompts both folders scored count.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ARM_DIRS = {"none": "base", "neutral": "neutral", "shuffled": "shuffled", "rubric": "with_rubric"}


def load_arms(folder: Path, splits: list[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for arm, name in ARM_DIRS.items():
        out[arm] = []
        for split in splits:
            with (folder / f"{name}_{split}" / "results.jsonl").open(encoding="utf-8") as fh:
                out[arm] += [json.loads(line) for line in fh if line.strip()]
    return out


def main() -> None:
    from rgsd.method.lift import LIFTS
    from rgsd.stats import paired_summary, prompt_means, sign_flip_p

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--names", default="A,B")
    ap.add_argument("--splits", default="train,heldout")
    ap.add_argument("--seed", type=int, default=0)
    x = ap.parse_args()
    names = x.names.split(",")
    means = [{arm: prompt_means(recs) for arm, recs in load_arms(f, x.splits.split(",")).items()} for f in (x.a, x.b)]
    ids = sorted(set.intersection(*(set(m[arm]) for m in means for arm in ARM_DIRS)))
    print(f"{len(ids)} prompts scored under every arm in both folders ({x.splits})\n")
    print("| | " + " | ".join(names) + f" | {names[1]} - {names[0]} [t 95%] (two-sided sign-flip p) |")
    print("| --- | --- | --- | --- |")
    for arm in ARM_DIRS:
        a, b = ([m[arm][i] for i in ids] for m in means)
        print(f"| arm {arm} | {sum(a) / len(a):.3f} | {sum(b) / len(b):.3f} | |")
    for lift, (lo, hi) in LIFTS.items():
        la, lb = ([m[hi][i] - m[lo][i] for i in ids] for m in means)
        d = [y - z for y, z in zip(lb, la)]
        s = paired_summary(d, seed=x.seed)
        up, down = sign_flip_p(d, seed=x.seed), sign_flip_p([-v for v in d], seed=x.seed)
        two = min(1.0, 2 * min(up, down))
        sa, sb = paired_summary(la, seed=x.seed), paired_summary(lb, seed=x.seed)
        print(f"| lift {lift} ({hi} - {lo}) | {sa['mean']:+.3f} (p {sa['p_value']:.3g}) | {sb['mean']:+.3f} "
              f"(p {sb['p_value']:.3g}) | {s['mean']:+.3f} [{s['t_ci95'][0]:+.3f}, {s['t_ci95'][1]:+.3f}] "
              f"(p {two:.3g}) |")


if __name__ == "__main__":
    main()
