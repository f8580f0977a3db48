"""Benchmark: chunked vs naive generalized-JSD loss from final hidden states (forward + backward).

Each (shape, N, variant) runs in a fresh subprocess so that peak memory is measured in isolation:
* CPU: peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) minus the RSS right after the inputs were allocated;
* CUDA: ``torch.cuda.max_memory_allocated()`` minus the allocated bytes after the inputs.
Time is the median over ``--reps`` forward+backward runs after one warm-up run. The student head weight is
trainable (full fine-tuning), so both variants also hold its ``[V, H]`` float32 gradient.

    nice python bench/bench_loss.py                 # CPU, fp32, the sizes of bench/README.md
    python bench/bench_loss.py --quick              # smoke run (seconds)
    python bench/bench_loss.py --device cuda        # bf16 inputs on a GPU, N = 8 x 1024 for both variants

Use ``--n`` / ``--chunked-only-n`` / ``--shapes`` to pick other sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

SHAPES = {  # name: (vocab, hidden)
    "smollm2": (49_152, 576),
    "qwen2.5-1.5b": (151_936, 1_536),
}
# Default positions per shape: (N for both variants, N for the chunked variant only). On the 2-core, 24 GB CPU
# machine the naive variant at N = 8 x 1024 would need ~14 GB (SmolLM2) / ~45 GB (Qwen) and minutes per step,
# so it runs at smaller N; on a GPU both run at N = 8 x 1024.
CPU_PLAN = {"smollm2": ([2048, 4096], [8192]), "qwen2.5-1.5b": ([512, 1024], [2048])}
CUDA_PLAN = {"smollm2": ([8192], []), "qwen2.5-1.5b": ([8192], [])}
WARMUP_N = 64


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def worker(
    variant: str, vocab: int, hidden: int, n: int, chunk: int, device: str, reps: int, beta: float
) -> dict:
    """Runs in the subprocess: allocate inputs, warm up, time ``reps`` forward+backward passes."""
    import torch

    from rgsd.method.chunked_loss import chunked_jsd_from_hidden, naive_jsd_from_hidden
    from rgsd.method.losses import LossOptions

    fn = chunked_jsd_from_hidden if variant == "chunked" else naive_jsd_from_hidden
    opts = LossOptions(beta=beta, chunk_size=chunk)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    s_h = torch.randn(n, hidden, device=device, dtype=dtype).requires_grad_(True)
    t_h = torch.randn(n, hidden, device=device, dtype=dtype)
    s_w = (torch.randn(vocab, hidden, device=device, dtype=dtype) * hidden**-0.5).requires_grad_(True)
    t_w = s_w.detach() + 0.01 * torch.randn(vocab, hidden, device=device, dtype=dtype)

    def step(m: int) -> float:
        s_h.grad = None
        s_w.grad = None
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss, _ = fn(s_h[:m], t_h[:m], s_w, t_w, opts)
        loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = _rss_bytes()
    step(min(n, WARMUP_N))  # short warm-up (kernel selection, allocator); its peak is below the real one
    times = [step(n) for _ in range(reps)]
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"peak_extra_bytes": peak, "times": times}


def run_one(args, variant: str, shape: str, n: int) -> dict:
    vocab, hidden = SHAPES[shape]
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        variant,
        str(vocab),
        str(hidden),
        str(n),
        str(args.chunk_size),
        args.device,
        str(args.reps),
        str(args.beta),
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--quick", action="store_true", help="small N and one rep: a smoke run")
    ap.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=list(SHAPES))
    ap.add_argument(
        "--n",
        type=int,
        nargs="*",
        default=None,
        help="positions N to run both variants at (default: per shape, see CPU_PLAN/CUDA_PLAN)",
    )
    ap.add_argument(
        "--chunked-only-n",
        type=int,
        nargs="*",
        default=None,
        help="extra N for the chunked variant only (default: per shape, see CPU_PLAN/CUDA_PLAN)",
    )
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--worker", nargs=8, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        variant, vocab, hidden, n, chunk, device, reps, beta = args.worker
        res = worker(variant, int(vocab), int(hidden), int(n), int(chunk), device, int(reps), float(beta))
        print(json.dumps(res))
        return 0

    if args.quick:
        args.n, args.chunked_only_n, args.reps = [256], [], 1
        args.chunk_size = min(args.chunk_size, 128)
    plan_for = CUDA_PLAN if args.device == "cuda" else CPU_PLAN

    import torch

    dev = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(
        f"# device: {dev}; dtype: {'bf16' if args.device == 'cuda' else 'fp32'}; torch {torch.__version__}; "
        f"chunk_size {args.chunk_size}; beta {args.beta}; reps {args.reps} (median)"
    )
    print(
        "| shape | V | H | N | variant | peak extra memory (GiB) | fwd+bwd time (s) | chunked/naive memory "
        "| chunked/naive time |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for shape in args.shapes:
        vocab, hidden = SHAPES[shape]
        both = args.n if args.n is not None else plan_for[shape][0]
        only = args.chunked_only_n if args.chunked_only_n is not None else plan_for[shape][1]
        plan = [(n, v) for n in both for v in ("naive", "chunked")] + [(n, "chunked") for n in only]
        naive_at: dict[int, dict] = {}
        for n, variant in plan:
            res = run_one(args, variant, shape, n)
            head = f"| {shape} | {vocab:,} | {hidden:,} | {n:,} | {variant} |"
            if "error" in res:
                print(f"{head} failed: {res['error']} | | | |", flush=True)
                continue
            mem, tim = res["peak_extra_bytes"] / 2**30, statistics.median(res["times"])
            ratio_m = ratio_t = ""
            if variant == "naive":
                naive_at[n] = {"mem": mem, "time": tim}
            elif n in naive_at:
                ratio_m = f"{mem / naive_at[n]['mem']:.2f}"
                ratio_t = f"{tim / naive_at[n]['time']:.2f}"
            print(f"{head} {mem:.2f} | {tim:.2f} | {ratio_m} | {ratio_t} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
