"""The wheel carries what `rgsd demo` needs (recipes, demo data), and rgsd.recipes finds recipes in both layouts."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from conftest import REPO

from rgsd import recipes


def test_recipe_path_in_a_checkout():
    p = recipes.path("rgsd-smollm2-cpu.yaml")
    assert p == REPO / "recipes" / "rgsd-smollm2-cpu.yaml" and recipes.path("grpo-tiny-cpu") == p.with_name("grpo-tiny-cpu.yaml")
    assert set(recipes.names()) == {f.name for f in (REPO / "recipes").glob("*.yaml")}
    with pytest.raises(FileNotFoundError, match="rgsd-tiny-cpu.yaml"):
        recipes.path("nope")


@pytest.mark.slow
def test_wheel_contains_recipes_and_demo_data_and_finds_them(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(REPO), "-w", str(tmp_path)],
        check=True, cwd=tmp_path, capture_output=True,
    )
    (wheel,) = tmp_path.glob("rgsd-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for f in (REPO / "recipes").glob("*.yaml"):  # every recipe, byte for byte: recipes/ stays the source
            assert zf.read(f"rgsd/_recipes/{f.name}") == f.read_bytes(), f.name
        for f in ("train.jsonl", "heldout.jsonl"):
            assert zf.read(f"rgsd/demo_data/{f}") == (REPO / "rgsd" / "demo_data" / f).read_bytes()
        assert "rgsd/rubrics/generate.py" in names and "rgsd/cli.py" in names
        zf.extractall(tmp_path / "site")
    # The installed layout: rgsd.recipes reads the packaged copy, not a checkout.
    code = "import rgsd.recipes as r; print(r.path('rgsd-smollm2-cpu.yaml'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == str(tmp_path / "site" / "rgsd" / "_recipes" / "rgsd-smollm2-cpu.yaml")
