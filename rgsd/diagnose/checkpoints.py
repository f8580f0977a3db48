"""Find the checkpoints of a run (RGSD or GRPO layout, or an explicit list) and load one for generation.

Layouts understood:

* RGSD: ``RUN/checkpoints/step-NNNNNN/model/`` (a step folder without ``model/`` holds only training state
  and is skipped, with a note);
* GRPO (TRL): ``RUN/checkpoint-N/``;
* both: ``RUN/final/``. Its step is the last ``step`` in ``RUN/metrics.jsonl`` (else ``max_steps`` in
  ``RUN/config.yaml``); when a step checkpoint has that step, ``final/`` holds the same weights and is not
  evaluated twice.

A model folder is either a full ``from_pretrained`` folder (``config.json``) or a PEFT adapter
(``adapter_config.json``, no base weights): :func:`load_checkpoint` then loads the base the adapter names
and merges the adapter into it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_STEP_NAME = re.compile(r"(?:step|checkpoint)-0*(\d+)$")


@dataclass
class Checkpoint:
    """One model to diagnose. ``step`` is 0 for the base model, ``None`` when unknown."""

    label: str  # unique, e.g. "base", "rgsd-run/step-4"
    run: str | None  # run name (None for the base model)
    step: int | None
    path: str  # a model folder, hub name or rgsd model alias
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "run": self.run, "step": self.step, "path": self.path, "notes": self.notes}


def is_model_folder(path: Path) -> bool:
    """A full model folder or a PEFT adapter folder."""
    return (path / "config.json").is_file() or (path / "adapter_config.json").is_file()


def run_config(run_dir: Path) -> dict[str, Any]:
    """``RUN/config.yaml`` as a dict (empty when absent)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: file: not valid YAML: {err}") from None
    return data if isinstance(data, dict) else {}


def run_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The lines of ``RUN/metrics.jsonl`` (empty when absent); a malformed line is an error naming it."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    from rgsd.jsonl import read_jsonl

    return [rec for _, rec in read_jsonl(path) if isinstance(rec, dict)]


def base_model_of(run_dir: Path) -> str | None:
    """The ``model`` a run was trained from (its ``config.yaml``)."""
    model = run_config(run_dir).get("model_name_or_path") or run_config(run_dir).get("model")  # rgsd 0.1: model
    return str(model) if model else None


def _final_step(run_dir: Path) -> int | None:
    steps = [int(m["step"]) for m in run_metrics(run_dir) if isinstance(m.get("step"), int)]
    if steps:
        return max(steps)
    max_steps = run_config(run_dir).get("max_steps")
    return int(max_steps) if isinstance(max_steps, int) else None


def discover(run_dir: str | Path, name: str | None = None) -> tuple[list[Checkpoint], list[str]]:
    """Every loadable checkpoint of a run in step order, and notes on what was skipped."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(f"{run}: run: not a folder")
    name = name or run.name
    found: dict[int, Path] = {}
    notes: list[str] = []
    for folder in sorted((run / "checkpoints").glob("step-*")):  # RGSD
        m = _STEP_NAME.search(folder.name)
        if not m:
            continue
        if is_model_folder(folder / "model"):
            found[int(m.group(1))] = folder / "model"
        else:
            notes.append(f"{folder}: no loadable model/ folder (training state only); skipped")
    for folder in sorted(run.glob("checkpoint-*")):  # GRPO / TRL
        m = _STEP_NAME.search(folder.name)
        if m and is_model_folder(folder):
            found[int(m.group(1))] = folder
        elif m:
            notes.append(f"{folder}: no model weights; skipped")
    ckpts = [Checkpoint(f"{name}/step-{s}", name, s, str(p)) for s, p in sorted(found.items())]
    final = run / "final"
    if is_model_folder(final):
        step = _final_step(run)
        same = next((c for c in ckpts if step is not None and c.step == step), None)
        if same is not None:
            same.notes.append("same step as final/ (not evaluated twice)")
        else:
            ckpts.append(Checkpoint(f"{name}/final", name, step, str(final)))
    if not ckpts:
        raise ValueError(
            f"{run}: run: no loadable checkpoint (looked for checkpoints/step-N/model/, checkpoint-N/, final/)"
        )
    return ckpts, notes


def parse_checkpoint_list(items: list[str], run: str) -> list[Checkpoint]:
    """``--checkpoints`` entries: ``PATH`` (step read from a ``step-N``/``checkpoint-N`` name) or ``STEP=PATH``."""
    out = []
    for item in items:
        for entry in (e.strip() for e in item.split(",")):
            if not entry:
                continue
            step_text, sep, path = entry.partition("=")
            if not sep:
                path, step_text = entry, ""
                p = Path(path)
                m = _STEP_NAME.search(p.name if p.name != "model" else p.parent.name)
                step_text = m.group(1) if m else ""
            if not step_text.isdigit():
                raise ValueError(f"--checkpoints: {entry!r}: no step in the name; write it as STEP=PATH")
            if not is_model_folder(Path(path)):
                raise ValueError(f"--checkpoints: {path}: not a model or adapter folder")
            out.append(Checkpoint(f"{run}/step-{int(step_text)}", run, int(step_text), path))
    labels = [c.label for c in out]
    if len(set(labels)) != len(labels):
        raise ValueError("--checkpoints: two entries have the same step")
    return sorted(out, key=lambda c: c.step or 0)


def weights_fingerprint(path: str) -> list[list[Any]]:
    """(name, size, mtime_ns) of a model folder's files: a rerun on retrained weights is not served stale."""
    folder = Path(path)
    if not folder.is_dir():
        return [[path]]
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(folder.iterdir()) if f.is_file()]


def load_checkpoint(path: str, dtype: Any = "float32", device: str | None = None) -> tuple[Any, Any]:
    """Model and tokenizer of a checkpoint; an adapter folder is merged into the base it names."""
    import torch
    from transformers import AutoModelForCausalLM

    from rgsd.models import load_model, load_tokenizer, resolve_model_path

    folder = Path(path)
    adapter_cfg = folder / "adapter_config.json"
    if not adapter_cfg.is_file():
        return load_model(path, dtype=dtype, device=device)
    from peft import PeftModel

    try:
        base = json.loads(adapter_cfg.read_text()).get("base_model_name_or_path")
    except json.JSONDecodeError as err:
        raise ValueError(f"{adapter_cfg}: file: malformed JSON: {err.msg}") from None
    if not base:
        raise ValueError(f"{adapter_cfg}: base_model_name_or_path: missing (which model does it adapt?)")
    if isinstance(dtype, str):
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype, dtype)
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(base), dtype=dtype)
    model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    has_tok = (folder / "tokenizer_config.json").is_file()
    tok = load_tokenizer(str(folder) if has_tok else base)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    if device:
        model.to(device)
    return model, tok
