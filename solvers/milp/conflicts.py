"""Why a staged (DeepMAD-like) problem has no solution.

For each requirement: does relaxing it alone make the problem feasible, and by how little? A
budget on MACs or parameters is answered by the least cost over the points that meet every
other requirement, exactly, by the Pareto DP of `leastcost.py` (the box search, minimising
the cost, gives the least found and a proven lower limit where the DP grows too large); the
effectiveness limit by bisection on the limit with that DP; a requirement over decisions by
whether the heuristic finds a point once it is dropped. The generic formulation answers the
same question with HiGHS (`program.explain`); the staged spaces are far too large for that.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

from archlang.ir import space as S
from archlang.solvers.milp.program import Relaxation, objective_of
from archlang.solvers.milp.staged import (
    Staged,
    metric_bound,
    metric_floor,
    scores,
    spans,
    tables,
)
from archlang.solvers.milp.terms import Unsupported

EACH = 10.0  # seconds at most per budget requirement
DROP = 0.5  # seconds per requirement over decisions (is some point feasible without it?)


def explain_staged(space: S.Space, p: Staged, time_limit: float,
                   progress: Callable[[str], None] = lambda text: None
                   ) -> tuple[Relaxation, ...]:
    """The requirements whose relaxation alone makes `space`'s problem feasible, each with
    the least relaxation found (proven least, or with a proven lower limit, for MACs and
    parameters)."""
    progress("infeasible; looking for the conflicting requirements")
    seconds = max(0.5, min(time_limit, EACH))
    out = []
    for i, c in enumerate(space.constraints):
        rest = dataclasses.replace(space, constraints=space.constraints[:i]
                                   + space.constraints[i + 1:])
        t = tables(rest, p)
        if not c.metrics:
            if beyond_budgets(rest, p, t):  # still infeasible without it
                continue
            least = _dropped(rest, p, t, c, min(seconds, DROP))
        else:
            try:
                metric, most = metric_bound(c)[0], False
            except Unsupported:
                try:  # a floor (`entropy >= 20000`): the most found without it
                    metric, most = metric_floor(c)[0], True
                except Unsupported:
                    continue
            if beyond_budgets(rest, p, t):
                continue
            least = (_most if most else _least)(rest, p, t, metric, seconds)
        if least is not None:
            progress(f"relaxing `require {c.text}` alone: {least}")
            out.append(Relaxation(c.text, least))
    return tuple(out)


def _dropped(rest: S.Space, p: Staged, t, c: S.Constraint, seconds: float) -> str | None:
    from archlang.solvers.milp.heuristic import search

    sense, metric = objective_of(rest)
    _, rank = search(rest, p, metric, sense, seconds, spans=spans(p, t))
    return f"drop `require {c.text}`" if rank[0] == 0.0 else None


def _most(rest: S.Space, p: Staged, t, metric: str, seconds: float) -> str | None:
    """`metric >= most` for the largest value of `metric` the heuristic and stage moves
    find over the points meeting every other requirement (not proven largest)."""
    from archlang.solvers.milp.heuristic import polished, search

    start = time.perf_counter()
    point, rank = search(rest, p, metric, "maximize", 0.5 * seconds, spans=spans(p, t))
    if rank[0] != 0.0:
        return None
    point = polished(rest, p, metric, "maximize", point, start + seconds, t)
    most = scores(p, point)[metric]
    shown = math.floor(most * 1e3) / 1e3  # rounded down: relaxing to it admits the point
    return f"{metric} >= {shown:.10g} (the most found; not proven most)"


def _least(rest: S.Space, p: Staged, t, metric: str, seconds: float) -> str | None:
    """`metric <= least` for the least value of `metric` over the points that meet every
    other requirement (None if there is none, or none is found)."""
    from archlang.solvers.milp.heuristic import polished, search

    start = time.perf_counter()
    point, rank = search(rest, p, metric, "minimize", 0.2 * seconds, spans=spans(p, t))
    if rank[0] == 0.0:
        point = polished(rest, p, metric, "minimize", point, start + 0.3 * seconds, t)
        found = scores(p, point)[metric]
    else:
        point, found = None, math.inf
    if metric == "effectiveness":
        least = _least_rho(rest, p, t, found)
        if least is not None:
            return f"effectiveness <= {_up(least)}"
    if metric not in ("macs", "params"):  # the least found stands
        return None if point is None else \
            f"{metric} <= {_up(found)} (the least found; not proven least)"
    proven = exact_least(rest, p, t, metric, found, start + seconds)
    if isinstance(proven, str) or proven is None:
        return proven
    if point is None:
        return None
    found, proven = _bounded(rest, p, t, metric, point, start + seconds, proven)
    if proven >= found * (1 - 1e-4):
        return f"{metric} <= {_up(found)}"
    return f"{metric} <= {_up(found)} (none below {math.floor(proven):,}: proven)"


def exact_least(rest: S.Space, p: Staged, t, metric: str, found: float,
                 deadline: float) -> str | float | None:
    """The least cost by the DP of `leastcost.py`: as the relaxation's text when exact, None
    when no point meets the other requirements, else the least cost proven so far. The DP
    first ignores the other cost's budget (fast); if its answer breaks that budget, it runs
    again with the budget imposed under a ceiling raised 10 % at a time -- each run that
    finds nothing proves the least cost above its ceiling. `found`: the cost of a point
    known to meet every other requirement (infinite if none is known)."""
    from archlang.solvers.milp.heuristic import ranker
    from archlang.solvers.milp.leastcost import least_cost

    meets = ranker(rest, p, metric, "minimize")
    other = _budgets(rest).get("params" if metric == "macs" else "macs")
    rho = _rho(rest)
    # The fronts grow with the ceiling: where they grow too large, halve the distance to
    # what is proven and try again. With no point known, the ceiling starts at 1 and doubles
    # (a run under a low ceiling finds nothing at once, and proves that much).
    proven, second = -math.inf, None
    ceiling, grow = (found, 1.1) if math.isfinite(found) else (1.0, 2.0)
    while True:
        try:
            exact = least_cost(p, t, rho, metric, ceiling, second)
        except Unsupported:
            floor = max(proven, 0.0)
            if ceiling <= floor * 1.01 or time.perf_counter() > deadline:
                return proven
            ceiling = floor + (min(ceiling, 1e18) - floor) / 2
            continue
        if exact is not None and meets(exact[1])[0] == 0.0:
            return f"{metric} <= {_up(exact[0])}"
        if exact is None:
            if ceiling >= found:  # nothing at any cost (found: infinite), or none found
                return None
            proven = max(proven, ceiling)
        elif second is not None or other is None:  # a requirement the DP does not model
            return max(proven, exact[0])
        else:
            proven, second, grow = max(proven, exact[0]), other, 1.1
        if time.perf_counter() > deadline:
            return proven
        ceiling = min(found, max(proven, 1.0) * grow)


def _bounded(rest: S.Space, p: Staged, t, metric: str, point, deadline: float,
             proven: float) -> tuple[float, float]:
    """(least cost found, proven least) by the box search from `point`, when the exact DP
    could not say (the other budget binds, or its fronts grew too large)."""
    from archlang.solvers.milp.boxbb import BoxSearch

    found = scores(p, point)[metric]
    try:
        boxes = BoxSearch(rest, p, metric, "minimize", t, scale=max(abs(found), 1e-9))
    except Unsupported:
        return found, proven
    out = boxes.search(point, max(0.2, deadline - time.perf_counter()), 1e-4, iterations=8)
    return out.objective / boxes.sign, max(proven, out.bound / boxes.sign)


def _least_rho(rest: S.Space, p: Staged, t, found: float) -> float | None:
    """The least effectiveness limit that admits a point meeting `rest`, by bisection on
    the limit, each step the exact least cost (`least_cost`) under it against the MAC (or
    parameter) budget; None where a step cannot decide (the other budget binds, or the DP
    grows too large), or no limit helps."""
    from archlang.solvers.milp.heuristic import ranker
    from archlang.solvers.milp.leastcost import least_cost

    limits = {k: v for k, v in _budgets(rest).items() if k in ("macs", "params")}
    if not limits:
        return None
    metric = "macs" if "macs" in limits else "params"
    meets = ranker(rest, p, metric, "minimize")

    def admits(rho: float | None) -> bool | None:
        try:
            exact = least_cost(p, t, rho, metric, limits[metric])
            if exact is not None and meets(exact[1])[0] != 0.0 and len(limits) == 2:
                exact = least_cost(p, t, rho, metric, limits[metric], limits["params"])
        except Unsupported:
            return None
        if exact is None:
            return False
        return True if meets(exact[1])[0] == 0.0 else None

    lo = 0.0
    hi = found if math.isfinite(found) else None
    if hi is None:
        if admits(None) is not True:  # no limit at all helps, or cannot tell
            return None
        hi = 1.0
        while (ok := admits(hi)) is False:
            lo, hi = hi, 2 * hi
        if ok is None:
            return None
    while hi - lo > 1e-5 * hi:
        mid = (lo + hi) / 2
        ok = admits(mid)
        if ok is None:
            return None
        lo, hi = (lo, mid) if ok else (mid, hi)
    return hi


def beyond_budgets(space: S.Space, p: Staged, t) -> bool:
    """Whether some MAC or parameter budget is below the least cost of every point meeting
    the effectiveness limit and the requirements over decisions: a quick proof that the
    problem is infeasible (False: not proven)."""
    from archlang.solvers.milp.leastcost import least_cost

    for name, value in _budgets(space).items():
        if name in ("macs", "params"):
            try:
                if least_cost(p, t, _rho(space), name, value) is None:
                    return True
            except Unsupported:
                continue
    return _above_entropy(space, p, t)


def _above_entropy(space: S.Space, p: Staged, t) -> bool:
    """Whether a floor on entropy (or entropy_score) lies above the box search's bound on
    the largest value under the other requirements, at the whole space's box."""
    from archlang.solvers.milp.boxbb import ROOT_STEPS, BoxSearch

    for i, c in enumerate(space.constraints):
        try:
            name, floor = metric_floor(c)
        except Unsupported:
            continue
        rest = dataclasses.replace(space, constraints=space.constraints[:i]
                                   + space.constraints[i + 1:])
        try:
            boxes = BoxSearch(rest, p, name, "maximize", t)
        except Unsupported:
            continue
        root = boxes.propagate(boxes.root())
        if root is None:
            return True
        relaxed, _ = boxes.bound(root, boxes.first_duals(), floor, ROOT_STEPS)
        if relaxed is None or relaxed.bound < floor:
            return True
    return False


def _budgets(space: S.Space) -> dict[str, float]:
    """The tightest `metric <= constant` of each metric the space bounds so."""
    out: dict[str, float] = {}
    for c in space.constraints:
        try:
            name, value = metric_bound(c) if c.metrics else (None, 0.0)
        except Unsupported:
            continue
        if name is not None:
            out[name] = min(value, out.get(name, math.inf))
    return out


def _rho(space: S.Space) -> float | None:
    """The tightest `effectiveness <= constant` of the space, if any."""
    return _budgets(space).get("effectiveness")


def _up(value: float) -> str:
    """A budget shown so that relaxing to it admits `value`: integers exactly, else rounded
    up at six significant digits."""
    if float(value).is_integer():
        return f"{int(value):,}"
    scale = 10 ** (5 - math.floor(math.log10(abs(value)))) if value else 1
    return f"{math.ceil(value * scale) / scale:.6g}"
