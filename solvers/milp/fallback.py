"""When no formulation encodes a problem exactly: one of archlang's search strategies, each
candidate scored by the cost pass (no model built, no training), within the time limit.

The answer carries no bound, except where the strategy has proposed every point of a finite
space: then it has enumerated the space, and the best feasible point is optimal (or, with
none, the problem is infeasible).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from archlang.errors import ArchError
from archlang.ir import space as S
from archlang.solvers import get_strategy, strategy_names
from archlang.solvers.base import Result
from archlang.solvers.milp.program import Solution, objective_of

PROGRESS_EVERY = 2.0  # seconds between status lines

Check = Callable[[Mapping[str, Any]], tuple[dict[str, Any], list[str]]]


def strategy_named(name: str) -> Any:
    """The search strategy `name`, or the user's error naming the ones there are."""
    try:
        return get_strategy(name)
    except ValueError:
        raise ArchError(f"unknown fallback strategy '{name}' (one of "
                        f"{', '.join(strategy_names())})") from None


def search(space: S.Space, strategy: str, time_limit: float, reason: str, check: Check,
           progress: Callable[[str], None] = lambda text: None, seed: int = 0) -> Solution:
    """Search `space` with `strategy` for `time_limit` seconds, optimising the spec's first
    objective under its requirements; `reason` says why no exact formulation applies."""
    sense, metric = objective_of(space)
    proposer = strategy_named(strategy)
    proposer.setup(space, seed)
    start = time.perf_counter()
    shown = start
    best: tuple[float, dict[str, Any], dict[str, Any]] | None = None  # score, point, metrics
    counts = {"candidates": 0, "feasible": 0, "failed": 0}
    interrupted = False
    try:
        while time.perf_counter() - start < time_limit and not proposer.exhausted:
            values = proposer.propose()
            counts["candidates"] += 1
            try:
                metrics, broken = check(values)
            except ArchError:  # an assignment the space admits but that does not elaborate
                counts["failed"] += 1
                proposer.feedback(values, Result("failed"))
                continue
            if broken:
                proposer.feedback(values, Result("infeasible"))
                continue
            counts["feasible"] += 1
            value = float(metrics[metric])
            score = value if sense == "maximize" else -value
            proposer.feedback(values, Result("ok", score, metrics))
            if best is None or score > best[0]:
                best = (score, dict(values), metrics)
            if time.perf_counter() - shown >= PROGRESS_EVERY:
                shown = time.perf_counter()
                found = "none feasible" if best is None else f"best {metric} {best[2][metric]:.6g}"
                progress(f"{strategy}: {counts['candidates']:,} candidates, {found}, "
                         f"{shown - start:.0f} s")
    except KeyboardInterrupt:  # Ctrl-C ends the search; its best point stands
        interrupted = True
    seconds = time.perf_counter() - start
    enumerated = proposer.exhausted and not interrupted
    notes = (f"no exact formulation: {reason}",)
    name = (f"search fallback: {strategy}, every candidate scored by the cost pass"
            + (" (the whole space enumerated)" if enumerated else ""))
    if best is None:
        status = "interrupted" if interrupted else \
            "infeasible" if enumerated else "no_solution_found"
        return Solution(status, None, None, None,
                        seconds, None, formulation=name, size=counts, notes=notes)
    _, point, metrics = best
    objective = float(metrics[metric])
    status = "interrupted" if interrupted else "optimal" if enumerated else "heuristic"
    return Solution(status, objective,
                    objective if enumerated else None, 0.0 if enumerated else None, seconds,
                    point, metrics, name, counts, notes=notes)
