"""The demo's stage times on a quiet machine and with one busy process on the second core: a table, one run.

    python bench/bench_demo_load.py                      # quiet and loaded, automatic thread choice
    python bench/bench_demo_load.py --also-threads 2     # plus a loaded run at torch's old default (2 threads)

The load is what a shared CI machine or a laptop adds: one process spinning on CPU 1, niced (``nice 10``).
Each condition runs ``rgsd demo`` in a fresh subprocess with its own ``--out``; the table gives the stage
times from each run's summary.json, the total relative to the quiet run, the thread count the run chose,
and whether its scores equal the quiet run's to full precision (the demo's numbers should not depend on
the load). Name the CPU beside the numbers: machines of one kind differ by 2-3x.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rgsd.cpu import cpu_name

SPIN = "import os\nos.sched_setaffinity(0, {%d})\nos.nice(10)\nwhile True:\n    pass\n"


def run_demo(out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "rgsd.cli", "demo", "--out", str(out), *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text())
    summary["bench_wall_s"] = time.perf_counter() - start
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--also-threads", type=int, default=None, help="also a loaded run with this fixed thread count")
    p.add_argument("--demo-args", default="", help="extra `rgsd demo` flags, e.g. '--steps 4' (say so beside the table)")
    a = p.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        sys.exit("needs at least two usable CPUs")
    extra = a.demo_args.split()
    conditions = [("quiet", extra, False), ("one busy process (nice 10) on CPU %d" % cpus[1], extra, True)]
    if a.also_threads:
        conditions.append((f"one busy process, --threads {a.also_threads}", [*extra, "--threads",
                                                                           str(a.also_threads)], True))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, args, loaded) in enumerate(conditions):
            spinner = subprocess.Popen([sys.executable, "-c", SPIN % cpus[1]]) if loaded else None
            try:
                time.sleep(1.0 if loaded else 0.0)  # let the load show in /proc/stat before the demo looks
                rows.append((name, run_demo(Path(tmp) / f"run{i}", args)))
            finally:
                if spinner:
                    spinner.kill()
                    spinner.wait()
    quiet = rows[0][1]
    stages = list(quiet["timings_s"])
    print(f"CPU: {cpu_name()} ({len(cpus)} usable); demo flags: {a.demo_args or '(defaults)'}")
    print("| condition | threads | " + " | ".join(stages) + " | demo wall time | vs quiet | scores = quiet run |")
    print("|---" * (len(stages) + 5) + "|")
    for name, s in rows:
        same = "yes" if s["scores"] == quiet["scores"] else "no"
        times = " | ".join(f"{s['timings_s'].get(k, float('nan')):.0f} s" for k in stages)
        print(f"| {name} | {s.get('torch_threads')} | {times} | {s['wall_time_s']:.0f} s | "
              f"{s['wall_time_s'] / quiet['wall_time_s']:.2f}x | {same} |")


if __name__ == "__main__":
    main()
