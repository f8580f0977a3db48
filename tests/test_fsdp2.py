"""FSDP2 (torch fully_shard) under torchrun on CPU, gloo, 2 processes: the command users run.

Each 2-process run is compared with a single-process run of the same global batch (greedy rollouts, so both
see the same data). Weights differ only by float32 reduction order (a reduce-scatter of two halves instead
of one sum, sharded AdamW on the same numbers); the tolerance is a small fraction of how far training moved
them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import DEMO_TRAIN, REPO, kill_after_first_checkpoint
from safetensors.torch import load_file

pytestmark = pytest.mark.slow
RECIPE = REPO / "recipes" / "rgsd-tiny-cpu.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _opts(model_dir: Path, out: Path, **kw) -> list[str]:
    opts = dict(model=model_dir, data=DEMO_TRAIN, max_steps=2, max_new_tokens=6, temperature=0, output_dir=out,
                progress="false", warmup_ratio=0, save_steps=1, probe_steps=2, probe_max_new_tokens=4)
    opts.update(kw)
    return [x for k, v in opts.items() for x in (f"--{k}", str(v))]


def _single(model_dir, out, **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "rgsd.cli", "train", "--config", str(RECIPE), *_opts(model_dir, out, **kw)]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)


def _torchrun(model_dir, out, wait: bool = True, extra: tuple[str, ...] = (), **kw):
    # exactly: torchrun --nproc_per_node 2 -m rgsd.cli train --config recipes/rgsd-tiny-cpu.yaml --sharding fsdp2 ...
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "rgsd.cli", "train", "--config", str(RECIPE), "--sharding", "fsdp2",
           *_opts(model_dir, out, **kw), *extra]
    if not wait:
        # own process group, so kill -9 reaches the launcher and both workers (a lost node, not a clean stop)
        return subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-4000:]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(next(folder.glob("*.safetensors")))


def _max_diff(a: dict, b: dict) -> float:
    common = set(a) & set(b)  # a tied lm_head.weight may be stored by one run only
    assert len(common) >= len(a) - 1
    return max((a[k].float() - b[k].float()).abs().max().item() for k in common)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_fsdp2_full_finetuning_two_processes_matches_single(tmp_path, tiny_model_dir):
    one = tmp_path / "one"
    two = tmp_path / "two"
    _ok(_single(tiny_model_dir, one, use_lora="false", per_device_batch_size=4, learning_rate="1e-3"))
    dist = _torchrun(tiny_model_dir, two, use_lora="false", per_device_batch_size=2, learning_rate="1e-3")
    _ok(dist)
    init = _weights(Path(tiny_model_dir))
    w1, w2 = _weights(one / "final"), _weights(two / "final")
    moved = _max_diff(w1, init)
    diff = _max_diff(w1, w2)
    print(f"FSDP2 full FT: max |w_2proc - w_1proc| = {diff:.3e}, max |w - w0| = {moved:.3e}")
    assert moved > 1e-4 and diff < 1e-2 * moved
    m1, m2 = _metrics(one), _metrics(two)
    assert [m["scored_tokens"] for m in m1] == [m["scored_tokens"] for m in m2]
    # sharding happened: each rank holds about half of the parameters as its local shards
    total = m1[0]["params_per_rank"][0]
    assert m2[0]["sharding"] == "fsdp2" and m2[0]["world_size"] == 2
    assert all(abs(n - total / 2) <= 0.01 * total for n in m2[0]["params_per_rank"])
    assert "self_internalization_gap" in m2[-1]  # the probe ran on the sharded model
    # the step checkpoint is a model folder from_pretrained loads, and rgsd eval --model reads it
    from transformers import AutoModelForCausalLM

    ckpt = two / "checkpoints" / "step-000001" / "model"
    loaded = AutoModelForCausalLM.from_pretrained(ckpt)
    assert (ckpt / "tokenizer.json").exists() and (ckpt.parent / "resume").is_dir()
    assert torch.equal(loaded.state_dict()["model.norm.weight"], _weights(ckpt)["model.norm.weight"])
    ev = subprocess.run([sys.executable, "-m", "rgsd.cli", "eval", "--model", str(ckpt), "--data", str(DEMO_TRAIN),
                         "--limit", "2", "--judge", "regex", "--max-new-tokens", "4", "--out", str(tmp_path / "ev")],
                        env=_env(), capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert (tmp_path / "ev" / "summary.json").exists()


def test_fsdp2_lora_two_processes_matches_single(tmp_path, tiny_model_dir):
    one, two = tmp_path / "one", tmp_path / "two"
    _ok(_single(tiny_model_dir, one, use_lora="true", per_device_batch_size=4, learning_rate="1e-2"))
    _ok(_torchrun(tiny_model_dir, two, use_lora="true", per_device_batch_size=2, learning_rate="1e-2"))
    a1, a2 = _weights(one / "final"), _weights(two / "final")
    assert all("lora_" in k for k in a2), "a LoRA checkpoint holds the adapter only"
    moved = max(a1[k].abs().max().item() for k in a1 if "lora_B" in k)  # lora_B starts at zero
    diff = _max_diff(a1, a2)
    print(f"FSDP2 LoRA: max |adapter_2proc - adapter_1proc| = {diff:.3e}, max |lora_B| = {moved:.3e}")
    assert moved > 1e-4 and diff < 1e-2 * moved
    # the step checkpoint loads through PEFT on the base, and through rgsd's loader (merged)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rgsd.models import load_model

    ckpt = two / "checkpoints" / "step-000001" / "model"
    assert (ckpt / "adapter_config.json").exists() and not (ckpt / "model.safetensors").exists()
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), ckpt)
    merged, _ = load_model(str(ckpt))
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.allclose(peft_model(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-5)


@pytest.mark.parametrize("use_lora", [False, True], ids=["full", "lora"])
def test_fsdp2_kill_and_resume_matches_uninterrupted(tmp_path, tiny_model_dir, use_lora):
    # Sampled rollouts: the resumed run must restore data position, weights, optimizer and each rank's RNG.
    common = dict(use_lora=str(use_lora).lower(), per_device_batch_size=1, temperature=1.0, max_steps=4,
                  learning_rate="1e-2" if use_lora else "1e-3", save_steps=2, probe_steps=0)
    # the uninterrupted run goes beside the one to be killed (time, not results: each run is deterministic)
    full = _torchrun(tiny_model_dir, tmp_path / "full", wait=False, **common)
    run = tmp_path / "killed"
    try:
        proc = _torchrun(tiny_model_dir, run, wait=False, **common)
        kill_after_first_checkpoint(proc, run)
        resumed = _torchrun(tiny_model_dir, run, extra=("--resume",), **common)
        _ok(resumed)
        assert "resumed from" in resumed.stderr
        assert full.wait(timeout=600) == 0, "the uninterrupted run failed"
    finally:
        if full.poll() is None:
            os.killpg(full.pid, signal.SIGKILL)
    a, b = _weights(tmp_path / "full" / "final"), _weights(run / "final")  # LoRA: the adapters
    if use_lora:
        assert all("lora_" in k for k in a) and max(a[k].abs().max().item() for k in a if "lora_B" in k) > 1e-4
        # the resume state holds the adapter (sharded) and its optimizer state, not the frozen base
        import torch.distributed.checkpoint as dcp

        keys = dcp.FileSystemReader(str(run / "checkpoints" / "step-000002" / "resume")).read_metadata()
        assert all("lora_" in k for k in keys.state_dict_metadata if k.startswith("model."))
    diff = _max_diff(a, b)
    print(f"FSDP2 kill -9 + resume ({'LoRA' if use_lora else 'full'}): max |w_resumed - w_uninterrupted| = {diff:.3e}")
    assert diff < 1e-6
    assert [m["step"] for m in _metrics(run)] == [1, 2, 3, 4]


def _thinking_model(folder: Path) -> Path:
    """A tiny Llama whose tokenizer has a ``</think>`` token (the unused special ``<filename>``, id 6, renamed)
    and whose embedding rows 6 and 11529 are swapped, so the model emits ``</think>`` exactly where it would
    have emitted token 11529: in the greedy response to one prompt of rank 1's step-0 batch, in neither of
    rank 0's. Rank 0's rollouts are then all dropped (thinking never closed)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from rgsd.models import load_tokenizer

    tok = load_tokenizer("tiny-random")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True, initializer_range=0.3,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)  # a larger init than tiny_model: responses depend on the prompt
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[[6, 11529]] = emb[[11529, 6]].clone()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    for f in folder.glob("tokenizer*.json"):
        f.write_text(f.read_text().replace('"<filename>"', '"</think>"'))
    return folder


def test_fsdp2_unequal_work_across_ranks_matches_single(tmp_path):
    from conftest import DEMO_TRAIN as data

    from rgsd.data.loaders import load_examples
    from rgsd.data.order import step_indices
    from rgsd.method.alignment import loss_mask, thinking_end_id
    from rgsd.method.rollout import chat_prompt_ids, generate
    from rgsd.method.teacher_prompt import student_messages
    from rgsd.models import load_model

    model_dir = _thinking_model(tmp_path / "model")
    model, tok = load_model(str(model_dir))
    assert thinking_end_id(tok) == 6
    examples = load_examples(str(data)).examples
    prompts = [chat_prompt_ids(tok, student_messages(examples[i])) for i in step_indices(0, len(examples), 4, 0)]
    kept = [loss_mask(r.response_ids, 6) for r in generate(model, tok, prompts, max_new_tokens=6, do_sample=False)]
    assert kept[0] is None and kept[1] is None  # rank 0: every rollout dropped
    assert kept[2] is not None and sum(kept[2]) >= 3  # rank 1: scored tokens

    common = dict(use_lora="false", learning_rate="1e-3", max_steps=1, save_steps=0, probe_steps=0,
                  thinking="true")
    one, two = tmp_path / "one", tmp_path / "two"
    _ok(_single(model_dir, one, per_device_batch_size=4, **common))
    # 2 ranks x (1 prompt x 2 micro-batches): rank 0 pads both micro-batches, rank 1 one of its two
    _ok(_torchrun(model_dir, two, per_device_batch_size=1, gradient_accumulation_steps=2, **common))
    m1, m2 = _metrics(one)[0], _metrics(two)[0]
    assert m1["scored_tokens"] == m2["scored_tokens"] == sum(kept[2]) + (sum(kept[3]) if kept[3] else 0)
    assert m1["dropped_unclosed_thinking"] == m2["dropped_unclosed_thinking"] >= 2  # summed over ranks
    init = _weights(model_dir)
    w1, w2 = _weights(one / "final"), _weights(two / "final")
    moved, diff = _max_diff(w1, init), _max_diff(w1, w2)
    print(f"FSDP2 unequal work: max |w_2proc - w_1proc| = {diff:.3e}, max |w - w0| = {moved:.3e}")
    assert moved > 1e-5 and diff < 1e-2 * moved
