"""Real multi-process and real kill/resume runs of `rgsd train` (subprocesses, gloo on CPU)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import DEMO_TRAIN, REPO
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
    return load_file(run / "final" / "model.safetensors")


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


def test_kill_and_resume_reproduces_uninterrupted_run(tmp_path, tiny_model_dir):
    # Sampled rollouts (temperature 1): the resumed run must restore data position and every RNG state.
    common = dict(max_steps=6, save_steps=2, per_device_batch_size=2, temperature=1.0)
    full = subprocess.run([sys.executable, "-m", "rgsd.cli", *_args(tiny_model_dir, tmp_path / "full", **common)],
                          env=_env(), capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-3000:]

    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "rgsd.cli", *_args(tiny_model_dir, run, **common)],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list((run / "checkpoints").glob("step-*/trainer_state.json")) and time.time() < deadline:
        time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "final").exists()  # really interrupted

    resumed = subprocess.run([sys.executable, "-m", "rgsd.cli", *_args(tiny_model_dir, run, **common), "--resume"],
                             env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    assert _max_diff(_weights(tmp_path / "full"), _weights(run)) < 1e-6
    import json

    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # steps the killed run logged after its checkpoint are not doubled
