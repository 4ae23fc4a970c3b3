"""Working with the decisions of a space: activity, sampling, validation, exact size, hashing.

An assignment is a plain mapping from decision name to value, holding exactly the decisions
that are active under it: never a positional list, so logs survive edits to a spec.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Callable, Mapping
from typing import Any

from archlang.errors import ArchError
from archlang.ir import expr as E
from archlang.ir import space as S

Assignment = dict[str, Any]
_MISSING = object()


# ---------------------------------------------------------------- fast condition checks


def _compile(expr: E.Expr) -> Callable[[Mapping[str, Any]], Any]:
    """A closure evaluating `expr`; raises KeyError when a decision it reads is absent."""
    match expr:
        case E.Const(value):
            return lambda values: value
        case E.Ref(name):
            return lambda values: values[name]
        case E.Apply(fn, (E.Ref(name), E.Const(c))) if fn in E.BINARY:
            op = E.BINARY[fn]
            return lambda values: op(values[name], c)
        case E.Apply("not", (a,)):
            fa = _compile(a)
            return lambda values: not fa(values)
        case E.Apply(fn, args):
            fs = tuple(_compile(a) for a in args)
            span = expr.span
            return lambda values: E.apply(fn, tuple(f(values) for f in fs), span)
    raise ArchError("a decision's condition cannot depend on tensor shapes",
                    getattr(expr, "span", None))


_Plan = tuple[tuple[S.Decision, tuple[Callable, ...]], ...]
_PLANS: dict[int, tuple[S.Space, _Plan]] = {}


def _plan(space: S.Space) -> _Plan:
    # Keyed by identity: hashing a frozen space would walk its whole tree on every call.
    hit = _PLANS.get(id(space))
    if hit is not None and hit[0] is space:
        return hit[1]
    if len(_PLANS) > 256:
        _PLANS.clear()
    plan = tuple((d, tuple(_compile(c) for c in d.condition)) for d in space.decisions)
    _PLANS[id(space)] = (space, plan)
    return plan


def _holds(checks: tuple[Callable, ...], values: Mapping[str, Any]) -> bool:
    try:
        return all(check(values) for check in checks)
    except KeyError:  # reads a decision that is inactive: so is this one
        return False


def is_active(space: S.Space, decision: S.Decision, values: Mapping[str, Any]) -> bool:
    checks = next(c for d, c in _plan(space) if d is decision)
    return _holds(checks, values)


def active_decisions(space: S.Space, values: Mapping[str, Any]) -> list[S.Decision]:
    return [d for d, checks in _plan(space) if _holds(checks, values)]


# ---------------------------------------------------------------- sampling and validation


def sample(space: S.Space, rng: random.Random) -> Assignment:
    """One assignment drawn uniformly per active decision (decisions are in condition order)."""
    values: Assignment = {}
    for decision, checks in _plan(space):
        if not checks or _holds(checks, values):
            values[decision.name] = decision.domain.sample(rng)
    return values


def default_assignment(space: S.Space) -> Assignment:
    """The first value of every active decision: a deterministic point of the space."""
    values: Assignment = {}
    for decision, checks in _plan(space):
        if not checks or _holds(checks, values):
            d = decision.domain
            values[decision.name] = d.lo if isinstance(d, S.FloatRange) else d.enumerate()[0]
    return values


def validate(space: S.Space, assignment: Mapping[str, Any]) -> Assignment:
    """Check an assignment: every active decision present and in its domain, nothing else.

    Returns the assignment in declaration order; raises one ArchError naming every problem.
    """
    plan = _plan(space)
    problems: list[str] = []
    known = set()
    out: Assignment = {}
    for decision, checks in plan:
        known.add(decision.name)
        if checks and not _holds(checks, out):
            if decision.name in assignment:
                problems.append(f"'{decision.name}' is not active under this assignment")
            continue
        if decision.name not in assignment:
            problems.append(f"missing decision '{decision.name}' "
                            f"(domain {decision.domain.show()})")
            continue
        value = assignment[decision.name]
        if not decision.domain.contains(value):
            problems.append(f"'{decision.name}' = {value!r} is outside its domain "
                            f"{decision.domain.show()}")
            continue
        out[decision.name] = value
    for name in assignment:
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"unknown decision '{name}'{hint}")
    if problems:
        raise ArchError(f"invalid assignment for '{space.name}': " + "; ".join(problems))
    return out


def canonical(space: S.Space, assignment: Mapping[str, Any]) -> Assignment:
    """Drop the decisions that are inactive under the others (e.g. after a mutation)."""
    out: Assignment = {}
    for decision, checks in _plan(space):
        if decision.name in assignment and (not checks or _holds(checks, out)):
            out[decision.name] = assignment[decision.name]
    return out


def assignment_hash(assignment: Mapping[str, Any]) -> str:
    """A deterministic short hash of an assignment, independent of key order."""
    text = json.dumps(dict(assignment), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- exact size

_ENUMERATION_LIMIT = 1_000_000


def size(space: S.Space, continuous_as_one: bool = False) -> int | float:
    """The number of distinct assignments, computed on the tree without enumerating points.

    Repeats, branches and optionals add and multiply; a `let` decision that shapes the
    structure (a repeat count, an `if` test) is enumerated in the scope that declares it.
    Continuous decisions make the size infinite (math.inf). `require` constraints are not
    applied: this is the size of the space, not of its feasible part. With
    `continuous_as_one`, continuous decisions count once: the size of the discrete part.
    """
    by_name = {d.name: d for d in space.decisions}
    return _Size(by_name, continuous_as_one).seq(space.root, {})


class _Size:
    def __init__(self, decisions: dict[str, S.Decision], continuous_as_one: bool = False):
        self.decisions = decisions
        self.continuous_as_one = continuous_as_one
        self.refs: dict[int, frozenset[str]] = {}  # by node identity, see structure_refs

    def dom(self, name: str) -> int | float:
        domain = self.decisions[name].domain
        return 1 if self.continuous_as_one and not domain.discrete else domain.size

    def node(self, node: S.Node, env: dict[str, Any]) -> int | float:
        match node:
            case S.Seq():
                return self.seq(node, env)
            case S.OpNode(decisions=owned):
                return math.prod(self.dom(d) for d in owned)
            case S.SourceNode(sel):
                return self.dom(sel.decision) if sel.decision else 1
            case S.ResidualNode(body=body):
                return self.seq(body, env)
            case S.ParallelNode(branches=branches):
                return math.prod(self.seq(b, env) for b in branches)
            case S.OneOfNode(branches=branches):
                return sum(self.seq(b, env) for b in branches)
            case S.OptionalNode(body=body):
                return 1 + self.seq(body, env)
            case S.RepeatNode(count, reps, own):
                prefix = [1]
                if own is not None:
                    counts = self.decisions[own].domain.enumerate()
                else:
                    counts = (E.evaluate(count, env),)
                for rep in reps[: max(counts)]:
                    prefix.append(prefix[-1] * self.seq(rep, env))
                return sum(prefix[n] for n in counts)
            case S.IfNode(test, then, orelse):
                try:
                    chosen = then if E.evaluate(test, env) else orelse
                except E.NotConstant:  # depends on shapes: lowering made sure it has no decisions
                    return 1
                return self.seq(chosen, env)
        return 1  # inputs, bindings, lets (counted by their Seq)

    def seq(self, seq: S.Seq, env: dict[str, Any]) -> int | float:
        lets = [item.decision for item in seq.items if isinstance(item, S.LetNode)]
        structural = [name for name in lets if name in self.structure_refs(seq)]
        free = math.prod(self.dom(name) for name in lets if name not in structural)
        if not structural:
            return free * math.prod(self.node(item, env) for item in seq.items)
        domains = []
        for name in structural:
            domain = self.decisions[name].domain
            if not domain.discrete:
                raise ArchError(f"'{name}' shapes the structure but is continuous",
                                self.decisions[name].span)
            domains.append(domain.enumerate())
        if math.prod(len(d) for d in domains) > _ENUMERATION_LIMIT:
            raise ArchError("the space's size needs too many structural decisions enumerated "
                            f"together ({', '.join(structural)})")
        total = 0
        for combo in itertools.product(*domains):
            inner = {**env, **dict(zip(structural, combo))}
            total += math.prod(self.node(item, inner) for item in seq.items)
        return free * total


    def structure_refs(self, node: S.Node) -> frozenset[str]:
        """Decisions read by repeat counts and `if` tests inside `node`."""
        hit = self.refs.get(id(node))
        if hit is not None:
            return hit
        out: set[str] = set()
        match node:
            case S.Seq(items):
                for item in items:
                    out |= self.structure_refs(item)
            case S.ResidualNode(body=body) | S.OptionalNode(body=body):
                out |= self.structure_refs(body)
            case S.ParallelNode(branches=bs) | S.OneOfNode(branches=bs):
                for b in bs:
                    out |= self.structure_refs(b)
            case S.RepeatNode(count, reps, own):
                out |= E.refs(count) - ({own} if own else set())
                for r in reps:
                    out |= self.structure_refs(r)
            case S.IfNode(test, then, orelse):
                out |= E.refs(test) | self.structure_refs(then) | self.structure_refs(orelse)
        result = frozenset(out)
        self.refs[id(node)] = result
        return result
