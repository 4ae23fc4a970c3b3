"""The Space IR: a search space (or one fixed network) with its decisions made explicit.

Lowering turns a spec into a :class:`Space`: blocks are inlined, loops unrolled, every value is
an expression over decisions, and each `repeat` holds one body per possible repetition (so that
decisions inside repetition *i* have their own names). A :class:`Decision` has a stable,
path-based name, a domain, and the condition under which it is active.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Union

from archlang.errors import Span
from archlang.ir.expr import Expr

_span = field(default=None, compare=False, repr=False)


# ---------------------------------------------------------------- domains


@dataclass(frozen=True, slots=True)
class Choice:
    """A categorical domain: one of a few values of one type."""

    values: tuple[Any, ...]

    @property
    def size(self) -> int:
        return len(self.values)

    @property
    def discrete(self) -> bool:
        return True

    def contains(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values) or (
            isinstance(value, int) and not isinstance(value, bool)
            and any(isinstance(v, float) and v == value for v in self.values))

    def sample(self, rng: random.Random) -> Any:
        return self.values[int(rng.random() * len(self.values))]

    def enumerate(self) -> tuple[Any, ...]:
        return self.values

    def show(self) -> str:
        return "choice(" + ", ".join(repr(v) if isinstance(v, str) else str(v)
                                     for v in self.values) + ")"


@dataclass(frozen=True, slots=True)
class IntRange:
    """Integers lo, lo + step, ..., up to hi inclusive."""

    lo: int
    hi: int
    step: int = 1

    @property
    def size(self) -> int:
        return (self.hi - self.lo) // self.step + 1

    @property
    def discrete(self) -> bool:
        return True

    def contains(self, value: Any) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool)
                and self.lo <= value <= self.hi and (value - self.lo) % self.step == 0)

    def sample(self, rng: random.Random) -> int:
        return self.lo + self.step * int(rng.random() * self.size)

    def enumerate(self) -> tuple[int, ...]:
        return tuple(range(self.lo, self.hi + 1, self.step))

    def show(self) -> str:
        return f"intrange({self.lo}, {self.hi}, step={self.step})"


@dataclass(frozen=True, slots=True)
class FloatRange:
    """Reals in [lo, hi], sampled uniformly or log-uniformly."""

    lo: float
    hi: float
    log: bool = False

    @property
    def size(self) -> float:
        return math.inf

    @property
    def discrete(self) -> bool:
        return False

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) \
            and self.lo <= value <= self.hi

    def sample(self, rng: random.Random) -> float:
        if self.log:
            return math.exp(rng.uniform(math.log(self.lo), math.log(self.hi)))
        return rng.uniform(self.lo, self.hi)

    def enumerate(self) -> tuple[float, ...]:
        raise ValueError("a continuous domain cannot be enumerated")

    def show(self) -> str:
        return f"{'loguniform' if self.log else 'uniform'}({self.lo}, {self.hi})"


Domain = Union[Choice, IntRange, FloatRange]


@dataclass(frozen=True, slots=True)
class Decision:
    name: str
    domain: Domain
    condition: tuple[Expr, ...]  # all must hold for the decision to be active
    kind: str  # "value", "repeat", "one_of", "optional", "input" (which tensor feeds)
    span: Span | None = _span


# ---------------------------------------------------------------- nodes


@dataclass(frozen=True, slots=True)
class InputNode:
    name: str
    path: str
    dims: tuple[Expr, ...]
    dtype: str
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class OpNode:
    path: str
    op: str
    args: tuple[tuple[str, Expr], ...]
    sources: tuple[TensorSel, ...]  # merges: the tensors merged; ordinary ops: ()
    decisions: tuple[str, ...]  # anonymous decisions made in this call's arguments
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class TensorSel:
    """A tensor by its binding id, or a searched choice among several (`@one_of(a, b)`)."""

    ids: tuple[str, ...]
    names: tuple[str, ...]  # as written, for messages and assignment values
    decision: str | None
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class SourceNode:
    sel: TensorSel
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class BindNode:
    id: str
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class LetNode:
    decision: str
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class CaptureNode:
    """Evaluates a shape-dependent value where it is written (`let h = in_channels * 4`).

    The value is stored under `name` (which starts with '%') for the expressions that use it.
    """

    name: str
    value: Expr
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class Seq:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class ResidualNode:
    path: str  # prefix for the projection layers
    add_path: str  # the add that joins the shortcut and the body
    proj: str  # "auto", "conv", "conv_bn", "linear", "none"
    when: Expr  # the shortcut exists only where this holds (evaluated on the input)
    body: Seq
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class ParallelNode:
    path: str
    merge: str
    branches: tuple[Seq, ...]
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class RepeatNode:
    count: Expr
    reps: tuple[Seq, ...]  # reps[i] runs when count > i
    decision: str | None  # the count's own decision, when it is an anonymous one
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class OneOfNode:
    decision: str
    branches: tuple[Seq, ...]
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class OptionalNode:
    decision: str
    body: Seq
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class IfNode:
    test: Expr
    then: Seq
    orelse: Seq
    span: Span | None = _span


Node = Union[InputNode, OpNode, SourceNode, BindNode, LetNode, CaptureNode, Seq, ResidualNode, ParallelNode,
             RepeatNode, OneOfNode, OptionalNode, IfNode]


@dataclass(frozen=True, slots=True)
class Constraint:
    expr: Expr  # a comparison; true when satisfied
    text: str  # as written
    metrics: tuple[str, ...]  # cost metrics it reads; () means decisions only
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class Objective:
    sense: str  # "maximize" | "minimize"
    metric: str
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class Space:
    name: str
    root: Seq
    decisions: tuple[Decision, ...]  # in an order where conditions only read earlier ones
    constraints: tuple[Constraint, ...]
    objectives: tuple[Objective, ...]
    params: tuple[tuple[str, Any], ...]  # the arch's parameters as bound
    options: tuple[tuple[str, Any], ...] = ()  # `option` settings, for metrics and solvers
    span: Span | None = _span

    @property
    def size(self) -> int | float:
        """Exact number of points (see archlang.ir.decisions.size)."""
        from archlang.ir.decisions import size

        return size(self)

    def decision(self, name: str) -> Decision:
        for d in self.decisions:
            if d.name == name:
                return d
        raise KeyError(name)


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree under `node`, itself first, in source order."""
    yield node
    match node:
        case Seq(items):
            for item in items:
                yield from walk(item)
        case ResidualNode(body=body) | OptionalNode(body=body):
            yield from walk(body)
        case ParallelNode(branches=branches) | OneOfNode(branches=branches):
            for branch in branches:
                yield from walk(branch)
        case RepeatNode(reps=reps):
            for rep in reps:
                yield from walk(rep)
        case IfNode(then=then, orelse=orelse):
            yield from walk(then)
            yield from walk(orelse)
