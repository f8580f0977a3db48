"""``rgsd train --preflight N``: the pre-flight of ``rgsd gap`` (:mod:`rgsd.method.lift`) on the first N training
prompts, before step 1, on rank 0. The trainer has no judge (and reads no evaluator), so it grades with the
regex judge and runs only when every criterion of those prompts has a pattern; all arms are sampled in one
batched pass. It logs the verdict (a warning unless the rubric itself lifts the score) and writes
``preflight.json`` (the arms, lifts, verdict and per-criterion rows) in the run folder. It never stops a run: a
failure is logged and training goes on.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from rgsd.data.schema import Example
from rgsd.train.config import RGSDConfig

log = logging.getLogger(__name__)


def why_not(cfg: RGSDConfig, examples: list[Example], sharded: bool) -> str | None:
    """Why the pre-flight cannot run on ``examples`` (``None``: it can)."""
    if sharded:
        return "fsdp2 shards the model over ranks and the pre-flight samples on rank 0 alone; run `rgsd gap` first"
    if len(examples) < 2:
        return "it needs at least two prompts (the shuffled arm reads another prompt's criteria)"
    missing = sum(not c.pattern for ex in examples for c in ex.rubric)
    if missing:
        total = sum(len(ex.rubric) for ex in examples)
        return (f"the trainer has no judge and the regex judge needs a pattern on every criterion ({missing} of "
                f"{total} have none); run `rgsd gap --judge openai` for this data instead")
    return None


def sample_and_grade(cfg: RGSDConfig, model: Any, tokenizer: Any, examples: list[Example], samples: int
                     ) -> dict[str, list[dict[str, Any]]]:
    """Every arm's responses (one generation pass), graded by the regex judge: per arm, one record per response
    (``id``, ``score_normalized``, ``verdicts``), sample k of prompt i at ``i * samples + k``."""
    from rgsd.judges.regex_judge import RegexJudge
    from rgsd.method.lift import ARMS, arm_chats
    from rgsd.method.rollout import chat_prompt_ids, generate
    from rgsd.method.teacher_prompt import default_system_prompt
    from rgsd.scoring import normalized_score

    default = default_system_prompt(tokenizer) if cfg.teacher_placement == "system_keep" else None
    chats = [chat for arm in ARMS for chat in arm_chats(examples, arm, cfg.teacher_placement, cfg.teacher_style,
                                                        cfg.seed, default, cfg.show_weights)]
    prompts = [chat_prompt_ids(tokenizer, c) for c in chats for _ in range(samples)]
    rollouts = generate(model, tokenizer, prompts, max_new_tokens=cfg.max_new_tokens,
                        temperature=cfg.temperature if cfg.temperature > 0 else 1.0, top_p=cfg.top_p,
                        do_sample=cfg.temperature > 0, batch_size=cfg.generation_batch_size, generator_seed=cfg.seed)
    judge, out, per_arm = RegexJudge(), {}, len(examples) * samples
    for a, arm in enumerate(ARMS):
        recs = []
        for j, r in enumerate(rollouts[a * per_arm:(a + 1) * per_arm]):
            ex = examples[j // samples]  # graded against the prompt's own criteria in every arm
            met = {v.criterion_id: v.met for v in judge.grade_sync(ex, r.text).verdicts}
            try:
                score = normalized_score(ex.points, [met.get(c.id) for c in ex.rubric])
            except ValueError:
                score = None
            recs.append({"id": ex.id, "score_normalized": score,
                         "verdicts": [{"criterion_id": c.id, "met": met.get(c.id)} for c in ex.rubric]})
        out[arm] = recs
    return out


def preflight(cfg: RGSDConfig, model: Any, tokenizer: Any, examples: list[Example], out_dir: str | Path,
              sharded: bool = False) -> dict[str, Any] | None:
    """Run the pre-flight on ``examples[:cfg.preflight]`` and log its verdict; its summary, or ``None`` when
    skipped or failed (never raises)."""
    from rgsd.method.lift import arms_summary, criteria_rows

    examples = examples[: cfg.preflight]
    reason = why_not(cfg, examples, sharded)
    if reason:
        log.info("pre-flight skipped: %s", reason)
        return None
    samples = cfg.preflight_samples if cfg.temperature > 0 else 1
    try:
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):  # the training RNG stream is left as it was
            records = sample_and_grade(cfg, model, tokenizer, examples, samples)
        summary = arms_summary(records, samples, cfg.temperature, cfg.seed)
        summary.update(n_prompts=len(examples), judge="regex", criteria=criteria_rows(examples, records))
        (Path(out_dir) / "preflight.json").write_text(json.dumps(summary, indent=2) + "\n")
    except Exception as err:  # noqa: BLE001  # a pre-flight never stops a run
        log.warning("pre-flight failed (training goes on): %s: %s", type(err).__name__, err)
        return None
    lift = summary["conditioning_lift"]
    log.info("pre-flight on %d prompts x %d samples (regex judge): arms %s; lifts %s", len(examples), samples,
             {k: round(v, 4) for k, v in summary["conditioning_arms"].items() if v is not None},
             {k: round(v["mean"], 4) for k, v in lift.items() if v["mean"] is not None})
    message = f"pre-flight: {summary['preflight_verdict']}"
    if "can teach these criteria" in summary["preflight_verdict"]:
        log.info(message)
    else:
        log.warning(message)
    return summary
