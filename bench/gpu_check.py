"""One-GPU check of rgsd's hot paths with randomly initialized models of real shapes (no weights, no network).

    python bench/gpu_check.py            # one GPU, Qwen2.5-1.5B shapes, bf16; prints a table (< 8 minutes)
    python bench/gpu_check.py --tiny     # CPU, tiny shapes, seconds (run by tests/test_gpu_check.py)

Rows:
- RGSD step (teacher forward, student forward + loss + backward, AdamW step) at batch 8, response 1,024,
  rubric prompt 256, for the chunked loss, the naive full-logits loss and a trivial loss on the hidden states
  (the trivial row is the model's own cost; the difference is the loss overhead): time and peak memory.
- HF ``generate`` tokens/s at batch 8 and 64.
- 2 steps of ``rgsd train`` with ``sharding: fsdp2`` on one process, LoRA and full fine-tuning (the real
  training code: process group, fully_shard, checkpoint folder). These use the Qwen2.5-1.5B layer shapes
  with the vocabulary of the tokenizer at hand (SmolLM2's, 49,152), since real token ids are needed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

REAL = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
            num_key_value_heads=2, vocab_size=151936, batch=8, response=1024, prompt=256, gen_new=128)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=1024, batch=2, response=32, prompt=16, gen_new=8)


def _qwen(shape: dict, vocab: int | None = None, dtype=torch.float32, device="cpu"):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
    cfg = Qwen2Config(**{k: shape[k] for k in keys}, vocab_size=vocab or shape["vocab_size"],
                      tie_word_embeddings=True, max_position_embeddings=4096)
    torch.manual_seed(0)
    return Qwen2ForCausalLM(cfg).to(device=device, dtype=dtype)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _peak_reset(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def loss_step_rows(shape: dict, device: str, dtype: torch.dtype) -> list[dict]:
    """Time and peak memory of one RGSD step per loss implementation."""
    from rgsd.method.chunked_loss import chunked_jsd_from_hidden
    from rgsd.method.hidden import final_hidden
    from rgsd.method.losses import LossOptions, jsd_per_token

    model = _qwen(shape, dtype=dtype, device=device)
    model.config.use_cache = False
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    b, r, p = shape["batch"], shape["response"], shape["prompt"]
    g = torch.Generator().manual_seed(0)
    resp = torch.randint(0, shape["vocab_size"], (b, r), generator=g)
    t_ids = torch.cat([torch.randint(0, shape["vocab_size"], (b, p), generator=g), resp], 1).to(device)
    s_ids = torch.cat([t_ids[:, : p // 4], resp.to(device)], 1)
    head = model.get_output_embeddings()

    def step(kind: str) -> None:
        with torch.no_grad():
            t_h = final_hidden(model, t_ids, torch.ones_like(t_ids))[:, -r - 1 : -1].reshape(-1, shape["hidden_size"])
        s_h = final_hidden(model, s_ids, torch.ones_like(s_ids))[:, -r - 1 : -1].reshape(-1, shape["hidden_size"])
        if kind == "chunked":
            opts = LossOptions(beta=0.5, clip=0.05, chunk_size=1024)
            loss, _ = chunked_jsd_from_hidden(s_h, t_h, head, head, opts)
        elif kind == "naive":
            with torch.no_grad():
                t_logits = head(t_h)
            loss = jsd_per_token(head(s_h), t_logits, 0.5, 0.05, "entry", None)[0].sum()
        else:
            loss = s_h.float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    rows = []
    for kind in ("trivial", "chunked", "naive"):
        step(kind)  # warm-up
        _sync(device)
        _peak_reset(device)
        t0 = time.perf_counter()
        step(kind)
        _sync(device)
        rows.append({"check": f"RGSD step, {kind} loss", "seconds": time.perf_counter() - t0,
                     "peak_gib": _peak_gib(device), "note": f"batch {b}, response {r}, rubric prompt {p}"})

    return rows


def generate_rows(shape: dict, device: str, dtype: torch.dtype) -> list[dict]:
    model = _qwen(shape, dtype=dtype, device=device).eval()
    rows = []
    for batch in (8, 64):
        ids = torch.randint(0, shape["vocab_size"], (batch, shape["prompt"]), device=device)
        n = shape["gen_new"]
        kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=True, pad_token_id=0)
        model.generate(input_ids=ids[:, :8], attention_mask=torch.ones_like(ids[:, :8]), **{**kw, "max_new_tokens": 2,
                       "min_new_tokens": 2})
        _sync(device)
        _peak_reset(device)
        t0 = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kw)
        _sync(device)
        dt = time.perf_counter() - t0
        made = (out.shape[1] - ids.shape[1]) * batch
        rows.append({"check": f"HF generate, batch {batch}", "seconds": dt, "peak_gib": _peak_gib(device),
                     "note": f"{made / dt:.0f} tokens/s ({n} new tokens after {shape['prompt']})"})
    del model
    return rows


def fsdp2_train_rows(shape: dict, device: str, work: Path) -> list[dict]:
    """2 steps of the real ``rgsd train`` with ``sharding: fsdp2`` on this one process."""
    from rgsd.models import load_tokenizer
    from rgsd.options import build as build_config
    from rgsd.train.config import RGSDConfig
    from rgsd.train.trainer import train

    tok = load_tokenizer("tiny-random")
    model_dir = work / "model"
    model = _qwen(shape, vocab=len(tok), dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model.config.eos_token_id = model.generation_config.eos_token_id = tok.eos_token_id
    model.config.pad_token_id = model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    del model
    rows = []
    for lora in (True, False):
        cfg = build_config(RGSDConfig, None, dict(
            model_name_or_path=str(model_dir), dataset_name=str(REPO / "rgsd" / "demo_data" / "train.jsonl"), use_lora=lora,
            sharding="fsdp2", max_steps=2, per_device_train_batch_size=2 if device == "cpu" else 8,
            max_new_tokens=shape["gen_new"], temperature=1.0, output_dir=str(work / f"run-lora{lora}"),
            progress=False, learning_rate=1e-5, warmup_ratio=0.0, save_steps=1, max_prompt_tokens=4096))
        _peak_reset(device)
        t0 = time.perf_counter()
        out = train(cfg)
        dt = time.perf_counter() - t0
        last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        ok = (out / "checkpoints" / "step-000001" / "model").is_dir() and (out / "final").is_dir()
        rows.append({"check": f"rgsd train, fsdp2 1 process, {'LoRA' if lora else 'full FT'}, 2 steps",
                     "seconds": dt, "peak_gib": _peak_gib(device),
                     "note": f"loss {last['loss']:.4g}, params/rank {last['params_per_rank'][0]:,}, "
                             f"checkpoint folder {'ok' if ok else 'MISSING'}"})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shapes on CPU (seconds); what the test runs")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.tiny:
        shape, device, dtype = TINY, "cpu", torch.float32
    else:
        if not torch.cuda.is_available():
            print("no GPU: run with --tiny for the CPU version", file=sys.stderr)
            return 2
        shape, device, dtype = REAL, "cuda", torch.bfloat16
    rows = loss_step_rows(shape, device, dtype) + generate_rows(shape, device, dtype)
    with tempfile.TemporaryDirectory() as tmp:
        rows += fsdp2_train_rows(shape, device, Path(tmp))
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"rgsd gpu_check on {name} ({'tiny shapes' if args.tiny else 'Qwen2.5-1.5B shapes'}, {dtype})")
    print(f"| {'check':<48} | {'seconds':>8} | {'peak GiB':>8} | note")
    print(f"| {'-' * 48} | {'-' * 8} | {'-' * 8} | ----")
    for r in rows:
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        print(f"| {r['check']:<48} | {r['seconds']:>8.2f} | {peak:>8} | {r['note']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
