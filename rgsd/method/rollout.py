"""Prompt -> rollout: chat templating and batched sampling with transformers ``generate``.

Response token ids are kept exactly as sampled (never decoded and re-tokenized): the teacher and the
student score the same ids. The end-of-turn token, when sampled, is part of the response.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rgsd.method.padding import pad_batch
from rgsd.progress import tracked


@dataclass
class Rollout:
    """One sampled response."""

    prompt_ids: list[int]
    response_ids: list[int]  # includes the end-of-turn token when the model stopped by itself
    text: str  # decoded response without special tokens
    finished: bool  # True when the model emitted end-of-turn before max_new_tokens


def chat_prompt_ids(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], enable_thinking: bool | None = None
) -> list[int]:
    """Token ids of ``messages`` rendered with the chat template, ending with the assistant header."""
    kwargs = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, **kwargs)
    if isinstance(ids, dict) or hasattr(ids, "keys"):  # some versions return a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Token ids that end a response (the tokenizer's eos plus the generation config's)."""
    ids = {tokenizer.eos_token_id}
    gen_eos = model.generation_config.eos_token_id
    ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
    return {i for i in ids if i is not None}


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    do_sample: bool = True,
    batch_size: int = 8,
    repetition_penalty: float = 1.0,
    generator_seed: int | None = None,
    progress: bool | str = False,
) -> list[Rollout]:
    """Sample one response per prompt (prompt = token ids from :func:`chat_prompt_ids`).

    Prompts are left-padded in batches of ``batch_size``; ``do_sample=False`` gives greedy decoding.
    ``generator_seed`` reseeds torch's global RNG first, for reproducible sampling. ``progress``: a bar on
    stderr (:mod:`rgsd.progress`; a string labels it).
    """
    if generator_seed is not None:
        torch.manual_seed(generator_seed)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = eos_ids(model, tokenizer)
    sync = _sharded_across_ranks(model)  # FSDP2: every rank runs forwards until all ranks are done
    out: list[Rollout] = []
    for start in tracked(range(0, len(prompts), batch_size), progress, "generate", "batch"):
        chunk = prompts[start : start + batch_size]
        input_ids, attention = pad_batch(chunk, pad, side="left")
        width = input_ids.shape[1]
        sampling = dict(temperature=temperature, top_p=top_p, top_k=top_k) if do_sample else {}
        seqs = model.generate(
            synced_gpus=sync,
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            repetition_penalty=repetition_penalty,
            pad_token_id=pad,
            eos_token_id=sorted(stops),
            **sampling,
        )
        for i, p in enumerate(chunk):
            resp = seqs[i, width:].tolist()
            finished = False
            for j, tok in enumerate(resp):
                if tok in stops:
                    resp, finished = resp[: j + 1], True
                    break
            out.append(
                Rollout(
                    prompt_ids=list(p),
                    response_ids=resp,
                    text=tokenizer.decode(resp, skip_special_tokens=True).strip(),
                    finished=finished,
                )
            )
    if was_training:
        model.train()
    return out


def _sharded_across_ranks(model: torch.nn.Module) -> bool:
    """True when ``model`` holds FSDP2-sharded modules and several ranks take part (each forward gathers)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return False
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())
