"""Resume in one process, in-process and fast (the kill -9 runs under torchrun are in the slow files).

The uninterrupted run writes a checkpoint at step 2; a copy of its folder cut back to that checkpoint is what
a kill after the checkpoint leaves. Resuming it must end where the uninterrupted run ended.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from conftest import DEMO_TRAIN
from safetensors.torch import load_file

from rgsd.cli import main
from rgsd.options import build as build_config
from rgsd.train.checkpoint import CheckpointError
from rgsd.train.config import RGSDConfig
from rgsd.train.trainer import train


def _cfg(out: Path, model_dir: Path, **kw) -> RGSDConfig:
    base = dict(dataset_name=str(DEMO_TRAIN), model_name_or_path=str(model_dir), max_steps=3, save_steps=2,
                per_device_train_batch_size=2,
                max_new_tokens=6, output_dir=str(out), progress=False, learning_rate=1e-2, warmup_ratio=0.0,
                temperature=1.0, probe_steps=0, use_lora=True, lora_dropout=0.1)
    base.update(kw)
    return build_config(RGSDConfig, None, base)


def _cut_back(full: Path, to: Path) -> Path:
    """The state a kill right after the step-2 checkpoint leaves: no final model, metrics of later steps."""
    shutil.copytree(full, to)
    shutil.rmtree(to / "final")
    assert [p.name for p in (to / "checkpoints").iterdir()] == ["step-000002"]  # the last step saves final/ only
    return to


def _adapter(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "final" / "adapter_model.safetensors")


def _saved_keys(ckpt: Path) -> list[str]:
    import torch.distributed.checkpoint as dcp

    return list(dcp.FileSystemReader(str(ckpt / "resume")).read_metadata().state_dict_metadata)


@pytest.mark.parametrize("teacher", ["frozen", "ema"])
def test_lora_resume_matches_uninterrupted(tmp_path, tiny_model_dir, teacher):
    full = train(_cfg(tmp_path / "full", tiny_model_dir, teacher=teacher))
    keys = _saved_keys(full / "checkpoints" / "step-000002")
    # the adapter, its AdamW moments (and the EMA shadow): no frozen base weight, tied head included
    assert any(k.startswith("model.") and "lora_B" in k for k in keys)
    assert not [k for k in keys if k.startswith("model.") and "lora_" not in k]
    assert any(k.startswith("ema.") for k in keys) == (teacher == "ema")

    part = _cut_back(full, tmp_path / "part")
    resumed = train(_cfg(part, tiny_model_dir, teacher=teacher), resume=True)
    a, b = _adapter(full), _adapter(resumed)
    moved = max(a[k].abs().max().item() for k in a if "lora_B" in k)  # lora_B starts at zero
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert moved > 1e-4 and diff < 1e-6, (moved, diff)

    # a run that does not fit the checkpoint is refused in one line, not loaded half-way
    with pytest.raises(CheckpointError, match="does not fit this run .*Size mismatch"):
        train(_cfg(part, tiny_model_dir, teacher=teacher, lora_r=4, max_steps=6), resume=True)
    with pytest.raises(CheckpointError, match="Missing key in checkpoint"):  # full fine-tuning from an adapter
        train(_cfg(part, tiny_model_dir, teacher=teacher, use_lora=False, max_steps=6), resume=True)


def test_old_checkpoint_layout_is_refused_in_one_line(tmp_path, tiny_model_dir, capsys):
    # what rgsd wrote before DCP: accelerate's save_state files and trainer_state.json, no resume/ folder
    old = tmp_path / "run" / "checkpoints" / "step-000002"
    old.mkdir(parents=True)
    for name in ("trainer_state.json", "model.safetensors", "optimizer.bin", "random_states_0.pkl"):
        (old / name).write_text("{}")
    rc = main(["train", "--dataset_name", str(DEMO_TRAIN), "--model_name_or_path", str(tiny_model_dir), "--output_dir",
               str(tmp_path / "run"), "--max_steps", "4", "--progress", "false", "--resume"])
    err = capsys.readouterr().err
    assert rc == 2
    lines = [ln for ln in err.splitlines() if "rgsd train: error" in ln]
    assert len(lines) == 1 and "older rgsd" in lines[0] and "Traceback" not in err
