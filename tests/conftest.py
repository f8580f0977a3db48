"""Shared fixtures: offline mode, a tiny random model on the real SmolLM2 tokenizer, the shared data folder."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# CI draws the same hypothesis examples on every run, so a landing is never refused by a draw nobody can
# reproduce; a local run draws new ones (and keeps failures in .hypothesis/) to go on finding inputs.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))  # .ci/run sets "ci"

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "healthbench"
DEMO_TRAIN = REPO / "rgsd" / "demo_data" / "train.jsonl"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny Llama (2 layers, hidden 64) with the real SmolLM2 tokenizer: loads like any local model."""
    from rgsd.models import tiny_model

    path = tmp_path_factory.mktemp("tiny-llama")
    model, tok = tiny_model(seed=0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def healthbench_dir() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared HealthBench data not found at {SHARED_DATA}")
    return SHARED_DATA


def pytest_configure(config):
    # Tiny models run faster on one thread than on two contending ones (2-core CI machine): tiny-model
    # generation was ~20x slower with 2 threads while other processes shared the cores.
    import torch

    torch.set_num_threads(1)


def kill_after_first_checkpoint(proc: subprocess.Popen, run: Path, timeout: float = 300.0) -> None:
    """SIGKILL the process group of ``proc`` (its own session) once ``run`` holds a complete step checkpoint.

    A lost node, not a clean stop: torchrun and its workers die alike; the run must not have finished.
    """
    deadline = time.time() + timeout
    while not list((run / "checkpoints").glob("step-*/trainer_state.json")) and time.time() < deadline:
        time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "final").exists()  # really interrupted
