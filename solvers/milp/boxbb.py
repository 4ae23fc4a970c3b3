"""Branch and bound over decision boxes for staged (DeepMAD-like) problems.

The HiGHS model of `deepmad.py` is exact but its LP relaxation is weak at DeepMAD's size (a
fractional width one-hot lends its log to the entropy and its cost to nobody: the root bound is
about 40 % above the optimum, and the root LP alone takes most of a minute). This module bounds
the same problems another way, by branch and bound over *boxes* -- an interval of values per
decision -- with a Lagrangian bound per box:

* the MAC and parameter budgets and the effectiveness limits ``rho_j <= rho*`` (that is
  ``Lambda_j >= g(n_j)``, ``g(n) = n log(n / rho*)``) are priced with multipliers
  ``lambda, mu, nu_j >= 0``;
* the entropy ``sum_j phi_j(c_j) Lambda_j`` couples the width c_j at a scale end with every
  earlier stage's log-widths; each such product is bounded with the box's largest c_j, except
  for the stage that owns c_j, which uses its own value. A stage's first block reads the
  previous stage's width c: its log is counted by the previous stage (exact there), its costs
  use the box's smallest c;
* what is left is separable by stage and, for each (width, bottleneck, kernel), linear in the
  depth: every stage's best value per depth is one max over a numpy table. The depths are
  combined exactly: a DP over the cumulative depth carries ``-nu_j g(1 + 3 D_j)``, and the
  last stages' depths are enumerated jointly for the depth penalty.

The same search minimises MACs or parameters (its objective minus the cost, in units of a
first answer's), optionally under a floor on the entropy: the floor's multiplier ``eta`` then
weighs the entropy wherever the multiplier-free search weighs it by 1 (used to explain
infeasibility, `conflicts.py`, and for `minimize macs` under `require entropy >= H`).

Any multipliers give a valid upper bound; a level bundle method (`DualSolver`: cutting planes,
each step a tiny LP) converges them at the first box, and each box starts from its parent's
(the global search prices most later boxes once, there: splitting is what tightens it, and a
child then repeats most of its parent's stage results, which are cached; a box of every
REPRICE_EVERY-th level takes a few steps, and its subtree starts from what they find). A box
is bounded when it is made, so the heap holds each box's own bound; boxes are explored best
bound first; a box whose bound is within the gap of the incumbent is closed, the others are
bisected. The bound reported is the largest bound of the open and closed boxes,
so the gap is proven; when no box is open the incumbent is optimal within the gap.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from archlang.ir import space as S
from archlang.solvers.milp.staged import (
    Head,
    Point,
    Staged,
    Tables,
    metric_bound,
    metric_floor,
    scores,
)
from archlang.solvers.milp.terms import Unsupported

# Every REPRICE_EVERY-th level of the tree a box is re-priced (REPRICE_STEPS bundle steps from
# its parent's multipliers) and its descendants start from its multipliers. With one set of
# multipliers for the whole tree the bound cannot fall below the largest Lagrangian of a single
# point at those multipliers (a feasible point with slack in a budget is over-counted by the
# budget's price times the slack): on R18 a local search finds points 1.41 % above the answer
# at the first box's multipliers, and the search without re-pricing stood at 1.98 % after 50 s.
# Re-pricing misses the stage cache (a third as many boxes), and more than pays for it: R18,
# 50 s from the answer, 1.98 -> 1.31 %; R34 0.73 -> 0.70 %; R50 0.60 -> 0.56 % (every 3rd to
# 24th level and 2 to 8 steps measured: docs/deepmad.md). Every 9th was kept while the gaps
# were 0.3-1 %; near the target the top boxes' bounds at inherited multipliers are what holds
# the certificate (R34 after 40 s: six steps close 15 of the top 25), and every 6th measured
# better: 40 s from the best answers, R34 0.202-0.209 -> 0.186 %, R50 optimal in 29.2 -> 28.4
# s; a 60-s R34 solve 0.123 -> 0.113 %, R50 certified in 26 s (every 3rd or 5th: R34 as
# well, R50 35-36 s; every 2nd never screens, every 14th R34 0.241 %).
REPRICE_EVERY = 6
REPRICE_STEPS = 6
ROOT_STEPS = 40  # bundle steps at the first box (its children start from its multipliers)
# Bundle steps after the first box's stay within this share of the multipliers' size of the
# best ones: without it the level bundle's first steps jump to the edge of the multiplier box
# (R18, widths held at an answer, 6 steps a box: proven in 2.4 s with it, 10.2 s without).
TRUST = 0.25
# A bundle step's level: this far from the model's minimum towards the best bound. The global
# search takes LEVEL (0.7: its gaps after 50 s 1.13 / 0.57 / 0.42% against 1.18 / 0.61 / 0.45%
# at 0.3); searches within a box (the incumbents' neighbourhoods and depth profiles) and the
# first box's relaxed starts keep LOCAL_LEVEL, with which their phases were tuned (at 0.7 a
# 60-s R34 solve's first pass ended at 48,413 instead of 48,444.1).
LEVEL = 0.7
LOCAL_LEVEL = 0.3
RHO_SCALE = 100.0
_NEIGHBOURS = np.array([-1, 0]).reshape(2, 1, 1, 1)  # the bottleneck indices either side
# Feasible relaxed points within NEAR_POLISH below the incumbent are polished as new
# incumbents are, while that has taken at most NEAR_SHARE of the search's time (`_NearPolish`).
NEAR_POLISH = 0.005
NEAR_SHARE = 0.1
# ... and only while the search's gap is above NEAR_GAP: near the certificate the bounding
# time is worth more (a 60-s R34 solve, its gap 0.2-0.3 % when the polish may start, 0.113 %
# with it, 0.106 % without; R18's answers, which it lifts, stay 0.4-0.6 % from their bound).
NEAR_GAP = 0.003
# Every SCREEN_EVERY-th level of the tree (and the first box) a box's total depths with no
# feasible point are dropped (`screen`): R18 / R34 / R50, 40 s of global search from the best
# answers, one core, side by side: 0.874 / 0.497 / 0.308 % without, 0.836 / 0.451 / 0.228 %
# every 3rd level; every level 0.830 / 0.503 / 0.203 %, every 2nd 0.838 / 0.444 / 0.202 %
# (against 0.813 / 0.454 / 0.226 % every 3rd), only where a box is re-priced 0.855 / 0.496 /
# 0.254 %. SCREEN_GRID: the log-grid of budget prices the first box is screened over.
SCREEN_EVERY = 3
SCREEN_GRID = 16
STAGE_CACHE = 50_000  # entries per cache of `_stage` and its kind (about 1 kB each)
CHAIN_WORK = 300_000  # table entries above which a box is bounded stage by stage
# Which interval to bisect: weight x spread (depths: their range; the others: log-range); a
# width's weight grows with the alpha of the scale end it owns times that end's share of the
# relaxed point's layers (the end's width multiplies the log-widths of every
# layer before it, so the first stages' ends, after a handful of layers, loosen the bound
# little). Widths first: on R18 (30 s, same incumbent) depth 0.15 / bottleneck 0.5 left a
# bound of 37,906, these 37,408; R50 53,050 -> 52,648. With the layers' share (2026-11-29,
# 50 s from the same answers, one core, variants side by side): alpha alone 1.39 / 0.81 /
# 0.63 % (R18 / R34 / R50), by layers 1.22 / 0.65 / 0.47 %; then widths weigh more against
# depths, bottlenecks, kernels and the stem: width 2 1.06 / 0.54 / 0.38 %, width 4 1.05 /
# 0.42 / 0.29 %, width 8 0.96-0.98 / 0.51-0.53 / 0.31-0.32 %, width 16 1.00 / 0.53 / 0.38 %;
# width 4 with own 8 0.96 / 0.47 / 0.27 % against 1.00 / 0.44 / 0.29 % (kept; with it depth
# 0.01 0.97 / 0.43 / 0.26 %, 0.04 1.03 / 0.44 / 0.26 %).
BRANCH_WEIGHTS = {"depth": 0.02, "width": 4.0, "own": 8.0, "bottleneck": 0.1, "kernel": 0.5,
                  "stem": 2.0}  # effectiveness rows are in log-width units (hundreds): scale to ~1


@dataclass(frozen=True)
class Budgets:
    macs: float | None
    params: float | None
    rho: float | None
    floor: tuple[str, float] | None = None  # `entropy` or `entropy_score` >= a constant


def budgets(space: S.Space) -> Budgets:
    found: dict[str, float] = {}
    floors: dict[str, float] = {}
    for c in space.constraints:
        if not c.metrics:
            continue
        try:
            name, value = metric_bound(c)
        except Unsupported:
            name, value = metric_floor(c)
            if name not in ("entropy", "entropy_score"):
                raise
            floors[name] = max(value, floors.get(name, -math.inf))
            continue
        if name not in ("macs", "params", "effectiveness"):
            raise Unsupported(f"`require {c.text}`: the box search bounds only macs, params "
                              "and effectiveness from above, entropy from below")
        found[name] = min(value, found.get(name, math.inf))
    if len(floors) > 1:
        raise Unsupported("the box search takes one lower bound on entropy or entropy_score")
    return Budgets(found.get("macs"), found.get("params"), found.get("effectiveness"),
                   next(iter(floors.items()), None))


# ---------------------------------------------------------------- per-stage tables


@dataclass
class StageTable:
    """Every allowed (width, bottleneck) pair of a stage and, per pair and kernel, the stage's
    log-widths and costs split into first block, each further block, and the part that
    multiplies the input width c."""

    wi: np.ndarray  # (P,) width index of each pair
    bi: np.ndarray  # (P,) bottleneck index
    logw: np.ndarray  # (P,)
    u: np.ndarray  # (P, K) log(b k^2) + log b: the first block's own logs (log c aside)
    v: np.ndarray  # (P, K) logs of each further block
    m1: np.ndarray  # MACs of the first block without the c terms
    m2: np.ndarray  # MACs of each further block
    gm: np.ndarray  # MACs per unit of c
    p1: np.ndarray
    p2: np.ndarray
    gp: np.ndarray
    depths: np.ndarray  # (D,) depth values
    widths: np.ndarray  # (W,) width values
    bottlenecks: np.ndarray  # (B,) bottleneck values
    row_of: np.ndarray  # (W, B): the pair's row, -1 where the requirements forbid it
    b_first: np.ndarray  # (W,) least allowed bottleneck index per width (-1: none)
    b_last: np.ndarray  # (W,) greatest
    contiguous: bool  # every width's allowed bottlenecks form one interval of the domain
    head_macs: np.ndarray  # (W,) the head's MACs at each width (zero but for the last stage)
    head_params: np.ndarray  # (W,)


def stage_table(st, pairs: list[tuple[int, int]], head: Head) -> StageTable:
    """The stage's allowed (width, bottleneck) pairs and their costs; `head`: the costs of the
    layers after the stage (a classifier after the last stage, none elsewhere), which depend
    only on the stage's width, so they are counted with its first block."""
    wi = np.array([a for a, _ in pairs], dtype=np.int64)
    bi = np.array([b for _, b in pairs], dtype=np.int64)
    widths = np.array(st.widths, dtype=np.float64)
    w = widths[wi][:, None]
    b = np.array(st.bottlenecks, dtype=np.float64)[bi][:, None]
    k = np.array(st.kernels, dtype=np.float64)[None, :]
    r2, big = float(st.res_out ** 2), float(st.res_in ** 2)
    bbkk = b * b * k * k
    u = np.log(b * k * k) + np.log(b)
    row_of = np.full((len(st.widths), len(st.bottlenecks)), -1, dtype=np.int64)
    row_of[wi, bi] = np.arange(len(wi))
    allowed = row_of >= 0
    any_b = allowed.any(axis=1)
    b_first = np.where(any_b, np.argmax(allowed, axis=1), -1)
    b_last = np.where(any_b, allowed.shape[1] - 1 - np.argmax(allowed[:, ::-1], axis=1), -1)
    contiguous = bool(np.all(allowed.sum(axis=1) == np.where(any_b, b_last - b_first + 1, 0)))
    return StageTable(
        wi, bi, np.log(w[:, 0]), u, np.log(w) + u,
        r2 * (bbkk + b * w) + head.macs(w), r2 * (2 * w * b + bbkk),
        np.broadcast_to(big * b + r2 * w, u.shape),
        bbkk + 4 * b + b * w + 4 * w + head.params(w), 2 * w * b + bbkk + 4 * b + 2 * w,
        np.broadcast_to(b + w, u.shape), np.array(st.depths, dtype=np.float64),
        widths, np.array(st.bottlenecks, dtype=np.float64),
        row_of, b_first, b_last, contiguous,
        np.broadcast_to(head.macs(widths), widths.shape),  # a scalar when the head is none
        np.broadcast_to(head.params(widths), widths.shape))


def stage_tables(p: Staged, tables: Tables) -> list[StageTable]:
    """Every stage's table, the head counted with the last stage."""
    return [stage_table(st, pairs, p.head_after(i))
            for i, (st, pairs) in enumerate(zip(p.stages, tables.pairs))]


# ---------------------------------------------------------------- boxes


@dataclass(frozen=True)
class Box:
    """Index intervals [lo, hi] per decision: stem, then per stage (depth, width, bottleneck,
    kernel), then optionally the total depth (an interval of depth values, not indices; a box
    without it leaves the total free)."""

    lo: tuple[int, ...]
    hi: tuple[int, ...]

    def size(self, i: int) -> int:
        return self.hi[i] - self.lo[i] + 1

    def split(self, i: int, at: int) -> tuple[Box, Box]:
        """[lo, at] and [at + 1, hi] along decision i."""
        left_hi = list(self.hi)
        left_hi[i] = at
        right_lo = list(self.lo)
        right_lo[i] = at + 1
        return Box(self.lo, tuple(left_hi)), Box(tuple(right_lo), self.hi)


def _slot(stage: int, what: int) -> int:
    """Index in a box of stage's decision `what` (0 depth, 1 width, 2 bottleneck, 3 kernel)."""
    return 1 + 4 * stage + what


@dataclass
class Relaxed:
    """The Lagrangian relaxation's optimum in one box: bound, its subgradient, the point."""

    bound: float
    grad: np.ndarray
    point: Point
    totals: tuple[int, int] | None = None  # the totals whose bounds are above the target
    closed: float = -math.inf  # the largest bound of the totals below it
    # the point breaks a requirement for sure (its constraint values here are lower bounds of
    # its costs and exact in its logs), so it need not be scored
    infeasible: bool = False


Duals = np.ndarray | dict  # one set of multipliers, or a set per total depth (see `bound`)


@dataclass
class _Totals:
    """One relaxation of a box, split by total depth: each total's bound (`values`, over
    the box's points of that total) and, on demand, its relaxed point (`at`)."""

    totals: np.ndarray
    values: np.ndarray
    at: Callable[[int], Relaxed]

    def best(self) -> Relaxed:
        return self.at(int(np.argmax(self.values)))


@dataclass(frozen=True)
class _Block:
    """The depth grid of the stages the depth penalty covers, reduced for the bound by total
    depth. Their own values (per-stage values less the penalty, `q` over their grid) are
    maxed over the cells with the same sums per group of stages (`inner_*`, giving the
    `merged_shape` grid); then, on the outer grid (the cumulative depth before them, then
    the groups' sums), the effectiveness `cuts` (the block stage ending the group, g over the
    outer grid) are subtracted and the cells maxed per total depth (`order`, `starts`,
    `totals`). R18: 8,000 cells of its own, 18,000 outer, against 184,000 unreduced."""

    q: np.ndarray
    inner_order: np.ndarray
    inner_starts: np.ndarray
    merged_shape: tuple[int, ...]
    cuts: list[tuple[int, np.ndarray]]
    order: np.ndarray
    starts: np.ndarray
    totals: np.ndarray


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An order that sorts `keys`, where each key's run starts in it, and the keys."""
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    return order, starts, ranked[starts]


def _argmax_in_run(ranked: np.ndarray, order: np.ndarray, starts: np.ndarray, run: int) -> int:
    """The cell (index before `order` sorted it) of the largest value in one run."""
    stop = starts[run + 1] if run + 1 < len(starts) else len(ranked)
    return int(order[starts[run] + int(np.argmax(ranked[starts[run]: stop]))])


class _Memo(dict):
    """Results by key, emptied when it holds `limit` of them (the search moves on through
    the tree, so old entries are rarely asked for again)."""

    def __init__(self, limit: int = STAGE_CACHE) -> None:
        super().__init__()
        self.limit = limit

    def get_or(self, key, compute: Callable[[], object]):
        if key in self:
            return self[key]
        if len(self) >= self.limit:
            self.clear()
        self[key] = found = compute()
        return found


@dataclass
class _Prices:
    """What a stage's value depends on in one relaxation: the coefficient of its log-widths
    (`other` from the later scale ends at their widest, plus `own` ends at its own width),
    the next stage's coefficient of log c, the multipliers and the previous width c."""

    other: float
    own: list[tuple[float, float, float]]  # (h alpha_j, log r_j^2, nu_j) of ends it owns
    nxt: float
    log0: float
    lam: float
    mu: float
    c: float

    def coefficient(self, logw):
        out = self.other + 0.0 * logw
        for a, lr2, nu in self.own:
            out = out + a * (lr2 + logw) + nu
        return out

    def linear(self, tab: StageTable, rows, ks):
        """(A, B): the value of (row, kernel) at depth d is A + (d - 1) B."""
        logw = tab.logw[rows]
        K = self.coefficient(logw)
        extra = sum((a * (lr2 + logw) + nu) * self.log0 for a, lr2, nu in self.own) \
            if self.own else 0.0
        A = K * tab.u[rows, ks] + self.nxt * logw + extra \
            - self.lam * (tab.m1[rows, ks] + self.c * tab.gm[rows, ks]) \
            - self.mu * (tab.p1[rows, ks] + self.c * tab.gp[rows, ks])
        B = K * tab.v[rows, ks] - self.lam * tab.m2[rows, ks] - self.mu * tab.p2[rows, ks]
        return A, B


@dataclass
class _Geometry:
    """The parts of a stage's value (`BoxSearch._stage_analytic`) that depend on its box
    only: arrays over (width, kernel, depth) of its allowed widths."""

    wi: np.ndarray  # the widths (indices) with an allowed bottleneck in the box
    lo: np.ndarray  # their least and greatest allowed bottleneck index, (W, 1, 1)
    hi: np.ndarray
    w: np.ndarray  # (W, 1, 1)
    logw: np.ndarray
    d: np.ndarray  # (1, 1, D)
    depths: np.ndarray  # (D,)
    kl: int  # the box's first kernel index
    r2: float  # output resolution squared
    big: float  # input resolution squared
    my: np.ndarray  # MACs per unit of b and of the MAC multiplier, less the c term
    py: np.ndarray  # parameters per unit of b, less the c term
    dk2: np.ndarray  # d k^2: the b^2 terms
    logs: np.ndarray  # the stage's logs without b (times the log-width coefficient)
    mc: np.ndarray  # MACs without b, less the c term
    pc: np.ndarray  # parameters without b, less the c term


def _geometry(st, tab: StageTable, box: Box, t: int) -> _Geometry | None:
    dl, dh = box.lo[_slot(t, 0)], box.hi[_slot(t, 0)]
    kl, kh = box.lo[_slot(t, 3)], box.hi[_slot(t, 3)]
    wi = np.arange(box.lo[_slot(t, 1)], box.hi[_slot(t, 1)] + 1)
    lo = np.maximum(tab.b_first[wi], box.lo[_slot(t, 2)])
    hi = np.minimum(tab.b_last[wi], box.hi[_slot(t, 2)])
    keep = (tab.b_first[wi] >= 0) & (lo <= hi)
    if not keep.any():
        return None
    wi, lo, hi = wi[keep], lo[keep], hi[keep]
    w = tab.widths[wi][:, None, None]
    logw = np.log(w)
    k = np.array(st.kernels[kl: kh + 1], dtype=np.float64)[None, :, None]
    d = tab.depths[dl: dh + 1][None, None, :]
    r2, big = float(st.res_out ** 2), float(st.res_in ** 2)
    log_k2 = 2.0 * np.log(k)
    wide = w * (2 * d - 1)
    return _Geometry(
        wi, lo[:, None, None], hi[:, None, None], w, logw, d, tab.depths[dl: dh + 1], kl,
        r2, big, r2 * wide, 4 * d + wide, d * k * k, log_k2 + (d - 1) * (logw + log_k2),
        tab.head_macs[wi][:, None, None], 4 * w + tab.head_params[wi][:, None, None]
        + 2 * (d - 1) * w)


class BoxSearch:
    """Branch and bound for one recognised problem (see the module doc)."""

    def __init__(self, space: S.Space, p: Staged, metric: str, sense: str,
                 tables: Tables, scale: float = 1.0) -> None:
        # The search maximises `value`: the entropy (score), or a cost divided by `scale`
        # and negated (the least cost under the other requirements, which may include a
        # lower bound on the entropy: its multiplier is then the entropy's weight).
        if sense == "maximize" and metric in ("entropy", "entropy_score"):
            self.entropy_weight, self.cost_prices = 1.0, (0.0, 0.0)
        elif sense == "minimize" and metric in ("macs", "params"):
            self.entropy_weight = 0.0
            self.cost_prices = (1 / scale, 0.0) if metric == "macs" else (0.0, 1 / scale)
        else:
            raise Unsupported("the box search maximises entropy or entropy_score, or "
                              "minimises macs or params")
        self.p, self.space = p, space
        self.beta = p.beta if metric == "entropy_score" else 0.0
        self.metric, self.scale = metric, scale
        self.sign = 1.0 if sense == "maximize" else -1.0 / scale
        self.budgets = budgets(space)
        floor = self.budgets.floor
        if floor is not None and self.entropy_weight:
            raise Unsupported("the box search maximising entropy takes no lower bound on it")
        self.floor_beta = p.beta if floor is not None and floor[0] == "entropy_score" else 0.0
        self.tables = stage_tables(p, tables)
        self.chains = tables.chains  # per stage: (previous width, width) table, or None
        n = len(p.stages)
        self._total_slot = 1 + 4 * n  # where a box's total depth interval is
        self.penalised = list(range(max(0, n - p.penalty_stages), n)) if p.penalty_stages else \
            list(range(n))
        if (self.beta or self.floor_beta) and len(self.penalised) > 3:
            raise Unsupported("the box search tabulates the depth penalty over at most three "
                              "stages")
        self.ends = p.scale_ends()
        self.alphas = p.alphas()
        # per stage t: the scale ends whose Lambda holds its logs (`relax_totals`'s `coef`;
        # [False] all of them, [True] less the one it owns), and (alpha, log r^2, end) of
        # the ends it owns
        self._coef_ends = [
            {own: tuple(j for j, (i, _) in enumerate(self.ends)
                        if i > t and not (own and i - 1 == t)) for own in (False, True)}
            for t in range(len(p.stages))]
        self._owned = [[(a, math.log(res ** 2), j)
                        for j, (a, (i, res)) in enumerate(zip(self.alphas, self.ends))
                        if i - 1 == t] for t in range(len(p.stages))]
        k0 = p.stem_kernel
        self.stem_k2 = p.in_channels * k0 * k0
        self.log0 = math.log(self.stem_k2)
        self.stems = np.array(p.stems, dtype=np.float64)
        # effectiveness rows: scale ends after at least one stage
        self.rho_ends = [j for j, (i, _) in enumerate(self.ends) if i > 0] \
            if self.budgets.rho is not None else []
        self.nduals = 2 + len(self.rho_ends) + (floor is not None)
        from archlang.solvers.milp.heuristic import ranker

        self._rank = ranker(space, p, metric, sense)
        self._blocks, self._stages = _Memo(4096), _Memo()
        self._least, self._pairs = _Memo(), _Memo()
        self._geometries = _Memo(4096)  # up to hundreds of kB each, for wide boxes
        self._log_b = [np.log(tab.bottlenecks) for tab in self.tables]
        # `_relaxed_point` reads one row of a stage's costs and logs as Python floats
        self._packs = [np.stack([tab.m1, tab.m2, tab.gm, tab.p1, tab.p2, tab.gp, tab.u, tab.v],
                                axis=-1) for tab in self.tables]
        self._pair_values = [[(st.widths[a], st.bottlenecks[b]) for a, b in zip(tab.wi, tab.bi)]
                             for st, tab in zip(p.stages, self.tables)]
        self._logws = [tab.logw.tolist() for tab in self.tables]
        self.root_duals: np.ndarray | None = None
        # `_screen_prices`: None until computed, then (its prices or None,)
        self._screen: tuple[np.ndarray | None] | None = None
        from archlang.solvers.milp.chainbound import ChainBound

        self.chain: ChainBound | None = None
        if self.entropy_weight:
            try:
                self.chain = ChainBound(self)
            except Unsupported:
                pass

    def value(self, point: Point) -> float:
        """The objective the search maximises (see `__init__`)."""
        return self.sign * scores(self.p, point)[self.metric]

    def first_duals(self) -> np.ndarray:
        if self.entropy_weight:
            return np.array([1000.0, 1000.0] + [100.0] * len(self.rho_ends))
        return np.array([0.0] * (2 + len(self.rho_ends))
                        + [1.0] * (self.budgets.floor is not None))

    def least_value(self) -> float:
        """Less than the value of every point of the space, so that a box bounded below it
        has no feasible point (how the search proves infeasibility): the entropy is a sum of
        products of non-negative logs and the depth penalty at most exp(half the depth
        range); a cost is at most its value with every decision at its largest."""
        p = self.p
        if self.entropy_weight:
            if any(a < 0 for a in self.alphas):
                return -math.inf
            depths = [d for t in self.penalised for d in p.stages[t].depths]
            lowest = -self.beta * math.exp((max(depths) - min(depths)) / 2)
        else:
            largest = (max(p.stems), tuple((max(st.depths), max(st.widths), max(st.bottlenecks),
                                            max(st.kernels)) for st in p.stages))
            lowest = self.value(largest)
        return lowest - 1e-9 * max(1.0, abs(lowest))

    def total_depths(self, box: Box) -> tuple[int, int] | None:
        """The box's interval of total depths (the sum of the stage depths), if it has one."""
        at = self._total_slot
        return (box.lo[at], box.hi[at]) if len(box.lo) > at else None

    def _depths_fixed(self, box: Box) -> bool:
        return all(box.lo[_slot(t, 0)] == box.hi[_slot(t, 0)] for t in range(len(self.p.stages)))

    def bound_of(self, box: Box, duals: np.ndarray) -> Relaxed | None:
        """The box's bound at `duals`: exact in the widths (`ChainBound`) where that is
        cheap enough, else stage by stage (`relax`)."""
        return self.chain.relax(box, duals) if self._chained(box) else self.relax(box, duals)

    def _chained(self, box: Box) -> bool:
        """Whether `bound_of` bounds the box exactly in the widths (`ChainBound`)."""
        return self.chain is not None and self._depths_fixed(box) and \
            self.chain.work(box) <= CHAIN_WORK

    # ------------------------------------------------------------ widths of a box
    def _width_values(self, box: Box, t: int) -> np.ndarray:
        """Width values of stage t's box (t = -1: the stem)."""
        if t < 0:
            return self.stems[box.lo[0]: box.hi[0] + 1]
        s = _slot(t, 1)
        return self.tables[t].widths[box.lo[s]: box.hi[s] + 1]

    def _g(self, n: float) -> float:
        return n * math.log(n / self.budgets.rho)

    # ------------------------------------------------------------ the bound
    def relax(self, box: Box, duals: np.ndarray) -> Relaxed | None:
        """Upper bound of the objective over `box` for multipliers `duals` = (lambda, mu,
        nu..., and eta for an entropy floor), with its subgradient and the relaxation's
        optimum as a point; None if the box has no (width, bottleneck) pair the requirements
        allow."""
        r = self._relax(box, duals)
        if r is None or self.budgets.floor is None:
            return r
        # The bound is piecewise linear in eta; its slope (the relaxation's own entropy less
        # the floor -- not the relaxed point's entropy, which the bound over-counts) is read
        # off a small step.
        step = 1e-6 * max(1.0, duals[-1])
        up = duals.copy()
        up[-1] += step
        r2 = self._relax(box, up)
        if r2 is not None:
            r.grad[-1] = (r2.bound - r.bound) / step
        return r

    def _relax(self, box: Box, duals: np.ndarray) -> Relaxed | None:
        found = self.relax_totals(box, duals)
        return None if found is None else found.best()

    def relax_totals(self, box: Box, duals: np.ndarray,
                     feasibility: bool = False) -> _Totals | None:
        """The relaxation's bound for each total depth of the box at `duals` (no entropy
        floor: its multiplier's slope is read off the whole box's bound, see `relax`).
        `feasibility`: the requirements' terms alone, without the objective (`screen`)."""
        p, ends = self.p, self.ends
        nst = len(p.stages)
        M = self.budgets.macs or 0.0
        P = self.budgets.params or 0.0
        costs = (0.0, 0.0) if feasibility else self.cost_prices
        lam = (duals[0] / M if M else 0.0) + costs[0]
        mu = (duals[1] / P if P else 0.0) + costs[1]
        ew, beta = (0.0, 0.0) if feasibility else (self.entropy_weight, self.beta)
        floor = None if feasibility else self.budgets.floor
        if floor is not None:  # eta (entropy - floor): the multiplier weighs the entropy
            ew = duals[-1] / _floor_scale(floor[1])
            beta = ew * self.floor_beta
        nu = np.zeros(len(ends))
        for r, j in enumerate(self.rho_ends):
            nu[j] = duals[2 + r] / RHO_SCALE
        # phi_j at the box's widest c_j, and the owner stage of each scale end (-1: stem)
        owner = [i - 1 for i, _ in ends]
        hi_c = [self._width_values(box, o)[-1] for o in owner]
        phi_hi = [ew * p.half * a * math.log(res * res * c) + nu[j]
                  for j, (a, (_, res), c) in enumerate(zip(self.alphas, ends, hi_c))]

        def coef(t: int, own: bool) -> float:
            """Sum of phi_hi over the ends whose Lambda includes stage t's own logs (own=True
            skips the end that stage t owns)."""
            return sum(map(phi_hi.__getitem__, self._coef_ends[t][own]))

        total = duals[0] + duals[1]  # lambda (1 - macs / M) + mu (1 - params / P)
        if floor is not None:
            total -= ew * floor[1]
        # ---- stem
        s_vals = self._width_values(box, -1)
        s_val = coef(0, False) * np.log(s_vals) - lam * p.stem_res ** 2 * self.stem_k2 * s_vals \
            - mu * (self.stem_k2 + 2) * s_vals
        for j, (_, res) in enumerate(ends):  # phi_j * log0 of the ends the stem owns
            if owner[j] == -1:
                s_val = s_val + (ew * p.half * self.alphas[j] * np.log(res * res * s_vals)
                                 + nu[j]) * self.log0
        si = int(np.argmax(s_val))
        total += float(s_val[si])
        stem = int(s_vals[si])
        # ---- stages: the best (width, bottleneck, kernel) per depth
        per_depth = []  # per stage: (depth values, best value, its row, its kernel index)
        for t, tab in enumerate(self.tables):
            own_phi = [(ew * p.half * a, lr2, nu[j]) for a, lr2, j in self._owned[t]]
            prices = _Prices(coef(t, True), own_phi, coef(t + 1, False) if t + 1 < nst else 0.0,
                             self.log0, lam, mu, self._width_values(box, t - 1)[0])
            found = self._stage(t, tab, box, prices)
            if found is None:
                return None
            per_depth.append(found)
        # ---- depths: the effectiveness terms -nu_j g(1 + 3 D_j) exactly, by a DP over the
        # cumulative depth D; the penalised stages' depths jointly (the depth penalty)
        cut_at = {ends[j][0]: j for j in self.rho_ends if nu[j] > 0}
        total_range = self.total_depths(box)
        block = self.penalised if beta else []
        first = nst - len(block)
        F = np.zeros(1)  # best value by cumulative depth (index = D)
        backs = []
        for t in range(first):
            depths, best, *_ = per_depth[t]
            di = depths.astype(np.int64)
            # each depth q shifts F by its value: one row per depth, maxed per column
            grid = np.full((len(di), len(F) + int(di[-1])), -np.inf)
            grid[np.arange(len(di))[:, None], di[:, None] + np.arange(len(F))] = \
                F + best[:, None]
            back = np.argmax(grid, axis=0)
            F = grid[back, np.arange(grid.shape[1])]
            back[np.isneginf(F)] = -1
            backs.append(back)
            if t + 1 in cut_at:
                D = np.arange(len(F))
                F = F - nu[cut_at[t + 1]] * self._g_vec(1 + 3 * D)
        # ---- the best value per total depth (the sum of the stage depths), each a bound on
        # the box's points of that total
        if block:
            blk = self._block_tables(len(F), tuple(per_depth[t][0] for t in block),
                                     tuple(t + 1 in cut_at for t in block))
            own = -beta * blk.q
            for axis, t in enumerate(block):
                view = [1] * len(block)
                view[axis] = -1
                own = own + per_depth[t][1].reshape(view)
            # the best of the block's own values for each combination of its groups' sums
            inner = own.ravel()[blk.inner_order]
            merged = np.maximum.reduceat(inner, blk.inner_starts).reshape(blk.merged_shape)
            value = F.reshape((-1,) + (1,) * len(blk.merged_shape)) + merged
            for end, g in blk.cuts:
                value = value - nu[cut_at[block[end] + 1]] * g
            ranked = value.ravel()[blk.order]
            totals, values = blk.totals, np.maximum.reduceat(ranked, blk.starts)
        else:
            totals, values = np.arange(len(F)), F
        keep = np.isfinite(values)
        if total_range is not None:
            keep &= (totals >= total_range[0]) & (totals <= total_range[1])
        if not keep.any():
            return None
        kept = np.flatnonzero(keep)

        def at(g: int) -> Relaxed:
            """The relaxed point of the total `totals[g]`, its bound and subgradient."""
            chosen_q = [0] * nst
            if block:
                cell = _argmax_in_run(ranked, blk.order, blk.starts, g)
                D_end, merged_cell = divmod(cell, merged.size)
                own_cell = _argmax_in_run(inner, blk.inner_order, blk.inner_starts,
                                          merged_cell)
                for t, ix in zip(block, np.unravel_index(own_cell, own.shape)):
                    chosen_q[t] = int(ix)
            else:
                D_end = int(totals[g])
            for t in range(first - 1, -1, -1):
                q = int(backs[t][D_end])
                chosen_q[t] = q
                D_end -= int(per_depth[t][0][q])
            return self._relaxed_point(box, stem, per_depth, chosen_q,
                                       total + float(values[g]))

        return _Totals(totals[kept], values[kept] + total, lambda i: at(int(kept[i])))

    def _stage(self, t: int, tab: StageTable, box: Box, prices: _Prices):
        """Stage t's best value per depth (`_stage_analytic` or `_stage_dense`), cached: a
        box's children are priced with its multipliers, and a split changes one stage's
        interval (and the prices of the stages its width reaches), so most stages of a child
        repeat its parent's."""
        s = _slot(t, 0)
        key = (t, box.lo[s: s + 4], box.hi[s: s + 4], prices.other, tuple(prices.own),
               prices.nxt, prices.lam, prices.mu, prices.c)
        best = self._stage_analytic if tab.contiguous else self._stage_dense
        return self._stages.get_or(key, lambda: best(t, tab, box, prices))

    def _relaxed_point(self, box: Box, stem: int, per_depth: list, chosen_q: list[int],
                       bound: float) -> Relaxed:
        """The relaxation's point given its choice per stage, and its constraint values (the
        subgradient)."""
        p, ends = self.p, self.ends
        M = self.budgets.macs or 0.0
        P = self.budgets.params or 0.0
        stages = []
        macs = p.stem_res ** 2 * self.stem_k2 * stem
        params = (self.stem_k2 + 2) * stem
        logs_to = [self.log0 + (math.log(stem) if i > 0 else 0.0) for i, _ in ends]
        for t, st in enumerate(p.stages):
            depths, _, best_rows, best_ks = per_depth[t]
            q = chosen_q[t]
            row, k, d = int(best_rows[q]), int(best_ks[q]), float(depths[q])
            c_lo = float(self._width_values(box, t - 1)[0])
            m1, m2, gm, p1, p2, gp, u, v = self._packs[t][row, k].tolist()
            macs += m1 + (d - 1) * m2 + c_lo * gm
            params += p1 + (d - 1) * p2 + c_lo * gp
            stages.append((int(d), *self._pair_values[t][row], st.kernels[k]))
            own, logw = u + (d - 1) * v, self._logws[t][row]
            for j, (i, _) in enumerate(ends):
                if i > t:
                    logs_to[j] += own
                    if i > t + 1:
                        logs_to[j] += logw
        grad = np.zeros(self.nduals)
        if M:
            grad[0] = 1.0 - macs / M
        if P:
            grad[1] = 1.0 - params / P
        cum = list(itertools.accumulate(d for d, *_ in stages))
        for r, j in enumerate(self.rho_ends):
            n = 1 + 3 * cum[ends[j][0] - 1]
            grad[2 + r] = (logs_to[j] - self._g(n)) / RHO_SCALE
        rows = 2 + len(self.rho_ends)
        return Relaxed(bound, grad, (stem, tuple(stages)),
                       infeasible=float(grad[:rows].min()) < -1e-9)

    def _stage_dense(self, t: int, tab: StageTable, box: Box, pr: _Prices):
        """Best value per depth over every (pair, kernel) of the box: one table max."""
        dl, dh = box.lo[_slot(t, 0)], box.hi[_slot(t, 0)]
        kl, kh = box.lo[_slot(t, 3)], box.hi[_slot(t, 3)]
        rows = np.flatnonzero((tab.wi >= box.lo[_slot(t, 1)]) & (tab.wi <= box.hi[_slot(t, 1)])
                              & (tab.bi >= box.lo[_slot(t, 2)])
                              & (tab.bi <= box.hi[_slot(t, 2)]))
        if rows.size == 0:
            return None
        ks = np.arange(kl, kh + 1)
        A, B = pr.linear(tab, rows[:, None], ks[None, :])
        depths = tab.depths[dl: dh + 1]
        vals = A.ravel()[None, :] + (depths[:, None] - 1) * B.ravel()[None, :]
        arg = np.argmax(vals, axis=1)
        r, kk = np.divmod(arg, len(ks))
        return depths, vals[np.arange(len(depths)), arg], rows[r], ks[kk]

    def _stage_analytic(self, t: int, tab: StageTable, box: Box, pr: _Prices):
        """The same, where every width's bottlenecks form an interval: for a (width, kernel,
        depth) the value is ``x log b - y b - z b^2 + C`` -- concave in b -- so the best
        bottleneck is a neighbour of the stationary point (clipped to the interval). Every
        term is in closed form (the table's columns, `stage_table`, written out in b), so
        no table is read until the best of each depth is known; what does not depend on the
        prices is computed once per box of the stage (`_geometry`)."""
        g = self._geometry(t, tab, box)
        if g is None:
            return None
        K = pr.coefficient(g.logw)  # (W, 1, 1)
        if K.min() < 0:  # a negative weight (alpha) makes the value convex in b
            return self._stage_dense(t, tab, box, pr)
        lam, mu, c = pr.lam, pr.mu, pr.c
        x = (2.0 * K) * g.d
        per_b2 = lam * g.r2 + mu  # the b^2 terms' price per unit of d k^2
        y = lam * g.my + mu * g.py + c * (lam * g.big + mu)
        z = per_b2 * g.dk2
        # the terms constant in kernel and depth first, on the (W, 1, 1) arrays
        per_width = pr.nxt * g.logw - lam * g.mc - mu * g.pc - (c * per_b2) * g.w
        for a, lr2, nu in pr.own:
            per_width = per_width + (a * (lr2 + g.logw) + nu) * pr.log0
        C = K * g.logs + per_width
        if per_b2 > 0:  # z > 0 throughout (d k^2 >= 1)
            star = (np.sqrt(y * y + 8 * z * x) - y) / (4 * z)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                star = np.where(y + 0.0 * z > 0, x / y, np.inf)  # z: the kernel axis
        j = np.searchsorted(tab.bottlenecks, star)  # candidates j - 1 and j
        cands = j[None] + _NEIGHBOURS
        np.maximum(cands, g.lo, out=cands)
        np.minimum(cands, g.hi, out=cands)
        b = tab.bottlenecks[cands]
        vals = x * self._log_b[t][cands] - (y + z * b) * b + C  # (2, width, kernel, depth)
        flat = vals.reshape(-1, vals.shape[-1])
        arg = np.argmax(flat, axis=0)
        cols = np.arange(flat.shape[1])
        c_i, w_i, k_i = np.unravel_index(arg, vals.shape[:-1])
        rows = tab.row_of[g.wi[w_i], cands[c_i, w_i, k_i, cols]]
        return g.depths, flat[arg, cols], rows, g.kl + k_i

    def _geometry(self, t: int, tab: StageTable, box: Box) -> _Geometry | None:
        s = _slot(t, 0)
        return self._geometries.get_or((t, box.lo[s: s + 4], box.hi[s: s + 4]),
                                       lambda: _geometry(self.p.stages[t], tab, box, t))

    def _block_tables(self, n_before: int, depths: tuple[np.ndarray, ...],
                      cut: tuple[bool, ...]) -> _Block:
        """The penalised stages' depth grid and its reduction (`_Block`). It depends on the
        depth ranges only, so it is cached."""
        key = (n_before, tuple((float(d[0]), len(d)) for d in depths), cut)
        return self._blocks.get_or(key, lambda: self._block(n_before, depths, cut))

    def _block(self, n_before: int, depths: tuple[np.ndarray, ...],
               cut: tuple[bool, ...]) -> _Block:
        # Stages merge into groups that end where a scale end's effectiveness is priced (or
        # at the last stage): within a group only the sum of the depths matters outside it.
        groups: list[list[int]] = [[]]
        for i, at in enumerate(cut):
            groups[-1].append(i)
            if at and i < len(cut) - 1:
                groups.append([])
        axes = len(depths)
        grids = []
        for axis, d in enumerate(depths):
            view = [1] * axes
            view[axis] = -1
            grids.append(d.reshape(view))
        shape = tuple(len(d) for d in depths)
        mean = sum(grids) / axes
        q = np.exp(np.sqrt(sum((g - mean) ** 2 for g in grids) / axes))
        sums, keys = [], []
        for group in groups:
            total = np.broadcast_to(sum(grids[i] for i in group), shape).ravel()
            values, index = np.unique(total, return_inverse=True)
            sums.append(values)
            keys.append(index.ravel())
        merged_shape = tuple(len(v) for v in sums)
        inner_order, inner_starts, _ = _runs(np.ravel_multi_index(keys, merged_shape))
        # the outer grid: the cumulative depth before the block, then each group's sum
        cum = np.arange(n_before, dtype=np.float64).reshape([-1] + [1] * len(groups))
        cuts = []
        for axis, (group, values) in enumerate(zip(groups, sums), 1):
            view = [1] * (len(groups) + 1)
            view[axis] = -1
            cum = cum + values.reshape(view)
            if cut[group[-1]]:
                cuts.append((group[-1], self._g_vec(1 + 3 * cum)))
        outer = np.broadcast_to(cum, (n_before,) + merged_shape).ravel().astype(np.int64)
        order, starts, totals = _runs(outer)
        return _Block(q, inner_order, inner_starts, merged_shape, cuts, order, starts, totals)

    def _g_vec(self, n: np.ndarray) -> np.ndarray:
        return n * np.log(n / self.budgets.rho)

    # ------------------------------------------------------------ boxes
    def root(self) -> Box:
        lo, hi = [0], [len(self.p.stems) - 1]
        for st in self.p.stages:
            lo += [0, 0, 0, 0]
            hi += [len(st.depths) - 1, len(st.widths) - 1, len(st.bottlenecks) - 1,
                   len(st.kernels) - 1]
        # The total depth is a decision of its own: one more block anywhere is worth about
        # as much as the whole gap (2% of the entropy on R18), so a box whose total ranges
        # mixes a point over the budgets with one under them, and its bound sits between.
        lo.append(sum(min(st.depths) for st in self.p.stages))
        hi.append(sum(max(st.depths) for st in self.p.stages))
        return Box(tuple(lo), tuple(hi))

    def around(self, point: Point, width_steps: int,
               depths: tuple[int, ...] | None = None) -> Box:
        """The box of every point whose widths (and stem) are within `width_steps` values of
        `point`'s; bottlenecks and kernels free; depths free, or fixed to `depths`. A large
        neighbourhood to search."""
        lo, hi = list(self.root().lo), list(self.root().hi)
        stem, stages = point
        for t, d in enumerate(depths or ()):
            lo[_slot(t, 0)] = hi[_slot(t, 0)] = self.p.stages[t].depths.index(d)
        slots = [(0, self.p.stems, stem)] + [(_slot(t, 1), st.widths, w) for t, (st, (_, w, _, _))
                                             in enumerate(zip(self.p.stages, stages))]
        for slot, values, value in slots:
            i = values.index(value)
            lo[slot] = max(0, i - width_steps)
            hi[slot] = min(len(values) - 1, i + width_steps)
        return Box(tuple(lo), tuple(hi))

    def propagate(self, box: Box) -> Box | None:
        """Shrink the width intervals to values some neighbour in its interval allows (the
        requirements between consecutive widths) and the depth intervals and the total depth
        to values the others allow; None if an interval empties."""
        lo, hi = list(box.lo), list(box.hi)
        if self.total_depths(box) is not None and not self._propagate_total(lo, hi):
            return None
        for _ in range(2):
            before = (lo[:], hi[:])
            for t, chain in enumerate(self.chains):
                if chain is None:
                    continue
                a = 0 if t == 0 else _slot(t - 1, 1)
                b = _slot(t, 1)
                narrowed = self._narrow_pair(t, chain, lo[a], hi[a], lo[b], hi[b])
                if narrowed is None:
                    return None
                lo[a], hi[a], lo[b], hi[b] = narrowed
            if (lo, hi) == before:
                break
        return Box(tuple(lo), tuple(hi))

    def _narrow_pair(self, t: int, chain: np.ndarray, lo_a: int, hi_a: int, lo_b: int,
                     hi_b: int) -> tuple[int, int, int, int] | None:
        """The intervals of stage t's previous width (a) and its width (b) narrowed to the
        values some value of the other allows; None if none. Cached: children repeat their
        parent's pairs but one."""
        def narrowed() -> tuple[int, int, int, int] | None:
            sub = chain[lo_a: hi_a + 1, lo_b: hi_b + 1]
            cur = np.flatnonzero(sub.any(axis=0))
            prev = np.flatnonzero(sub.any(axis=1))
            if cur.size == 0 or prev.size == 0:
                return None
            return (lo_a + int(prev[0]), lo_a + int(prev[-1]), lo_b + int(cur[0]),
                    lo_b + int(cur[-1]))

        return self._pairs.get_or((t, lo_a, hi_a, lo_b, hi_b), narrowed)

    def _propagate_total(self, lo: list[int], hi: list[int]) -> bool:
        """Narrow (in place) the stage depths and the total depth to the values the others'
        intervals allow; False if one empties."""
        stages, at = self.p.stages, self._total_slot
        for _ in range(2):
            least = [st.depths[lo[_slot(t, 0)]] for t, st in enumerate(stages)]
            most = [st.depths[hi[_slot(t, 0)]] for t, st in enumerate(stages)]
            lo[at], hi[at] = max(lo[at], sum(least)), min(hi[at], sum(most))
            if lo[at] > hi[at]:
                return False
            for t, st in enumerate(stages):
                s = _slot(t, 0)
                low = lo[at] - (sum(most) - most[t])
                high = hi[at] - (sum(least) - least[t])
                while lo[s] <= hi[s] and st.depths[lo[s]] < low:
                    lo[s] += 1
                while hi[s] >= lo[s] and st.depths[hi[s]] > high:
                    hi[s] -= 1
                if lo[s] > hi[s]:
                    return False
        return True

    def too_costly(self, box: Box) -> bool:
        """Whether even the box's cheapest choices break the MAC or parameter budget. Every
        cost grows with every decision, so a stage's least cost is at its least depth, kernel
        and previous width, and for each width its least allowed bottleneck."""
        p = self.p
        s = float(self._width_values(box, -1)[0])
        macs = p.stem_res ** 2 * self.stem_k2 * s
        params = (self.stem_k2 + 2) * s
        for t, tab in enumerate(self.tables):
            least = self._least_costs(t, tab, box, float(self._width_values(box, t - 1)[0]))
            if least is None:
                return True
            macs += least[0]
            params += least[1]
        b = self.budgets
        return (b.macs is not None and macs > b.macs) or \
            (b.params is not None and params > b.params)

    def _least_costs(self, t: int, tab: StageTable, box: Box,
                     c: float) -> tuple[float, float] | None:
        """Stage t's least MACs and parameters in the box after a width c; None if the
        requirements allow no (width, bottleneck) pair there. Cached as `_stage` is."""
        s = _slot(t, 0)
        return self._least.get_or((t, box.lo[s: s + 4], box.hi[s: s + 4], c),
                                  lambda: _stage_least_costs(t, tab, box, c))


    def bound(self, box: Box, duals: Duals, target: float, iterations: int,
              trust: float = math.inf,
              level: float = LOCAL_LEVEL) -> tuple[Relaxed | None, Duals]:
        """The least bound over a few bundle steps, total depth by total depth. Each step's
        relaxation bounds every total of the box at once (`relax_totals`), so each total
        keeps the least bound of any step, and the box's bound is the largest total's: never
        above the least bound of any one step. The steps are a level bundle for the box as a
        whole until its model says that bound will not fall; then each step is aimed at the
        total whose bound is largest (from the multipliers the box's parent found for that
        total, then bundle steps for that total alone). A total is done once its bound is
        below `target`, and is left out of the box's children.

        One set of multipliers for the whole box prices a mix of a deeper point over the
        budgets and a shallower one under them, and sits between them: one more block is
        worth about 2 % of the entropy on R18, as much as the gap. Per total the mix is
        gone: on R18's top boxes, converged, the bound fell from +1.8 % to +0.4 % of the
        answer. Aiming every step at one total from the first did not pay in the search
        (docs/deepmad.md, "Bounds by total depth").

        `duals`: the multipliers to start from, one array or a dict by total (key None:
        the parent's that bounded the whole box best). Returns the box's bound and relaxed point (of
        its largest total) with the totals still above the target, and the multipliers by
        total for the box's children."""
        starts = duals if isinstance(duals, dict) else {None: duals}
        pi = starts[None]
        best: dict[int, tuple[float, np.ndarray, _Totals, int]] = {}
        solvers: dict[int, DualSolver] = {}
        pending: dict[int, list[tuple[float, _Totals, int, np.ndarray]]] = {}
        tried: set[int] = set()
        whole = (math.inf, pi)  # the multipliers whose largest total's bound is least
        whole_solver, per_total = DualSolver(self.nduals), False
        for step in range(iterations):
            found = self._bound_totals(box, pi)
            if found is None:
                return None, starts
            top_value = float(found.values.max())
            if top_value < whole[0]:
                whole = (top_value, pi)
            if step < iterations - 1:  # a cut only where another step may follow
                whole_solver.add(top_value, found.best().grad, pi)
            alive = []
            for g, (total, value) in enumerate(zip(found.totals.tolist(),
                                                   found.values.tolist())):
                if total not in best or value < best[total][0]:
                    best[total] = (value, pi, found, g)
                if best[total][0] > target and step < iterations - 1:
                    alive.append(total)
                    # its cut, made only if a step is aimed at this total (a relaxed
                    # point per total and step is most of a re-priced box's time)
                    pending.setdefault(total, []).append((value, found, g, pi))
            if not alive:
                break
            if not per_total:  # a step for the box as a whole while that still pays
                nxt = self._next_duals(whole_solver, whole[0], whole[1], trust, level)
                if nxt is not None:
                    pi = nxt
                    continue
                per_total = True
            top = max(alive, key=lambda total: best[total][0])
            if top in starts and top not in tried:
                tried.add(top)
                if starts[top] is not pi:
                    pi = starts[top]
                    continue
            solver = solvers.setdefault(top, DualSolver(self.nduals))
            for value, at_found, g, at_pi in pending.pop(top, ()):
                solver.add(value, at_found.at(g).grad, at_pi)
            nxt = self._next_duals(solver, best[top][0], best[top][1], trust, level)
            if nxt is None:
                break  # the largest total's bound will not fall: nor will the box's
            pi = nxt
        top = max(best, key=lambda total: best[total][0])
        value, pi, found, g = best[top]
        r = found.at(g)
        alive = [total for total, b in best.items() if b[0] > target]
        closed = [b[0] for b in best.values() if b[0] <= target]
        if closed:
            r.closed = max(closed)
        if alive and min(best) >= 0 and self.total_depths(box) is not None:
            r.totals = (min(alive), max(alive))
        return r, {None: whole[1], **{total: best[total][1] for total in alive}}

    @staticmethod
    def _next_duals(solver: DualSolver, high: float, near: np.ndarray,
                    trust: float, level: float) -> np.ndarray | None:
        """A level bundle step from the best multipliers `near` (whose bound is `high`),
        within `trust` times their size, to the model's level `level` of the way from its
        minimum to `high`; None once the model says the bound will not fall."""
        model = solver.model_min(near, trust * max(float(near.max()), 1.0))
        if model is None or high - model[0] <= 1e-5 * abs(high):
            return None
        return solver.next_point(near, model[0] + level * (high - model[0]))

    def _bound_totals(self, box: Box, duals: np.ndarray) -> _Totals | None:
        """`bound_of` split by total depth where the stage-by-stage bound is used without
        an entropy floor; else one entry (its total -1: not split)."""
        if self.budgets.floor is None and not self._chained(box):
            return self.relax_totals(box, duals)
        r = self.bound_of(box, duals)
        return None if r is None else _Totals(np.array([-1]), np.array([r.bound]),
                                               lambda i: r)

    def screen(self, box: Box) -> Box | None:
        """The box less the greatest and least total depths at which it has no feasible
        point (None: it has none at all). The objective's bound cannot drop them: one more
        block is worth more entropy than the budgets' prices the bundle reaches take away,
        so a total with no point that meets the budgets and the last effectiveness limit
        keeps a bound above the answer (on R18's top boxes after 40 s of search the deepest
        totals, 43-45, had none and held the bound). The Lagrangian of feasibility alone --
        the last scale end's log-width sum less its least, less the priced budgets -- is
        non-negative at every feasible point, so a total whose bound is negative is empty;
        it is priced at the prices that bound the first box's totals best (`_screen_prices`)."""
        prices = self._screen_prices()
        if prices is None or self.total_depths(box) is None:
            return box
        found = self.relax_totals(box, prices, feasibility=True)
        if found is None:
            return None
        kept = found.totals[found.values >= 0]
        if kept.size == 0:
            return None
        return self.propagate(self._with_totals(box, (int(kept[0]), int(kept[-1]))))

    def _screen_prices(self) -> np.ndarray | None:
        """The multipliers of `screen` (None where there is no total depth or effectiveness
        limit to screen, or the objective is a cost): the MAC and parameter prices of a
        log-grid that bound the feasibility of the first box's total nearest the frontier
        (the total whose least bound is nearest zero) least. Computed once (about a
        second: some hundreds of relaxations of the first box)."""
        if self._screen is not None:
            return self._screen[0]
        self._screen = (None,)
        root = self.propagate(self.root())
        if not (self.entropy_weight and self.rho_ends and self.budgets.floor is None) \
                or root is None or self.total_depths(root) is None:
            return None
        grid = [0.0] + list(np.geomspace(1.0, 3000.0, SCREEN_GRID))
        least: dict[int, tuple[float, np.ndarray]] = {}
        for lam in grid:
            for mu in grid:
                duals = np.zeros(self.nduals)
                # the last end's effectiveness row at 1 (it is in log-width units)
                duals[0], duals[1], duals[1 + len(self.rho_ends)] = lam, mu, RHO_SCALE
                found = self.relax_totals(root, duals, feasibility=True)
                if found is None:
                    return None
                for total, value in zip(found.totals.tolist(), found.values.tolist()):
                    if value < least.get(total, (math.inf,))[0]:
                        least[total] = (value, duals)
        self._screen = (min(least.values(), key=lambda entry: abs(entry[0]))[1],)
        return self._screen[0]

    def _with_totals(self, box: Box, totals: tuple[int, int]) -> Box:
        at = self._total_slot
        lo, hi = list(box.lo), list(box.hi)
        lo[at], hi[at] = max(lo[at], totals[0]), min(hi[at], totals[1])
        return Box(tuple(lo), tuple(hi))

    def feasible(self, point: Point) -> bool:
        return self._rank(point)[0] == 0.0

    def branch(self, box: Box, point: Point) -> list[Box]:
        """Bisect the decision whose interval loosens the bound most (a weighted spread:
        log-range of widths, weighted by the scale ends they own; depth range; bottleneck
        log-range; kernels; stem)."""
        # the width at a scale end multiplies the log-widths of every layer before it: its
        # alpha is weighed by that end's share of the relaxed point's layers
        cum = np.cumsum([d for d, *_ in point[1]])
        layers = {i - 1: 1 + 3 * cum[i - 1] for i, _ in self.ends if i > 0}
        most = max(layers.values())
        own = {i - 1: a * layers[i - 1] / most
               for a, (i, _) in zip(self.alphas, self.ends) if i > 0}
        best_slot, best_score = -1, 0.0
        for t, st in enumerate(self.p.stages):
            w = BRANCH_WEIGHTS
            cands = [(_slot(t, 0), st.depths, w["depth"]),
                     (_slot(t, 1), st.widths, w["width"] + w["own"] * own.get(t, 0.0)),
                     (_slot(t, 2), st.bottlenecks, w["bottleneck"]),
                     (_slot(t, 3), st.kernels, w["kernel"])]
            for slot, values, weight in cands:
                lo, hi = box.lo[slot], box.hi[slot]
                if hi > lo:
                    spread = (values[hi] - values[lo]) if slot == _slot(t, 0) else \
                        math.log(values[hi] / values[lo])
                    if weight * spread > best_score:
                        best_slot, best_score = slot, weight * spread
        if box.hi[0] > box.lo[0]:
            spread = math.log(self.p.stems[box.hi[0]] / self.p.stems[box.lo[0]])
            if BRANCH_WEIGHTS["stem"] * spread > best_score:
                best_slot = 0
        if best_slot < 0:
            return []
        lo, hi = box.lo[best_slot], box.hi[best_slot]
        return list(box.split(best_slot, (lo + hi) // 2))

    def search(self, incumbent: Point | None, seconds: float, gap: float,
               progress: Callable[[str], None] = lambda text: None,
               iterations: int = 1, within: Box | None = None,
               root_steps: int = ROOT_STEPS,
               polish: Callable[[Point], Point] | None = None,
               offers: Callable[[], list[Point]] | None = None,
               share: Callable[[Point], None] = lambda point: None,
               interruptible: bool = False,
               opened: list[_Node] | None = None,
               hand_over: Callable[[], Callable[[list[_Node], Point | None], None] | None]
               | None = None, near_after: float = 0.0) -> Outcome:
        """Best-first search for `seconds` or until the gap is met. `polish`: a local search
        from each incumbent found here; `offers`: polled before each box for points found
        elsewhere (another process), adopted when feasible and better; `share` hears of each
        incumbent found here; with `polish`, feasible relaxed points a little below the
        incumbent are polished too, `near_after` seconds into the search (`_NearPolish`).
        `interruptible`: Ctrl-C ends the search with status "interrupted", its incumbent and
        a bound still proven.

        Two processes can bound one tree. `opened`: boxes (bounded or not) another search
        handed over, searched here instead of the root. `hand_over`, polled before each box,
        returns a receiver once another process is free to bound: half of the open boxes
        (`_deal`) go to it once (with the incumbent), and the outcome's
        `handed` is the largest bound among them (what they are worth if the receiver never
        reports)."""
        start = time.perf_counter()
        best_point = incumbent if incumbent is not None and self.feasible(incumbent) else None
        best = self.value(best_point) if best_point is not None else None

        lowest = self.least_value()

        def target() -> float:  # a box bounded below this cannot improve the incumbent
            return lowest if best is None else best + gap * abs(best)

        root = self.propagate(within or self.root())
        level = LEVEL if within is None else LOCAL_LEVEL
        heap: list[_Node] = []
        seq = itertools.count()
        # Multipliers start where the last search's first box converged (searches of nearby
        # boxes follow one another).
        duals0 = self.root_duals if self.root_duals is not None else self.first_duals()
        if opened is not None:
            for given in opened:
                heapq.heappush(heap, dataclasses.replace(given, seq=next(seq)))
        elif root is not None:
            heapq.heappush(heap, _Node(-math.inf, next(seq), root, duals0))
        nodes = 0
        near = _NearPolish(start, near_after)
        handed = -math.inf
        closed_bound = -math.inf  # the largest bound of a box closed against the target
        last_report = start
        interrupted = False
        # the bound of the region being bounded (a box popped unbounded, or the parent of the
        # children being bounded): while it is in flight that region is in no open box
        in_flight = -math.inf

        def evaluate(box: Box, duals: Duals, since: int, cap: float) -> _Node | None:
            """Bound one box (its multipliers from its parent's, `since` levels after they were
            re-priced; `cap` the parent's bound), take its relaxed point as an incumbent where
            it is better, and return it as an open node keyed by its own bound, or None when
            it is closed."""
            nonlocal nodes, closed_bound, best, best_point
            nodes += 1
            if self.too_costly(box):
                return None
            # Totals with no feasible point keep a bound above the answer at any multipliers
            # the bundle reaches; a subtree inherits what `screen` drops.
            if nodes == 1 or (since + 1) % SCREEN_EVERY == 0:
                box = self.screen(box)
                if box is None:
                    return None
            # The first box's multipliers are converged, and its descendants start from them;
            # every REPRICE_EVERY-th level re-prices a box for its subtree. Other boxes take
            # their parent's multipliers: a child then repeats most of its stages' results
            # (`_stage`), so splitting is cheaper than more steps on every box.
            if nodes == 1 and opened is None:
                r, duals = self.bound(box, duals, target(), root_steps, math.inf, level)
                self.root_duals = duals
                since = 0
            elif REPRICE_EVERY and since + 1 >= REPRICE_EVERY:
                r, duals = self.bound(box, duals, target(), max(iterations, REPRICE_STEPS),
                                      TRUST, level)
                since = 0
            else:
                r, duals = self.bound(box, duals, target(), iterations, TRUST, level)
                since += 1
            if r is None:
                return None
            if not r.infeasible and self.feasible(r.point):
                value = self.value(r.point)
                found, origin = None, ""  # a point to adopt if it beats the incumbent
                if _better(value, best):  # polished: a local search from it
                    found = polish(r.point) if polish is not None else r.point
                elif polish is not None and near.worth(
                        value, best, r.point,  # the search's bound now
                        max(in_flight, -heap[0].key if heap else -math.inf)):
                    found = near.polish(polish, r.point)
                    origin = f", polished from a point {value / self.sign:.6g}"
                if found is not None and _better(self.value(found), best):
                    best, best_point = self.value(found), found
                    share(best_point)
                    progress(f"incumbent {self.metric} = {best / self.sign:.6g} (node "
                             f"{nodes}{origin})")
            if r.bound <= target():
                closed_bound = max(closed_bound, min(r.bound, cap))
                return None
            # the totals closed here are left out of the box's children
            closed_bound = max(closed_bound, min(r.closed, cap))
            if r.totals is not None:
                box = self.propagate(self._with_totals(box, r.totals))
                if box is None:
                    return None
            return _Node(-min(r.bound, cap), next(seq), box, duals, since, r.point)

        try:
            while heap:
                if time.perf_counter() - start > seconds:
                    break
                for point in offers() if offers is not None else ():
                    if self.feasible(point) and _better(self.value(point), best):
                        best, best_point = self.value(point), point
                receiver = hand_over() if hand_over is not None and nodes > 1 else None
                if receiver is not None and len(heap) > 1:
                    hand_over = None  # once
                    heap, given = _deal(heap)
                    handed = -given[0].key
                    receiver(given, best_point)
                    progress(f"{len(given)} of {len(given) + len(heap)} open boxes handed to the "
                             "second process")
                node = heapq.heappop(heap)
                if -node.key <= target():  # the root's key is -inf: never closed unpriced
                    closed_bound = max(closed_bound, -node.key)
                    continue
                # A node is bounded when it is made, so that the heap holds each box's own
                # bound, not its parent's (the bound proven at the limit is the largest key):
                # a popped node is split and its children bounded. The root, unbounded, is
                # bounded first.
                in_flight = -node.key
                if node.point is None:
                    made = [evaluate(node.box, node.duals, node.since, math.inf)]
                else:
                    made = [evaluate(child, node.duals, node.since, -node.key)
                            for child in map(self.propagate, self.branch(node.box, node.point))
                            if child is not None]
                for child_node in made:
                    if child_node is not None:
                        heapq.heappush(heap, child_node)
                in_flight = -math.inf
                now = time.perf_counter()
                if now - last_report > 5:
                    last_report = now
                    top = -heap[0].key if heap else closed_bound
                    shown = f"incumbent {best / self.sign:.6g}" if best is not None else \
                        "no incumbent yet"
                    progress(f"{nodes} boxes, {len(heap)} open, bound {top / self.sign:.6g}, "
                             f"{shown}")
        except KeyboardInterrupt:
            if not interruptible:
                raise
            interrupted = True
            closed_bound = max(closed_bound, in_flight)  # its region is in no open box
        seconds_used = time.perf_counter() - start
        if heap or interrupted:
            bound = max(-heap[0].key if heap else -math.inf, closed_bound)
            status = "interrupted" if interrupted else "time_limit"
        else:
            bound = closed_bound if best is not None else -math.inf
            status = "optimal" if best is not None else "infeasible"
        if best is not None:  # boxes of one point are dropped, not closed: count the best
            bound = max(bound, best)
        return Outcome(status, best_point, best, bound, nodes, seconds_used, handed)

    def adopt(self, out: Outcome, points: list[Point]) -> Outcome:
        """`out` with the best of `points` (found elsewhere after the search ended) as its
        answer when feasible and better; the bound is at least the answer."""
        for point in points:
            if self.feasible(point) and _better(self.value(point), out.objective):
                value = self.value(point)
                out = dataclasses.replace(out, point=point, objective=value,
                                          bound=max(out.bound, value))
        return out


def _stage_least_costs(t: int, tab: StageTable, box: Box,
                       c: float) -> tuple[float, float] | None:
    """`BoxSearch._least_costs`, uncached."""
    wi = np.arange(box.lo[_slot(t, 1)], box.hi[_slot(t, 1)] + 1)
    if tab.contiguous:
        b = np.maximum(tab.b_first[wi], box.lo[_slot(t, 2)])
        ok = (tab.b_first[wi] >= 0) & (b <= np.minimum(tab.b_last[wi], box.hi[_slot(t, 2)]))
        rows = tab.row_of[wi[ok], b[ok]]
    else:
        rows = np.flatnonzero((tab.wi >= wi[0]) & (tab.wi <= wi[-1])
                              & (tab.bi >= box.lo[_slot(t, 2)])
                              & (tab.bi <= box.hi[_slot(t, 2)]))
    if rows.size == 0:
        return None
    k = box.lo[_slot(t, 3)]
    d = tab.depths[box.lo[_slot(t, 0)]]
    return (float(np.min(tab.m1[rows, k] + (d - 1) * tab.m2[rows, k] + c * tab.gm[rows, k])),
            float(np.min(tab.p1[rows, k] + (d - 1) * tab.p2[rows, k] + c * tab.gp[rows, k])))


def _floor_scale(value: float) -> float:
    """The entropy floor's multiplier is divided by this (the floor's size), so that it is
    of the order of the others."""
    return max(abs(value), 1.0)


class DualSolver:
    """Minimise a convex piecewise-linear function over duals >= 0 by a level bundle method:
    cutting planes from each evaluation, next point the closest (max-norm) to the best one
    whose model value is below a level between the model's minimum and the best value.
    Small dimension (budgets + effectiveness rows), so each step is a tiny LP (HiGHS)."""

    def __init__(self, n: int, upper: float = 1e7) -> None:
        self.n, self.upper = n, upper
        # the cuts value_s + grad_s (x - at_s): their gradients, and value_s - grad_s at_s
        self.grads: list[np.ndarray] = []
        self.offsets: list[float] = []

    def add(self, value: float, grad: np.ndarray, at: np.ndarray) -> None:
        self.grads.append(grad.copy())
        self.offsets.append(value - float(grad @ at))

    _highs = None  # one instance for every small LP: thousands of instances exhaust HiGHS

    def _lp(self, cost: np.ndarray, rows: np.ndarray, lower: np.ndarray, upper: np.ndarray,
            col_lower: np.ndarray, col_upper: np.ndarray):
        """min cost x s.t. lower <= rows x <= upper, col_lower <= x <= col_upper (dense
        rows): (x, objective), or None unless optimal."""
        import highspy

        from archlang.solvers.milp.lin import new_highs, run

        if DualSolver._highs is None:
            DualSolver._highs = new_highs()
            DualSolver._highs.setOptionValue("output_flag", False)
            DualSolver._highs.setOptionValue("threads", 1)
            # a handful of rows: presolve costs more than it saves (the search 10% faster)
            DualSolver._highs.setOptionValue("presolve", "off")
        h = DualSolver._highs
        h.clearModel()
        n = len(cost)
        h.addVars(n, col_lower, col_upper)
        h.changeColsCost(n, np.arange(n, dtype=np.int32), cost)
        if len(rows):  # one call for every row (a row per call was a tenth of the search)
            r, c = np.nonzero(rows)
            starts = np.searchsorted(r, np.arange(len(rows))).astype(np.int32)
            h.addRows(len(rows), lower, upper, len(r), starts, c.astype(np.int32), rows[r, c])
        run(h)
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        sol = h.getSolution()
        return np.array(sol.col_value), h.getInfo().objective_function_value

    def model_min(self, near: np.ndarray | None = None,
                  radius: float = math.inf) -> tuple[float, np.ndarray] | None:
        """min theta s.t. theta >= value_s + grad_s (x - at_s), 0 <= x <= upper, and within
        `radius` of `near` (max-norm) when given."""
        n, m = self.n, len(self.grads)
        rows = np.empty((m, n + 1))  # theta - grad x >= value - grad at
        rows[:, 0] = 1.0
        if m:
            rows[:, 1:] = -np.array(self.grads)
        lo, hi = np.zeros(n), np.full(n, self.upper)
        if near is not None:
            lo, hi = np.maximum(lo, near - radius), np.minimum(hi, near + radius)
        cost = np.zeros(n + 1)
        cost[0] = 1.0
        out = self._lp(cost, rows, np.array(self.offsets), np.full(m, math.inf),
                       np.r_[-math.inf, lo], np.r_[math.inf, hi])
        if out is None:
            return None
        x, obj = out
        return obj, x[1:]

    def next_point(self, best: np.ndarray, level: float) -> np.ndarray | None:
        """The point closest to `best` in max-norm whose model value is <= level."""
        n, m = self.n, len(self.grads)
        rows = np.zeros((m + 2 * n, n + 1))
        if m:  # grad x <= level - value + grad at
            rows[:m, :n] = np.array(self.grads)
        eye = np.arange(n)
        rows[m + 2 * eye, eye] = 1.0  # x_i - s <= best_i
        rows[m + 2 * eye, n] = -1.0
        rows[m + 2 * eye + 1, eye] = 1.0  # x_i + s >= best_i
        rows[m + 2 * eye + 1, n] = 1.0
        lower = np.full(m + 2 * n, -math.inf)
        lower[m + 1::2] = best
        upper = np.full(m + 2 * n, math.inf)
        upper[:m] = level - np.array(self.offsets)
        upper[m::2] = best
        cost = np.zeros(n + 1)
        cost[n] = 1.0
        out = self._lp(cost, rows, lower, upper, np.zeros(n + 1),
                       np.r_[np.full(n, self.upper), math.inf])
        return None if out is None else out[0][:n]


class _NearPolish:
    """Polishing of feasible relaxed points a little below the incumbent. A local search from
    a point that is not the best often ends above the best's own: on R18, of the 25 feasible
    points of a 40-s global search within 0.5 % below the incumbent (36,450.7), triple and
    pair moves lifted five above it (36,462.4-36,505.5). Each point is polished once, and
    only while the time spent so far is at most NEAR_SHARE of the search's."""

    def __init__(self, start: float, after: float) -> None:
        self.start, self.after, self.spent, self.done = start, after, 0.0, set()

    def worth(self, value: float, best: float | None, point: Point, bound: float) -> bool:
        """`bound`: the search's bound now (the largest of its open boxes and the region
        being bounded)."""
        ran = time.perf_counter() - self.start
        return (best is not None and value >= best - NEAR_POLISH * abs(best)
                and bound - best > NEAR_GAP * abs(best)
                and ran >= self.after and self.spent <= NEAR_SHARE * ran
                and point not in self.done)

    def polish(self, polish: Callable[[Point], Point], point: Point) -> Point:
        began = time.perf_counter()
        self.done.add(point)
        point = polish(point)
        self.spent += time.perf_counter() - began
        return point


@dataclass(order=True)
class _Node:
    key: float  # -bound (heapq pops the largest bound first)
    seq: int
    box: Box = None  # type: ignore[assignment]
    duals: np.ndarray = None  # type: ignore[assignment]
    since: int = 0  # levels since the box's multipliers were last re-priced
    point: Point | None = None  # the box's relaxed point, which `branch` splits by (None:
    # not bounded yet; its key is then its parent's bound)


@dataclass
class Outcome:
    status: str  # "optimal" (gap met), "time_limit"
    point: Point | None
    objective: float | None
    bound: float
    nodes: int
    seconds: float
    handed: float = -math.inf  # the largest bound of the boxes handed to another process


def _deal(heap: list[_Node]) -> tuple[list[_Node], list[_Node]]:
    """Open boxes dealt in two halves of alike bounds: of each two in the order of their
    bounds, one to each half, which one drawn at random. Siblings are pushed together with
    their parent's bound, the lower half of the split interval first, so alternating strictly
    would give one half every narrower and the other every wider child (whose bounds fall
    more slowly: the second half's bound stayed 60 above the first's on R50)."""
    ranked = sorted(heap)
    draw = random.Random(len(ranked))
    mine, theirs = [], []
    for i in range(0, len(ranked), 2):
        pair = ranked[i: i + 2]
        if len(pair) == 2 and draw.random() < 0.5:
            pair.reverse()
        mine.append(pair[0])
        theirs.extend(pair[1:])
    return mine, theirs  # each in order, so each a heap


def _better(a: float, b: float | None) -> bool:
    return b is None or a > b


__all__ = ["BoxSearch", "Box", "budgets"]
