"""Objectives of a search: which metrics, which direction, and the Pareto front.

The first objective guides the strategy (as a score where higher is better); with several,
the search also keeps the set of trials no other trial beats on every objective.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from archlang.ir.space import Space

DEFAULT = (("maximize", "accuracy"),)

Objectives = tuple[tuple[str, str], ...]


def objectives_of(space: Space) -> Objectives:
    """The spec's `maximize`/`minimize` lines; `maximize accuracy` when it has none."""
    return tuple((o.sense, o.metric) for o in space.objectives) or DEFAULT


def oriented(metrics: Mapping[str, Any], objectives: Objectives) -> tuple[float, ...] | None:
    """The objective values, negated where minimised; None if one is missing or not finite."""
    out = []
    for sense, metric in objectives:
        value = metrics.get(metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        value = float(value)
        if not math.isfinite(value):
            return None
        out.append(value if sense == "maximize" else -value)
    return tuple(out)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a is at least as good everywhere and better somewhere (both oriented to maximise)."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_front(points: Sequence[Sequence[float] | None]) -> list[int]:
    """Indices of the non-dominated points (None skipped); duplicates all stay, in order.

    Sorting by the first objective makes one pass enough for two objectives; more fall back
    to the pairwise check, fine for the thousands of trials a search records.
    """
    live = [(tuple(p), i) for i, p in enumerate(points) if p is not None]
    if not live:
        return []
    if len(live[0][0]) == 2:
        live.sort(key=lambda t: (-t[0][0], -t[0][1], t[1]))
        front, best_second, best_first = [], -math.inf, None
        for (first, second), i in live:
            if second > best_second or (second == best_second and first == best_first):
                front.append(i)
                if second > best_second:
                    best_second, best_first = second, first
        return sorted(front)
    return [i for p, i in live if not any(dominates(q, p) for q, _ in live)]
