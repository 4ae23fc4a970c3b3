"""Working with the decisions of a space: activity, sampling, validation, exact size, hashing.

An assignment is a plain mapping from decision name to value, holding exactly the decisions
that are active under it: never a positional list, so logs survive edits to a spec.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from archlang.errors import ArchError
from archlang.ir import expr as E
from archlang.ir import space as S

Assignment = dict[str, Any]
_MISSING = object()


# ---------------------------------------------------------------- fast condition checks


def _compile(expr: E.Expr) -> Callable[[Mapping[str, Any]], Any]:
    """A closure evaluating `expr`; raises KeyError when a decision it reads is absent.

    Closures rather than `expr.evaluate` on every call: sampling and every strategy's
    proposal walk all decisions, on spaces with hundreds of them.
    """
    match expr:
        case E.Const(value):
            return lambda values: value
        case E.Ref(name):
            return lambda values: values[name]
        case E.Apply(fn, (E.Ref(name), E.Const(c))) if fn in E.BINARY:
            # the shape of almost every condition: `stage1.depth > 1`, `one_of1 == 0`
            op = E.BINARY[fn]
            return lambda values: op(values[name], c)
        case E.Apply("not", (a,)):
            fa = _compile(a)
            return lambda values: not fa(values)
        case E.Apply("and", (a, b)):
            fa, fb = _compile(a), _compile(b)
            return lambda values: fa(values) and fb(values)
        case E.Apply(fn, args) if fn != "if":  # `if` must not evaluate both of its arms
            fs = tuple(_compile(a) for a in args)
            span = expr.span
            return lambda values: E.apply(fn, tuple(f(values) for f in fs), span)
        case E.Apply("if", (test, then, orelse)):
            ft, fa, fb = _compile(test), _compile(then), _compile(orelse)
            return lambda values: fa(values) if ft(values) else fb(values)
    raise ArchError("a decision's condition cannot depend on tensor shapes",
                    getattr(expr, "span", None))


@dataclass(frozen=True, slots=True)
class _Entry:
    """One decision, with closures specialised for the hot loops of sample and validate."""

    decision: S.Decision
    name: str
    active: Callable[[Mapping[str, Any]], bool] | None  # None: always active
    draw: Callable[[Callable[[], float]], Any]  # (rng.random) -> a value of the domain
    contains: Callable[[Any], bool]


_PLANS: dict[int, tuple[S.Space, tuple[_Entry, ...]]] = {}


def _active_check(decision: S.Decision) -> Callable[[Mapping[str, Any]], bool] | None:
    checks = tuple(_compile(c) for c in decision.condition)
    if not checks:
        return None

    def active(values: Mapping[str, Any]) -> bool:
        try:
            for check in checks:
                if not check(values):
                    return False
            return True
        except KeyError:  # reads a decision that is inactive: so is this one
            return False

    return active


def _drawer(domain: S.Domain) -> Callable[[Callable[[], float]], Any]:
    if isinstance(domain, S.Choice):
        values, n = domain.values, len(domain.values)
        return lambda rnd: values[int(rnd() * n)]
    if isinstance(domain, S.IntRange):
        lo, step, n = domain.lo, domain.step, domain.size
        return lambda rnd: lo + step * int(rnd() * n)
    if domain.log:
        a, b = math.log(domain.lo), math.log(domain.hi)
        return lambda rnd: math.exp(a + (b - a) * rnd())
    lo, hi = domain.lo, domain.hi
    return lambda rnd: lo + (hi - lo) * rnd()


def _container(domain: S.Domain) -> Callable[[Any], bool]:
    if isinstance(domain, S.Choice):
        kinds = {type(v) for v in domain.values}
        if len(kinds) == 1 and kinds <= {int, str, bool}:
            kind, allowed = kinds.pop(), frozenset(domain.values)
            return lambda v: type(v) is kind and v in allowed
    return domain.contains


def _plan(space: S.Space) -> tuple[_Entry, ...]:
    # Keyed by identity: hashing a frozen space would walk its whole tree on every call.
    hit = _PLANS.get(id(space))
    if hit is not None and hit[0] is space:
        return hit[1]
    if len(_PLANS) > 256:
        _PLANS.clear()
    plan = tuple(_Entry(d, d.name, _active_check(d), _drawer(d.domain), _container(d.domain))
                 for d in space.decisions)
    _PLANS[id(space)] = (space, plan)
    return plan


def is_active(space: S.Space, decision: S.Decision, values: Mapping[str, Any]) -> bool:
    entry = next(e for e in _plan(space) if e.decision is decision)
    return entry.active is None or entry.active(values)


def active_decisions(space: S.Space, values: Mapping[str, Any]) -> list[S.Decision]:
    return [e.decision for e in _plan(space) if e.active is None or e.active(values)]


def activity(space: S.Space) -> tuple[tuple[S.Decision, Callable[[Mapping[str, Any]], bool]
                                            | None], ...]:
    """Each decision with its compiled activity test (None: always active), in order."""
    return tuple((e.decision, e.active) for e in _plan(space))


def active_iter(space: S.Space, values: Mapping[str, Any]) -> Iterator[S.Decision]:
    """Decisions active under `values` while the caller fills it in, in condition order.

    A decision's condition reads only earlier decisions, so a caller may add the value of
    each decision it is handed before asking for the next one.
    """
    for entry in _plan(space):
        if entry.active is None or entry.active(values):
            yield entry.decision


def fill(space: S.Space, partial: Mapping[str, Any], rng: random.Random) -> Assignment:
    """Keep the values of `partial` that are still active; sample every active one missing.

    `canonical` followed by sampling the newly active decisions (after a mutation, say), in
    one pass in condition order.
    """
    out: Assignment = {}
    rnd = rng.random
    for entry in _plan(space):
        if entry.active is None or entry.active(out):
            value = partial.get(entry.name, _MISSING)
            out[entry.name] = entry.draw(rnd) if value is _MISSING else value
    return out


def enumerate_points(space: S.Space) -> Iterator[Assignment]:
    """Every point of a discrete space, depth-first in decision order (small spaces only)."""
    plan = _plan(space)

    def walk(i: int, values: Assignment) -> Iterator[Assignment]:
        while i < len(plan) and plan[i].active is not None and not plan[i].active(values):
            i += 1
        if i == len(plan):
            yield dict(values)
            return
        entry = plan[i]
        for v in entry.decision.domain.enumerate():
            values[entry.name] = v
            yield from walk(i + 1, values)
        del values[entry.name]

    yield from walk(0, {})


# ---------------------------------------------------------------- sampling and validation


def sample(space: S.Space, rng: random.Random) -> Assignment:
    """One assignment drawn uniformly per active decision (decisions are in condition order)."""
    values: Assignment = {}
    rnd = rng.random
    for entry in _plan(space):
        if entry.active is None or entry.active(values):
            values[entry.name] = entry.draw(rnd)
    return values


def default_assignment(space: S.Space, last: bool = False) -> Assignment:
    """The first (or, with `last`, the last) value of every active decision: a deterministic
    point of the space. The last values are often its extreme (deepest, widest) point."""
    values: Assignment = {}
    for entry in _plan(space):
        if entry.active is None or entry.active(values):
            d = entry.decision.domain
            if isinstance(d, S.FloatRange):
                values[entry.name] = d.hi if last else d.lo
            else:
                values[entry.name] = d.enumerate()[-1 if last else 0]
    return values


def validate(space: S.Space, assignment: Mapping[str, Any]) -> Assignment:
    """Check an assignment: every active decision present and in its domain, nothing else.

    Returns the assignment in declaration order; raises one ArchError naming every problem.
    """
    out: Assignment = {}
    ok = True
    for entry in _plan(space):
        if entry.active is not None and not entry.active(out):
            ok = ok and entry.name not in assignment
            continue
        value = assignment.get(entry.name, _MISSING)
        if value is _MISSING or not entry.contains(value):
            ok = False
            continue
        out[entry.name] = value
    if ok and len(out) == len(assignment):
        return out
    raise ArchError(f"invalid assignment for '{space.name}': "
                    + "; ".join(_problems(space, assignment)))


def _problems(space: S.Space, assignment: Mapping[str, Any]) -> list[str]:
    """Every problem of an invalid assignment, for the error message (the slow path)."""
    problems: list[str] = []
    out: Assignment = {}
    for entry in _plan(space):
        decision = entry.decision
        if entry.active is not None and not entry.active(out):
            if decision.name in assignment:
                problems.append(f"'{decision.name}' is not active under this assignment")
            continue
        if decision.name not in assignment:
            problems.append(f"missing decision '{decision.name}' "
                            f"(domain {decision.domain.show()})")
            continue
        value = assignment[decision.name]
        if not entry.contains(value):
            problems.append(f"'{decision.name}' = {value!r} is outside its domain "
                            f"{decision.domain.show()}")
            continue
        out[decision.name] = value
    known = {e.name for e in _plan(space)}
    for name in assignment:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"unknown decision '{name}'{hint}")
    return problems


def canonical(space: S.Space, assignment: Mapping[str, Any]) -> Assignment:
    """Drop the decisions that are inactive under the others (e.g. after a mutation)."""
    out: Assignment = {}
    for entry in _plan(space):
        if entry.name in assignment and (entry.active is None or entry.active(out)):
            out[entry.name] = assignment[entry.name]
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
