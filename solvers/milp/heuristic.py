"""A fast primal heuristic for staged spaces: an incumbent to start HiGHS from.

Steady-state evolution in DeepMAD's style (population of the best 256, two single-stage
mutations per child) followed by a first-improvement hill climb over single-decision steps.
Points are scored with the closed form of `staged.scores` (no graph is built); candidates are
ranked by (total relative violation of the requirements, -objective), so it also works from an
infeasible start. It proves nothing: the MILP does.
"""

from __future__ import annotations

import bisect
import itertools
import random
import time
from collections.abc import Callable
from typing import Any

from archlang.ir import expr as E
from archlang.ir import space as S
from archlang.solvers.milp.staged import Point, Staged, assignment, scores, scores_batch
from archlang.solvers.milp.terms import Unsupported

Rank = tuple[float, float]  # (violation, -objective): smaller is better


def ranker(space: S.Space, p: Staged, metric: str, sense: str) -> Callable[[Point], Rank]:
    from archlang.solvers.milp.program import comparison

    parts = [comparison(c) for c in space.constraints]

    def rank(point: Point) -> Rank:
        s = scores(p, point)
        env: dict[str, Any] = {f"${k}": v for k, v in s.items()}
        env.update(assignment(p, point))
        bad = 0.0
        for op, a, b in parts:
            lhs, rhs = E.evaluate(a, env), E.evaluate(b, env)
            excess = lhs - rhs if op in ("<=", "<") else rhs - lhs if op in (">=", ">") \
                else abs(lhs - rhs)
            if excess > 0:
                bad += excess / max(abs(rhs), abs(lhs), 1e-9)
        value = s[metric]
        return bad, -value if sense == "maximize" else value

    return rank


def _mutate(p: Staged, point: Point, rng: random.Random) -> Point:
    stem, stages = point
    i = rng.randrange(len(stages) + 1)
    if i == 0:
        return rng.choice(p.stems), stages
    st = p.stages[i - 1]
    d, w, b, k = stages[i - 1]
    what = rng.randrange(4)
    if what == 0:
        w = _near(st.widths, w * rng.choice((1.5, 1.25, 0.8, 0.6, 0.5)))
    elif what == 1:
        k = rng.choice(st.kernels)
    elif what == 2:
        b = _near(st.bottlenecks, b * rng.choice((1.5, 1.25, 0.8, 0.6, 0.5)))
    else:
        d = _near(st.depths, d + rng.choice((-2, -1, 1, 2)))
    new = list(stages)
    new[i - 1] = (d, w, b, k)
    return stem, tuple(new)


def _near(values: tuple[int, ...], x: float) -> int:
    j = bisect.bisect_left(values, x)
    cands = values[max(0, j - 1): j + 1]
    return min(cands, key=lambda v: abs(v - x))


def _steps(p: Staged, point: Point) -> list[Point]:
    """Single-decision neighbours: the next value up or down of one decision."""
    stem, stages = point
    out = []
    j = p.stems.index(stem)
    out += [(p.stems[t], stages) for t in (j - 1, j + 1) if 0 <= t < len(p.stems)]
    for i, (st, (d, w, b, k)) in enumerate(zip(p.stages, stages)):
        for slot, values, cur in ((0, st.depths, d), (1, st.widths, w),
                                  (2, st.bottlenecks, b), (3, st.kernels, k)):
            j = values.index(cur)
            for t in (j - 1, j + 1):
                if 0 <= t < len(values):
                    new = [d, w, b, k]
                    new[slot] = values[t]
                    out.append((stem, stages[:i] + (tuple(new),) + stages[i + 1:]))
        # paired moves keep a ratio requirement satisfied while the width moves
        for dw in (-1, 1):
            jw, jb = st.widths.index(w), st.bottlenecks.index(b)
            if 0 <= jw + dw < len(st.widths) and 0 <= jb + dw < len(st.bottlenecks):
                new = (d, st.widths[jw + dw], st.bottlenecks[jb + dw], k)
                out.append((stem, stages[:i] + (new,) + stages[i + 1:]))
    return out


def search(space: S.Space, p: Staged, metric: str, sense: str, seconds: float,
           seed: int = 0, start: Point | None = None, stall: int = 20_000,
           spans: list[dict[int, tuple[int, int]]] | None = None) -> tuple[Point, Rank]:
    """Best point found in about `seconds` (its rank's violation is 0 if it is feasible).

    `spans`: per stage, width -> (least, greatest) bottleneck the requirements allow; children
    are clamped into it (as TinyNAS keeps b >= w / 10), so fewer are wasted."""
    rng = random.Random(seed)

    def repair(point: Point) -> Point:
        if spans is None:
            return point
        stem, stages = point
        out = []
        for span, (d, w, b, k) in zip(spans, stages):
            lo, hi = span.get(w, (b, b))
            out.append((d, w, min(max(b, lo), hi), k))
        return stem, tuple(out)

    rank = ranker(space, p, metric, sense)
    if start is None:  # widths doubling up to the largest, bottlenecks a quarter, shallow
        n = len(p.stages)
        start = (p.stems[-1], tuple(
            (st.depths[0], _near(st.widths, st.widths[-1] / 2 ** (n - 1 - i)),
             _near(st.bottlenecks, st.widths[-1] / 2 ** (n + 1 - i)), st.kernels[0])
            for i, st in enumerate(p.stages)))
    population = [(rank(start), start)]
    seen = {start}
    deadline = time.perf_counter() + seconds * 0.8
    since = 0  # candidates since the best last improved: stop early on small spaces
    while time.perf_counter() < deadline and since < stall:
        since += 1
        parent = population[rng.randrange(len(population))][1]
        child = repair(_mutate(p, _mutate(p, parent, rng), rng))
        if child in seen:
            continue
        seen.add(child)
        r = rank(child)
        if r < population[0][0]:
            since = 0
        bisect.insort(population, (r, child))
        del population[256:]
    best_rank, best = population[0]
    deadline = time.perf_counter() + max(0.2 * seconds, 1.0)
    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        for cand in _steps(p, best):
            r = rank(cand)
            if r < best_rank:
                best, best_rank, improved = cand, r, True
                break
    return best, best_rank


# ---------------------------------------------------------------- exact stage moves


class StageMoves:
    """Local search whose move re-chooses one stage (depth, width, bottleneck, kernel) -- or
    the stem width -- optimally with every other decision fixed: all of the stage's options
    are scored at once (`staged.scores_batch`). Needs the requirements over decisions to be
    per-stage pairs and width chains (`staged.tables`); a requirement over metrics may be any
    comparison of them (`entropy >= 20000`, `macs <= 2 * params`), evaluated over the arrays."""

    def __init__(self, space: S.Space, p: Staged, metric: str, sense: str,
                 tables: Any = None) -> None:
        import numpy as np

        from archlang.solvers.milp.program import comparison
        from archlang.solvers.milp.staged import tables as read_tables

        self.p, self.metric = p, metric
        self.sign = 1.0 if sense == "maximize" else -1.0
        self.limits = []  # (op, lhs, rhs) of every requirement over metrics
        for c in space.constraints:
            if c.metrics:
                if any(not name.startswith("$") for name in E.refs(c.expr)):
                    raise Unsupported(f"`require {c.text}` mixes metrics and decisions")
                self.limits.append(comparison(c))
        self.tables = tables if tables is not None else read_tables(space, p)
        self.options = []  # per stage: (d, w, b, k, width index) arrays over every option
        self._bottlenecks = []  # per stage: width index -> allowed bottleneck indices, sorted
        for pairs in self.tables.pairs:
            allowed: dict[int, list[int]] = {}
            for a, b in sorted(pairs):
                allowed.setdefault(a, []).append(b)
            self._bottlenecks.append(allowed)
        for st, pairs in zip(p.stages, self.tables.pairs):
            wi = np.array([a for a, _ in pairs])
            bi = np.array([b for _, b in pairs])
            shape = (len(st.depths), len(pairs), len(st.kernels))
            d = np.broadcast_to(np.array(st.depths)[:, None, None], shape).ravel()
            w = np.broadcast_to(np.array(st.widths)[wi][None, :, None], shape).ravel()
            b = np.broadcast_to(np.array(st.bottlenecks)[bi][None, :, None], shape).ravel()
            k = np.broadcast_to(np.array(st.kernels)[None, None, :], shape).ravel()
            widx = np.broadcast_to(wi[None, :, None], shape).ravel()
            self.options.append((d, w, b, k, widx))

    def _feasible(self, s: dict):
        import numpy as np

        ok = np.ones(np.shape(s["macs"]), dtype=bool)
        env = {f"${k}": v for k, v in s.items()}
        for op, a, b in self.limits:
            lhs, rhs = E.evaluate(a, env), E.evaluate(b, env)
            ok &= lhs <= rhs if op in ("<=", "<") else lhs >= rhs if op in (">=", ">") \
                else lhs == rhs
        return ok

    def meets(self, point: Point) -> bool:
        """Whether `point` meets every requirement (budgets, pair tables, width chains)."""
        stem, stages = point
        if not bool(self._feasible(scores(self.p, point))):
            return False
        prev_values, prev = self.p.stems, stem
        for st, chain, pairs, (_, w, b, _) in zip(self.p.stages, self.tables.chains,
                                                   self.tables.pairs, stages):
            wi = st.widths.index(w)
            if chain is not None and not chain[prev_values.index(prev), wi]:
                return False
            if (wi, st.bottlenecks.index(b)) not in pairs:
                return False
            prev_values, prev = st.widths, w
        return True

    def _near(self, t: int, choice: tuple, width_steps: int, depth_steps: int,
              bottleneck_steps: int, every_kernel: bool = True):
        """Stage t's options near `choice`: widths within width_steps values, depths within
        depth_steps, for each width its least allowed bottlenecks (bottleneck_steps + 1 of
        them), every kernel (else the choice's). Arrays (d, w, b, k)."""
        import numpy as np

        st = self.p.stages[t]
        d0, w0, _, k0 = choice
        kernels = st.kernels if every_kernel else [k0]
        i0, j0 = st.widths.index(w0), st.depths.index(d0)
        rows = []
        for a, bs in self._bottlenecks[t].items():
            if abs(a - i0) <= width_steps:
                rows += [(a, b) for b in bs[: bottleneck_steps + 1]]
        depths = st.depths[max(0, j0 - depth_steps): j0 + depth_steps + 1]
        grid = np.array([(d, st.widths[a], st.bottlenecks[b], k) for d in depths
                         for a, b in rows for k in kernels], dtype=np.float64)
        return tuple(grid[:, i] for i in range(4))

    def improve_pairs(self, point: Point, deadline: float,
                      sizes: tuple = ((8, 2, 1), (16, 3, 2), (24, 4, 2))) -> Point:
        """Local search whose move re-chooses two stages at once near their current choices
        (`_near` with each (width_steps, depth_steps, bottleneck_steps) of `sizes`, the next
        size once the smaller finds nothing): a block or part of the budget moves from one
        stage to another, which one-stage moves cannot do. Best move per pair, pairs in
        turn, until no pair improves at the largest size (or the deadline)."""
        import numpy as np

        p = self.p
        if not self.meets(point):
            return point
        current = self.sign * scores(p, point)[self.metric]
        level = 0
        while level < len(sizes) and time.perf_counter() < deadline:
            improved = False
            for s1, s2 in itertools.combinations(range(len(p.stages)), 2):
                if time.perf_counter() >= deadline:
                    break
                stem, stages = point
                a = self._near(s1, stages[s1], *sizes[level])
                b = self._near(s2, stages[s2], *sizes[level])
                best, best_value = None, current
                chunk = max(1, 200_000 // len(b[0]))
                for lo in range(0, len(a[0]), chunk):
                    ia, ib = np.meshgrid(np.arange(lo, min(lo + chunk, len(a[0]))),
                                         np.arange(len(b[0])), indexing="ij")
                    ia, ib = ia.ravel(), ib.ravel()
                    trial = list(stages)  # the other stages stay scalars (broadcast)
                    trial[s1] = tuple(x[ia] for x in a)
                    trial[s2] = tuple(x[ib] for x in b)
                    found = self._best_of(stem, trial, best_value)
                    if found is not None:
                        (i,), best_value = found
                        best = list(stages)
                        best[s1] = tuple(int(x[ia[i]]) for x in a)
                        best[s2] = tuple(int(x[ib[i]]) for x in b)
                if best is not None:
                    point, current, improved = (stem, tuple(best)), best_value, True
            level = 0 if improved and level > 0 else level + (not improved)
        return point

    def improve_triples(self, point: Point, deadline: float, size: tuple = (3, 1, 0),
                        filler_steps: int = 6) -> Point:
        """Local search whose move re-chooses three stages at once near their current
        choices (`_near` with `size`) together with the bottleneck of one other stage (the
        *filler*: its allowed bottlenecks within `filler_steps` of its own). Best
        improvement over every (triple, filler) move, repeated until none improves (or the
        deadline).

        Why the filler: a budget-neutral reshaping of three stages usually moves the
        effectiveness limit (the log-width sum of every layer against their number), and
        what restores it most cheaply is often a narrow early stage's bottleneck (its
        log-width is cheap in parameters). Neither move is an improvement alone: on R18
        pair moves stop at 36,421.7 from a 60-s answer of 36,414.5, and these moves reach
        36,517.1 in two steps (0.6 s); without the filler they stop at 36,431.2."""
        p = self.p
        n = len(p.stages)
        if n < 3 or not self.meets(point):
            return point
        current = self.sign * scores(p, point)[self.metric]
        moves = [(triple, f) for triple in itertools.combinations(range(n), 3)
                 for f in [f for f in range(n) if f not in triple] or [None]]
        while time.perf_counter() < deadline:
            # best improvement over every move (taking each move's best at once led R18's
            # answer into a poorer basin: 36,433.5 instead of 36,517.1)
            best = None
            for triple, f in moves:
                if time.perf_counter() >= deadline:
                    break
                found = self._best_triple(point, triple, f, size, filler_steps,
                                          current if best is None else best[1])
                if found is not None:
                    best = found
            if best is None:
                break
            point, current = best
        return point

    def _best_triple(self, point: Point, triple: tuple, filler: int | None, size: tuple,
                     filler_steps: int, current: float) -> tuple[Point, float] | None:
        """The best point of one (triple, filler) move better than `current`, if any."""
        import numpy as np

        p = self.p
        stem, stages = point
        near = [self._near(t, stages[t], *size, every_kernel=False) for t in triple]
        grid = [g.ravel() for g in np.meshgrid(*[np.arange(len(o[0])) for o in near],
                                               indexing="ij")]
        fill = np.zeros(1)  # one column when there is no filler
        if filler is not None:
            st = p.stages[filler]
            d, w, b, k = stages[filler]
            allowed = [st.bottlenecks[j] for j in self._bottlenecks[filler][st.widths.index(w)]]
            i = allowed.index(b)
            fill = np.array(allowed[max(0, i - filler_steps): i + filler_steps + 1],
                            dtype=np.float64)
        best, best_value = None, current
        chunk = max(1, 400_000 // len(fill))  # candidates x filler options per batch
        for lo in range(0, len(grid[0]), chunk):
            rows = [g[lo: lo + chunk] for g in grid]
            trial = list(stages)  # the stages outside the move stay scalars (broadcast)
            for t, options, r in zip(triple, near, rows):
                trial[t] = tuple(x[r][:, None] for x in options)
            if filler is not None:
                trial[filler] = (d, w, fill[None, :], k)
            found = self._best_of(stem, trial, best_value)
            if found is not None:
                (ri, fi), best_value = found
                best = list(stages)
                for t, options, r in zip(triple, near, rows):
                    best[t] = tuple(int(x[r[ri]]) for x in options)
                if filler is not None:
                    best[filler] = (d, w, int(fill[fi]), k)
        return None if best is None else ((stem, tuple(best)), best_value)

    def _best_of(self, stem, trial: list, current: float) -> tuple[tuple, float] | None:
        """The index (in the broadcast shape of `trial`'s arrays) and value of the best
        point of `trial` that meets every requirement, if better than `current`."""
        import numpy as np

        sc = scores_batch(self.p, stem, trial)
        ok = self._feasible(sc) & self._chains_ok(stem, trial)
        value = np.where(ok, self.sign * np.broadcast_to(sc[self.metric], ok.shape), -np.inf)
        at = int(np.argmax(value))
        if value.flat[at] > current + 1e-9 * max(1.0, abs(current)):
            return np.unravel_index(at, value.shape), float(value.flat[at])
        return None

    def _chains_ok(self, stem, stages):
        """Whether consecutive widths (arrays or scalars) meet the width-chain requirements."""
        import numpy as np

        ok = np.ones((), dtype=bool)
        prev_values, prev = self.p.stems, np.asarray(stem, dtype=np.float64)
        for st, chain, (_, w, _, _) in zip(self.p.stages, self.tables.chains, stages):
            w = np.asarray(w, dtype=np.float64)
            if chain is not None:
                pi = np.searchsorted(np.array(prev_values, dtype=np.float64), prev)
                wi = np.searchsorted(np.array(st.widths, dtype=np.float64), w)
                ok = ok & chain[pi, wi]
            prev_values, prev = st.widths, w
        return ok

    def improve(self, point: Point, deadline: float) -> Point:
        """Best-improvement stage moves until none improves (or the deadline). From a point
        that breaks a requirement, the first move is the best one that repairs it."""
        import numpy as np

        p = self.p
        stem, stages = point
        current = self.sign * scores(p, point)[self.metric] if self.meets(point) else -np.inf
        improved = True
        while improved and time.perf_counter() < deadline:
            improved = False
            for t in range(-1, len(p.stages)):
                if t < 0:
                    cand = np.array(p.stems, dtype=np.float64)
                    s = scores_batch(p, cand, stages)
                    ok = self._feasible(s)
                    chain = self.tables.chains[0]
                    if chain is not None:
                        ok &= chain[:, p.stages[0].widths.index(stages[0][1])]
                else:
                    d, w, b, k, widx = self.options[t]
                    trial = list(stages)
                    trial[t] = (d, w, b, k)
                    s = scores_batch(p, stem, trial)
                    ok = self._feasible(s)
                    prev = p.stems.index(stem) if t == 0 else \
                        p.stages[t - 1].widths.index(stages[t - 1][1])
                    chain = self.tables.chains[t]
                    if chain is not None:
                        ok &= chain[prev][widx]
                    if t + 1 < len(p.stages) and self.tables.chains[t + 1] is not None:
                        nxt = p.stages[t + 1].widths.index(stages[t + 1][1])
                        ok &= self.tables.chains[t + 1][widx, nxt]
                value = np.where(ok, self.sign * np.broadcast_to(s[self.metric], ok.shape),
                                 -np.inf)
                i = int(np.argmax(value))
                if value[i] > current + 1e-9 * max(1.0, abs(current) if current > -np.inf
                                                    else 1.0):
                    current = float(value[i])
                    if t < 0:
                        stem = p.stems[i]
                    else:
                        d, w, b, k, _ = self.options[t]
                        stages = stages[:t] + ((int(d[i]), int(w[i]), int(b[i]), int(k[i])),) \
                            + stages[t + 1:]
                    improved = True
        return stem, stages


def polished(space: S.Space, p: Staged, metric: str, sense: str, point: Point, until: float,
             tables: Any = None, pairs: bool = False) -> Point:
    """`point` improved by exact stage moves (then, with `pairs`, pair moves, the stage moves
    taking a third of the time) until `until`; as it is where the moves do not apply to the
    space's requirements (a requirement mixing metrics and decisions)."""
    try:
        moves = StageMoves(space, p, metric, sense, tables)
    except Unsupported:
        return point
    if not pairs:
        return moves.improve(point, until)
    point = moves.improve(point, time.perf_counter() + max(0.2, (until - time.perf_counter()) / 3))
    return moves.improve_pairs(point, until)
