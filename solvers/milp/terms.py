"""Per-layer cost terms of a discrete space, and the decisions each one depends on.

A cost such as params or MACs is a sum over layers. A layer's term depends on few decisions:
its own arguments, the decisions its input shape depends on, and those that decide whether it
runs (a `one_of` branch, an `optional`, a repetition). `dependencies` finds them by walking the
Space IR the way elaboration does, tracking for every tensor the decisions its shape depends
on. `term_table` then computes the term for every joint value of those decisions with the
ordinary cost pass: it completes the joint value into a full assignment (other decisions at
their first value), elaborates it and reads the layer by its path. Pure Python: no pyomo here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from archlang.errors import ArchError
from archlang.ir import decisions as D
from archlang.ir import expr as E
from archlang.ir import space as S
from archlang.ir.graph import Graph
from archlang.passes.elaborate import elaborate

INACTIVE = None  # the value of a decision that a condition switches off
ADDITIVE = ("params", "macs", "flops", "activations")


class Unsupported(ArchError):
    """The space or a term cannot be encoded exactly; the message says why."""


@dataclass(frozen=True, slots=True)
class Term:
    """One layer (by path) of some point of the space and the decisions its cost depends on."""

    path: str
    deps: tuple[str, ...]  # in space decision order


class _Deps:
    def __init__(self, space: S.Space) -> None:
        self.space = space
        self.terms: dict[str, set[str]] = {}
        self.tensors: dict[str, frozenset[str]] = {}  # binding id -> shape deps
        self.captured: dict[str, frozenset[str]] = {}  # '%n' -> deps of the captured value

    def refs(self, expr: E.Expr, shape: frozenset[str]) -> frozenset[str]:
        out: set[str] = set()
        for name in E.refs(expr):
            out |= self.captured.get(name, {name}) if name.startswith("%") else {name}
        if _uses_shape_of(expr):
            out |= shape
        return frozenset(out)

    def add(self, path: str, deps: frozenset[str]) -> None:
        self.terms.setdefault(path, set()).update(deps)

    def seq(self, seq: S.Seq, shape: frozenset[str], cond: frozenset[str]) -> frozenset[str]:
        for item in seq.items:
            shape = self.node(item, shape, cond)
        return shape

    def node(self, node: S.Node, shape: frozenset[str], cond: frozenset[str]) -> frozenset[str]:
        match node:
            case S.Seq():
                return self.seq(node, shape, cond)
            case S.InputNode(path=path):
                return frozenset()
            case S.OpNode(path, _, args, sources):
                ins = shape
                for sel in sources:
                    ins = ins | self.select(sel)
                out = ins
                for _, value in args:
                    out |= self.refs(value, shape)
                self.add(path, out | cond)
                return out
            case S.SourceNode(sel):
                return self.select(sel)
            case S.BindNode(ident):
                self.tensors[ident] = shape
                return shape
            case S.LetNode():
                return shape
            case S.CaptureNode(name, value):
                self.captured[name] = self.refs(value, shape)
                return shape
            case S.ResidualNode(path, add_path, _, when, body):
                gate = self.refs(when, shape)
                out = self.seq(body, shape, cond | gate)
                both = shape | out | gate
                self.add(f"{path}.0", both | cond)
                self.add(f"{path}.1", both | cond)
                self.add(add_path, both | cond)
                return out | gate
            case S.ParallelNode(path, _, branches):
                outs = frozenset().union(*(self.seq(b, shape, cond) for b in branches))
                self.add(path, outs | cond)
                return outs
            case S.RepeatNode(count, reps, _):
                gate = self.refs(count, shape)
                out = shape | gate
                for rep in reps:
                    out = out | self.seq(rep, out, cond | gate)
                return out
            case S.OneOfNode(decision, branches):
                gate = frozenset({decision})
                return gate | frozenset().union(
                    *(self.seq(b, shape, cond | gate) for b in branches))
            case S.OptionalNode(decision, body):
                gate = frozenset({decision})
                return shape | gate | self.seq(body, shape, cond | gate)
            case S.IfNode(test, then, orelse):
                gate = self.refs(test, shape)
                return gate | self.seq(then, shape, cond | gate) | \
                    self.seq(orelse, shape, cond | gate)
        raise AssertionError(node)  # pragma: no cover

    def select(self, sel: S.TensorSel) -> frozenset[str]:
        out = frozenset({sel.decision}) if sel.decision else frozenset()
        for ident in sel.ids:
            out |= self.tensors.get(ident, frozenset())
        return out


def _uses_shape_of(expr: E.Expr) -> bool:
    match expr:
        case E.ShapeOf():
            return True
        case E.Apply(_, args):
            return any(_uses_shape_of(a) for a in args)
    return False


def dependencies(space: S.Space) -> list[Term]:
    """Every layer path that some point of the space has, with the decisions its cost reads.

    A decision's own activity conditions are added too, so a term's joint values are
    consistent on their own.
    """
    walker = _Deps(space)
    walker.seq(space.root, frozenset(), frozenset())
    order = {d.name: i for i, d in enumerate(space.decisions)}
    out = []
    for path, deps in walker.terms.items():
        names = set(n for n in deps if n in order)
        names = closure(space, names)
        out.append(Term(path, tuple(sorted(names, key=order.__getitem__))))
    return out


def closure(space: S.Space, names: set[str]) -> set[str]:
    """`names` plus every decision their activity conditions read (transitively)."""
    by_name = {d.name: d for d in space.decisions}
    todo = list(names)
    out = set(names)
    while todo:
        d = by_name[todo.pop()]
        for c in d.condition:
            for ref in E.refs(c):
                if ref in by_name and ref not in out:
                    out.add(ref)
                    todo.append(ref)
    return out


def domain(space: S.Space, name: str) -> tuple[Any, ...]:
    """A decision's values in the MILP: its domain, plus INACTIVE when it is conditional."""
    d = space.decision(name)
    if not d.domain.discrete:
        raise Unsupported(f"decision '{name}' is continuous ({d.domain.show()}); the MILP "
                          "needs a discrete space (use a search strategy instead)")
    values = tuple(d.domain.enumerate())
    return values + ((INACTIVE,) if d.condition else ())


def joint_values(space: S.Space, names: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """Joint values of `names` that are consistent with their activity conditions.

    `names` must be closed under conditions (see `closure`) and in decision order.
    """
    plan = [(space.decision(n), domain(space, n)) for n in names]

    def rec(i: int, values: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if i == len(plan):
            yield dict(values)
            return
        decision, values_i = plan[i]
        known = {k: v for k, v in values.items() if v is not INACTIVE}
        active = D.is_active(space, decision, known)
        for v in values_i:
            if (v is INACTIVE) == active:
                continue
            values[decision.name] = v
            yield from rec(i + 1, values)
            del values[decision.name]

    yield from rec(0, {})


def joint_size(space: S.Space, names: tuple[str, ...]) -> int:
    return math.prod(len(domain(space, n)) for n in names)


class Completer:
    """Full assignments and their graphs from partial ones (cached elaboration)."""

    def __init__(self, space: S.Space) -> None:
        self.space = space
        self.cache: dict[tuple, Graph | None] = {}
        self.elaborations = 0

    def complete(self, partial: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for decision in self.space.decisions:
            if decision.condition and not D.is_active(self.space, decision, values):
                continue
            v = partial.get(decision.name, INACTIVE)
            values[decision.name] = decision.domain.enumerate()[0] if v is INACTIVE else v
        return values

    def graph(self, partial: Mapping[str, Any]) -> Graph | None:
        values = self.complete(partial)
        key = tuple(sorted(values.items(), key=lambda kv: kv[0]))
        if key not in self.cache:
            self.elaborations += 1
            try:
                self.cache[key] = elaborate(self.space, values)
            except ArchError:
                self.cache[key] = None  # a shape error: this point does not exist
        return self.cache[key]


def layer_cost(graph: Graph, path: str) -> dict[str, float]:
    for layer in graph.layers:
        if layer.path == path:
            acts = math.prod(layer.shape) if layer.op != "input" else 0
            return {"params": layer.params, "macs": layer.macs, "flops": 2 * layer.macs,
                    "activations": acts}
    return dict.fromkeys(ADDITIVE, 0)


def term_table(space: S.Space, term: Term, completer: Completer,
               limit: int) -> list[tuple[dict[str, Any], dict[str, float] | None]]:
    """(joint value, the layer's additive costs) for every joint value of the term's decisions.

    Costs are None where the point fails to elaborate (shape error): that value is excluded.
    """
    if joint_size(space, term.deps) > limit:
        raise Unsupported(f"layer '{term.path}' depends on {len(term.deps)} decisions with "
                          f"{joint_size(space, term.deps):,} joint values (limit {limit:,}): "
                          f"{', '.join(term.deps)}")
    out = []
    for values in joint_values(space, term.deps):
        graph = completer.graph(values)
        out.append((values, None if graph is None else layer_cost(graph, term.path)))
    return out


def all_points(space: S.Space, names: tuple[str, ...] | None = None) -> Iterator[dict[str, Any]]:
    """Every joint value of `names` (default: all decisions), conditions respected."""
    names = tuple(d.name for d in space.decisions) if names is None else names
    yield from joint_values(space, names)


def product_size(space: S.Space) -> int:
    return math.prod(len(domain(space, d.name)) for d in space.decisions)


__all__ = ["INACTIVE", "ADDITIVE", "Unsupported", "Term", "dependencies", "closure", "domain",
           "joint_values", "joint_size", "Completer", "layer_cost", "term_table", "all_points"]
