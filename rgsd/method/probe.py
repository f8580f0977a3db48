"""The self-internalization gap: a judge-free probe of how far the rubric has been internalized.

``Delta = mean over prompts and K samples of [avg-token log p(o | prompt) - avg-token log p(o | prompt + rubric)]``
with ``o`` sampled from the rubric-conditioned model. Both log-probabilities score the same response ids
(never re-tokenized), appended to each prompt; logits are read at ``[prompt_len - 1, prompt_len - 1 + len(o))``.
``-Delta`` estimates ``KL(pi(.|x, R) || pi(.|x))``; it rises toward 0 as the rubric is internalized.

Part of the method (below both the trainer, which probes during training, and the evaluators).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rgsd.data.schema import Example
from rgsd.method.padding import pad_batch
from rgsd.method.rollout import chat_prompt_ids, generate
from rgsd.method.teacher_prompt import default_system_prompt, student_messages, teacher_messages
from rgsd.progress import Progress, tracked

__all__ = ["InternalizationGap", "self_internalization_gap", "sequence_logprobs"]


@torch.no_grad()
def sequence_logprobs(
    model: Any, prompts: list[list[int]], responses: list[list[int]], batch_size: int = 8, pad_id: int = 0,
    progress: Progress = False,
) -> list[float]:
    """Average per-token log-probability of ``responses[i]`` after ``prompts[i]``.

    Sequences are right-padded (every real token keeps its natural position) in batches of similar length;
    only the logits from the shortest prompt's last token onward are materialized (``logits_to_keep``), so
    long rubric-bearing prompts do not cost a full-vocabulary logit row per prompt token.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if any(len(r) == 0 for r in responses):
        raise ValueError("an empty response has no average log-probability")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[float] = [0.0] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(responses[i]))
    for start in tracked(range(0, len(order), batch_size), progress, "score", "batch"):
        idx = order[start : start + batch_size]
        seqs = [prompts[i] + responses[i] for i in idx]
        ids, mask = pad_batch(seqs, pad_id, side="right")
        width = ids.shape[1]
        first = min(len(prompts[i]) for i in idx) - 1  # earliest position whose logits are needed
        try:
            logits = model(
                input_ids=ids.to(device), attention_mask=mask.to(device), logits_to_keep=width - first
            ).logits
            offset = width - logits.shape[1]
        except TypeError:  # a model without logits_to_keep: all positions
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            offset = 0
        for row, i in enumerate(idx):
            p_len, r = len(prompts[i]), responses[i]
            sl = logits[row, p_len - 1 - offset : p_len - 1 - offset + len(r)].float().log_softmax(-1)
            target = torch.tensor(r, device=sl.device).unsqueeze(-1)
            out[i] = float(sl.gather(-1, target).mean())
    if was_training:
        model.train()
    return out


@dataclass
class InternalizationGap:
    """``gap`` = Delta (<= 0 in expectation; closer to 0 = more internalized)."""

    gap: float
    per_example: list[float]  # mean over the K samples of each example
    per_sample: list[list[float]]  # [example][sample] differences
    k: int
    mean_response_tokens: float
    response_ids: list[list[int]] = field(default_factory=list, repr=False)  # the K samples, example-major

    def __float__(self) -> float:
        return self.gap

    def to_dict(self) -> dict[str, Any]:
        return {
            "gap": self.gap,
            "k": self.k,
            "per_example": self.per_example,
            "mean_response_tokens": self.mean_response_tokens,
        }


def self_internalization_gap(
    model: Any,
    tokenizer: Any,
    examples: list[Example],
    k: int = 4,
    max_new_tokens: int = 128,
    seed: int | None = 0,
    placement: str = "user_suffix",
    temperature: float = 1.0,
    style: str = "full",
    batch_size: int = 8,
    progress: bool = False,
) -> InternalizationGap:
    """Delta over ``examples`` with ``k`` samples each from the rubric-conditioned model (see module doc).

    The paper uses K = 10; sampling is at ``temperature`` (1.0 = the model's own distribution; 0 = greedy, in
    which case all K samples coincide). ``seed`` reseeds torch's global RNG (wrap the call in
    ``torch.random.fork_rng`` to leave a training RNG untouched). ``progress``: bars on stderr, per phase.
    """
    if not examples:
        raise ValueError("no examples to measure the self-internalization gap on")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    default = default_system_prompt(tokenizer) if placement == "system_keep" else None
    teacher = [chat_prompt_ids(tokenizer, teacher_messages(ex, placement, style=style,  # type: ignore[arg-type]
                                                           default_system=default)) for ex in examples]
    student = [chat_prompt_ids(tokenizer, student_messages(ex)) for ex in examples]
    rollouts = generate(
        model,
        tokenizer,
        [t for t in teacher for _ in range(k)],
        max_new_tokens=max_new_tokens,
        temperature=temperature if temperature > 0 else 1.0,
        do_sample=temperature > 0,
        batch_size=batch_size,
        generator_seed=seed,
        progress=progress and "probe: sample with rubric",
    )
    resp = [r.response_ids for r in rollouts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    lp_student = sequence_logprobs(model, [s for s in student for _ in range(k)], resp, batch_size, pad,
                                   progress=progress and "probe: score without rubric")
    lp_teacher = sequence_logprobs(model, [t for t in teacher for _ in range(k)], resp, batch_size, pad,
                                   progress=progress and "probe: score with rubric")
    diffs = [a - b for a, b in zip(lp_student, lp_teacher)]
    per_sample = [diffs[i * k : (i + 1) * k] for i in range(len(examples))]
    per_example = [float(np.mean(d)) for d in per_sample]
    return InternalizationGap(
        gap=float(np.mean(diffs)),
        per_example=per_example,
        per_sample=per_sample,
        k=k,
        mean_response_tokens=float(np.mean([len(r) for r in resp])),
        response_ids=resp,
    )
