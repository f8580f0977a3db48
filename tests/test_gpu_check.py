"""bench/gpu_check.py --tiny runs on CPU, so the GPU check script cannot rot between GPU runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def test_gpu_check_tiny_prints_every_row(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--tiny", "--json", str(out)],
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    checks = [r["check"] for r in rows]
    assert [c for c in checks if c.startswith("RGSD step")] == [
        "RGSD step, trivial loss", "RGSD step, chunked loss", "RGSD step, naive loss"]
    assert sum(c.startswith("HF generate") for c in checks) == 2
    train_rows = [r for r in rows if r["check"].startswith("rgsd train, fsdp2")]
    assert len(train_rows) == 2 and all("checkpoint folder ok" in r["note"] for r in train_rows)
    assert "| RGSD step, chunked loss" in proc.stdout
