"""Real multi-process and real kill/resume runs of `rgsd train` (subprocesses, gloo on CPU)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch
from conftest import DEMO_TRAIN, REPO, kill_after_first_checkpoint
from safetensors.torch import load_file

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _args(model_dir: Path, out: Path, **kw) -> list[str]:
    opts = dict(data=DEMO_TRAIN, model=model_dir, max_new_tokens=8, output_dir=out, progress="false",
                use_lora="false", learning_rate="1e-3", warmup_ratio=0)
    opts.update(kw)
    return ["train"] + [x for k, v in opts.items() for x in (f"--{k}", str(v))]


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(next((run / "final").glob("*.safetensors")))  # full weights, or the LoRA adapter


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_two_process_data_parallel_matches_single_process(tmp_path, tiny_model_dir):
    # Same global batch of 4 prompts: 2 ranks x 2 vs 1 process x 4. Greedy rollouts make the data identical.
    common = dict(max_steps=2, temperature=0)
    single = subprocess.run([sys.executable, "-m", "rgsd.cli", *_args(tiny_model_dir, tmp_path / "one",
                             per_device_batch_size=4, **common)], env=_env(), capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-3000:]
    dist = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
         "-m", "rgsd.cli", *_args(tiny_model_dir, tmp_path / "two", per_device_batch_size=2, sharding="ddp", **common)],
        env=_env(), capture_output=True, text=True,
    )
    assert dist.returncode == 0, dist.stderr[-3000:]
    assert "global batch 4 prompts" in dist.stderr  # really two ranks of 2
    init = load_file(next(Path(tiny_model_dir).glob("*.safetensors")))
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    moved = _max_diff(one, {k: init[k] for k in one})
    assert moved > 1e-4
    assert _max_diff(one, two) < 1e-3 * moved


def _command(model_dir: Path, out: Path, procs: int, *extra: str, **kw) -> list[str]:
    """``rgsd train`` in one process, or under torchrun with ``procs`` DDP ranks."""
    if procs == 1:
        return [sys.executable, "-m", "rgsd.cli", *_args(model_dir, out, **kw), *extra]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--master_port",
            str(_free_port()), "-m", "rgsd.cli", *_args(model_dir, out, sharding="ddp", **kw), *extra]


def _kill_and_resume(run: Path, command: Callable[..., list[str]]) -> None:
    """Start ``command()``, kill -9 its process group once a checkpoint is complete, then run it with --resume."""
    # own session: kill -9 reaches torchrun and its workers alike (a lost node, not a clean stop)
    proc = subprocess.Popen(command(), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    kill_after_first_checkpoint(proc, run)
    resumed = subprocess.run(command("--resume"), env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr


@pytest.mark.parametrize(("use_lora", "procs"), [(False, 1), (True, 1), (False, 2), (True, 2)],
                         ids=["full", "lora", "ddp-full", "ddp-lora"])
def test_kill_and_resume_reproduces_uninterrupted_run(tmp_path, tiny_model_dir, use_lora, procs):
    # Sampled rollouts (temperature 1): the resumed run must restore data position and every RNG state.
    common = dict(max_steps=4, save_steps=2, per_device_batch_size=2, temperature=1.0,
                  use_lora=str(use_lora).lower(), learning_rate="1e-2" if use_lora else "1e-3")
    # the uninterrupted run goes beside the one to be killed (time, not results: each run is deterministic)
    log = open(tmp_path / "full.log", "w")  # a file, not a pipe nobody reads while the other runs
    full = subprocess.Popen(_command(tiny_model_dir, tmp_path / "full", procs, **common), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        _kill_and_resume(tmp_path / "killed", lambda *x: _command(tiny_model_dir, tmp_path / "killed", procs, *x, **common))
        assert full.wait(timeout=600) == 0, (tmp_path / "full.log").read_text()[-3000:]
    finally:
        if full.poll() is None:
            os.killpg(full.pid, signal.SIGKILL)
        log.close()
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "killed")
    if use_lora:
        assert all("lora_" in k for k in a)
        assert max(a[k].abs().max().item() for k in a if "lora_B" in k) > 1e-4  # lora_B starts at zero
        # the resume state holds the adapter and its optimizer state, not the frozen base (nor its tied head)
        import torch.distributed.checkpoint as dcp

        saved = dcp.FileSystemReader(str(tmp_path / "killed" / "checkpoints" / "step-000002" / "resume"))
        assert all("lora_" in k for k in saved.read_metadata().state_dict_metadata if k.startswith("model."))
    assert _max_diff(a, b) < 1e-6
    steps = [json.loads(line)["step"] for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, common["max_steps"] + 1))  # steps logged after the checkpoint are not doubled
