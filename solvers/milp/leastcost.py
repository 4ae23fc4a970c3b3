"""The least MACs (or parameters) of a staged space under its other requirements, exactly.

Used to explain infeasibility: the least MAC budget that admits some architecture. A DP over
the stages whose states are (width, cumulative depth); each state keeps the Pareto front of
the partial architectures that reach it -- less of the cost, more of the log-width sum
Lambda (what effectiveness bounds from below: `rho <= rho*` at a scale end is
`Lambda >= g(1 + 3 D)`, `g(n) = n log(n / rho*)`, with D the blocks so far), and less of the
other cost when its budget is imposed. What a prefix leaves open depends only on its state
and these, so keeping every non-dominated prefix is exact. The fronts stay small because every partial cost above a known architecture's
(`ceiling`) is dropped: the least architectures are small.
"""

from __future__ import annotations

import math

import numpy as np

from archlang.solvers.milp.boxbb import StageTable, stage_tables
from archlang.solvers.milp.staged import Point, Staged, Tables
from archlang.solvers.milp.terms import Unsupported

LIMIT = 2_000_000  # partial architectures before the DP gives up (Unsupported)


def least_cost(p: Staged, t: Tables, rho: float | None, metric: str, ceiling: float,
               other: float | None = None) -> tuple[float, Point] | None:
    """(least `metric`, a point that has it) over the points of cost at most `ceiling` that
    meet `effectiveness <= rho`, the other cost's budget `other` (if given: then the fronts
    keep that cost as a third criterion, larger and slower) and the requirements over
    decisions in `t`; None if there is none. `Unsupported` if the fronts grow past LIMIT
    partial architectures (then nothing is proven)."""
    ends = {i for i, _ in p.scale_ends() if i > 0} if rho is not None else set()
    k0 = p.in_channels * p.stem_kernel ** 2
    options = _stage_options(p, t, metric)
    spare = math.inf if other is None else other
    # the least cost each later stage adds (its cheapest option after the narrowest input)
    least = [o.cost(float(min(p.stems if i == 0 else p.stages[i - 1].widths))).min()
             for i, o in enumerate(options)]
    rest = np.concatenate([np.cumsum(least[::-1])[::-1][1:], [0.0]])
    # states: (width, cumulative depth) -> front (cost, other cost, Lambda, history)
    states: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
    for s in p.stems:
        macs, params = float(p.stem_res ** 2 * k0 * s), float((k0 + 2) * s)
        cost, second = (macs, params) if metric == "macs" else (params, macs)
        states[(s, 0)] = (np.array([cost]), np.array([second]), np.array([math.log(k0)]),
                          np.array([[s]]))
    total = 0
    for i, (opt, chain) in enumerate(zip(options, t.chains)):
        room = ceiling - rest[i]
        opt = opt.cheaper(min(c for c, _ in states), room - min(v[0].min() for v in
                                                                states.values()))
        grown: list[tuple[np.ndarray, ...]] = []
        prev_values = p.stems if i == 0 else p.stages[i - 1].widths
        for (c, depth), (cost, second, lam, hist) in states.items():
            o_cost = opt.cost(float(c))
            ok = o_cost <= room - cost.min()
            if chain is not None:
                ok &= chain[prev_values.index(c)][opt.wi]
            o = np.flatnonzero(ok)
            if o.size == 0:
                continue
            n_cost = cost[:, None] + o_cost[o][None, :]
            n_lam = lam[:, None] + (math.log(c) + opt.gain[o])[None, :]
            n_second = second[:, None] + opt.other_cost(float(c))[o][None, :]
            ok = (n_cost <= room) & (n_second <= spare)
            if i + 1 in ends:  # effectiveness at this scale end
                n = 1.0 + 3.0 * (depth + opt.depth[o])
                ok &= n_lam >= (n * np.log(n / rho) - 1e-9)[None, :]
            e, j = np.nonzero(ok)
            total += e.size
            if total > LIMIT:
                raise Unsupported(f"the least-{metric} DP passed {LIMIT:,} partial "
                                  "architectures")
            o = o[j]
            grown.append((n_cost[e, j], n_second[e, j], n_lam[e, j],
                          np.concatenate([hist[e], opt.choice[o]], axis=1), opt.width[o],
                          depth + opt.depth[o]))
        states = _fronts(grown, other is not None)
        if not states:
            return None
    best = min(states.values(), key=lambda v: v[0].min())
    j = int(np.argmin(best[0]))
    hist = best[3][j]
    return float(best[0][j]), (int(hist[0]), tuple(
        tuple(int(x) for x in hist[1 + 4 * s: 5 + 4 * s]) for s in range(len(p.stages))))


_last: list = [None, None]  # (p, t, metric), their options: callers repeat them in a row


def _stage_options(p: Staged, t: Tables, metric: str) -> list[_Options]:
    key = _last[0]
    if key is None or key[0] is not p or key[1] is not t or key[2] != metric:
        tabs = stage_tables(p, t)
        _last[:] = [(p, t, metric), [_Options(tab, st, metric)
                                     for st, tab in zip(p.stages, tabs)]]
    return _last[1]


class _Options:
    """A stage's (pair, kernel, depth) options, flat: cost = base + c * per_c after an input
    of width c (the other cost likewise); Lambda gain (the input's log aside); the choice
    (d, w, b, k); width index."""

    FIELDS = ("base", "per_c", "base2", "per_c2", "gain", "wi", "width", "depth", "choice")

    def __init__(self, tab: StageTable, st, metric: str) -> None:
        d = (tab.depths - 1)[None, None, :]
        shape = (len(tab.wi), len(st.kernels), len(tab.depths))
        rows, ks, ds = (a.ravel() for a in np.indices(shape))
        macs = ((tab.m1[:, :, None] + d * tab.m2[:, :, None]).ravel(),
                np.broadcast_to(tab.gm[:, :, None], shape).ravel())
        params = ((tab.p1[:, :, None] + d * tab.p2[:, :, None]).ravel(),
                  np.broadcast_to(tab.gp[:, :, None], shape).ravel())
        (self.base, self.per_c), (self.base2, self.per_c2) = \
            (macs, params) if metric == "macs" else (params, macs)
        self.gain = (tab.u[:, :, None] + d * tab.v[:, :, None]).ravel()
        self.wi = tab.wi[rows]
        self.width = tab.widths[self.wi].astype(np.int64)
        self.depth = tab.depths[ds].astype(np.int64)
        self.choice = np.stack([self.depth, self.width,
                                tab.bottlenecks[tab.bi[rows]].astype(np.int64),
                                np.asarray(st.kernels, dtype=np.int64)[ks]], axis=1)

    def cost(self, c: float) -> np.ndarray:
        return self.base + c * self.per_c

    def other_cost(self, c: float) -> np.ndarray:
        return self.base2 + c * self.per_c2

    def cheaper(self, c: float, room: float) -> _Options:
        """The options that cost at most `room` after an input of width c (every cost
        grows with c, so after a wider input too)."""
        keep = self.cost(c) <= room
        out = _Options.__new__(_Options)
        for name in self.FIELDS:
            setattr(out, name, getattr(self, name)[keep])
        return out


def _fronts(grown: list[tuple[np.ndarray, ...]], three: bool
            ) -> dict[tuple[int, int], tuple[np.ndarray, ...]]:
    """Group the new entries by state (width, cumulative depth) and keep, in each, those no
    other entry dominates (no more cost, no less Lambda; with `three`, no more of the other
    cost either)."""
    if not grown:
        return {}
    cost, second, lam, hist, width, depth = (np.concatenate(a) for a in zip(*grown))
    if cost.size == 0:
        return {}
    key = width * 1_000_003 + depth
    order = np.lexsort((-lam, second, cost, key))  # by state, cost, other cost, -Lambda
    key, ranked = key[order], lam[order]
    new_state = np.concatenate([[True], key[1:] != key[:-1]])
    # a running max of Lambda that restarts at every state: lift each state above the last
    lifted = ranked + (np.cumsum(new_state) - 1) * (float(ranked.max() - ranked.min()) + 1.0)
    kept = lifted > np.maximum.accumulate(np.concatenate([[-np.inf], lifted[:-1]]))
    if three:  # the two-criteria front is too strict: keep what the other cost saves
        kept = np.ones(len(order), dtype=bool)
    order, key = order[kept], key[kept]
    cuts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1], [True]]))
    out = {}
    for a, b in zip(cuts[:-1], cuts[1:]):
        sel = order[a:b]
        if three:
            sel = sel[_undominated(second[sel], lam[sel])]
        out[(int(key[a]) // 1_000_003, int(key[a]) % 1_000_003)] = (
            cost[sel], second[sel], lam[sel], hist[sel])
    return out


def _undominated(second: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Entries sorted by cost: j is dominated iff an earlier one has no more of the other cost
    and no less Lambda (a dominated dominator's own dominator also dominates j)."""
    dominated = np.zeros(len(second), dtype=bool)
    for lo in range(0, len(second), 1024):
        hi = min(len(second), lo + 1024)
        block = (second[None, :hi] <= second[lo:hi, None]) & (lam[None, :hi] >= lam[lo:hi, None])
        block &= np.arange(hi)[None, :] < np.arange(lo, hi)[:, None]
        dominated[lo:hi] = block.any(axis=1)
    return ~dominated
