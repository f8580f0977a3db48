"""Every shipped recipe parses against its config; the configuration reference is current."""

from __future__ import annotations

import sys

import pytest
import yaml
from conftest import REPO

from rgsd.config import build_config, parse_overrides
from rgsd.grpo.config import GRPORunConfig
from rgsd.train.config import RGSDConfig

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


def test_recipes_exist():
    names = {p.name for p in RECIPES}
    assert {"rgsd-tiny-cpu.yaml", "rgsd-smollm2-cpu.yaml", "rgsd-qwen2.5-3b-lora.yaml",
            "rgsd-qwen2.5-7b-full-fsdp2.yaml", "rgsd-qwen3-4b-thinking-lora.yaml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_parses(path):
    cls = GRPORunConfig if path.name.startswith("grpo") else RGSDConfig
    cfg = build_config(cls, path)
    raw = yaml.safe_load(path.read_text())
    for key, value in raw.items():  # every key landed in the config with its value
        got = getattr(cfg, key)
        assert got == value or (isinstance(value, (int, float)) and float(got) == float(value)), key


def test_unknown_key_is_an_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: x\nlearning_rat: 1.0e-4\n")
    with pytest.raises(ValueError, match="unknown config key 'learning_rat'"):
        build_config(RGSDConfig, bad)


def test_overrides_are_typed():
    cfg = build_config(RGSDConfig, REPO / "recipes" / "rgsd-tiny-cpu.yaml",
                       parse_overrides(["--learning_rate", "3e-4", "--clip=null", "--use_lora", "false",
                                        "--lora_target_modules", "q_proj,v_proj"]))
    assert cfg.learning_rate == 3e-4 and cfg.clip is None and cfg.use_lora is False
    assert cfg.lora_target_modules == ["q_proj", "v_proj"]
    with pytest.raises(ValueError, match="--beta"):
        build_config(RGSDConfig, None, {"data": "x", "beta": "high"})
    with pytest.raises(ValueError, match="beta must be in"):
        build_config(RGSDConfig, None, {"data": "x", "beta": "1.5"})


def test_configuration_doc_is_current():
    sys.path.insert(0, str(REPO / "scripts"))
    from config_reference import render

    assert (REPO / "docs" / "configuration.md").read_text() == render(), "run python scripts/config_reference.py"


@pytest.mark.parametrize("name", ["tiny-cpu", "smollm2-cpu", "qwen2.5-3b-lora"])
def test_grpo_recipe_matches_its_rgsd_recipe_step_for_step(name):
    """TRL counts completions: per_device_train_batch_size x accumulation / G must equal RGSD's prompts per step."""
    from rgsd.compare import MATCHED

    grpo = build_config(GRPORunConfig, REPO / "recipes" / f"grpo-{name}.yaml")
    rgsd = build_config(RGSDConfig, REPO / "recipes" / f"rgsd-{name}.yaml")
    grpo.validate()
    assert grpo.prompts_per_step() == rgsd.per_device_batch_size * rgsd.gradient_accumulation_steps
    for r, g in MATCHED.items():
        if r not in ("data", "max_examples", "temperature", "max_prompt_tokens"):
            assert getattr(grpo, g) == getattr(rgsd, r), (r, g)
