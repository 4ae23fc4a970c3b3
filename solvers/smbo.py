"""SMBO with a tree-structured Parzen estimator (Bergstra et al. 2011) for conditional spaces.

Observations are split into the best few ("good": min(ceil(gamma * n), max_good), as Optuna
does) and the rest ("bad"; failed and infeasible trials are always bad). For each decision,
and only over the trials in which it was active (that is what makes the estimator
tree-structured), l(x) and g(x) are smoothed histograms over the decision's cells: its values
for a discrete domain, `bins` equal intervals (log-spaced for `loguniform`) for a continuous
one. A proposal walks the decisions in condition order (a decision is decided only once the
values it depends on make it active). It draws `candidates` whole points from l, decision by
decision, and keeps the unseen one with the largest sum over its active decisions of
log l(x) - log g(x), the expected-improvement criterion of TPE. Scoring whole points rather
than each decision alone (as hyperopt does) keeps proposals apart once l has concentrated:
in a small discrete space the per-decision argmax keeps returning the same, seen point. A
continuous value is drawn inside its cell.

Counts are kept incrementally (bad = all - good), so a proposal costs
O(max_good * decisions + decisions * cells + candidates * decisions), flat in the number of
trials.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from typing import Any

from archlang.ir import decisions as D
from archlang.ir import space as S

from .base import Assignment, BaseStrategy, Result, pack, plan, unpack


class _Cells:
    """A decision's cells: value <-> index for a discrete domain, intervals for a float."""

    __slots__ = ("decision", "k", "index", "values", "lo", "hi", "log")

    def __init__(self, decision: S.Decision, bins: int):
        d = decision.domain
        self.decision = decision
        self.log = isinstance(d, S.FloatRange) and d.log
        if isinstance(d, S.FloatRange):
            self.k = bins
            self.values: tuple[Any, ...] = ()
            self.index: dict[Any, int] = {}
            self.lo, self.hi = (math.log(d.lo), math.log(d.hi)) if d.log else (d.lo, d.hi)
        else:
            self.values = d.enumerate()
            self.k = len(self.values)
            self.index = {_key(v): i for i, v in enumerate(self.values)}
            self.lo = self.hi = 0.0

    def cell(self, value: Any) -> int:
        if self.values:
            return self.index[_key(value)]
        if self.hi <= self.lo:
            return 0
        x = math.log(value) if self.log else value
        return min(max(int((x - self.lo) / (self.hi - self.lo) * self.k), 0), self.k - 1)

    def value(self, cell: int, rng) -> Any:
        if self.values:
            return self.values[cell]
        x = self.lo + (self.hi - self.lo) * (cell + rng.random()) / self.k
        d = self.decision.domain
        return min(max(math.exp(x) if self.log else x, d.lo), d.hi)


def _key(value: Any) -> Any:
    # True == 1 == 1.0 in a dict; a domain holds one type, but be exact anyway.
    return (type(value).__name__, value if not isinstance(value, list) else tuple(value))


class TPE(BaseStrategy):
    name = "smbo"

    def __init__(self, startup: int = 10, candidates: int = 24, gamma: float = 0.1,
                 max_good: int = 25, bins: int = 16, prior: float = 1.0, **options: Any):
        super().__init__(**options)
        self.startup = startup
        self.candidates = candidates
        self.gamma = gamma
        self.max_good = max_good
        self.bins = bins
        self.prior = prior

    def setup(self, space: S.Space, seed: int) -> None:
        super().setup(space, seed)
        self.cells = {d.name: _Cells(d, self.bins) for d in space.decisions}
        self.observations: list[tuple[Assignment, float | None]] = []
        self.obs_cells: list[list[tuple[str, int]]] = []  # (decision, cell) per observation
        self.ranked: list[tuple[float, int]] = []  # (-score, index) of the ok observations
        # per decision: counts per cell over every observation in which it was active
        self.counts = {name: [0] * c.k for name, c in self.cells.items()}
        self.active_n = dict.fromkeys(self.cells, 0)

    # ---- proposing

    def _propose(self) -> Assignment:
        if len(self.ranked) < self.startup:
            return D.sample(self.space, self.rng)
        n_good = min(math.ceil(self.gamma * len(self.observations)), self.max_good)
        good: dict[str, list[int]] = {}
        for _, index in self.ranked[:n_good]:
            for name, cell in self.obs_cells[index]:
                row = good.get(name)
                if row is None:
                    row = good[name] = [0] * self.cells[name].k
                row[cell] += 1
        candidates, scores = self._candidates(good)
        best, best_score = None, -math.inf
        for values, score in zip(candidates, scores):
            if score > best_score and D.assignment_hash(values) not in self.seen:
                best, best_score = values, score
        return best if best is not None else D.sample(self.space, self.rng)

    def _table(self, name: str, good: dict[str, list[int]]):
        """The cumulative l(x) to draw from, and log l(x) - log g(x), per cell of `name`."""
        cells = self.cells[name]
        k, a = cells.k, self.prior / cells.k
        g_row = good.get(name) or [0] * k
        gn = sum(g_row)
        total, bn = self.counts[name], self.active_n[name] - gn
        cum, acc, logr = [], 0.0, []
        norm = math.log(bn + self.prior) - math.log(gn + self.prior)
        for i in range(k):
            lx = g_row[i] + a
            acc += lx
            cum.append(acc)
            logr.append(math.log(lx) - math.log(total[i] - g_row[i] + a) + norm)
        return cum, acc, logr

    def _candidates(self, good: dict[str, list[int]]) -> tuple[list[Assignment], list[float]]:
        """`candidates` points drawn from l, with their sums of log l/g.

        Each point is filled decision by decision, in condition order, where active. A
        decision's table is built on first use (inactive ones cost nothing): this loop is
        most of a proposal's time, hence the inlined `active_iter`.
        """
        tables: dict[str, tuple] = {}
        points, scores = [], []
        rnd = self.rng.random
        bisect_right = bisect.bisect_right
        for _ in range(self.candidates):
            values: Assignment = {}
            score = 0.0
            for decision, active in plan(self.space):
                if active is not None and not active(values):
                    continue
                name = decision.name
                table = tables.get(name)
                if table is None:
                    cells = self.cells[name]
                    table = tables[name] = (*self._table(name, good), cells.values, cells)
                cum, acc, logr, discrete, cells = table
                cell = bisect_right(cum, rnd() * acc)  # < k: rnd() < 1 and cum[-1] == acc
                score += logr[cell]
                values[name] = discrete[cell] if discrete else cells.value(cell, self.rng)
            points.append(values)
            scores.append(score)
        return points, scores

    # ---- learning

    def _feedback(self, assignment: Assignment, result: Result) -> None:
        index = len(self.observations)
        score = float(result.score) if result.ok else None
        self.observations.append((assignment, score))
        if score is not None:
            bisect.insort(self.ranked, (-score, index))
        cells = [(name, self.cells[name].cell(value)) for name, value in assignment.items()]
        self.obs_cells.append(cells)
        for name, cell in cells:
            self.counts[name][cell] += 1
            self.active_n[name] += 1

    def _state(self) -> dict[str, Any]:
        # Counts and ranks are rebuilt from the observations on restore.
        return {"observations": [[pack(self.space, a), s] for a, s in self.observations]}

    def _restore(self, own: Mapping[str, Any]) -> None:
        self.observations, self.ranked, self.obs_cells = [], [], []
        self.counts = {name: [0] * c.k for name, c in self.cells.items()}
        self.active_n = dict.fromkeys(self.cells, 0)
        for packed, s in own["observations"]:
            self._feedback(unpack(self.space, packed),
                           Result("ok", s) if s is not None else Result("failed"))
