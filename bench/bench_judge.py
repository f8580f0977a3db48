"""Benchmark: judge verdicts per second at several concurrencies against the loopback test server.

The server (``tests/judge_server.py``) answers every request after a fixed latency (default 50 ms), like a
remote API with a constant response time; so the ideal rate is ``concurrency / latency`` and the table
shows how close the client (semaphore, retries bookkeeping, private event loop, HTTP keep-alive pool) gets.
Per-criterion mode, no cache, one request per verdict.

    python bench/bench_judge.py                         # concurrency 1, 8, 64; 50 ms
    python bench/bench_judge.py --latency 0.02 --concurrency 1 16 128 --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from judge_server import POLICIES, JudgeServer  # noqa: E402

from rgsd.data.schema import Criterion, Example  # noqa: E402
from rgsd.judges.openai_judge import OpenAIJudge  # noqa: E402


def make_examples(n_examples: int, per_example: int) -> list[Example]:
    return [
        Example(
            f"e{i}",
            [{"role": "user", "content": f"Question number {i}: how should I store fresh herbs?"}],
            [
                Criterion(f"c{j}", f"Mentions storage option {j} such as wrapping in a damp towel", 1 + j % 5)
                for j in range(per_example)
            ],
        )
        for i in range(n_examples)
    ]


def run_one(url: str, concurrency: int, n_verdicts: int) -> tuple[float, int, int]:
    per_example = 8
    examples = make_examples(max(1, n_verdicts // per_example), per_example)
    judge = OpenAIJudge("bench-judge", base_url=url, concurrency=concurrency, backoff_base=0.01)

    async def grade_all() -> list:
        return await asyncio.gather(*(judge.grade(ex, "Wrap them in a damp paper towel.") for ex in examples))

    judge.grade_sync(examples[0], "warm-up")  # start the loop and open a connection outside the timing
    calls0 = judge.usage.calls
    start = time.perf_counter()
    grades = asyncio.run(grade_all())
    wall = time.perf_counter() - start
    judge.close()
    verdicts = sum(v.met is not None for g in grades for v in g.verdicts)
    return wall, verdicts, judge.usage.calls - calls0


def start_server_process(latency: float) -> tuple[str, Callable[[], None]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests/judge_server.py"),
            "--port",
            str(port),
            "--policy",
            "hash",
            "--latency",
            str(latency),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    proc.stdout.readline()  # "judge server ... on URL": it is listening

    def stop() -> None:
        proc.terminate()
        proc.wait(timeout=10)

    return f"http://127.0.0.1:{port}/v1", stop


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.05, help="server seconds per request")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--seconds", type=float, default=2.0, help="target ideal duration of each run")
    ap.add_argument(
        "--in-process", action="store_true", help="run the server in this process (shares the GIL)"
    )
    args = ap.parse_args(argv)
    rows = []
    if args.in_process:
        server = JudgeServer(POLICIES["hash"](0.5), latency=args.latency).start()
        url, stop = server.url, server.stop
    else:  # its own process, so the server's threads do not share the client's GIL
        url, stop = start_server_process(args.latency)
    try:
        for c in args.concurrency:
            ideal = c / args.latency
            n = max(8, int(round(ideal * args.seconds / 8)) * 8)
            cpu0 = time.process_time()
            wall, verdicts, calls = run_one(url, c, n)
            rows.append(
                (c, verdicts, calls, wall, verdicts / wall, ideal, (time.process_time() - cpu0) / calls)
            )
    finally:
        stop()
    print(
        f"judge throughput against the loopback server, {args.latency * 1000:.0f} ms per request, per-criterion mode"
    )
    print(
        "| concurrency | verdicts | requests | wall s | verdicts/s | ideal/s | efficiency | client CPU ms/request |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c, verdicts, calls, wall, rate, ideal, cpu in rows:
        print(
            f"| {c} | {verdicts} | {calls} | {wall:.2f} | {rate:.1f} | {ideal:.0f} | {rate / ideal:.0%} | {cpu * 1000:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
