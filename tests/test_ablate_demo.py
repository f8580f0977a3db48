"""bench/ablate_demo.py on a tiny random model: rows run, resume, split between workers, and print a table."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow

SCRIPT = REPO / "bench" / "ablate_demo.py"
FAST = ["--model", "tiny-random", "--train-prompts", "2", "--samples", "1", "--base-samples", "2",
        "--steps-scale", "0.042", "--threads", "1"]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600)


def test_rows_curve_resume_and_table(tmp_path):
    out = tmp_path / "ablate"
    proc = _run("--out", str(out), "--only", "24,0,1,16", "--ref-base-samples", "3", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and rows[0]["name"].startswith("D:") and rows[1]["config"]["shuffled_rubrics"]
    for r in rows:
        for split in ("train_gain", "heldout_gain"):
            g = r[split]
            assert g["n"] == (2 if split == "train_gain" else 16) and g["ci95"][0] <= g["mean"] <= g["ci95"][1]
    long_row = rows[3]
    assert long_row["name"].startswith("48 steps") and long_row["run"]["steps"] == 2
    assert [c["step"] for c in long_row["curve"]] == [1]  # the step-1 checkpoint, evaluated like the final model
    assert len((out / "base_ref_train.jsonl").read_text().splitlines()) == 3 * 2  # 3 samples x 2 prompts
    base = json.loads((out / "meta.json").read_text())["base"]
    assert base["train"]["n_responses"] == 2 * 2 and base["heldout"]["n_responses"] == 2 * 16
    # a finished row is not run again; the table keeps ROWS order whatever order the rows finished in
    again = _run("--out", str(out), "--only", "0", *FAST)
    assert again.returncode == 0 and len((out / "rows.jsonl").read_text().splitlines()) == 4
    printed = _run("--out", str(out), "--table-only").stdout
    table, pooled = printed.split("\n\n")
    assert "gain vs the reference base" in table.splitlines()[0] and "reference base" in pooled.splitlines()[0]
    names = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [n.lstrip("| ").split(":")[0] for n in names] == [
        "D", "control", "D, seed 1 *", "48 steps (8x the demo's budget), probe every 12"]
    # D's two seeds pooled: per-prompt gains averaged over the seeds, recomputed here from the saved responses
    pooled_rows = [line for line in pooled.splitlines() if line.startswith("| D:")]
    assert len(pooled_rows) == 1 and pooled_rows[0].split(" | ")[1] == "2"

    def means(path):
        acc = {}
        for line in path.read_text().splitlines():
            r = json.loads(line)
            acc.setdefault(r["id"], []).append(r["score_normalized"])
        return {k: sum(v) / len(v) for k, v in acc.items()}

    base = means(out / "base_train.jsonl")
    s0, s1 = means(out / "row00" / "eval_train.jsonl"), means(out / "row16" / "eval_train.jsonl")
    want = sum((s0[k] + s1[k]) / 2 - base[k] for k in base) / len(base)
    assert pooled_rows[0].split(" | ")[2].startswith(f"{want:+.3f} [")


def test_a_live_workers_claim_is_respected(tmp_path):
    out = tmp_path / "ablate"
    (out / "row00").mkdir(parents=True)
    (out / "row00" / ".claim").write_text(str(os.getpid()))  # this test process: alive
    proc = _run("--out", str(out), "--only", "0", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (out / "rows.jsonl").exists()
    (out / "row00" / ".claim").write_text("999999999")  # no such process: the claim is taken over
    proc = _run("--out", str(out), "--only", "0", *FAST)
    assert proc.returncode == 0 and len((out / "rows.jsonl").read_text().splitlines()) == 1
