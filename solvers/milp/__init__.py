"""Exact architecture design by mixed-integer linear programming (pyomo + HiGHS).

    from archlang.solvers.milp import solve
    solution = solve(archlang.load("examples/deepmad_r18.arch"), time_limit=60)
    print(solution.status, solution.objective, solution.bound, solution.gap)

A discrete space, its `require`s and its objective are compiled to a MILP by the generic
formulation (`generic.py`), exact for costs that are sums of per-layer terms over small
spaces, or by the staged formulation (`staged.py` recognises, `deepmad.py` encodes), exact for
DeepMAD-like spaces of any size. pyomo and highspy are imported only inside this package (and
only when `solve` runs). See docs/deepmad.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from archlang.errors import ArchError
from archlang.ir import space as S
from archlang.solvers.milp.terms import Unsupported

__all__ = ["solve", "Unsupported", "formulate"]


def formulate(space: S.Space, which: str = "auto", progress: Callable[[str], None] = print):
    """The generic formulation for a space (the staged one has its own driver, see `solve`)."""
    from archlang.solvers.milp.program import objective_of

    metrics = {objective_of(space)[1]}
    for c in space.constraints:
        metrics.update(c.metrics)
    if which not in ("auto", "generic"):
        raise Unsupported(f"unknown formulation '{which}'")
    from archlang.solvers.milp.generic import Generic

    return Generic(space, metrics, progress=progress)


FORMULATIONS = ("auto", "generic", "staged", "staged-milp", "staged-boxes")


def solve(space: S.Space, time_limit: float = 60.0, gap: float = 1e-4, threads: int = 1,
          verbose: bool = False, formulation: str = "auto", explain: bool = True,
          progress: Callable[[str], None] = lambda text: None,
          fallback: str | None = None) -> Any:
    """Solve the spec's problem; returns a `program.Solution` (status, objective, bound, gap,
    seconds, assignment, metrics from the cost pass, conflicts when infeasible).

    `formulation`: "generic" (any small discrete space), "staged" (DeepMAD-like spaces of
    stages of bottleneck blocks, any size: the HiGHS model of `deepmad.py` when it is small,
    else the box branch and bound of `boxbb.py` if the problem maximises entropy or
    entropy_score under macs/params/effectiveness budgets), "staged-milp" / "staged-boxes"
    (one of the two), or "auto": generic when it can encode the space, else staged;
    `Unsupported` with both reasons when neither applies -- or, with `fallback` (a search
    strategy: random, evolution, mcts, smbo), that strategy's best point found within the time
    limit, scored by the cost pass (status "heuristic", no bound; "optimal" if it enumerated
    the whole space). A spec with several objectives is solved for the first; a note says so.
    """
    import dataclasses

    import archlang
    from archlang.solvers.milp.program import objective_of

    objective_of(space)  # a problem a program can state, else the user's error, at its line
    if not time_limit > 0:
        raise ArchError(f"the time limit must be positive seconds, not {time_limit}")
    if not gap >= 0:
        raise ArchError(f"the gap must be a non-negative fraction (1e-3 is 0.1%), not {gap}")
    if threads < 1:
        raise ArchError(f"threads must be at least 1, not {threads}")
    if formulation not in FORMULATIONS:
        raise ArchError(f"unknown formulation '{formulation}' (one of "
                        f"{', '.join(FORMULATIONS)})")
    if fallback is not None:
        from archlang.solvers.milp.fallback import strategy_named

        strategy_named(fallback)  # a misspelt strategy is an error before any work

    def check(assignment):
        arch = archlang.fix(space, assignment)
        return arch.metrics(), arch.violations()

    started = time.perf_counter()
    try:
        solution = _exact(space, time_limit, gap, threads, verbose, formulation, explain,
                          progress, check)
    except Unsupported as exc:
        if fallback is None:
            raise Unsupported(exc.message, exc.span, (
                *exc.notes, "`--fallback evolution` (or random, mcts, smbo) searches the "
                "space instead, scoring each candidate by the cost pass, without a bound")) \
                from None
        from archlang.solvers.milp.fallback import search

        progress(f"no exact formulation ({exc.message}); searching with {fallback} instead")
        left = max(0.0, time_limit - (time.perf_counter() - started))
        solution = search(space, fallback, left, exc.message, check, progress)
    if len(space.objectives) > 1:
        ignored = ", ".join(f"{o.sense} {o.metric}" for o in space.objectives[1:])
        first = space.objectives[0]
        solution = dataclasses.replace(solution, notes=(*solution.notes, (
            f"solved for the first objective only ({first.sense} {first.metric}); ignored: "
            f"{ignored} (`archlang search` keeps the Pareto front of several)")))
    return solution


def _exact(space: S.Space, time_limit: float, gap: float, threads: int, verbose: bool,
           formulation: str, explain: bool, progress: Callable[[str], None],
           check: Callable) -> Any:
    """`solve` by a formulation that encodes the problem exactly, else `Unsupported`."""
    from archlang.solvers.milp.program import Settings
    from archlang.solvers.milp.program import solve as run

    settings = Settings(time_limit, gap, threads, verbose, explain)
    why_not_generic = None
    if formulation in ("auto", "generic"):
        try:
            chosen = formulate(space, "generic", progress)
        except Unsupported as exc:
            if formulation == "generic":
                raise
            why_not_generic = exc.message
            progress(f"generic formulation refused ({exc.message}); trying the staged one")
        else:
            return run(space, chosen, settings, check, progress)
    from archlang.solvers.milp.deepmad import solve_staged

    try:
        return solve_staged(space, settings, check, progress,
                            engine={"staged-milp": "milp", "staged-boxes": "boxes"}.get(
                                formulation, "auto"))
    except Unsupported as exc:
        if why_not_generic is None:
            raise
        raise Unsupported(f"{why_not_generic}; the staged (DeepMAD) formulation does not "
                          f"apply either: {exc.message}") from None
