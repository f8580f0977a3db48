"""How many CPU threads torch should use: the CPUs this process may run on, less those busy right now.

torch defaults to one thread per physical core. When another process keeps one of two cores busy, every
parallel region then waits for the thread that shares the busy core (the demo's first stage took 891 s
instead of 126 s that way); one thread on the idle core runs at full speed. The choice is made once, at
the start, from two readings of ``/proc/stat`` (elsewhere: the load average).
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path

_STAT = Path("/proc/stat")


def cpu_name() -> str:
    """The CPU's model name, to print beside every time measured (machines of one kind differ 2-3x)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask), sorted."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def cpu_times() -> dict[int, tuple[int, int]]:
    """CPU number -> (idle ticks incl. iowait, total ticks), from /proc/stat."""
    out: dict[int, tuple[int, int]] = {}
    for line in _STAT.read_text().splitlines():
        name, *ticks = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            values = [int(t) for t in ticks[:8]]
            out[int(name[3:])] = (values[3] + values[4], sum(values))
    return out


def idle_between(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], cpus: list[int]) -> float:
    """Idle CPUs between two readings of :func:`cpu_times` (each CPU's idle share of the ticks, summed)."""
    idle = 0.0
    for cpu in cpus:
        if cpu in before and cpu in after:
            d_idle, d_total = after[cpu][0] - before[cpu][0], after[cpu][1] - before[cpu][1]
            idle += min(1.0, max(0.0, d_idle / d_total)) if d_total > 0 else 1.0
    return idle


def idle_cpus(interval: float = 0.5) -> float:
    """How many of the usable CPUs were idle over ``interval`` seconds."""
    cpus = usable_cpus()
    try:
        before = cpu_times()
        time.sleep(interval)
        return idle_between(before, cpu_times(), cpus)
    except (OSError, ValueError, IndexError):  # no /proc/stat: the load average
        return max(0.0, len(cpus) - os.getloadavg()[0]) if hasattr(os, "getloadavg") else float(len(cpus))


def auto_threads(interval: float = 0.5) -> int:
    """Threads for torch: the idle usable CPUs, rounded down (a CPU at least 75% idle counts), at least 1."""
    return max(1, min(len(usable_cpus()), math.floor(idle_cpus(interval) + 0.25)))
