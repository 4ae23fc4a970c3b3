"""Timing helpers shared by the benchmarks: repeat, report min and median, print ratios."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable


def measure(fn: Callable[[], object], repeat: int = 7, number: int = 1) -> list[float]:
    """Seconds per call of `fn`, for each of `repeat` rounds of `number` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return times


def summary(times: list[float]) -> str:
    return f"min {min(times) * 1e3:9.3f} ms  median {statistics.median(times) * 1e3:9.3f} ms"


def side_by_side(name: str, ours: Callable[[], object], baseline: Callable[[], object],
                 repeat: int = 7, number: int = 1, target: float | None = None) -> float:
    """Time ours and the baseline interleaved (so load affects both alike); print the ratio."""
    ours_t: list[float] = []
    base_t: list[float] = []
    for _ in range(repeat):
        base_t += measure(baseline, 1, number)
        ours_t += measure(ours, 1, number)
    ratio_min = min(ours_t) / min(base_t)
    ratio_med = statistics.median(ours_t) / statistics.median(base_t)
    verdict = "" if target is None else ("  ok" if ratio_min <= target else "  ABOVE TARGET")
    print(f"{name}\n  archlang  {summary(ours_t)}\n  baseline  {summary(base_t)}\n"
          f"  ratio     min {ratio_min:.3f}  median {ratio_med:.3f}"
          + (f"  (target <= {target}){verdict}" if target is not None else ""))
    return ratio_min


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
