"""Every shipped recipe parses against its config; the configuration reference is current."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO

from rgsd.grpo.config import GRPORunConfig
from rgsd.options import build, field_values
from rgsd.train.config import RGSDConfig

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


def test_recipes_exist():
    names = {p.name for p in RECIPES}
    assert {"rgsd-tiny-cpu.yaml", "rgsd-smollm2-cpu.yaml", "rgsd-qwen2.5-3b-lora.yaml",
            "rgsd-qwen2.5-7b-full-fsdp2.yaml", "rgsd-qwen3-4b-thinking-lora.yaml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_parses(path):
    cls = GRPORunConfig if path.name.startswith("grpo") else RGSDConfig
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a shipped recipe uses no deprecated name
        cfg = build(cls, path)
    raw = yaml.safe_load(path.read_text())
    for key, value in raw.items():  # every key landed in the config with its value
        got = getattr(cfg, key)
        assert got == value or (isinstance(value, (int, float)) and float(got) == float(value)), key


def test_unknown_key_is_an_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset_name: x\nlearning_rat: 1.0e-4\n")
    with pytest.raises(ValueError, match="unknown key 'learning_rat'.*did you mean --learning_rate"):
        build(RGSDConfig, bad)


def test_overrides_are_typed():
    cfg = build(RGSDConfig, REPO / "recipes" / "rgsd-tiny-cpu.yaml",
                field_values(["learning_rate=3e-4", "clip=null", "use_lora=false", "lora_target_modules=q_proj,v_proj"]))
    assert cfg.learning_rate == 3e-4 and cfg.clip is None and cfg.use_lora is False
    assert cfg.lora_target_modules == ["q_proj", "v_proj"]
    with pytest.raises(ValueError, match="beta"):
        build(RGSDConfig, None, {"dataset_name": "x", "beta": "high"})
    with pytest.raises(ValueError, match=r"^overrides: beta: must be in \[0, 1\], got 1.5$"):
        build(RGSDConfig, None, {"dataset_name": "x", "beta": "1.5"})


def test_configuration_doc_is_current():
    sys.path.insert(0, str(REPO / "scripts"))
    from config_reference import render

    assert (REPO / "docs" / "configuration.md").read_text() == render(), "run python scripts/config_reference.py"


@pytest.mark.parametrize("name", ["tiny-cpu", "smollm2-cpu", "qwen2.5-3b-lora"])
def test_grpo_recipe_matches_its_rgsd_recipe_step_for_step(name):
    """TRL counts completions: per_device_train_batch_size x accumulation / G must equal RGSD's prompts per step."""
    from rgsd.compare.plan import MATCHED

    grpo = build(GRPORunConfig, REPO / "recipes" / f"grpo-{name}.yaml")
    rgsd = build(RGSDConfig, REPO / "recipes" / f"rgsd-{name}.yaml")
    grpo.validate()
    assert grpo.prompts_per_step() == rgsd.per_device_train_batch_size * rgsd.gradient_accumulation_steps
    for r, g in MATCHED.items():
        if r not in ("dataset_name", "max_examples", "temperature", "max_prompt_tokens"):
            assert getattr(grpo, g) == getattr(rgsd, r), (r, g)


def build_old(cls: type, tmp_path: Path, recipe: str) -> tuple[Any, str]:
    """``cls`` built from an old recipe file, and the text of every FutureWarning it raised (at least one)."""
    old = tmp_path / "old.yaml"
    old.write_text(recipe)
    with pytest.warns(FutureWarning) as caught:
        cfg = build(cls, old)
    return cfg, " ".join(str(w.message) for w in caught)


def test_an_old_recipe_keeps_its_meaning_with_a_warning(tmp_path):
    """rgsd 0.1's names still work for one release; `lr_scheduler: constant` warmed up, so it maps to
    constant_with_warmup (transformers' constant ignores the warm-up)."""
    cfg, said = build_old(RGSDConfig, tmp_path, "model: smollm2-offline\ndata: demo:train\ndata_split: train\n"
                          "data_config_name: null\nper_device_batch_size: 8\nlr_scheduler: constant\nmax_steps: 40\n")
    for name in ("model", "data", "data_split", "data_config_name", "per_device_batch_size", "lr_scheduler"):
        assert f"'{name}' is deprecated" in said, name
    assert (cfg.model_name_or_path, cfg.dataset_name, cfg.dataset_train_split) == ("smollm2-offline", "demo:train",
                                                                                 "train")
    assert cfg.per_device_train_batch_size == 8 and cfg.lr_scheduler_type == "constant_with_warmup"
    assert cfg.num_warmup_steps() == 2  # warmup_ratio 0.05 of 40 steps, as before
    with pytest.warns(FutureWarning, match="'lr_scheduler' is deprecated"):
        assert build(RGSDConfig, None, {"dataset_name": "x", "lr_scheduler": "cosine"}).lr_scheduler_type == "cosine"


def test_old_grpo_judge_names_and_a_null_cache_keep_working(tmp_path):
    cfg, said = build_old(GRPORunConfig, tmp_path, "model: m\ndata: d\njudge: openai\njudge_model: j\n"
                          "base_url: http://127.0.0.1:9/v1\napi_key_env: MY_KEY\njudge_cache: null\n")
    assert "'base_url' is deprecated" in said and "'api_key_env' is deprecated" in said
    assert "judge_cache: None is deprecated" in said
    assert (cfg.judge_base_url, cfg.judge_api_key_env, cfg.judge_cache) == ("http://127.0.0.1:9/v1", "MY_KEY", "none")


def test_one_warmup_rule_in_both_trainers():
    rgsd = build(RGSDConfig, None, {"dataset_name": "x", "max_steps": 30})
    assert rgsd.num_warmup_steps() == 1  # warmup_ratio 0.05 of 30, rounded down (RGSD's rule since 0.1)
    assert build(RGSDConfig, None, {"dataset_name": "x", "max_steps": 30, "warmup_steps": 5}).num_warmup_steps() == 5
    assert build(RGSDConfig, None, {"dataset_name": "x", "max_steps": 30,
                                    "warmup_steps": 0.05}).num_warmup_steps() == 2  # a share, rounded up (transformers)
    grpo = build(GRPORunConfig, None, {"dataset_name": "x", "judge": "regex", "max_steps": 30})
    assert grpo.num_warmup_steps() == 2  # GRPO's default warmup_steps 0.05, as TRL computes it
    with pytest.raises(ValueError, match="warmup_steps"):
        build(RGSDConfig, None, {"dataset_name": "x", "warmup_steps": 2.5})


def test_bf16_is_trls_switch_over_dtype():
    assert build(RGSDConfig, None, {"dataset_name": "x", "bf16": "true"}).dtype == "bf16"
    assert build(RGSDConfig, None, {"dataset_name": "x", "bf16": "false"}).dtype == "fp32"
    assert build(RGSDConfig, None, {"dataset_name": "x"}).dtype == "auto"
    with pytest.raises(ValueError, match="contradicts"):
        build(RGSDConfig, None, {"dataset_name": "x", "bf16": "true", "dtype": "fp16"})
