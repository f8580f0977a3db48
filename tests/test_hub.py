"""The way out of a run: adapters name their base as the user gave it, model cards, ``rgsd export``, the hub push.

One tiny LoRA run (2 steps, a checkpoint after step 1) on ``tiny-random`` (rgsd's name for a tiny Llama in its
model cache) pushes its final model to a loopback stand-in for the hub (tests/hub_server.py); the tests read
what it wrote. Nothing reaches huggingface.co: the hub endpoint is the loopback server.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from hub_server import USER, FakeHub

from rgsd.cli import main
from rgsd.export import export, model_folder
from rgsd.hub import model_card
from rgsd.models import DEFAULT_MODEL, TINY_MODEL, cache_dir, given_name
from rgsd.options import build
from rgsd.train.config import RGSDConfig

DEMO_TRAIN = Path(__file__).resolve().parents[1] / "rgsd" / "demo_data" / "train.jsonl"
SECRET = "hf_not_a_real_token_0123456789"


@pytest.fixture(scope="module")
def hub_run(tmp_path_factory, tiny_model_dir):
    """A 2-step LoRA run on ``tiny-random`` that pushes final/ to the fake hub: ``(run folder, hub, cache)``."""
    from huggingface_hub import constants

    from rgsd.train.trainer import train

    root = tmp_path_factory.mktemp("hub")
    cache = root / "cache"
    shutil.copytree(tiny_model_dir, cache / "tiny-random-llama")  # what tiny_model_path() would have written
    saved = {k: os.environ.get(k) for k in ("RGSD_CACHE", "HF_HUB_DISABLE_TELEMETRY")}
    saved_consts = (constants.ENDPOINT, constants.HF_HUB_OFFLINE)
    os.environ["RGSD_CACHE"] = str(cache)
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    with FakeHub() as hub:
        constants.ENDPOINT, constants.HF_HUB_OFFLINE = hub.url, False  # the hub is the loopback server
        try:
            cfg = build(RGSDConfig, None, dict(
                dataset_name=str(DEMO_TRAIN), model_name_or_path=TINY_MODEL, max_steps=2, save_steps=1,
                per_device_train_batch_size=2, max_new_tokens=8, output_dir=str(root / "run"), progress=False,
                learning_rate=1e-2, warmup_ratio=0.0, push_to_hub=True, hub_model_id="tiny-rgsd",
                hub_private_repo=True, hub_token=SECRET))
            out = train(cfg)
        finally:
            constants.ENDPOINT, constants.HF_HUB_OFFLINE = saved_consts
        yield out, hub, cache
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_adapters_name_the_base_model_as_given(hub_run):
    out, _, cache = hub_run
    for folder in (out / "final", out / "checkpoints" / "step-000001" / "model"):
        adapter = json.loads((folder / "adapter_config.json").read_text())
        assert adapter["base_model_name_or_path"] == TINY_MODEL  # not the cache folder PEFT recorded
        for name in ("adapter_config.json", "README.md"):
            assert str(cache) not in (folder / name).read_text(), f"{folder / name} names rgsd's cache"


def test_the_model_card_has_the_config_and_no_token(hub_run):
    out, _, _ = hub_run
    card = (out / "final" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "peft" and "rgsd" in meta["tags"] and "base_model" not in meta
    assert f"Base model: `{TINY_MODEL}`" in card and "## Training configuration" in card
    config = yaml.safe_load(card.split("```yaml")[1].split("```")[0])
    assert config["model_name_or_path"] == TINY_MODEL and config["max_steps"] == 2 and config["use_lora"]
    assert "## Evaluation" not in card  # no rgsd eval summary in the run folder yet
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".yaml", ".jsonl", ".md", ".txt"):
            assert SECRET not in path.read_text(errors="replace"), path


def test_train_pushes_final_to_the_hub(hub_run):
    out, hub, _ = hub_run
    repo = f"{USER}/tiny-rgsd"
    assert hub.repos[repo] == {"name": "tiny-rgsd", "organization": None, "visibility": "private", "type": "model"}
    final = out / "final"
    local = {p.name: p.read_bytes() for p in final.iterdir() if p.is_file()}
    assert hub.files[repo] == local  # every file of final/, byte for byte, and nothing else
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json"} <= set(local)
    posts = [c for c in hub.calls if c["method"] == "POST"]  # (huggingface_hub GETs its agent registry)
    assert [c["path"].split("?")[0].replace(repo, "REPO") for c in posts] == [
        "/api/repos/create", "/api/validate-yaml", "/api/models/REPO/preupload/main",
        "/api/models/REPO/commit/main"]
    assert {c["auth"] for c in posts} == {f"Bearer {SECRET}"}  # hub_token: sent as the header, written nowhere


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_export_merge_is_a_plain_model_with_the_adapters_logits(hub_run, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _, cache = hub_run
    merged = export(out, tmp_path / "merged", merge=True)
    assert (merged / "model.safetensors").is_file() and (merged / "generation_config.json").is_file()
    assert not list(merged.glob("adapter*"))
    config_text = (merged / "config.json").read_text()
    config = json.loads(config_text)
    for leftover in ("peft", "adapter", "lora", "_name_or_path"):  # what vLLM must not see
        assert leftover not in config_text.lower(), leftover
    assert str(cache) not in config_text
    assert config["use_cache"] is True and config["dtype"] == "float32"  # the base model's dtype

    base = AutoModelForCausalLM.from_pretrained(cache / "tiny-random-llama", dtype=torch.float32)
    ids = torch.tensor([[1, 42, 314, 1592, 77, 9, 2024, 5]])
    base_logits = _logits(base, ids)
    adapter_model = PeftModel.from_pretrained(base, str(out / "final")).eval()
    plain = AutoModelForCausalLM.from_pretrained(merged).eval()
    assert not hasattr(plain, "peft_config")
    want = _logits(adapter_model, ids)
    assert not torch.allclose(want, base_logits, atol=1e-4)  # the adapter changed something
    torch.testing.assert_close(_logits(plain, ids), want, atol=1e-5, rtol=0)
    tok = AutoTokenizer.from_pretrained(merged)
    assert tok.eos_token == AutoTokenizer.from_pretrained(out / "final").eos_token

    card = (merged / "README.md").read_text()
    assert "library_name: transformers" in card and "merged into its base model" in card
    # --dtype on the command line; the written weights carry it
    assert main(["export", str(out), "--merge", "--out", str(tmp_path / "bf16"), "--dtype", "bf16"]) == 0
    assert {t.dtype for t in load_file(tmp_path / "bf16" / "model.safetensors").values()} == {torch.bfloat16}


def test_export_without_merge_copies_the_adapter(hub_run, tmp_path):
    from rgsd.models import load_model

    out, _, cache = hub_run
    step = out / "checkpoints" / "step-000001"
    assert model_folder(step) == step / "model" and model_folder(out) == out / "final"
    dest = export(step, tmp_path / "adapter")
    assert sorted(p.name for p in dest.glob("adapter*")) == ["adapter_config.json", "adapter_model.safetensors"]
    assert json.loads((dest / "adapter_config.json").read_text())["base_model_name_or_path"] == TINY_MODEL
    assert (dest / "adapter_model.safetensors").read_bytes() == (step / "model" / "adapter_model.safetensors").read_bytes()
    model, tok = load_model(str(dest))  # rgsd resolves the name the adapter records
    assert tok.eos_token and model.config.num_hidden_layers == 2


def test_export_of_a_full_model_folder_writes_it_in_the_dtype(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    out = export(tiny_model_dir, tmp_path / "full", dtype="fp16")
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == torch.float16 and (out / "tokenizer.json").is_file()
    card = (out / "README.md").read_text()
    assert "A fully fine-tuned model" in card and "## Training configuration" not in card  # no run folder


def test_export_refuses_a_wrong_run_or_a_full_out_folder(hub_run, tmp_path, capsys):
    out, _, _ = hub_run
    assert main(["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "no model here" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert main(["export", str(out), "--out", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err and (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_the_card_shows_eval_numbers_when_a_summary_is_in_the_run(hub_run, tmp_path):
    out, _, _ = hub_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    (run / "eval" / "heldout").mkdir(parents=True)
    (run / "eval" / "heldout" / "summary.json").write_text(json.dumps(
        {"n": 20, "score": 0.4321, "score_std": 0.1, "score_normalized": 0.5, "failure_rate": 0.0,
         "judge_name": "regex"}))
    card = (export(run, tmp_path / "exported") / "README.md").read_text()
    assert "## Evaluation" in card and "| eval/heldout | 20 | 0.4321 | 0.1 | 0.5 | 0 | regex |" in card


def test_export_pushes_with_the_hub_options(hub_run, tmp_path, monkeypatch):
    from huggingface_hub import constants

    out, _, _ = hub_run
    with FakeHub() as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        assert main(["export", str(out), "--merge", "--out", str(tmp_path / "served"), "--push_to_hub",
                     "--hub_model_id", "org/served"]) == 0
    assert hub.repos["org/served"] == {"name": "served", "organization": "org", "type": "model"}  # visibility: org's
    assert set(hub.files["org/served"]) == {p.name for p in (tmp_path / "served").iterdir()}
    assert "model.safetensors" in hub.files["org/served"]


def test_push_to_hub_offline_fails_before_training(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE"):
        build(RGSDConfig, None, dict(dataset_name="x", push_to_hub=True))


def test_hub_token_is_kept_off_the_fields():
    cfg = build(RGSDConfig, None, dict(dataset_name="x", hub_token=SECRET))
    assert cfg.token() == SECRET and cfg.hub_token is None
    assert SECRET not in repr(cfg) and SECRET not in json.dumps(dataclasses.asdict(cfg))


def test_given_name_maps_rgsd_cache_folders_back_without_converting(tmp_path, monkeypatch):
    monkeypatch.setenv("RGSD_CACHE", str(tmp_path / "cache"))
    assert given_name(str(cache_dir() / "SmolLM2-135M-Instruct")) == DEFAULT_MODEL
    assert given_name(str(cache_dir() / "tiny-random-llama") + "/") == TINY_MODEL
    assert not (tmp_path / "cache").exists()  # nothing converted or created
    for name in ("HuggingFaceTB/SmolLM2-135M-Instruct", "models/base", str(tmp_path / "elsewhere"), ""):
        assert given_name(name) == name


def test_card_metadata_names_only_hub_ids_as_base_model(tmp_path):
    assert model_card("merged", "HuggingFaceTB/SmolLM2-135M-Instruct", None).data.base_model == (
        "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert model_card("adapter", str(tmp_path), None).data.base_model is None  # a local folder
    assert model_card("adapter", DEFAULT_MODEL, None).data.base_model is None
