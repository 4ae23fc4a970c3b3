"""The generic formulation: exact for any discrete space whose costs are sums of layer terms.

Variables (DESIGN.md, "Cost model and the mathematical program"):

* ``y[d, v]`` binary, one per (decision, value), one-hot per decision; a conditional decision
  has an extra value INACTIVE, forced exactly when its condition is false;
* for every *group* (a layer term, a decision's activity, a requirement over decisions, or a
  metric that is not a sum of layer terms), ``z[g, j] >= 0`` over the group's consistent joint
  values ``j``, summing to one, tied to the per-decision one-hots by marginals
  ``sum_{j: j[d] = v} z[g, j] = y[d, v]``. Integral ``y`` makes each ``z[g]`` the indicator of
  the one joint value that matches, so ``z`` needs no integrality;
* a metric is ``sum_g sum_j value(g, j) z[g, j]``, the values computed by the ordinary cost
  pass (`terms.term_table`).

Additive metrics (params, MACs, FLOPs, activations) use one group per layer. Any other metric
(entropy, effectiveness, depth, ...) is one group over every decision it may read, which is
exact but only as small as the space: beyond `limit` joint values it is reported as
unsupported, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyomo.environ as pyo

from archlang.errors import ArchError
from archlang.ir import expr as E
from archlang.ir import space as S
from archlang.passes.elaborate import elaborate
from archlang.passes.metrics import compute as compute_metrics
from archlang.solvers.milp.terms import (
    ADDITIVE,
    INACTIVE,
    Completer,
    Unsupported,
    closure,
    dependencies,
    domain,
    joint_size,
    joint_values,
    term_table,
)

DEFAULT_LIMIT = 200_000  # joint values of one group


@dataclass
class _Group:
    name: str
    deps: tuple[str, ...]
    rows: list[dict[str, Any]]  # consistent joint values kept
    values: dict[str, list[float]] = field(default_factory=dict)  # metric -> per row


class Generic:
    name = "generic (one-hot per decision, joint tables per layer term)"

    def __init__(self, space: S.Space, metrics: set[str], limit: int = DEFAULT_LIMIT,
                 progress: Callable[[str], None] = lambda text: None) -> None:
        self.space = space
        self.limit = limit
        self.completer = Completer(space)
        self.domains = {d.name: domain(space, d.name) for d in space.decisions}
        self.groups: list[_Group] = []
        self.options = dict(space.options)
        additive = {m for m in metrics if m in ADDITIVE}
        other = metrics - additive
        self._check_sizes(additive, other)
        if additive:
            self._layer_groups(additive)
        if other:
            self._global_group(other)
        for d in space.decisions:
            if d.condition:
                self._table_group(f"activity of {d.name}", closure(space, {d.name}), None)
        progress(f"generic formulation: {len(self.groups)} groups, "
                 f"{sum(len(g.rows) for g in self.groups):,} joint values, "
                 f"{self.completer.elaborations:,} points elaborated")

    # ------------------------------------------------------------ tables
    def _order(self, names: set[str]) -> tuple[str, ...]:
        return tuple(d.name for d in self.space.decisions if d.name in names)

    def _check_sizes(self, additive: set[str], other: set[str]) -> None:
        """Refuse before tabulating anything when some table would be too large."""
        if other:
            names = self._order(closure(self.space, {d.name for d in self.space.decisions}))
            size = joint_size(self.space, names)
            if size > self.limit:
                raise Unsupported(
                    f"{', '.join(sorted(other))} {'is' if len(other) == 1 else 'are'} not a "
                    "sum of per-layer terms, so it is tabulated over the whole space, which "
                    f"has too many points ({size:,} > {self.limit:,}); use a search strategy "
                    "(see docs/deepmad.md)")
        if additive:
            for term in dependencies(self.space):
                size = joint_size(self.space, term.deps)
                if size > self.limit:
                    raise Unsupported(
                        f"layer '{term.path}' depends on {len(term.deps)} decisions with "
                        f"{size:,} joint values (limit {self.limit:,}): {', '.join(term.deps)}")

    def _layer_groups(self, metrics: set[str]) -> None:
        for term in dependencies(self.space):
            rows, values = [], {m: [] for m in metrics}
            for joint, cost in term_table(self.space, term, self.completer, self.limit):
                if cost is None:
                    continue
                rows.append(joint)
                for m in metrics:
                    values[m].append(float(cost[m]))
            if any(any(v) for v in values.values()):
                self.groups.append(_Group(f"layer {term.path}", term.deps, rows, values))

    def _global_group(self, metrics: set[str]) -> None:
        names = self._order(closure(self.space, {d.name for d in self.space.decisions}))
        rows, values = [], {m: [] for m in metrics}
        for joint in joint_values(self.space, names):
            full = {k: v for k, v in joint.items() if v is not INACTIVE}
            try:
                graph = elaborate(self.space, full)
            except ArchError:
                continue
            self.completer.elaborations += 1
            scores = compute_metrics(graph, sorted(metrics), self.options)
            rows.append(joint)
            for m in metrics:
                values[m].append(float(scores[m]))
        self.groups.append(_Group("metrics " + ", ".join(sorted(metrics)), names, rows, values))

    def _table_group(self, name: str, names: set[str],
                     keep: Callable[[Mapping[str, Any]], bool] | None) -> None:
        deps = self._order(names)
        if joint_size(self.space, deps) > self.limit:
            raise Unsupported(f"{name} reads {joint_size(self.space, deps):,} joint values "
                              f"(limit {self.limit:,})")
        rows = [j for j in joint_values(self.space, deps) if keep is None or keep(j)]
        self.groups.append(_Group(name, deps, rows))

    # ------------------------------------------------------------ the model
    def build(self, m: pyo.ConcreteModel) -> None:
        keys = [(d, i) for d, vals in self.domains.items() for i in range(len(vals))]
        m.y = pyo.Var(keys, domain=pyo.Binary)
        m.onehot = pyo.Constraint(list(self.domains), rule=lambda m, d: sum(
            m.y[d, i] for i in range(len(self.domains[d]))) == 1)
        m.z = pyo.VarList(domain=pyo.NonNegativeReals)
        m.ties = pyo.ConstraintList()
        self._z: list[list[Any]] = []
        for g in self.groups:
            zs = [m.z.add() for _ in g.rows]
            self._z.append(zs)
            if not zs:
                _infeasible(m)  # no consistent joint value at all
                continue
            m.ties.add(sum(zs) == 1)
            for d in g.deps:
                vals = self.domains[d]
                for i, v in enumerate(vals):
                    m.ties.add(sum(z for z, row in zip(zs, g.rows) if _same(row[d], v))
                               == m.y[d, i])

    def metric(self, m: pyo.ConcreteModel, name: str) -> Any:
        if name == "flops" and not any("flops" in g.values for g in self.groups):
            return 2 * self.metric(m, "macs")
        terms = [c * z for g, zs in zip(self.groups, self._z) if name in g.values
                 for c, z in zip(g.values[name], zs) if c]
        if not any(name in g.values for g in self.groups):
            raise Unsupported(f"metric '{name}' was not tabulated")
        return sum(terms) if terms else 0.0

    def decision(self, m: pyo.ConcreteModel, name: str) -> Any:
        vals = self.domains[name]
        if INACTIVE in vals or not all(isinstance(v, (int, float)) for v in vals):
            raise Unsupported(f"decision '{name}' is conditional or not numeric")
        return sum(v * m.y[name, i] for i, v in enumerate(vals))

    def decision_constraint(self, m: pyo.ConcreteModel, c: S.Constraint) -> bool:
        """A requirement over decisions only: a table of the joint values that meet it."""
        names = closure(self.space, E.refs(c.expr))

        def keep(joint: Mapping[str, Any]) -> bool:
            env = {k: v for k, v in joint.items() if v is not INACTIVE}
            try:
                return bool(E.evaluate(c.expr, env))
            except E.NotConstant:
                return True  # reads an inactive decision: vacuous, as in violations()

        if joint_size(self.space, self._order(names)) > self.limit:
            return False  # left to the linear form (unconditional numeric decisions)
        deps = self._order(names)
        rows = [j for j in joint_values(self.space, deps) if keep(j)]
        if not rows:
            _infeasible(m)
            return True
        zs = [m.z.add() for _ in rows]
        m.ties.add(sum(zs) == 1)
        for d in deps:
            for i, v in enumerate(self.domains[d]):
                m.ties.add(sum(z for z, row in zip(zs, rows) if _same(row[d], v)) == m.y[d, i])
        return True

    def assignment(self, m: pyo.ConcreteModel) -> dict[str, Any]:
        out = {}
        for d, vals in self.domains.items():
            best = max(range(len(vals)), key=lambda i: pyo.value(m.y[d, i]))
            if vals[best] is not INACTIVE:
                out[d] = vals[best]
        return out


def _infeasible(m: pyo.ConcreteModel) -> None:
    if not hasattr(m, "never"):
        m.never = pyo.Var(bounds=(0, 0))
    m.ties.add(m.never >= 1)


def _same(a: Any, b: Any) -> bool:
    return a is b if a is INACTIVE or b is INACTIVE else (a == b and type(a) is type(b))
