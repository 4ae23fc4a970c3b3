"""A small linear-program builder for highspy: sparse linear expressions, columns and rows.

The structured formulation builds tens of thousands of columns; going straight to highspy
(instead of pyomo) keeps model construction well under a second.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

INF = float("inf")


class Lin:
    """sum coef * column + const, closed under +, -, scaling (enough for `program.linear`)."""

    __slots__ = ("terms", "const")

    def __init__(self, terms: dict[int, float] | None = None, const: float = 0.0) -> None:
        self.terms = terms or {}
        self.const = const

    @staticmethod
    def of(x: Any) -> Lin:
        return x if isinstance(x, Lin) else Lin({}, float(x))

    def __add__(self, other: Any) -> Lin:
        o = Lin.of(other)
        terms = dict(self.terms)
        for k, v in o.terms.items():
            terms[k] = terms.get(k, 0.0) + v
        return Lin(terms, self.const + o.const)

    __radd__ = __add__

    def __neg__(self) -> Lin:
        return Lin({k: -v for k, v in self.terms.items()}, -self.const)

    def __sub__(self, other: Any) -> Lin:
        return self + (-Lin.of(other))

    def __rsub__(self, other: Any) -> Lin:
        return Lin.of(other) - self

    def __mul__(self, c: Any) -> Lin:
        if isinstance(c, Lin):
            raise TypeError("product of two linear expressions")
        return Lin({k: v * c for k, v in self.terms.items()}, self.const * c)

    __rmul__ = __mul__

    def __truediv__(self, c: float) -> Lin:
        return self * (1.0 / c)

    def value(self, x: np.ndarray) -> float:
        return self.const + sum(v * x[k] for k, v in self.terms.items())


def lsum(items: Iterable[tuple[float, int]], const: float = 0.0) -> Lin:
    terms: dict[int, float] = {}
    for c, k in items:
        if c:
            terms[k] = terms.get(k, 0.0) + c
    return Lin(terms, const)


def new_highs(banner: bool = False) -> Any:
    """A `highspy.Highs`. The C++ library prints a banner on file descriptor 1 when the
    process makes its first instance: it goes to stderr with `banner` (HiGHS's log is shown),
    else nowhere, so that `archlang solve` prints only its status lines and `--json` only
    JSON on stdout."""
    import os
    import sys

    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    sink = os.dup(2) if banner else os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(sink, 1)
        h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(sink)
    return h


_POOL_THREADS: int | None = None  # the size of HiGHS's thread pool in this process, if known


def use_threads(threads: int) -> None:
    """Call before a HiGHS run with option `threads`. HiGHS sizes its thread pool at the
    first run of a process thread, and a later run asking for another size fails ("global
    scheduler has already been initialized"), which a library caller mixing `threads=1` and
    `threads=2` would meet: the pool is reset when the size changes."""
    global _POOL_THREADS
    if _POOL_THREADS != threads:
        import highspy

        highspy.Highs.resetGlobalScheduler(True)
        _POOL_THREADS = threads


def run(h: Any) -> None:
    """`h.run()` with HiGHS's thread pool sized to `h`'s own `threads` option."""
    use_threads(h.getOptionValue("threads")[1])
    h.run()


class Model:
    """Columns and rows, passed to a `highspy.Highs` in one go."""

    def __init__(self) -> None:
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.integer: list[int] = []
        self.row_lower: list[float] = []
        self.row_upper: list[float] = []
        self.row_index: list[list[int]] = []
        self.row_value: list[list[float]] = []

    @property
    def ncols(self) -> int:
        return len(self.lower)

    def var(self, lower: float = 0.0, upper: float = INF, integer: bool = False) -> int:
        self.lower.append(lower)
        self.upper.append(upper)
        if integer:
            self.integer.append(len(self.lower) - 1)
        return len(self.lower) - 1

    def vars(self, n: int, lower: float = 0.0, upper: float = INF,
             integer: bool = False) -> list[int]:
        return [self.var(lower, upper, integer) for _ in range(n)]

    def row(self, expr: Lin, lower: float = -INF, upper: float = INF) -> None:
        """lower <= expr <= upper (the expression's constant moves to the bounds)."""
        items = [(k, v) for k, v in expr.terms.items() if v]
        self.row_lower.append(lower - expr.const)
        self.row_upper.append(upper - expr.const)
        self.row_index.append([k for k, _ in items])
        self.row_value.append([v for _, v in items])

    def le(self, a: Any, b: Any) -> None:
        self.row(Lin.of(a) - Lin.of(b), upper=0.0)

    def eq(self, a: Any, b: Any) -> None:
        self.row(Lin.of(a) - Lin.of(b), 0.0, 0.0)

    def highs(self, objective: Lin, maximize: bool, options: dict[str, Any]) -> Any:
        import highspy

        h = new_highs(banner=bool(options.get("output_flag")))
        h.setOptionValue("output_flag", False)
        for k, v in options.items():
            h.setOptionValue(k, v)
        n = self.ncols
        cost = np.zeros(n)
        for k, v in objective.terms.items():
            cost[k] += v
        h.addVars(n, np.array(self.lower), np.array(self.upper))
        h.changeColsCost(n, np.arange(n, dtype=np.int32), cost)
        starts, index, value = [], [], []
        for idx, val in zip(self.row_index, self.row_value):
            starts.append(len(index))
            index.extend(idx)
            value.extend(val)
        h.addRows(len(self.row_lower), np.array(self.row_lower), np.array(self.row_upper),
                  len(index), np.array(starts, dtype=np.int32), np.array(index, dtype=np.int32),
                  np.array(value))
        if self.integer:
            h.changeColsIntegrality(len(self.integer), np.array(self.integer, dtype=np.int32),
                                    np.array([highspy.HighsVarType.kInteger] * len(self.integer)))
        h.changeObjectiveOffset(objective.const)
        h.changeObjectiveSense(highspy.ObjSense.kMaximize if maximize
                               else highspy.ObjSense.kMinimize)
        return h
