"""Print RGSD's training signal for a few prompts before training, for several teacher contexts.

For each prompt, one student rollout (plain prompt, rollout temperature) is scored by the base model twice: as
the student (plain prompt) and as the teacher (the rubric in the chosen context). The divergence between the two,
computed exactly as in training (``chunked_jsd_from_hidden`` with ``LossOptions(diagnostics=True)``), is
summarized with :class:`rgsd.method.signal.SignalStats`: divergence by response position, the tokens the teacher
raises most, what a clip would remove, and the sampled-token log-ratio. A context whose signal sits on the first tokens or on
function words teaches openings; one that raises content words teaches content. Bounded: prompts x
max_new_tokens generation once, then one forward pass per context.

    python scripts/measure_signal.py --data demo:train --n 8 \
        --contexts user_suffix/compact,user_suffix/full,system/compact,user_prefix/compact
"""

from __future__ import annotations

import argparse
import json

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="demo:train")
    ap.add_argument("--model", default="smollm2-offline")
    ap.add_argument("--n", type=int, default=8, help="prompts (the first N)")
    ap.add_argument("--contexts", default="user_suffix/compact,user_suffix/full,system/compact,user_prefix/compact",
                    help="comma list of placement/style")
    ap.add_argument("--temperature", type=float, default=0.7, help="rollout temperature (and loss temperature)")
    ap.add_argument("--loss-temperature", type=float, default=None, help="default: the rollout temperature")
    ap.add_argument("--clip", type=float, default=0.05, help="clip tau whose effect is reported")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true", help="print one JSON object per context instead of text")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from rgsd.data.loaders import load_examples
    from rgsd.method.alignment import align, gather_hidden
    from rgsd.method.chunked_loss import chunked_jsd_from_hidden
    from rgsd.method.hidden import final_hidden
    from rgsd.method.losses import LossOptions
    from rgsd.method.rollout import chat_prompt_ids, generate
    from rgsd.method.signal import SignalStats, response_positions
    from rgsd.method.teacher_prompt import student_messages, teacher_messages
    from rgsd.models import load_model

    examples = load_examples(args.data).examples[: args.n]
    model, tok = load_model(args.model)
    model.eval()
    s_ids = [chat_prompt_ids(tok, student_messages(ex)) for ex in examples]
    rollouts = generate(model, tok, s_ids, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                        batch_size=len(s_ids), generator_seed=args.seed)
    responses = [r.response_ids for r in rollouts]
    masks = [[True] * len(r) for r in responses]
    loss_t = args.loss_temperature or args.temperature
    head = model.get_output_embeddings()
    with torch.no_grad():
        for ctx in args.contexts.split(","):
            placement, style = ctx.split("/")
            t_ids = [chat_prompt_ids(tok, teacher_messages(ex, placement, style=style)) for ex in examples]
            ab = align(s_ids, t_ids, responses, masks, tok.pad_token_id)
            sh = gather_hidden(final_hidden(model, ab.student.input_ids, ab.student.attention_mask),
                               ab.student.positions)
            th = gather_hidden(final_hidden(model, ab.teacher.input_ids, ab.teacher.attention_mask),
                               ab.teacher.positions)
            opts = LossOptions(beta=0.5, clip=args.clip, clip_mode="entry", temperature=loss_t,
                               diagnostics=True)
            _, stats = chunked_jsd_from_hidden(sh, th, head, head, opts, targets=ab.targets)
            sig = SignalStats(top_tokens=10)
            sig.add(stats, response_positions(masks))
            m = sig.metrics(tok)
            if args.json:
                print(json.dumps({"context": ctx, **m}))
                continue
            div = ", ".join(f"{k}: {v:.4f}" for k, v in m["signal_divergence_by_position"].items() if v is not None)
            print(f"{ctx:22s} divergence {m['signal_divergence_mean']:.4f} by position {{{div}}}; "
                  f"clip {args.clip}: positions {m['signal_clipped_position_share']:.2f}, mass removed "
                  f"{m['signal_clip_removed_share']:.2f}; sampled-token log q/p "
                  f"{m['signal_sampled_token_logratio']:+.3f}")
            print(" " * 23 + "teacher raises: " + " ".join(repr(t) for t, _ in m["signal_top_raised_tokens"]))


if __name__ == "__main__":
    main()
