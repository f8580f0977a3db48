"""``rgsd diagnose`` end to end: checkpoint discovery and loading (full folders, PEFT adapters), a tiny
RGSD-layout run and a real tiny GRPO run with two step checkpoints each, judged over loopback HTTP; a rerun
over the caches generates nothing and sends no judge request; bad input exits 2 with a message."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diagnose_server import DiagnoseServer  # noqa: E402

from rgsd.diagnose.checkpoints import discover, load_checkpoint, parse_checkpoint_list  # noqa: E402

DEMO_TRAIN = Path(__file__).resolve().parents[1] / "rgsd" / "demo_data" / "train.jsonl"


def _adapter(base_dir: Path, out: Path) -> None:
    """A PEFT LoRA adapter on the tiny model with non-zero B (so it changes the outputs), plus tokenizer."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from rgsd.models import load_tokenizer

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))
    peft.save_pretrained(out)
    load_tokenizer(str(base_dir)).save_pretrained(out)


def _full(base_dir: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM

    from rgsd.models import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    model.save_pretrained(out)
    load_tokenizer(str(base_dir)).save_pretrained(out)


def _rgsd_run(tiny_model_dir: Path, run: Path) -> None:
    """The step-checkpoint layout of an RGSD run: checkpoints/step-NNNNNN/model/ and final/."""
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": str(tiny_model_dir), "max_steps": 2}))
    lines = [{"step": 1, "loss": 0.1}, {"step": 2, "loss": 0.1, "self_internalization_gap": -0.25}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    _adapter(tiny_model_dir, run / "checkpoints" / "step-000001" / "model")
    _full(tiny_model_dir, run / "checkpoints" / "step-000002" / "model")
    shutil.copytree(run / "checkpoints" / "step-000002" / "model", run / "final")
    (run / "checkpoints" / "step-000003").mkdir()  # training state only: skipped with a note


def test_lora_loader_merges_the_adapter_into_its_base(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    _adapter(tiny_model_dir, tmp_path / "lora")
    merged, tok = load_checkpoint(str(tmp_path / "lora"))
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(tmp_path / "lora"))
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([tok.encode("hello there, how are you")])
    with torch.no_grad():
        a, b, c = merged(ids).logits, unmerged(ids).logits, plain(ids).logits
    assert torch.allclose(a, b, atol=1e-5) and not torch.allclose(a, c, atol=1e-3)
    assert not hasattr(merged, "peft_config")  # merged into a plain transformers model


def test_discovery_of_both_layouts_and_explicit_lists(tiny_model_dir, tmp_path):
    run = tmp_path / "rgsd-run"
    _rgsd_run(tiny_model_dir, run)
    ckpts, notes = discover(run)
    assert [(c.label, c.step) for c in ckpts] == [("rgsd-run/step-1", 1), ("rgsd-run/step-2", 2)]
    assert "final/" in ckpts[1].notes[0] and any("step-000003" in n for n in notes)
    (tmp_path / "grpo" / "checkpoint-5").mkdir(parents=True)
    shutil.copy(run / "final" / "config.json", tmp_path / "grpo" / "checkpoint-5" / "config.json")
    (tmp_path / "grpo" / "final").mkdir()
    shutil.copy(run / "final" / "config.json", tmp_path / "grpo" / "final" / "config.json")
    ckpts, _ = discover(tmp_path / "grpo")  # no metrics, no config: final's step is unknown, kept
    assert [(c.label, c.step) for c in ckpts] == [("grpo/step-5", 5), ("grpo/final", None)]
    listed = parse_checkpoint_list([f"{run}/checkpoints/step-000002/model,7={run}/final"], "x")
    assert [(c.step, Path(c.path).name) for c in listed] == [(2, "model"), (7, "final")]
    with pytest.raises(ValueError, match="no step"):
        parse_checkpoint_list([str(run / "final")], "x")
    with pytest.raises(ValueError, match="no loadable checkpoint"):
        discover(tmp_path / "grpo" / "checkpoint-5")


def _args(url: str, run: Path, out: Path, *extra: str) -> list[str]:
    return [
        "diagnose", "--run", str(run), "--dataset-name", str(DEMO_TRAIN), "--limit", "2", "--out", str(out),
        "--max-new-tokens", "8", "--batch-size", "4", "--sig-k", "1", "--sig-prompts", "1",
        "--sig-max-new-tokens", "4", "--judge", "regex",
        "--reference-judge", "openai", "--reference-judge-model", "ref-a,ref-b", "--reference-judge-base-url", url,
        "--pairwise-judge", "openai", "--pairwise-judge-model", "pw", "--pairwise-judge-base-url", url,
        "--classifier-judge", "openai", "--classifier-judge-model", "cls", "--classifier-judge-base-url", url,
        *extra,
    ]


def _check_rerun_is_free(monkeypatch, capsys, server, args, out, first):
    import rgsd.diagnose.responses as responses
    from rgsd.cli import main

    def no_loading(*a, **k):
        raise AssertionError("a cached rerun must not load a model")

    monkeypatch.setattr(responses, "load_checkpoint", no_loading)
    before = server.count
    assert main(args) == 0
    again = json.loads((out / "diagnostics.json").read_text())
    assert server.count == before and again["judge_calls"] == 0
    assert again["generation"]["checkpoints_generated"] == 0
    assert again["checkpoints"] == first["checkpoints"]
    assert "judge calls 0" in capsys.readouterr().out


def test_rgsd_layout_end_to_end_and_cached_rerun(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from rgsd.cli import main

    run, out = tmp_path / "rgsd-run", tmp_path / "diag"
    _rgsd_run(tiny_model_dir, run)
    with DiagnoseServer() as server:
        args = _args(server.url, run, out)
        assert main(args) == 0
        captured = capsys.readouterr()
        printed = captured.out
        for phase in ("generate base", "probe: sample with rubric", "proxy judge rgsd-run/step-1",
                      "reference judge base", "pairwise rgsd-run/step-2"):  # progress bars, on stderr
            assert phase in captured.err, phase
        diag = json.loads((out / "diagnostics.json").read_text())
        labels = [e["label"] for e in diag["checkpoints"]]
        assert labels == ["base", "rgsd-run/step-1", "rgsd-run/step-2"]
        assert [e["step"] for e in diag["checkpoints"]] == [0, 1, 2]
        by = {e["label"]: e for e in diag["checkpoints"]}
        assert by["rgsd-run/step-2"]["self_internalization_gap"] == -0.25  # from metrics.jsonl
        assert by["rgsd-run/step-2"]["self_internalization_gap_source"] == "metrics"
        assert by["rgsd-run/step-1"]["self_internalization_gap_source"] == "measured"
        assert by["base"]["exploitation_rate"] is None and by["rgsd-run/step-1"]["exploitation"] is not None
        assert diag["generation"] == {"checkpoints_generated": 3, "responses_generated": 6,
                                      "samples_per_prompt": 1, "max_new_tokens": 8, "temperature": 0.0}
        # demo rubrics: 2 prompts x 4 criteria x 3 checkpoints per reference model, both orders x 2 pairs
        n_crit = sum(len(json.loads(ln)["rubric"]) for ln in DEMO_TRAIN.read_text().splitlines()[:2])
        assert server.by_model["ref-a"] == server.by_model["ref-b"] == 3 * n_crit
        assert server.by_model["pw"] == 2 * 2 * 2
        assert diag["judge_calls"] == server.count
        for key in ("step", "proxy_score", "reference_score", "exploitation_rate", "pairwise_win_rate",
                    "mean_response_tokens", "self_internalization_gap"):
            assert all(key in e for e in diag["checkpoints"]), key
        for key in ("taxonomy", "length_correlation", "recommended_stop"):
            assert key in diag
        assert (out / "report.md").is_file() and (out / "proxy_vs_reference.png").is_file()
        assert "rgsd-run/step-2" in printed and "gap slope" in printed
        _check_rerun_is_free(monkeypatch, capsys, server, args, out, diag)

        # a new reference model with a budget of 2 calls: stops with exit 3 and a message, no traceback
        budget = _args(server.url, run, out, "--reference-judge-max-calls", "2")
        budget[budget.index("ref-a,ref-b")] = "ref-c"
        assert main(budget) == 3
        assert "judge budget exhausted" in capsys.readouterr().err


def test_response_cache_samples_reuse_and_invalidation(tiny_model_dir, tmp_path):
    from rgsd.data.loaders import load_examples
    from rgsd.diagnose.checkpoints import Checkpoint
    from rgsd.diagnose.responses import GenerationSettings, responses_for

    examples = load_examples(str(DEMO_TRAIN), limit=2).examples
    ckpt = Checkpoint("base", None, 0, str(tiny_model_dir))
    gen = GenerationSettings(samples=2, temperature=1.0, max_new_tokens=4, sig_k=0)
    first = responses_for(ckpt, examples, gen, tmp_path)
    assert first.generated and first.keys == [(examples[0].id, 0), (examples[0].id, 1),
                                              (examples[1].id, 0), (examples[1].id, 1)]
    assert all(1 <= n <= 4 for n in first.tokens) and first.sig is None
    again = responses_for(ckpt, examples, gen, tmp_path, loader=lambda *a, **k: 1 / 0)  # must not load
    assert not again.generated and again.texts == first.texts
    gen.max_new_tokens = 3  # other settings: regenerated, never served stale
    assert responses_for(ckpt, examples, gen, tmp_path).generated
    with pytest.raises(ValueError, match="temperature"):
        GenerationSettings(samples=2, temperature=0.0).validate()


@pytest.mark.slow
def test_real_grpo_run_two_checkpoints_end_to_end(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from rgsd.cli import main
    from rgsd.grpo.config import GRPORunConfig
    from rgsd.grpo.trainer import train_grpo

    run, out = tmp_path / "grpo-run", tmp_path / "diag"
    cfg = GRPORunConfig(model_name_or_path=str(tiny_model_dir), dataset_name=str(DEMO_TRAIN), max_steps=2, save_steps=1,
                        per_device_train_batch_size=2, num_generations=2, max_completion_length=6, output_dir=str(run),
                        disable_tqdm=True, learning_rate=1e-2, lora_r=4, lora_alpha=8, judge="regex")
    train_grpo(cfg)
    assert (run / "checkpoint-1" / "adapter_config.json").is_file()
    with DiagnoseServer() as server:
        args = _args(server.url, run, out)
        assert main(args) == 0
        diag = json.loads((out / "diagnostics.json").read_text())
        assert [e["label"] for e in diag["checkpoints"]] == ["base", "grpo-run/step-1", "grpo-run/step-2"]
        assert all(e["self_internalization_gap_source"] == "measured" for e in diag["checkpoints"])
        assert diag["runs"]["grpo-run"]["recommended_stop"] is not None
        _check_rerun_is_free(monkeypatch, capsys, server, args, out, diag)


def test_bad_input_exits_2_with_a_message(tiny_model_dir, tmp_path, capsys):
    from rgsd.cli import main

    base = ["diagnose", "--dataset-name", str(DEMO_TRAIN), "--out", str(tmp_path / "o"), "--judge", "regex",
            "--reference-judge", "regex"]
    assert main(base + ["--run", str(tmp_path / "missing")]) == 2
    assert "missing: run: not a folder" in capsys.readouterr().err
    run = tmp_path / "rgsd-run"
    _rgsd_run(tiny_model_dir, run)
    assert main(base + ["--run", str(run), "--samples", "2"]) == 2
    assert "--temperature > 0" in capsys.readouterr().err
    assert main(base + ["--run", str(run), "--pairwise-judge", "openai"]) == 2
    assert "--pairwise-judge-model is required" in capsys.readouterr().err
    (run / "metrics.jsonl").write_text('{"step": 1}\n{oops\n')
    assert main(base + ["--run", str(run), "--limit", "1", "--max-new-tokens", "4", "--sig-k", "0"]) == 2
    assert "metrics.jsonl:2: record: malformed JSON" in capsys.readouterr().err


def test_judge_roles_take_the_judge_flags_and_refuse_what_they_cannot_use(tmp_path, capsys):
    from rgsd.cli import main

    base = ["diagnose", "--dataset-name", str(DEMO_TRAIN), "--out", str(tmp_path / "o"), "--judge", "regex",
            "--reference-judge", "regex", "--run", str(tmp_path / "missing")]
    assert main(base + ["--pairwise-judge", "regex"]) == 2
    assert "--pairwise-judge regex: rgsd diagnose needs openai or none" in capsys.readouterr().err
    assert main(base + ["--judge", "none"]) == 2
    assert "--judge none: rgsd diagnose needs openai or regex" in capsys.readouterr().err
    assert main(base + ["--reference-judge-price-in", "1", "--reference-judge-price-out", "2"]) == 2
    assert "--reference-judge-price-in is not used by rgsd diagnose" in capsys.readouterr().err
    assert main(base + ["--reference-judge-mode", "holistic"]) == 2
    assert "--reference-judge-mode holistic gives no per-criterion verdicts" in capsys.readouterr().err
    assert main(base + ["--reference-judge", "openai", "--reference-judge-max-retries", "-1"]) == 2
    assert "--reference-judge-max-retries: must be >= 0, got -1" in capsys.readouterr().err
    # the old names, for one release: the role's own, and diagnose's --panel-rule (all = unanimous)
    with pytest.warns(FutureWarning, match="'reference_base_url' is deprecated"):
        assert main(base + ["--reference-base-url", "http://127.0.0.1:9/v1"]) == 2
    with pytest.warns(FutureWarning, match="--panel-rule is deprecated"):
        assert main(base + ["--panel-rule", "all"]) == 2
    assert "missing: run: not a folder" in capsys.readouterr().err
