"""Rollout -> aligned teacher/student sequences.

Both sides are built from the same response token ids: ``student = chat(q) + y`` and
``teacher = chat(q, R) + y``. Sequences are right-padded, so every sequence starts at position 0 and the
response slice of each side is ``[prompt_len - 1, prompt_len - 1 + len(y))`` in next-token-prediction
coordinates, independent of padding. Only the positions that enter the loss are gathered, as flat indices
into the ``[batch * length]`` hidden-state matrix, so neither side ever needs full-vocabulary logits for
positions that are not scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from rgsd.method.padding import pad_batch


@dataclass
class SidePack:
    """One side (teacher or student) of a micro-batch."""

    input_ids: torch.Tensor  # [B, L] right-padded
    attention_mask: torch.Tensor  # [B, L]
    positions: torch.Tensor  # [N] flat indices (b * L + t) of the hidden states that predict scored tokens


@dataclass
class AlignedBatch:
    student: SidePack
    teacher: SidePack
    targets: torch.Tensor  # [N] the response token each scored position predicts (same on both sides)
    n_tokens: int  # scored response tokens in this micro-batch


def thinking_end_id(tokenizer: PreTrainedTokenizerBase) -> int | None:
    """Token id of ``</think>`` when the tokenizer has it as a single token, else None."""
    vocab = tokenizer.get_vocab()
    if "</think>" in vocab:
        return vocab["</think>"]
    ids = tokenizer.encode("</think>", add_special_tokens=False)
    return ids[0] if len(ids) == 1 else None


def loss_mask(response_ids: list[int], think_end: int | None) -> list[bool] | None:
    """Which response tokens enter the loss.

    Without a thinking token every token counts (end-of-turn included: the teacher teaches when to stop).
    With one, tokens from the response start through the first ``</think>`` are excluded (the teacher's
    reasoning may cite the rubric); a response whose thinking block never closes returns None (dropped).
    """
    if think_end is None:
        return [True] * len(response_ids)
    if think_end not in response_ids:
        return None
    cut = response_ids.index(think_end) + 1
    return [i >= cut for i in range(len(response_ids))]


def _pack(prompts: list[list[int]], responses: list[list[int]], masks: list[list[bool]], pad_id: int) -> SidePack:
    ids, attn = pad_batch([p + r for p, r in zip(prompts, responses)], pad_id, side="right")
    width = ids.shape[1]
    flat: list[int] = []
    for b, (p, m) in enumerate(zip(prompts, masks)):
        # hidden state at t predicts token t + 1: response token j is predicted at len(p) - 1 + j
        flat.extend(b * width + len(p) - 1 + j for j, keep in enumerate(m) if keep)
    return SidePack(ids, attn, torch.tensor(flat, dtype=torch.long))


def align(
    student_prompts: list[list[int]],
    teacher_prompts: list[list[int]],
    responses: list[list[int]],
    masks: list[list[bool]],
    pad_id: int,
) -> AlignedBatch:
    """Pack a micro-batch; ``masks[i][j]`` says whether response token j of sample i is scored."""
    if not (len(student_prompts) == len(teacher_prompts) == len(responses) == len(masks)):
        raise ValueError("student prompts, teacher prompts, responses and masks must have the same length")
    for r, m in zip(responses, masks):
        if len(r) != len(m) or not r:
            raise ValueError("every response needs at least one token and a mask of the same length")
    targets = torch.tensor([t for r, m in zip(responses, masks) for t, keep in zip(r, m) if keep], dtype=torch.long)
    student = _pack(student_prompts, responses, masks, pad_id)
    teacher = _pack(teacher_prompts, responses, masks, pad_id)
    return AlignedBatch(student=student, teacher=teacher, targets=targets, n_tokens=int(targets.numel()))


def gather_hidden(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``[B, L, H]`` hidden states -> ``[N, H]`` at the scored positions."""
    return hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions.to(hidden.device))
