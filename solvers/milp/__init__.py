"""Exact architecture design by mixed-integer linear programming (pyomo + HiGHS).

    from archlang.solvers.milp import solve
    solution = solve(archlang.load("examples/deepmad_r18.arch"), time_limit=60)
    print(solution.status, solution.objective, solution.bound, solution.gap)

A discrete space, its `require`s and its objective are compiled to a MILP by the generic
formulation (`generic.py`): exact for costs that are sums of per-layer terms. pyomo and highspy are imported only inside this package (and only when
`solve` runs). See docs/deepmad.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from archlang.solvers.milp.terms import Unsupported

from archlang.ir import space as S

__all__ = ["solve", "Unsupported", "formulate"]


def formulate(space: S.Space, which: str = "auto", progress: Callable[[str], None] = print):
    """The formulation for a space (only 'generic' exists so far)."""
    from archlang.solvers.milp.program import objective_of

    metrics = {objective_of(space)[1]}
    for c in space.constraints:
        metrics.update(c.metrics)
    if which not in ("auto", "generic"):
        raise Unsupported(f"unknown formulation '{which}'")
    from archlang.solvers.milp.generic import Generic

    return Generic(space, metrics, progress=progress)


def solve(space: S.Space, time_limit: float = 60.0, gap: float = 1e-4, threads: int = 1,
          verbose: bool = False, formulation: str = "auto", explain: bool = True,
          progress: Callable[[str], None] = lambda text: None) -> Any:
    """Solve the spec's problem; returns a `program.Solution` (status, objective, bound, gap,
    seconds, assignment, metrics from the cost pass, conflicts when infeasible)."""
    from archlang.solvers.milp.program import Settings
    from archlang.solvers.milp.program import solve as run

    import archlang

    chosen = formulate(space, formulation, progress)

    def check(assignment):
        arch = archlang.fix(space, assignment)
        return arch.metrics(), arch.violations()

    settings = Settings(time_limit, gap, threads, verbose, explain)
    return run(space, chosen, settings, check, progress)
