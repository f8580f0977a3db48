"""``rgsd train --preflight N``: the pre-flight of :mod:`rgsd.evaluate.arms` on the first N training prompts,
before step 1, on rank 0. The trainer has no judge, so it grades with the regex judge and runs only when every
criterion of those prompts has a pattern; it logs the verdict (a warning unless the rubric itself lifts the
score) and writes ``preflight.json``, ``preflight/criteria.jsonl`` and ``preflight/report.md``. It never stops a
run: a failure is logged and training goes on.
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


def preflight(cfg: RGSDConfig, model: Any, tokenizer: Any, examples: list[Example], out_dir: str | Path,
              sharded: bool = False) -> dict[str, Any] | None:
    """Run the pre-flight on ``examples[:cfg.preflight]`` and log its verdict; its summary, or ``None`` when
    skipped or failed (never raises)."""
    from rgsd.evaluate.arms import sample_arms
    from rgsd.evaluate.arms_report import write_arms
    from rgsd.judges.regex_judge import RegexJudge

    examples = examples[: cfg.preflight]
    reason = why_not(cfg, examples, sharded)
    if reason:
        log.info("pre-flight skipped: %s", reason)
        return None
    samples = cfg.preflight_samples if cfg.temperature > 0 else 1
    try:
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):  # the training RNG stream is left as it was
            res = sample_arms(model, tokenizer, examples, RegexJudge(), samples=samples,
                              temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                              batch_size=cfg.generation_batch_size, seed=cfg.seed, placement=cfg.teacher_placement,
                              style=cfg.teacher_style, show_weights=cfg.show_weights)
        summary = res.summary()
        out = Path(out_dir)
        write_arms(res, out / "preflight", summary)
        (out / "preflight.json").write_text(json.dumps(summary, indent=2) + "\n")
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
