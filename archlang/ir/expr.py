"""Expressions of the Space IR and their evaluator.

Values in a space are expressions over decisions: ``conv(2 * width, 3)`` keeps ``2 * width``
until an assignment gives ``width`` a value. Constant subexpressions are folded when built, so
a fixed network carries only constants. There is no ``eval``: this evaluator knows a closed set
of operators and functions, and a spec cannot run Python.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from archlang.errors import ArchError, Span

_span = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Const:
    value: Any
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class Ref:
    """The value of a decision."""

    name: str
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class ShapeOf:
    """A property of the current tensor (`in_channels`, ...), known only once shapes are."""

    what: str
    span: Span | None = _span


@dataclass(frozen=True, slots=True)
class Apply:
    """An operator or builtin function applied to argument expressions."""

    fn: str
    args: tuple[Expr, ...]
    span: Span | None = _span


Expr = Union[Const, Ref, ShapeOf, Apply]

SHAPE_NAMES = {
    "in_channels": "channels of the current tensor (C of an image, D of tokens)",
    "in_height": "height of the current image",
    "in_width": "width of the current image",
    "in_tokens": "number of tokens of the current sequence",
}


class NotConstant(Exception):
    """Raised while evaluating when a name has no value yet."""


def _div(a, b):
    return a / b


def _floordiv(a, b):
    return a // b


def _mod(a, b):
    return a % b


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round to the nearest multiple of `divisor`, never more than 10% down (torchvision's rule)."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": _div, "//": _floordiv,
    "%": _mod, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}

FUNCTIONS: dict[str, tuple[int, int, Callable[..., Any]]] = {
    # name: (min args, max args, implementation)
    "min": (1, 64, min),
    "max": (1, 64, max),
    "abs": (1, 1, abs),
    "round": (1, 1, round),
    "floor": (1, 1, math.floor),
    "ceil": (1, 1, math.ceil),
    "int": (1, 1, int),
    "float": (1, 1, float),
    "sqrt": (1, 1, math.sqrt),
    "make_divisible": (1, 3, make_divisible),
}


def apply(fn: str, args: tuple[Any, ...], span: Span | None) -> Any:
    """Apply an operator or function to values, turning Python failures into user errors."""
    try:
        if fn in BINARY:
            a, b = args
            if fn in "+-*/%//" and (isinstance(a, str) or isinstance(b, str)) and fn != "+":
                raise TypeError
            return BINARY[fn](a, b)
        if fn == "neg":
            return -args[0]
        if fn == "not":
            return not args[0]
        if fn == "and":
            return args[0] and args[1]
        if fn == "or":
            return args[0] or args[1]
        if fn == "if":
            return args[1] if args[0] else args[2]
        return FUNCTIONS[fn][2](*args)
    except ZeroDivisionError:
        raise ArchError("division by zero", span) from None
    except (TypeError, ValueError) as exc:
        shown = ", ".join(repr(a) for a in args)
        raise ArchError(f"cannot apply '{fn}' to {shown}", span, (str(exc),) if str(exc) else ()) \
            from None


def build(fn: str, args: tuple[Expr, ...], span: Span | None) -> Expr:
    """An Apply node, folded to a constant when every argument is one."""
    if fn == "if" and isinstance(args[0], Const):
        return args[1] if args[0].value else args[2]
    if fn in ("and", "or") and any(isinstance(a, Const) for a in args):
        # `true and x` is x, `false and x` is false; `or` alike (values stay bools in practice)
        const, other = (args[0], args[1]) if isinstance(args[0], Const) else (args[1], args[0])
        decided = not const.value if fn == "and" else bool(const.value)
        return Const(const.value, span) if decided else other
    if all(isinstance(a, Const) for a in args):
        return Const(apply(fn, tuple(a.value for a in args), span), span)
    return Apply(fn, args, span)


def evaluate(expr: Expr, values: Mapping[str, Any], shape_of: Callable[[str], int] | None = None):
    """The value of `expr` given decision values; NotConstant when something is unknown."""
    match expr:
        case Const(value):
            return value
        case Ref(name):
            try:
                return values[name]
            except KeyError:
                raise NotConstant(name) from None
        case ShapeOf(what):
            if shape_of is None:
                raise NotConstant(what)
            return shape_of(what)
        case Apply("if", (test, then, orelse)):
            chosen = then if evaluate(test, values, shape_of) else orelse
            return evaluate(chosen, values, shape_of)
        case Apply(fn, args, span):
            return apply(fn, tuple(evaluate(a, values, shape_of) for a in args), span)
    raise TypeError(f"not an expression: {expr!r}")  # pragma: no cover


def refs(expr: Expr) -> set[str]:
    """Names of the decisions an expression depends on."""
    match expr:
        case Ref(name):
            return {name}
        case Apply(_, args):
            out: set[str] = set()
            for a in args:
                out |= refs(a)
            return out
    return set()


def uses_shape(expr: Expr) -> bool:
    """Whether the value depends on tensor shapes (directly, or through a captured value)."""
    match expr:
        case ShapeOf():
            return True
        case Ref(name):
            return name.startswith("%")
        case Apply(_, args):
            return any(uses_shape(a) for a in args)
    return False


def show(expr: Expr) -> str:
    """Readable text of an expression, for `archlang show`."""
    match expr:
        case Const(value):
            return repr(value) if isinstance(value, str) else str(value)
        case Ref(name) | ShapeOf(name):
            return name.lstrip("$")  # cost metrics in constraints are `$params`, ...
        case Apply("neg", (a,)):
            return f"-{show(a)}"
        case Apply("not", (a,)):
            return f"not {show(a)}"
        case Apply("if", (t, a, b)):
            return f"(if {show(t)} then {show(a)} else {show(b)})"
        case Apply(fn, (a, b)) if fn in BINARY or fn in ("and", "or"):
            return f"({show(a)} {fn} {show(b)})"
        case Apply(fn, args):
            return f"{fn}({', '.join(show(a) for a in args)})"
    return "?"
