"""The thread choice of the demo: idle CPUs from two /proc/stat readings."""

from __future__ import annotations

from rgsd.cpu import auto_threads, cpu_name, cpu_times, idle_between, usable_cpus


def test_idle_between_counts_each_cpus_idle_share():
    before = {0: (100, 1000), 1: (100, 1000), 2: (0, 0)}
    after = {0: (200, 1100), 1: (110, 1100), 2: (0, 0)}  # cpu0 idle the whole time, cpu1 busy 90%
    assert idle_between(before, after, [0, 1]) == 1.1
    assert idle_between(before, after, [0]) == 1.0  # outside the affinity mask: not counted
    assert idle_between(before, after, [2]) == 1.0  # no ticks: nothing ran, idle
    assert idle_between(before, {0: (50, 900)}, [0]) == 1.0  # a counter that went back is no reading


def test_this_machine_gives_a_thread_count_within_the_usable_cpus():
    times = cpu_times()
    assert set(usable_cpus()) <= set(times) and all(t >= i >= 0 for i, t in times.values())
    assert 1 <= auto_threads(0.05) <= len(usable_cpus())


def test_cpu_name_is_the_cpuinfo_model_name():
    import platform
    from pathlib import Path

    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
             if line.startswith("model name")] if info.exists() else []
    want = names[0] if names else (platform.processor() or platform.machine() or "unknown CPU")
    assert cpu_name() == want and cpu_name()
