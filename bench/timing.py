"""Timing helpers shared by the benchmarks: repeat, report min and median, print ratios."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def measure(fn: Callable[[], object], repeat: int = 7, number: int = 1,
            clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Seconds per call of `fn`, for each of `repeat` rounds of `number` calls."""
    times = []
    for _ in range(repeat):
        start = clock()
        for _ in range(number):
            fn()
        times.append((clock() - start) / number)
    return times


def summary(times: list[float]) -> str:
    return f"min {min(times) * 1e3:9.3f} ms  median {statistics.median(times) * 1e3:9.3f} ms"


def side_by_side(name: str, ours: Callable[[], object], baseline: Callable[[], object],
                 repeat: int = 7, number: int = 1, target: float | None = None) -> float:
    """Time ours and the baseline interleaved (so load affects both alike); print the ratios.

    Both wall time and this process's CPU time are reported: on a shared machine the CPU
    time is the steadier of the two (other processes' work does not count), wall time is what
    a user waits.
    """
    ours_t: list[float] = []
    base_t: list[float] = []
    ours_c: list[float] = []
    base_c: list[float] = []
    for _ in range(repeat):
        for fn, wall, cpu in ((baseline, base_t, base_c), (ours, ours_t, ours_c)):
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(number):
                fn()
            wall.append((time.perf_counter() - start_wall) / number)
            cpu.append((time.process_time() - start_cpu) / number)
    ratio_min = min(ours_t) / min(base_t)
    ratio_med = statistics.median(ours_t) / statistics.median(base_t)
    cpu_min = min(ours_c) / min(base_c)
    cpu_med = statistics.median(ours_c) / statistics.median(base_c)
    verdict = "" if target is None else ("  ok" if min(ratio_min, cpu_min) <= target
                                         else "  ABOVE TARGET")
    print(f"{name}\n  archlang  wall {summary(ours_t)}   cpu {summary(ours_c)}\n"
          f"  baseline  wall {summary(base_t)}   cpu {summary(base_c)}\n"
          f"  ratio     wall min {ratio_min:.3f} median {ratio_med:.3f}   "
          f"cpu min {cpu_min:.3f} median {cpu_med:.3f}"
          + (f"  (target <= {target}){verdict}" if target is not None else ""))
    return min(ratio_min, cpu_min)


def machine() -> str:
    """The CPU model, core count and Python version, for the record in BENCHMARKS.md."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def replace_section(path: Path, section: str, body: str) -> None:
    """Put `body` under the `section` heading of a markdown file, leaving the rest alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == section), None)
    block = [section, "", *body.rstrip().splitlines(), ""]
    if start is None:
        lines = [*lines, "", *block] if lines and lines[-1].strip() else [*lines, *block]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        lines = lines[:start] + block + lines[end:]
    path.write_text("\n".join(lines).rstrip() + "\n")
