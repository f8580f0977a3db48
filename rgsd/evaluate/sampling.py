"""Several sampled responses per prompt (``rgsd eval --samples N --temperature T``).

One greedy response per prompt changes whenever the weights change at all, and its spread over a few dozen
prompts hides gains below ~0.03-0.06; N samples at the rollout temperature estimate each prompt's expected
score. Scores stay means over prompts (every prompt has N samples, so the mean over responses is the mean of
the per-prompt means); the summary adds the per-prompt sample std and N.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from rgsd.data.schema import Example

__all__ = ["repeat", "sample_responses", "sample_summary"]


def repeat(examples: list[Example], n: int) -> list[Example]:
    """Each example ``n`` times in a row (sample k of prompt i sits at ``i * n + k``)."""
    if n < 1:
        raise ValueError(f"samples must be >= 1, got {n}")
    return [ex for ex in examples for _ in range(n)]


def sample_responses(
    model: Any, tokenizer: Any, examples: list[Example], samples: int, *, temperature: float,
    max_new_tokens: int, batch_size: int, seed: int,
    messages_fn: Callable[[Example], list[dict[str, str]]] | None = None, progress: bool | str = False,
) -> tuple[list[Example], list[Any]]:
    """``samples`` responses per example; returns the repeated examples and their rollouts (same order).

    Sampling uses a forked RNG seeded with ``seed``, so the caller's random state is untouched and the same
    seed gives the same responses.
    """
    import torch

    from rgsd.evaluate.run import generate_responses

    if samples > 1 and temperature <= 0:
        raise ValueError("--samples > 1 needs --temperature > 0 (greedy decoding gives the same response)")
    reps = repeat(examples, samples)
    with torch.random.fork_rng(devices=[]):
        rollouts = generate_responses(model, tokenizer, reps, max_new_tokens=max_new_tokens,
                                      temperature=temperature, batch_size=batch_size, seed=seed,
                                      messages_fn=messages_fn, progress=progress)
    return reps, rollouts


def sample_summary(records: list[dict[str, Any]], samples: int, temperature: float) -> dict[str, Any]:
    """Summary fields of a multi-sample evaluation, from its per-response records (``sample`` added in place)."""
    by_id: dict[str, list[float]] = {}
    finished = []
    for k, rec in enumerate(records):
        rec["sample"] = k % samples
        val = rec.get("score_normalized")
        if isinstance(val, (int, float)):
            by_id.setdefault(rec["id"], []).append(float(val))
        if "finished" in rec:
            finished.append(bool(rec["finished"]))
    stds = [float(np.std(v, ddof=1)) for v in by_id.values() if len(v) > 1]
    return {
        "samples_per_prompt": samples,
        "sample_temperature": temperature,
        "n_prompts": len(by_id),
        "score_normalized_prompt_std": float(np.mean(stds)) if stds else None,
        "score_normalized_prompt_means": {k: float(np.mean(v)) for k, v in by_id.items()},
    }
