"""The syntax tree of a `.arch` file: frozen values, one class per construct, spans kept.

Nothing after the parser sees a lark Tree; everything after lowering sees the Space IR instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from archlang.errors import Span

_span = field(compare=False, repr=False)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Num:
    value: int | float
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Str:
    value: str
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Call:
    fn: str
    args: tuple[Arg, ...]
    span: Span = _span


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str  # + - * / // % < <= > >= == != and or
    left: Expr
    right: Expr
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # - not
    operand: Expr
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Cond:
    test: Expr
    then: Expr
    orelse: Expr
    span: Span = _span


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple[Expr, ...]
    tuple_: bool
    span: Span = _span


Expr = Union[Num, Str, Bool, Name, Call, BinOp, Unary, Cond, ListLit]


@dataclass(frozen=True, slots=True)
class TensorName:
    name: str
    span: Span = _span


@dataclass(frozen=True, slots=True)
class TensorChoice:
    """`@one_of(a, b)`: a searched choice of which earlier tensor feeds what follows."""

    names: tuple[str, ...]
    span: Span = _span


TensorRef = Union[TensorName, TensorChoice]


@dataclass(frozen=True, slots=True)
class Arg:
    name: str | None  # None for a positional argument
    value: Expr | TensorRef
    span: Span = _span


# ---------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class Label:
    parts: tuple[str | Expr, ...]  # literal text and `{expr}` interpolations
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Let:
    name: str
    value: Expr
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Option:
    """`option entropy.alpha = (1, 1, 1, 1, 8)`: a setting read by metrics and solvers."""

    name: str
    value: Expr
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Input:
    name: str
    dtype: str
    dims: tuple[Expr, ...]
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Require:
    test: Expr
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Objective:
    sense: str  # maximize | minimize
    metric: str
    span: Span = _span


@dataclass(frozen=True, slots=True)
class OpCall:
    """A call in a chain: a primitive op or a block."""

    label: Label | None
    name: str
    args: tuple[Arg, ...]
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Source:
    ref: TensorRef
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Bind:
    name: str
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Residual:
    label: Label | None
    args: tuple[Arg, ...]
    body: tuple[Stmt, ...]
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Repeat:
    label: Label | None
    count: Expr
    var: str | None
    body: tuple[Stmt, ...]
    span: Span = _span


@dataclass(frozen=True, slots=True)
class For:
    label: Label | None
    targets: tuple[str, ...]
    iterable: Expr
    body: tuple[Stmt, ...]
    span: Span = _span


@dataclass(frozen=True, slots=True)
class OneOf:
    label: Label | None
    branches: tuple[tuple[Stmt, ...], ...]
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Optional:
    label: Label | None
    body: tuple[Stmt, ...]
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Parallel:
    label: Label | None
    merge: str
    branches: tuple[tuple[Stmt, ...], ...]
    span: Span = _span


@dataclass(frozen=True, slots=True)
class If:
    label: Label | None
    test: Expr
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...]
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Scope:
    label: Label | None
    body: tuple[Stmt, ...]
    span: Span = _span


Stmt = Union[Let, Option, Input, Require, Objective, OpCall, Source, Bind, Residual, Repeat, For, OneOf,
             Optional, Parallel, If, Scope]


# ---------------------------------------------------------------- definitions


@dataclass(frozen=True, slots=True)
class ParamDef:
    name: str
    type: str | None
    default: Expr | None
    span: Span = _span


@dataclass(frozen=True, slots=True)
class Import:
    path: str
    span: Span = _span


@dataclass(frozen=True, slots=True)
class BlockDef:
    name: str
    params: tuple[ParamDef, ...]
    body: tuple[Stmt, ...]
    span: Span = _span
    is_arch: bool = False


@dataclass(frozen=True, slots=True)
class Module:
    path: str
    imports: tuple[Import, ...]
    blocks: tuple[BlockDef, ...]  # blocks and archs, in source order
