"""The mathematical program: constraints and objective of a spec over a formulation, solved
by HiGHS through pyomo, with a certificate and an explanation of infeasibility.

A *formulation* (see `generic.py`) owns the variables that encode the space and
gives, for every metric the spec names, an exact linear expression. This module adds the
spec's `require`s and its objective, solves, checks the answer with the ordinary cost pass,
and, when there is no solution, finds which requirements conflict and how far each must be
relaxed. pyomo and highspy are imported here and in the formulations only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyomo.environ as pyo
from pyomo.contrib.appsi.base import TerminationCondition
from pyomo.contrib.appsi.solvers import Highs

from archlang.errors import ArchError
from archlang.ir import expr as E
from archlang.ir import space as S
from archlang.passes.metrics import MEASURED, metric_names
from archlang.solvers.milp.terms import Unsupported

_COMPARE = ("<=", "<", ">=", ">", "==")


class Formulation(Protocol):
    name: str

    def build(self, m: pyo.ConcreteModel) -> None: ...

    def metric(self, m: pyo.ConcreteModel, name: str) -> Any: ...

    def decision(self, m: pyo.ConcreteModel, name: str) -> Any: ...

    def decision_constraint(self, m: pyo.ConcreteModel, c: S.Constraint) -> bool: ...

    def assignment(self, m: pyo.ConcreteModel) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Relaxation:
    constraint: str  # as written
    least: str  # the least relaxation of it that makes the problem feasible, as text


@dataclass(frozen=True)
class Solution:
    status: str  # "optimal", "time_limit", "infeasible", ...
    objective: float | None
    bound: float | None
    gap: float | None  # relative: |bound - objective| / |objective|
    seconds: float
    assignment: dict[str, Any] | None
    metrics: dict[str, Any] = field(default_factory=dict)  # from the cost pass
    formulation: str = ""
    size: dict[str, int] = field(default_factory=dict)  # variables, binaries, constraints
    conflicts: tuple[Relaxation, ...] = ()
    notes: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "objective": self.objective, "bound": self.bound,
                "gap": self.gap, "seconds": round(self.seconds, 3),
                "assignment": self.assignment, "params": self.metrics.get("params"),
                "macs": self.metrics.get("macs"), "metrics": self.metrics,
                "formulation": self.formulation, "size": self.size,
                "conflicts": [{"constraint": r.constraint, "least": r.least}
                              for r in self.conflicts], "notes": list(self.notes)}


# ---------------------------------------------------------------- linear forms


def linear(expr: E.Expr, atom: Callable[[str], Any]) -> Any:
    """An expression over `$metric` and decision refs as a pyomo linear expression."""
    match expr:
        case E.Const(value) if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        case E.Ref(name):
            return atom(name)
        case E.Apply("neg", (a,)):
            return -linear(a, atom)
        case E.Apply("+", (a, b)):
            return linear(a, atom) + linear(b, atom)
        case E.Apply("-", (a, b)):
            return linear(a, atom) - linear(b, atom)
        case E.Apply("*", (E.Const(c), b)) | E.Apply("*", (b, E.Const(c))):
            return c * linear(b, atom)
        case E.Apply("/", (a, E.Const(c))) if c:
            return linear(a, atom) / c
    raise Unsupported(f"'{E.show(expr)}' is not linear in metrics and decisions")


def comparison(c: S.Constraint) -> tuple[str, E.Expr, E.Expr]:
    if isinstance(c.expr, E.Apply) and c.expr.fn in _COMPARE:
        return c.expr.fn, c.expr.args[0], c.expr.args[1]
    raise Unsupported(f"`require {c.text}` is not a comparison")


def _constraint(lhs: Any, op: str, rhs: Any) -> Any:
    # Metrics are integers or smooth scores: a strict inequality is its closed form here.
    return lhs <= rhs if op in ("<=", "<") else lhs >= rhs if op in (">=", ">") else lhs == rhs


def violation(op: str, lhs: Any, rhs: Any) -> Any:
    """How far `lhs op rhs` is violated, as a linear expression to minimise (<= 0 is met)."""
    return lhs - rhs if op in ("<=", "<") else rhs - lhs


# ---------------------------------------------------------------- solving


@dataclass(frozen=True, slots=True)
class Settings:
    time_limit: float = 60.0
    gap: float = 1e-4
    threads: int = 1
    verbose: bool = False
    explain: bool = True


def _solver(settings: Settings, time_limit: float | None = None) -> Highs:
    from archlang.solvers.milp.lin import new_highs, use_threads

    new_highs(settings.verbose)  # the library's banner, before pyomo makes its instance
    use_threads(settings.threads)
    opt = Highs()
    opt.config.time_limit = max(1.0, time_limit or settings.time_limit)
    opt.config.mip_gap = settings.gap
    opt.config.stream_solver = settings.verbose
    opt.config.load_solution = False
    opt.highs_options = {"threads": settings.threads, "mip_abs_gap": 0.0}
    return opt


def _status(tc: TerminationCondition) -> str:
    return {TerminationCondition.optimal: "optimal",
            TerminationCondition.maxTimeLimit: "time_limit",
            TerminationCondition.infeasible: "infeasible",
            TerminationCondition.infeasibleOrUnbounded: "infeasible",
            TerminationCondition.unbounded: "unbounded",
            TerminationCondition.interrupted: "interrupted"}.get(tc, str(tc).rsplit(".", 1)[-1])


def build(space: S.Space, formulation: Formulation, skip: frozenset[int] = frozenset(),
          objective: Any = None) -> tuple[pyo.ConcreteModel, list[tuple[int, str, Any, Any]]]:
    """The model with the spec's requirements (except those indexed in `skip`).

    Returns the model and, for every metric requirement kept, (index, op, lhs, rhs).
    """
    m = pyo.ConcreteModel()
    formulation.build(m)
    m.requires = pyo.ConstraintList()
    kept = []
    for i, c in enumerate(space.constraints):
        if i in skip:
            continue
        if not c.metrics and formulation.decision_constraint(m, c):
            continue
        op, a, b = comparison(c)

        def atom(name: str) -> Any:
            return formulation.metric(m, name[1:]) if name.startswith("$") \
                else formulation.decision(m, name)

        lhs, rhs = linear(a, atom), linear(b, atom)
        m.requires.add(_constraint(lhs, op, rhs))
        kept.append((i, op, lhs, rhs))
    return m, kept


def objective_of(space: S.Space) -> tuple[str, str]:
    """The (sense, metric) a solve optimises: the spec's first objective, which must be a
    metric of the cost pass (a measured one, say accuracy, needs a search and an evaluator)."""
    if not space.objectives:
        raise ArchError(f"'{space.name}' has no `maximize`/`minimize`: nothing to solve for")
    o = space.objectives[0]
    if o.metric in MEASURED:
        raise ArchError(
            f"'{o.metric}' ({MEASURED[o.metric]}) is not known before an architecture is "
            "built and measured, so no mathematical program can optimise it", o.span,
            ("`archlang solve` optimises what the cost pass computes: "
             f"{', '.join(metric_names())}",
             f"to optimise {o.metric}, run `archlang search` with an evaluator"))
    return o.sense, o.metric


def solve(space: S.Space, formulation: Formulation, settings: Settings,
          check: Callable[[Mapping[str, Any]], tuple[dict[str, Any], list[str]]],
          progress: Callable[[str], None] = lambda text: None) -> Solution:
    """Solve the spec's problem over `formulation`; `check` scores an assignment with the
    ordinary cost pass and lists the requirements it breaks."""
    sense, metric = objective_of(space)
    start = time.perf_counter()
    m, _ = build(space, formulation)
    m.obj = pyo.Objective(expr=formulation.metric(m, metric),
                          sense=pyo.maximize if sense == "maximize" else pyo.minimize)
    size = {"variables": m.nvariables(), "binaries": sum(
        1 for v in m.component_data_objects(pyo.Var) if v.is_binary()),
        "constraints": m.nconstraints()}
    progress(f"{formulation.name}: {size['variables']:,} variables ({size['binaries']:,} "
             f"binary), {size['constraints']:,} constraints; solving with HiGHS")
    left = settings.time_limit - (time.perf_counter() - start)
    res = _solver(settings, left).solve(m)
    seconds = time.perf_counter() - start
    status = _status(res.termination_condition)
    if status == "infeasible" or res.best_feasible_objective is None:
        conflicts = explain(space, formulation, settings, progress) \
            if status == "infeasible" and settings.explain else ()
        return Solution(status if status != "optimal" else "no_solution", None,
                        _finite(res.best_objective_bound), None, seconds, None,
                        formulation=formulation.name, size=size, conflicts=conflicts)
    res.solution_loader.load_vars()
    assignment = formulation.assignment(m)
    metrics, broken = check(assignment)
    objective = float(res.best_feasible_objective)
    bound = _finite(res.best_objective_bound)
    gap = None if bound is None else abs(bound - objective) / max(abs(objective), 1e-9)
    notes = []
    measured = metrics.get(metric)
    if measured is not None and not math.isclose(measured, objective, rel_tol=1e-6,
                                                 abs_tol=1e-6):
        notes.append(f"the cost pass gives {metric} = {measured}, the program {objective}")
    if broken:
        notes.append("the cost pass finds broken requirements: " + "; ".join(broken))
    return Solution(status, objective, bound, gap, seconds, assignment, metrics,
                    formulation.name, size, notes=tuple(notes))


def _finite(x: Any) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def explain(space: S.Space, formulation: Formulation, settings: Settings,
            progress: Callable[[str], None]) -> tuple[Relaxation, ...]:
    """Requirements that conflict: each one whose removal makes the problem feasible, with
    the least relaxation of it (the smallest budget) that does."""
    progress("infeasible; looking for the conflicting requirements")
    out = []
    for i, c in enumerate(space.constraints):
        m, _ = build(space, formulation, skip=frozenset({i}))
        if c.metrics:
            op, a, b = comparison(c)

            def atom(name: str, m=m) -> Any:
                return formulation.metric(m, name[1:]) if name.startswith("$") \
                    else formulation.decision(m, name)

            lhs, rhs = linear(a, atom), linear(b, atom)
            m.obj = pyo.Objective(expr=violation(op, lhs, rhs), sense=pyo.minimize)
        else:
            m.obj = pyo.Objective(expr=0)
        res = _solver(settings, settings.time_limit).solve(m)
        if res.best_feasible_objective is None:
            continue
        least = c.text
        if c.metrics and res.termination_condition == TerminationCondition.optimal:
            least = _relaxed_text(c, float(res.best_objective_bound))
        elif not c.metrics:
            least = f"drop `require {c.text}`"
        out.append(Relaxation(c.text, least))
    return tuple(out)


def _relaxed_text(c: S.Constraint, excess: float) -> str:
    """`macs <= 1M` relaxed by `excess` -> `macs <= 1,234,567` when one metric is alone."""
    op, a, b = comparison(c)
    for metric_side, const_side, flip in ((a, b, False), (b, a, True)):
        if isinstance(metric_side, E.Ref) and isinstance(const_side, E.Const):
            value = const_side.value + (excess if op in ("<=", "<") else -excess) * \
                (-1 if flip else 1)
            name = metric_side.name.lstrip("$")
            shown = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.6g}"
            return f"{name} {op} {shown}" if not flip else f"{shown} {op} {name}"
    return f"{c.text} (relaxed by {excess:.6g})"
