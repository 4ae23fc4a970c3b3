"""The strategy protocol and what every strategy shares: seeding, de-duplication, state.

A strategy proposes assignments (plain dicts holding exactly the active decisions) and learns
from results. The search loop calls, in a fixed order that does not depend on timing:

    strategy.setup(space, seed)
    a = strategy.propose()          # never an assignment already proposed, unless exhausted
    strategy.feedback(a, Result("ok", score=0.93))
    snapshot = strategy.state()     # JSON-serialisable; restore(snapshot) continues exactly

`score` is the primary objective oriented so that higher is better (the runner negates a
`minimize`). Failed and infeasible trials carry no score; each strategy decides what that
teaches it.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from archlang.errors import ArchError
from archlang.ir import decisions as D
from archlang.ir import expr as E
from archlang.ir import space as S

Assignment = dict[str, Any]

# How often a strategy's own proposal may collide with a seen point before random sampling
# takes over, and how many random draws before the unseen points are enumerated.
_OWN_TRIES = 32
_RANDOM_TRIES = 256
_ENUMERATE_LIMIT = 200_000


@dataclass(frozen=True, slots=True)
class Result:
    """What one trial taught: its status and, when ok, its oriented objective score."""

    status: str  # "ok" | "failed" | "infeasible"
    score: float | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.score is not None and math.isfinite(self.score)


def as_result(result: Result | float | None) -> Result:
    """Accept a bare score (or None for a failure) where a Result is expected."""
    if isinstance(result, Result):
        return result
    if result is None:
        return Result("failed")
    return Result("ok", float(result))


@runtime_checkable
class Strategy(Protocol):
    name: str

    def setup(self, space: S.Space, seed: int) -> None: ...
    def propose(self) -> Assignment: ...
    def feedback(self, assignment: Mapping[str, Any], result: Result | float | None) -> None: ...
    def state(self) -> dict[str, Any]: ...
    def restore(self, state: Mapping[str, Any]) -> None: ...


# ---------------------------------------------------------------- helpers on assignments


def fill(space: S.Space, partial: Mapping[str, Any], rng: random.Random) -> Assignment:
    """Keep the values of `partial` that are still active; sample every active one missing.

    This is `canonical` followed by sampling the newly active decisions, in one pass in
    condition order (a decision's activity only reads earlier decisions).
    """
    out: Assignment = {}
    for decision in active_iter(space, out):
        value = partial.get(decision.name, _MISSING)
        out[decision.name] = decision.domain.sample(rng) if value is _MISSING else value
    return out


_MISSING = object()


def active_iter(space: S.Space, values: Assignment) -> Iterator[S.Decision]:
    """Decisions active under `values` while the caller fills it in, in condition order.

    A decision's condition reads only earlier decisions, so a caller may add the value of
    each decision it is handed before asking for the next one.
    """
    for decision, active in plan(space):
        if active is None or active(values):
            yield decision


_Active = Callable[[Mapping[str, Any]], bool]
_PLANS: dict[int, tuple[S.Space, tuple[tuple[S.Decision, _Active | None], ...]]] = {}


def plan(space: S.Space) -> tuple[tuple[S.Decision, _Active | None], ...]:
    """Each decision with a compiled activity test (None: always active), cached per space.

    Compiled closures instead of `expr.evaluate` on every call: proposals walk every decision
    and must stay far below the 5 ms budget on spaces with hundreds of decisions.
    """
    hit = _PLANS.get(id(space))  # by identity: hashing a space walks its whole tree
    if hit is not None and hit[0] is space:
        return hit[1]
    if len(_PLANS) > 64:
        _PLANS.clear()
    out = tuple((d, _active_fn(d.condition)) for d in space.decisions)
    _PLANS[id(space)] = (space, out)
    return out


_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
            ">": operator.gt, ">=": operator.ge}


def _active_fn(condition: tuple[E.Expr, ...]) -> _Active | None:
    if not condition:
        return None
    checks = tuple(_compile(c) for c in condition)
    if len(checks) == 1:
        (check,) = checks

        def active_one(values: Mapping[str, Any]) -> bool:
            try:
                return bool(check(values))
            except (KeyError, E.NotConstant):  # reads an inactive decision: inactive too
                return False

        return active_one

    def active(values: Mapping[str, Any]) -> bool:
        try:
            for check in checks:
                if not check(values):
                    return False
            return True
        except (KeyError, E.NotConstant):
            return False

    return active


def _compile(expr: E.Expr) -> Callable[[Mapping[str, Any]], Any]:
    match expr:
        case E.Const(value):
            return lambda values: value
        case E.Ref(name):
            return lambda values: values[name]
        case E.Apply(fn, (E.Ref(name), E.Const(c))) if fn in _COMPARE:
            # the shape of almost every condition: `repeat1.depth > 1`, `one_of1 == 0`
            op = _COMPARE[fn]
            return lambda values: op(values[name], c)
        case E.Apply("and", (a, b)):
            fa, fb = _compile(a), _compile(b)
            return lambda values: fa(values) and fb(values)
        case E.Apply(fn, args, span) if fn != "if":  # `if` must not evaluate both arms
            parts = tuple(_compile(a) for a in args)
            return lambda values: E.apply(fn, tuple(p(values) for p in parts), span)
    return lambda values: E.evaluate(expr, values)


def enumerate_points(space: S.Space) -> Iterator[Assignment]:
    """Every point of a discrete space, depth-first in decision order."""
    steps = plan(space)

    def walk(i: int, values: Assignment) -> Iterator[Assignment]:
        while i < len(steps) and steps[i][1] is not None and not steps[i][1](values):
            i += 1
        if i == len(steps):
            yield dict(values)
            return
        decision = steps[i][0]
        for v in decision.domain.enumerate():
            values[decision.name] = v
            yield from walk(i + 1, values)
        del values[decision.name]

    yield from walk(0, {})


def rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_rng_state(rng: random.Random, state: list[Any]) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


def jsonable(assignment: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in assignment.items()}


def from_json(assignment: Mapping[str, Any]) -> Assignment:
    # Choice values may be tuples; JSON turns them into lists.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in assignment.items()}


_NAMES: dict[int, tuple[S.Space, dict[str, int]]] = {}


def pack(space: S.Space, assignment: Mapping[str, Any]) -> list[Any]:
    """A compact JSON form for states: [decision index, value, ...] instead of long names."""
    hit = _NAMES.get(id(space))
    if hit is None or hit[0] is not space:
        if len(_NAMES) > 64:
            _NAMES.clear()
        hit = _NAMES[id(space)] = (space, {d.name: i for i, d in enumerate(space.decisions)})
    out: list[Any] = []
    for name, value in assignment.items():
        out += (hit[1][name], list(value) if isinstance(value, tuple) else value)
    return out


def unpack(space: S.Space, packed: list[Any]) -> Assignment:
    decisions = space.decisions
    return {decisions[packed[i]].name: tuple(packed[i + 1]) if isinstance(packed[i + 1], list)
            else packed[i + 1] for i in range(0, len(packed), 2)}


# ---------------------------------------------------------------- the shared base


class BaseStrategy:
    """Seeding, de-duplication, exhaustion and the common part of the state.

    Subclasses implement `_propose()` (may return a seen point: the base retries, then falls
    back to random sampling, then to enumerating the unseen points of a discrete space) and
    `_feedback(assignment, result)`, plus `_state()`/`_restore()` for their own data.
    """

    name = "base"

    def __init__(self, **options: Any):
        if options:
            raise TypeError(f"strategy '{self.name}' has no option(s) {', '.join(options)}")

    def setup(self, space: S.Space, seed: int) -> None:
        self.space = space
        self.seed = seed
        self.rng = random.Random(seed)
        self.seen: set[str] = set()  # hashes proposed or fed back
        self.pending: dict[str, Assignment] = {}  # proposed, no feedback yet
        self.n_feedback = 0
        try:
            total = D.size(space)
        except ArchError:  # too many structural decisions to count: treat as unbounded
            total = math.inf
        self.space_size: int | None = total if total != math.inf else None

    # ---- protocol

    def propose(self) -> Assignment:
        values = None
        exhausted = self.exhausted
        for _ in range(1 if exhausted else _OWN_TRIES):
            values = self._propose()
            if exhausted or D.assignment_hash(values) not in self.seen:
                break
        else:
            values = self._unseen()
        key = D.assignment_hash(values)
        self.seen.add(key)
        self.pending[key] = values
        return values

    def feedback(self, assignment: Mapping[str, Any], result: Result | float | None) -> None:
        key = D.assignment_hash(assignment)
        self.pending.pop(key, None)
        self.seen.add(key)
        self.n_feedback += 1
        self._feedback(dict(assignment), as_result(result))

    def state(self) -> dict[str, Any]:
        return {"strategy": self.name, "rng": rng_state(self.rng), "seen": sorted(self.seen),
                "pending": [pack(self.space, a) for a in self.pending.values()],
                "n_feedback": self.n_feedback, "own": self._state()}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from `state` (after `setup` on the same space)."""
        if state.get("strategy") != self.name:
            raise ValueError(f"state of strategy '{state.get('strategy')}', not '{self.name}'")
        set_rng_state(self.rng, state["rng"])
        self.seen = set(state["seen"])
        self.pending = {D.assignment_hash(a): a
                        for a in (unpack(self.space, p) for p in state["pending"])}
        self.n_feedback = state["n_feedback"]
        self._restore(state["own"])

    # ---- for subclasses

    def _propose(self) -> Assignment:
        return D.sample(self.space, self.rng)

    def _feedback(self, assignment: Assignment, result: Result) -> None:
        pass

    def _state(self) -> dict[str, Any]:
        return {}

    def _restore(self, own: Mapping[str, Any]) -> None:
        pass

    # ---- de-duplication

    @property
    def exhausted(self) -> bool:
        return self.space_size is not None and len(self.seen) >= self.space_size

    def _unseen(self) -> Assignment:
        for _ in range(_RANDOM_TRIES):
            values = D.sample(self.space, self.rng)
            if D.assignment_hash(values) not in self.seen:
                return values
        if self.space_size is not None and self.space_size <= _ENUMERATE_LIMIT:
            # Nearly exhausted: pick uniformly among the few points left.
            left = [p for p in enumerate_points(self.space)
                    if D.assignment_hash(p) not in self.seen]
            if left:
                return left[int(self.rng.random() * len(left))]
        return D.sample(self.space, self.rng)  # a huge space with bad luck: allow a repeat


