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
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from archlang.errors import ArchError
from archlang.ir import decisions as D
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


# The walks over a space's decisions live with the decisions themselves.
fill = D.fill
active_iter = D.active_iter
enumerate_points = D.enumerate_points
plan = D.activity


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


