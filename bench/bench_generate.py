"""Rollout throughput of ``rgsd.method.rollout.generate`` on CPU vs batch size and torch threads.

Samples ``--prompts`` demo prompts (cycled) at temperature 0.7 for ``--max-new-tokens`` tokens with the KV cache
on (transformers' default) and prints generated tokens/s and rollouts/s per (threads, batch size). Bounded: every
cell generates at most prompts x max_new_tokens tokens.

    python bench/bench_generate.py --prompts 32 --max-new-tokens 32 --batch-sizes 8,16,32 --threads 1,2
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-offline")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-sizes", default="8,16,32")
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()

    from rgsd.data.loaders import load_examples
    from rgsd.method.rollout import chat_prompt_ids, generate
    from rgsd.method.teacher_prompt import student_messages
    from rgsd.models import load_model

    model, tok = load_model(args.model)
    exs = load_examples("demo:train").examples + load_examples("demo:heldout").examples
    prompts = [chat_prompt_ids(tok, student_messages(exs[i % len(exs)])) for i in range(args.prompts)]
    generate(model, tok, prompts[:2], max_new_tokens=4, temperature=0.7, batch_size=2, generator_seed=0)  # warm-up
    print(f"{args.prompts} prompts x {args.max_new_tokens} new tokens, T 0.7, KV cache on")
    print("| threads | batch | tokens/s | rollouts/s | wall s |")
    print("| --- | --- | --- | --- | --- |")
    for th in (int(x) for x in args.threads.split(",")):
        torch.set_num_threads(th)
        for bs in (int(x) for x in args.batch_sizes.split(",")):
            t0 = time.perf_counter()
            out = generate(model, tok, prompts, max_new_tokens=args.max_new_tokens, temperature=0.7,
                           batch_size=bs, generator_seed=0)
            dt = time.perf_counter() - t0
            ntok = sum(len(r.response_ids) for r in out)
            print(f"| {th} | {bs} | {ntok / dt:.1f} | {len(out) / dt:.2f} | {dt:.1f} |", flush=True)


if __name__ == "__main__":
    main()
