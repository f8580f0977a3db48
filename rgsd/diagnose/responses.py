"""Responses of each checkpoint, generated once and cached on disk for every diagnostic and every rerun.

``OUT/responses/<label>.json`` holds the generation settings and weights fingerprint it was made with
(``meta``), the responses (``prompt_id``, ``sample``, ``text``, ``tokens``) and, when it had to be measured,
the self-internalization gap. A file whose ``meta`` matches the current request is reused as is; any other
is regenerated (and overwritten), so changing ``--samples`` or retraining a checkpoint never serves stale text.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rgsd.data.schema import Example
from rgsd.diagnose.checkpoints import Checkpoint, load_checkpoint, weights_fingerprint

log = logging.getLogger(__name__)


@dataclass
class GenerationSettings:
    """How responses are sampled (part of the cache key)."""

    samples: int = 1
    max_new_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0
    batch_size: int = 8
    sig_k: int = 2  # samples per prompt for a measured self-internalization gap (0 = do not measure)
    sig_prompts: int = 8  # prompts used for it
    sig_max_new_tokens: int = 64
    sig_placement: str = "user_suffix"  # where the teacher prompt puts the rubric (match the run's)
    sig_style: str = "full"  # teacher rubric wording: full or compact

    def validate(self) -> None:
        if self.samples < 1:
            raise ValueError(f"--samples must be >= 1, got {self.samples}")
        if self.samples > 1 and self.temperature <= 0:
            raise ValueError("--samples > 1 needs --temperature > 0 (greedy decoding repeats one response)")


@dataclass
class CheckpointResponses:
    """A checkpoint's responses, example-major: ``texts[i]`` is for ``keys[i] = (prompt_id, sample)``."""

    checkpoint: Checkpoint
    keys: list[tuple[str, int]]
    texts: list[str]
    tokens: list[int]
    sig: dict[str, Any] | None = None  # {"gap": float, "source": "measured" | "metrics", ...}
    generated: bool = False  # True when this call generated them (not read from the cache)
    extra: dict[str, Any] = field(default_factory=dict)


def _safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label)


def cache_path(out_dir: Path, ckpt: Checkpoint) -> Path:
    return out_dir / "responses" / f"{_safe_name(ckpt.label)}.json"


def _meta(ckpt: Checkpoint, examples: list[Example], gen: GenerationSettings, want_sig: bool) -> dict[str, Any]:
    return {
        "path": ckpt.path,
        "weights": weights_fingerprint(ckpt.path),
        "example_ids": [ex.id for ex in examples],
        "samples": gen.samples,
        "max_new_tokens": gen.max_new_tokens,
        "temperature": gen.temperature,
        "seed": gen.seed,
        "sig": [gen.sig_k, gen.sig_prompts, gen.sig_max_new_tokens, gen.sig_placement, gen.sig_style]
        if want_sig
        else None,
    }


def _read(path: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        log.warning("%s: unreadable response cache; regenerating", path)
        return None
    if data.get("meta") != json.loads(json.dumps(meta)):
        log.info("%s: made with other settings or weights; regenerating", path)
        return None
    return data


def generate_for(
    model: Any, tok: Any, examples: list[Example], gen: GenerationSettings, progress: bool | str = False
) -> tuple[list[tuple[str, int]], list[str], list[int]]:
    """``gen.samples`` responses per example from the plain (rubric-free) prompt."""
    from rgsd.method.rollout import chat_prompt_ids, generate
    from rgsd.method.teacher_prompt import student_messages

    prompts = [chat_prompt_ids(tok, student_messages(ex)) for ex in examples for _ in range(gen.samples)]
    rollouts = generate(
        model,
        tok,
        prompts,
        max_new_tokens=gen.max_new_tokens,
        temperature=gen.temperature if gen.temperature > 0 else 1.0,
        do_sample=gen.temperature > 0,
        batch_size=gen.batch_size,
        generator_seed=gen.seed,
        progress=progress,
    )
    keys = [(ex.id, s) for ex in examples for s in range(gen.samples)]
    return keys, [r.text for r in rollouts], [len(r.response_ids) for r in rollouts]


def measure_sig(model: Any, tok: Any, examples: list[Example], gen: GenerationSettings,
                progress: bool = False) -> dict[str, Any]:
    """The self-internalization gap of a loaded model on the first ``sig_prompts`` examples."""
    from rgsd.evaluate.gap import self_internalization_gap

    chosen = examples[: gen.sig_prompts]
    result = self_internalization_gap(
        model, tok, chosen, k=gen.sig_k, max_new_tokens=gen.sig_max_new_tokens, seed=gen.seed,
        placement=gen.sig_placement, style=gen.sig_style, progress=progress,
    )
    return {"gap": float(result.gap), "source": "measured", "k": gen.sig_k, "n_prompts": len(chosen)}


def responses_for(
    ckpt: Checkpoint,
    examples: list[Example],
    gen: GenerationSettings,
    out_dir: Path,
    *,
    sig_from_metrics: float | None = None,
    dtype: str = "float32",
    device: str | None = None,
    loader: Callable[..., tuple[Any, Any]] | None = None,
    progress: bool = False,
) -> CheckpointResponses:
    """Cached responses of ``ckpt``, generating (and measuring the gap when the run has none) on a miss;
    ``progress``: bars on stderr while generating."""
    want_sig = sig_from_metrics is None and gen.sig_k > 0
    meta = _meta(ckpt, examples, gen, want_sig)
    path = cache_path(out_dir, ckpt)
    data = _read(path, meta)
    generated = False
    if data is None:
        log.info("generating %d x %d responses with %s", len(examples), gen.samples, ckpt.label)
        model, tok = (loader or load_checkpoint)(ckpt.path, dtype=dtype, device=device)
        keys, texts, tokens = generate_for(model, tok, examples, gen, progress and f"generate {ckpt.label}")
        sig = measure_sig(model, tok, examples, gen, progress) if want_sig else None
        del model
        data = {
            "meta": meta,
            "responses": [
                {"prompt_id": k[0], "sample": k[1], "text": t, "tokens": n} for k, t, n in zip(keys, texts, tokens)
            ],
            "self_internalization_gap": sig,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n")
        tmp.replace(path)  # atomic: a killed run never leaves a half-written cache
        generated = True
    rows = data["responses"]
    sig = data.get("self_internalization_gap")
    if sig_from_metrics is not None:
        sig = {"gap": float(sig_from_metrics), "source": "metrics"}
    return CheckpointResponses(
        checkpoint=ckpt,
        keys=[(r["prompt_id"], int(r["sample"])) for r in rows],
        texts=[r["text"] for r in rows],
        tokens=[int(r["tokens"]) for r in rows],
        sig=sig,
        generated=generated,
    )
