"""The wheel carries what `rgsd demo` needs (recipes, demo data), and rgsd.recipes finds recipes in both layouts;
the declared version ranges run from the tested versions to the next major release."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

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


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _tested_versions() -> dict[str, Version]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_core_dependencies_run_from_the_tested_version_to_the_next_major():
    """Installing rgsd never moves a current stack backwards: each core dependency is ``>=FLOOR,<NEXT_MAJOR``,
    FLOOR the version constraints.txt pins (to the precision written), so the tested set satisfies it."""
    tested = _tested_versions()
    for req in map(Requirement, _project()["dependencies"]):
        assert not req.marker and not req.extras and not req.url, req
        ops = {s.operator: Version(s.version) for s in req.specifier}
        assert set(ops) == {">=", "<"} and len(req.specifier) == 2, f"{req}: want >=FLOOR,<NEXT_MAJOR"
        floor, cap = ops[">="], ops["<"]
        assert cap == Version(str(floor.major + 1)), f"{req}: the cap is the next major, <{floor.major + 1}"
        pin = tested.get(canonicalize_name(req.name))
        assert pin is not None, f"{req.name} is not pinned in constraints.txt"
        assert pin in req.specifier, f"{req}: the tested {pin} is outside"
        assert pin.release[: len(floor.release)] == floor.release, f"{req}: the floor is not the tested {pin}"


def test_the_vllm_extra_is_one_exact_vllm():
    # vLLM's own metadata pins torch and transformers; those pins stay out of the core ranges
    (req,) = map(Requirement, _project()["optional-dependencies"]["vllm"])
    assert req.name == "vllm" and [s.operator for s in req.specifier] == ["=="]
