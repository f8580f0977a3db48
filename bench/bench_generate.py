"""Rollout throughput of ``rgsd.method.rollout.generate`` on CPU: batch size, torch threads, weight formats.

Samples ``--prompts`` demo prompts (cycled) at temperature 0.7 for ``--max-new-tokens`` tokens with the KV cache
on (transformers' default) and prints generated tokens/s and rollouts/s per (threads, batch size). Bounded: every
cell generates at most prompts x max_new_tokens tokens.

    python bench/bench_generate.py --prompts 32 --max-new-tokens 32 --batch-sizes 8,16,32 --threads 1,2

``--compare`` instead measures, side by side in one run on the same machine, today's fp32 ``generate`` against
each candidate sampling copy of the policy (built by :func:`sampling_copy`): tokens/s at each batch size, the
bytes of weights one decode step reads divided by the batch (bytes per generated token), and how far the copy's
next-token distribution is from the fp32 model's on the fp32 model's own rollouts (mean per-token KL(fp32 || copy)
at the sampling temperature). It ends with one line per batch size: the speed-up of the path the demo uses and
of the fastest copy whose KL stays within ``--max-kl``.

    python bench/bench_generate.py --compare --prompts 32 --max-new-tokens 32 --batch-sizes 8,32 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from torch import nn

from rgsd.cpu import cpu_name

PATHS = ("fp32", "fp32+numpy-head", "bf16", "int8-dynamic", "int8-weight-only", "torchao-int8-weight-only")


class NumpyHead(nn.Module):
    """The lm_head product through numpy's BLAS (OpenBLAS in numpy's wheels), where torch's default BLAS loses."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.wt = np.ascontiguousarray(weight.detach().float().numpy().T)  # (hidden, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.detach().float().reshape(-1, x.shape[-1]).numpy()
        return torch.from_numpy(flat @ self.wt).reshape(*x.shape[:-1], self.wt.shape[1])


class Int8WeightOnly(nn.Module):
    """Weight-only int8 (per output channel, symmetric) through torch's ``_weight_int8pack_mm`` kernel; the
    activations stay fp32."""

    def __init__(self, linear: nn.Linear | nn.Module, weight: torch.Tensor | None = None):
        super().__init__()
        w = (weight if weight is not None else linear.weight).detach().float()
        scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
        self.register_buffer("w_int8", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scales", scale)
        bias = getattr(linear, "bias", None)
        self.register_buffer("bias", None if bias is None else bias.detach().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).float().contiguous()
        y = torch.ops.aten._weight_int8pack_mm(flat, self.w_int8, self.scales)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], y.shape[-1])


def _replace_linears(model: nn.Module, make) -> None:
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, make(child))
        else:
            _replace_linears(child, make)


def sampling_copy(model: nn.Module, path: str) -> nn.Module:
    """A copy of ``model`` for sampling only, its weights in the format ``path`` names (the original untouched)."""
    if path == "fp32":
        return model
    m = copy.deepcopy(model).eval()
    if path == "fp32+numpy-head":
        m.lm_head = NumpyHead(m.lm_head.weight)
    elif path == "bf16":
        m = m.to(torch.bfloat16)
    elif path == "int8-dynamic":  # torch's dynamic quantization: int8 weights, activations quantized per step
        m.lm_head = nn.Linear(m.lm_head.in_features, m.lm_head.out_features, bias=False)
        m.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())  # untied: quantized on its own
        m = torch.ao.quantization.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8)
    elif path == "int8-weight-only":
        _replace_linears(m, Int8WeightOnly)
    elif path == "torchao-int8-weight-only":  # the maintained form of the same idea (pip install torchao)
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        m.lm_head = nn.Linear(m.lm_head.in_features, m.lm_head.out_features, bias=False)
        m.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())
        quantize_(m, Int8WeightOnlyConfig())
    else:
        raise ValueError(f"unknown path {path!r}; choose from {', '.join(PATHS)}")
    return m


def weight_bytes_per_step(model: nn.Module, path: str) -> int:
    """Bytes of weights one decode step reads in format ``path``: every linear layer of the fp32 ``model``, the
    lm_head included (the embedding reads one row per token, left out), plus int8's per-row fp32 scales."""
    per = 4 if path.startswith("fp32") else 2 if path == "bf16" else 1
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    n, rows = sum(m.weight.numel() for m in linears), sum(m.out_features for m in linears)
    return n * per + (4 * rows if per == 1 else 0)


@torch.no_grad()
def mean_kl(reference: nn.Module, candidate: nn.Module, rollouts, temperature: float) -> float:
    """Mean per-token KL(reference || candidate) at ``temperature`` on the response tokens of ``rollouts``."""
    total, count = 0.0, 0
    for r in rollouts:
        if not r.response_ids:
            continue
        ids = torch.tensor([r.prompt_ids + r.response_ids])
        first = len(r.prompt_ids) - 1  # the logits that predict the first response token
        lp = [torch.log_softmax(m(input_ids=ids).logits[0, first:-1].float() / temperature, -1)
              for m in (reference, candidate)]
        total += float((lp[0].exp() * (lp[0] - lp[1])).sum(-1).sum())
        count += lp[0].shape[0]
    return total / max(count, 1)


def compare(model, tok, prompts, args) -> None:
    from rgsd.method.rollout import generate

    sizes = [int(x) for x in args.batch_sizes.split(",")]
    torch.set_num_threads(int(args.threads.split(",")[0]))
    print(f"{len(prompts)} prompts x {args.max_new_tokens} new tokens, T 0.7, KV cache on, "
          f"{torch.get_num_threads()} threads, {cpu_name()}, torch {torch.__version__}")
    print("| path | batch | tokens/s | speed-up | weight MB read / token | KL(fp32 || path) / token |")
    print("| --- | --- | --- | --- | --- | --- |")
    base_tps: dict[int, float] = {}
    best: dict[int, tuple[str, float]] = {}
    reference_rollouts = None
    for path in args.paths.split(","):
        try:
            m = sampling_copy(model, path)
            generate(m, tok, prompts[:2], max_new_tokens=4, temperature=0.7, batch_size=2, generator_seed=0)
        except Exception as err:  # a format this machine's torch cannot run: say so, measure the others
            print(f"| {path} | - | failed: {type(err).__name__}: {str(err)[:80]} | | | |", flush=True)
            continue
        kl = 0.0 if path == "fp32" else mean_kl(model, m, reference_rollouts or [], 0.7)
        for bs in sizes:
            t0 = time.perf_counter()
            out = generate(m, tok, prompts, max_new_tokens=args.max_new_tokens, temperature=0.7, batch_size=bs,
                           generator_seed=0)
            tps = sum(len(r.response_ids) for r in out) / (time.perf_counter() - t0)
            if path == "fp32":
                base_tps[bs] = tps
                reference_rollouts = reference_rollouts or out[: args.kl_rollouts]
            up = tps / base_tps[bs] if bs in base_tps else float("nan")
            if path != "fp32" and kl <= args.max_kl and (bs not in best or up > best[bs][1]):
                best[bs] = (path, up)
            mb = weight_bytes_per_step(model, path) / bs / 1e6
            print(f"| {path} | {bs} | {tps:.1f} | {up:.2f}x | {mb:.1f} | {kl:.2e} |", flush=True)
        del m
    # the demo samples with fp32 generate: its speed-up is 1.0x until it adopts a faster path; the fastest copy
    # whose KL stays within --max-kl is the candidate (a copy far from the policy would train on another one)
    for bs in sizes:
        cand = f"{best[bs][0]} {best[bs][1]:.2f}x" if bs in best else "none"
        print(f"batch {bs}: 1.0x (the demo's path: fp32 generate); fastest copy with KL <= {args.max_kl:g}: {cand}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-offline")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-sizes", default="8,16,32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--compare", action="store_true", help="fp32 against each sampling copy (see the module doc)")
    ap.add_argument("--paths", default=",".join(PATHS), help="--compare: the formats, fp32 first")
    ap.add_argument("--kl-rollouts", type=int, default=8, help="--compare: fp32 rollouts the KL is measured on")
    ap.add_argument("--max-kl", type=float, default=0.01,
                    help="--compare: a copy counts as a candidate only with mean per-token KL at most this")
    args = ap.parse_args()

    from rgsd.data.loaders import load_examples
    from rgsd.method.rollout import chat_prompt_ids, generate
    from rgsd.method.teacher_prompt import student_messages
    from rgsd.models import load_model

    model, tok = load_model(args.model)
    model.eval()
    exs = load_examples("demo:train").examples + load_examples("demo:heldout").examples
    prompts = [chat_prompt_ids(tok, student_messages(exs[i % len(exs)])) for i in range(args.prompts)]
    if args.compare:
        compare(model, tok, prompts, args)
        return
    generate(model, tok, prompts[:2], max_new_tokens=4, temperature=0.7, batch_size=2, generator_seed=0)  # warm-up
    print(f"{args.prompts} prompts x {args.max_new_tokens} new tokens, T 0.7, KV cache on")
    print("| threads | batch | tokens/s | rollouts/s | wall s |")
    print("| --- | --- | --- | --- | --- |")
    for th in (int(x) for x in args.threads.split(",")):
        torch.set_num_threads(th)
        for bs in (int(x) for x in args.batch_sizes.split(",")):
            t0 = time.perf_counter()
            out = generate(model, tok, prompts, max_new_tokens=args.max_new_tokens, temperature=0.7,
                           batch_size=bs, generator_seed=0)
            dt = time.perf_counter() - t0
            ntok = sum(len(r.response_ids) for r in out)
            print(f"| {th} | {bs} | {ntok / dt:.1f} | {len(out) / dt:.2f} | {dt:.1f} |", flush=True)


if __name__ == "__main__":
    main()
