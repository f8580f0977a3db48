"""bench/demo_control.py and bench/compare_placements.py on a tiny random model: a control added to a finished
demo run afterwards is the control `rgsd demo --control` trains in the same run, response for response."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from rgsd.demo import DemoSettings, run_demo
from rgsd.stats import pooled_summary

pytestmark = pytest.mark.slow  # two tiny demo runs in subprocesses (~20-40 s)


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "bench" / name), *args], env=env, capture_output=True,
                          text=True, timeout=600)


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _means(*paths):
    by_id: dict[str, list[float]] = {}
    for path in paths:
        for r in _records(path):
            by_id.setdefault(r["id"], []).append(r["score_normalized"])
    return {k: sum(v) / len(v) for k, v in by_id.items()}


def test_added_control_is_the_demos_control(tmp_path):
    s = DemoSettings(out=tmp_path / "demo", model="tiny-random", steps=2, max_new_tokens=6, train_prompts=3,
                     first_train_prompt=2, heldout_prompts="6-8", seeds=[2], controls=["shuffled"],
                     eval_samples=2, base_eval_samples=2, threads=1,
                     train_overrides={"per_device_train_batch_size": 3, "probe_steps": 0, "progress": False})
    summary = run_demo(s)
    proc = _script("demo_control.py", "--run", str(tmp_path / "demo"), "--control", "shuffled",
                   "--out", str(tmp_path / "added"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for split in ("train", "heldout"):
        demo = _records(tmp_path / "demo" / "eval" / f"control-shuffled_{split}" / "results.jsonl")
        added = _records(tmp_path / "added" / "eval" / f"control-shuffled_seed2_{split}" / "results.jsonl")
        assert [r["response"] for r in added] == [r["response"] for r in demo] and len(demo) == 3 * 2
    result = json.loads((tmp_path / "added" / "control.json").read_text())
    assert result["all"]["rgsd_minus_control"] == summary["rgsd_minus_control"]["shuffled"]["all"]
    # and by hand: RGSD minus control per prompt, over both splits
    ev = tmp_path / "demo" / "eval"
    rg = _means(ev / "rgsd_train" / "results.jsonl", ev / "rgsd_heldout" / "results.jsonl")
    ctl = _means(ev / "control-shuffled_train" / "results.jsonl", ev / "control-shuffled_heldout" / "results.jsonl")
    assert result["all"]["rgsd_minus_control"] == pooled_summary([[rg[i] - ctl[i] for i in sorted(rg)]], seed=2)

    # the same stage 1 twice: every lift and every difference of lifts is zero
    proc = _script("compare_placements.py", str(ev), str(ev), "--names", "a,b")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| lift")]
    assert len(rows) == 4 and all(row.endswith("+0.000 [+0.000, +0.000] (p 1) |") for row in rows)
    assert "6 prompts scored under every arm" in proc.stdout
