"""Resumable checkpoints and the final model.

A checkpoint is ``output_dir/checkpoints/step-NNNNNN/``: accelerate's ``save_state`` (weights, optimizer,
scheduler, every process's RNG states; sharded correctly under DeepSpeed/FSDP) plus ``trainer_state.json``
(step = data position, counters, cost record). The data order is a function of seed and step, so restoring
these reproduces the uninterrupted run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rgsd.costs import CostRecord


def save(acc, out_dir: Path, state: dict, cost: CostRecord, keep: int | None) -> Path:
    path = Path(out_dir) / "checkpoints" / f"step-{state['step']:06d}"
    acc.save_state(str(path))
    if acc.is_main_process:
        (path / "trainer_state.json").write_text(json.dumps({"state": state, "cost": cost.to_dict()}, indent=2))
        if keep:
            for old in sorted((Path(out_dir) / "checkpoints").glob("step-*"))[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return path


def load(acc, path: Path) -> tuple[dict, CostRecord]:
    acc.load_state(str(path))
    saved = json.loads((Path(path) / "trainer_state.json").read_text())
    return saved["state"], CostRecord.from_dict(saved["cost"])


def truncate_metrics(path: Path, step: int) -> None:
    """Keep only the metric lines of steps <= ``step``."""
    if path.exists():
        lines = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln).get("step", 0) <= step]
        path.write_text("".join(ln + "\n" for ln in lines))


def save_final(acc, wrapper, tokenizer, out_dir: Path, cost: CostRecord) -> Path:
    """Save the trained model to ``output_dir/final`` (LoRA: the adapter; full: all weights) + tokenizer."""
    final = Path(out_dir) / "final"
    acc.wait_for_everyone()
    lm = acc.unwrap_model(wrapper).lm
    # get_state_dict gathers sharded weights (ZeRO-3/FSDP); keys carry the wrapper's "lm." prefix
    state = {k.removeprefix("lm."): v for k, v in acc.get_state_dict(wrapper).items()}
    lm.save_pretrained(final, state_dict=state, is_main_process=acc.is_main_process, save_function=acc.save)
    if acc.is_main_process:
        tokenizer.save_pretrained(final)
        cost.save(Path(out_dir) / "costs.json")
    acc.wait_for_everyone()
    return final
