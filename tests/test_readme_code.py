"""Every fenced ``python`` block of README.md and docs/*.md runs as written.

Each block runs in a fresh interpreter (as a reader would paste it) in an empty folder holding ``train.jsonl``
(the demo's training set: the data-format examples read "your file"), offline. A block that needs more
declares it in an HTML comment on the line just above its fence, ``<!-- setup: PYTHON -->``, run first in
the same interpreter. A block that trains is marked ``slow``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEMO_TRAIN, REPO

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_SETUP = re.compile(r"<!--\s*setup:(.*)-->", re.S)


def python_blocks(path: Path) -> list[tuple[int, str, str]]:
    """(line of the fence, setup code, block code) for each fenced python block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n")  # a setup comment ends on the line just above the fence
        setup = _SETUP.fullmatch(before[before.rfind("<!--"):]) if before.endswith("-->") else None
        blocks.append((text.count("\n", 0, m.start()) + 1, setup.group(1).strip() if setup else "", m.group(1)))
    return blocks


def _cases() -> list:
    cases = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for line, setup, code in python_blocks(path):
            marks = [pytest.mark.slow] if "rgsd.train(" in code or "train_grpo(" in code else []
            cases.append(pytest.param(setup, code, id=f"{path.relative_to(REPO)}:{line}", marks=marks))
    return cases


def test_the_extractor_finds_blocks_and_their_setup(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("text\n\n```python\nx = 1\n```\n\n<!-- setup: y = 2 -->\n```python\nprint(y)\n```\n"
                  "```bash\nls\n```\n", encoding="utf-8")
    assert python_blocks(md) == [(3, "", "x = 1\n"), (8, "y = 2", "print(y)\n")]
    assert any("README.md" in c.id for c in _cases())


@pytest.mark.parametrize("setup, code", _cases())
def test_documented_python_runs(setup, code, tmp_path):
    shutil.copy(DEMO_TRAIN, tmp_path / "train.jsonl")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", f"{setup}\n{code}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"--- block ---\n{code}\n--- stderr ---\n{proc.stderr[-4000:]}"
