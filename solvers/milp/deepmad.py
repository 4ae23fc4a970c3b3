"""The staged MILP for DeepMAD-like spaces (see `staged.py` for what is recognised).

Notation per stage i: width w_i, bottleneck b_i, kernel k_i, depth d_i; c_{i-1} the stage's
input width (the previous stage's, or the stem's). Binary one-hots (exact encodings):

* ``Y[i, v]`` over widths, ``X[i, (b, k)]`` jointly over bottleneck and kernel (b^2 k^2 is
  then linear), ``E[i, d]`` over depths, ``S[s]`` over stem widths.

Products, each linearised exactly by disaggregating a bounded quantity over a one-hot (if the
one-hot is integral, the disaggregated copy is the quantity on the chosen value, 0 elsewhere):

* depth x option (transportation): ``T[i, o] = d_i X[i, o]``, ``F[i, v] = d_i Y[i, v]``
  (``X <= T <= dmax X``, ``sum_o T = d_i``);
* within a block: ``PSI[i, v] = b_i Y[i, v]`` (b w of the first block) and
  ``OM[i, v] = (d_i - 1) b_i Y[i, v]`` (2 w b of the others; (d_i - 1) b_i is linear in T, X),
  with bounds ``bmin(v) <= b <= bmax(v)`` from the space's requirements over (w_i, b_i);
* across stages: ``CB[i, v'] = b_i Yp[v']``, ``CW[i, v'] = w_i Yp[v']`` (c b and c w of the
  first block), with bounds from the monotone widths (w_i >= v');
* entropy: ``H = f sum_j alpha_j log(r_j^2 c_j) L_j`` with L_j the log-width sum up to scale
  end j (linear in T, F, Y); ``log c_j L_j = sum_v log v ETA[j, v]``, ``ETA[j, v] = L_j Y[j, v]``;
* effectiveness: ``rho_j <= rho*`` iff ``L_j >= g(n_j)`` with ``g(n) = n log(n / rho*)``
  convex and ``n_j = 1 + 3 D_j`` (D_j the cumulative depth): the secants of g between
  consecutive integers are exact at integers, so no binaries;
* depth penalty: a joint table over the last stages' depths, tied to E by marginals.

Valid inequalities: cumulative (``sum_{v >= t} Y``) forms of the monotone widths.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from archlang.ir import space as S
from archlang.solvers.milp.lin import INF, Lin, Model, lsum, run
from archlang.solvers.milp.staged import (
    Point,
    Staged,
    depth_pattern_penalty,
    feasible_pairs,
    metric_bound,
)
from archlang.solvers.milp.terms import Unsupported


@dataclass
class _StageVars:
    Y: dict[int, int]  # width value -> column
    X: dict[tuple[int, int], int]  # (b, k) -> column
    E: dict[int, int]  # depth -> column
    T: dict[tuple[int, int], int] = field(default_factory=dict)
    F: dict[int, int] = field(default_factory=dict)


PENALTY_TABLE_LIMIT = 50_000


class StagedModel:
    """The MILP of one recognised problem. `metrics`: those the spec reads (the depth-penalty
    table is built only when `depth_penalty` or `entropy_score` is among them)."""

    def __init__(self, space: S.Space, p: Staged, metrics: set[str]) -> None:
        self.space, self.p = space, p
        self.m = Model()
        self.rho_bound: float | None = None
        self.penalty = bool(metrics & {"depth_penalty", "entropy_score"})
        self._analyse()
        self._build()

    # ------------------------------------------------------------ analysis
    def _analyse(self) -> None:
        p, space = self.p, self.space
        self.bspan: list[dict[int, tuple[int, int]]] = []  # per stage: w -> (bmin, bmax)
        self.prev_ok: list[dict[int, list[int]]] = []  # per stage: c_prev -> allowed widths
        prev_name, prev_vals = p.stem, p.stems
        for st in p.stages:
            pairs = feasible_pairs(space, st.width, st.bottleneck, st.widths, st.bottlenecks)
            span = {}
            for v in st.widths:
                bs = [b for b in st.bottlenecks if pairs is None or (v, b) in pairs]
                if bs:
                    span[v] = (min(bs), max(bs))
            self.bspan.append(span)
            chain = feasible_pairs(space, prev_name, st.width, prev_vals, st.widths)
            self.prev_ok.append({c: [v for v in st.widths if v in span
                                     and (chain is None or (c, v) in chain)]
                                 for c in prev_vals})
            prev_name, prev_vals = st.width, st.widths
        self.monotone = [all(c <= v for c, vs in ok.items() for v in vs)
                         and all(set(vs) >= {v for v in self.bspan[i] if v >= c}
                                 for c, vs in ok.items())
                         for i, ok in enumerate(self.prev_ok)]
        for c in space.constraints:
            if "effectiveness" in c.metrics:
                try:
                    name, bound = metric_bound(c)
                except Unsupported:
                    name = None
                if name != "effectiveness":
                    raise Unsupported(f"`require {c.text}`: the staged formulation encodes "
                                      "effectiveness only as `effectiveness <= constant`")
                self.rho_bound = bound if self.rho_bound is None else min(bound, self.rho_bound)

    # ------------------------------------------------------------ the model
    def _build(self) -> None:
        p, m = self.p, self.m
        self.stem = {s: m.var(0, 1, True) for s in p.stems}
        m.eq(lsum((1, k) for k in self.stem.values()), 1)
        self.sv: list[_StageVars] = []
        for i, st in enumerate(p.stages):
            span = self.bspan[i]
            Y = {v: m.var(0, 1, True) for v in span}
            X = {(b, k): m.var(0, 1, True) for b in st.bottlenecks for k in st.kernels}
            Ed = {d: m.var(0, 1, True) for d in st.depths}
            for group in (Y, X, Ed):
                m.eq(lsum((1, c) for c in group.values()), 1)
            self.sv.append(_StageVars(Y, X, Ed))
        self.metrics: dict[str, Lin] = {}
        params, macs = self._stem_costs()
        self.L: list[Lin] = []  # log-width sum after each stage (unhalved, stem included)
        k0 = p.stem_kernel
        logsum = Lin({}, math.log(p.in_channels * k0 * k0))
        for i, st in enumerate(p.stages):
            pa, ma, s_i = self._stage(i, st)
            params, macs = params + pa, macs + ma
            logsum = logsum + s_i
            self.L.append(logsum)
        last = self.sv[-1].Y  # the head's costs, by the last width (one-hot: sums to 1)
        params = params + lsum((p.head.params(v), c) for v, c in last.items())
        macs = macs + lsum((p.head.macs(v), c) for v, c in last.items())
        self.metrics["params"], self.metrics["macs"] = params, macs
        self.metrics["flops"] = 2 * macs
        self._monotone_cuts()
        self.metrics["entropy"] = self._entropy()
        self._effectiveness()
        if self.penalty:
            self.metrics["depth_penalty"] = self._penalty()
            self.metrics["entropy_score"] = self.metrics["entropy"] - p.beta * \
                self.metrics["depth_penalty"]

    def _stem_costs(self) -> tuple[Lin, Lin]:
        p = self.p
        k2 = p.in_channels * p.stem_kernel ** 2
        params = lsum((k2 * s + 2 * s, c) for s, c in self.stem.items())
        macs = lsum((p.stem_res ** 2 * k2 * s, c) for s, c in self.stem.items())
        return params, macs

    def _prev(self, i: int) -> dict[int, int]:
        return self.stem if i == 0 else self.sv[i - 1].Y

    def _stage(self, i: int, st: Any) -> tuple[Lin, Lin, Lin]:
        m, v_ = self.m, self.sv[i]
        span = self.bspan[i]
        dmin, dmax = min(st.depths), max(st.depths)
        depth = lsum((d, c) for d, c in v_.E.items())
        # depth x option (transportation)
        for key, c in v_.X.items():
            v_.T[key] = t = m.var(0, dmax)
            m.le(Lin({c: dmin}), Lin({t: 1}))
            m.le(Lin({t: 1}), Lin({c: dmax}))
        for v, c in v_.Y.items():
            v_.F[v] = f = m.var(0, dmax)
            m.le(Lin({c: dmin}), Lin({f: 1}))
            m.le(Lin({f: 1}), Lin({c: dmax}))
        m.eq(lsum((1, t) for t in v_.T.values()), depth)
        m.eq(lsum((1, f) for f in v_.F.values()), depth)
        B = lsum((b, c) for (b, _), c in v_.X.items())
        W = lsum((v, c) for v, c in v_.Y.items())
        G = lsum((b, t) for (b, _), t in v_.T.items()) - B  # (d - 1) b, linear through T
        PSI = self._disaggregate(B, v_.Y, {v: span[v] for v in v_.Y})
        OM = self._disaggregate(G, v_.Y, {v: ((dmin - 1) * span[v][0], (dmax - 1) * span[v][1])
                                          for v in v_.Y})
        prev = self._prev(i)
        ok = self.prev_ok[i]
        bl = {c: (min(span[v][0] for v in ok[c]), max(span[v][1] for v in ok[c]))
              for c in prev if ok[c]}
        wl = {c: (min(ok[c]), max(ok[c])) for c in prev if ok[c]}
        for c, col in prev.items():  # a previous width no width of this stage accepts
            if not ok[c]:
                m.row(Lin({col: 1}), upper=0)
        prev = {c: col for c, col in prev.items() if ok[c]}
        CB = self._disaggregate(B, prev, bl)
        CW = self._disaggregate(W, prev, wl)
        sq = lsum(((b * k) ** 2, c) for (b, k), c in v_.X.items())
        sq_rep = lsum(((b * k) ** 2, t) for (b, k), t in v_.T.items()) - sq
        cb = lsum((c, z) for c, z in CB.items())
        cw = lsum((c, z) for c, z in CW.items())
        bw = lsum((v, z) for v, z in PSI.items())
        wb_rep = lsum((v, z) for v, z in OM.items())
        w_rep = lsum((v, f) for v, f in v_.F.items()) - W
        b_rep = G
        params = cb + 2 * B + sq + 2 * B + bw + 2 * W + cw + 2 * W
        params = params + 2 * wb_rep + sq_rep + 4 * b_rep + 2 * w_rep
        ri, ro = st.res_in, st.res_out
        macs = ri * ri * cb + ro * ro * (sq + bw + cw) + ro * ro * (2 * wb_rep + sq_rep)
        # log widths: conv1 of the first block reads c_prev, the others w; then b k^2 and b
        logc = lsum((math.log(c), col) for c, col in self._prev(i).items())
        s_i = logc + lsum((math.log(b * b * k * k), t) for (b, k), t in v_.T.items()) + \
            lsum((math.log(v), f) for v, f in v_.F.items()) - \
            lsum((math.log(v), c) for v, c in v_.Y.items())
        return params, macs, s_i

    def _disaggregate(self, q: Lin, onehot: dict[int, int],
                      bounds: Mapping[int, tuple[float, float]]) -> dict[int, int]:
        """Z[v] = q * onehot[v] for a quantity q within bounds[v] whenever onehot[v] = 1."""
        m = self.m
        out = {}
        for v, col in onehot.items():
            lo, hi = bounds[v]
            out[v] = z = m.var(min(0.0, lo), max(0.0, hi))
            m.le(Lin({col: lo}), Lin({z: 1}))
            m.le(Lin({z: 1}), Lin({col: hi}))
        m.eq(lsum((1, z) for z in out.values()), q)
        return out

    def _monotone_cuts(self) -> None:
        """sum_{v >= t} Y[i] >= sum_{v >= t} Yprev where widths may not decrease, through
        chained tail sums (U[t] = U[t+] + Y[t]) to keep the rows short."""
        m = self.m
        tails = {}
        for i in range(len(self.p.stages)):
            if not self.monotone[i]:
                continue
            prev, cur = self._prev(i), self.sv[i].Y
            values = sorted(set(prev) | set(cur))
            for key, group in (("p", prev), ("c", cur)):
                if (i, key) in tails:
                    continue
                acc, tail = None, {}
                for t in reversed(values):
                    u = m.var(0, 1)
                    parts = Lin({u: 1}) - (Lin({acc: 1}) if acc is not None else 0)
                    m.eq(parts, Lin({group[t]: 1}) if t in group else 0)
                    tail[t], acc = u, u
                tails[(i, key)] = tail
            for t in values:
                m.le(Lin({tails[(i, "p")][t]: 1}), Lin({tails[(i, "c")][t]: 1}))

    def _entropy(self) -> Lin:
        p = self.p
        k0 = p.stem_kernel
        l0 = math.log(p.in_channels * k0 * k0)
        total = Lin()
        self.ETA: dict[int, dict[int, int]] = {}
        hi = self._logsum_upper()
        for a, (j, res) in zip(p.alphas(), p.scale_ends()):
            if j == 0:
                total = total + a * lsum((math.log(res * res * s) * l0, c)
                                         for s, c in self.stem.items())
                continue
            L = self.L[j - 1]
            Y = self.sv[j - 1].Y
            eta = self._disaggregate(L, Y, {v: (0.0, hi[j - 1][v]) for v in Y})
            self.ETA[j] = eta
            total = total + a * (2 * math.log(res) * L + lsum((math.log(v), z)
                                                             for v, z in eta.items()))
        return p.half * total

    def _logsum_upper(self) -> list[dict[int, float]]:
        """Upper bounds on L_j given w_j = v (each stage at its largest)."""
        p = self.p
        k0 = p.stem_kernel
        acc = math.log(p.in_channels * k0 * k0)
        cmax = max(p.stems)
        out = []
        for i, st in enumerate(p.stages):
            dmax, kmax = max(st.depths), max(st.kernels)
            best = {}
            for v, (_, bmax) in self.bspan[i].items():
                cm = min(cmax, v) if self.monotone[i] else cmax
                best[v] = acc + math.log(cm) + dmax * math.log(bmax * bmax * kmax * kmax) + \
                    (dmax - 1) * math.log(v)
            out.append(best)
            acc = max(best.values())
            cmax = max(self.bspan[i])
        return out

    def _effectiveness(self) -> None:
        if self.rho_bound is None:
            return
        p, m = self.p, self.m
        k0 = p.stem_kernel
        if math.log(1 / (p.in_channels * k0 * k0)) > math.log(self.rho_bound):
            m.row(Lin(), lower=1.0)  # the stem alone breaks the bound: nothing is feasible
        depth = Lin()
        lo = hi = 0
        for i, st in enumerate(p.stages):
            depth = depth + lsum((d, c) for d, c in self.sv[i].E.items())
            lo, hi = lo + min(st.depths), hi + max(st.depths)
            if i + 1 not in [j for j, _ in p.scale_ends()]:
                continue

            def g(dd: int) -> float:
                n = 1 + 3 * dd
                return n * math.log(n / self.rho_bound)

            for dd in range(lo, hi):  # secant between dd and dd + 1
                slope = g(dd + 1) - g(dd)
                m.row(self.L[i] - slope * depth, lower=g(dd) - slope * dd)
            if lo == hi:
                m.row(self.L[i], lower=g(lo))

    def _penalty(self) -> Lin:
        p, m = self.p, self.m
        tail = range(len(p.stages))[-p.penalty_stages:] if p.penalty_stages \
            else range(len(p.stages))
        tail = list(tail)
        grids = [sorted(self.sv[i].E) for i in tail]
        if math.prod(len(g) for g in grids) > PENALTY_TABLE_LIMIT:
            raise Unsupported(f"the depth penalty over {len(tail)} stages needs a table of "
                              f"{math.prod(len(g) for g in grids):,} depth patterns (limit "
                              f"{PENALTY_TABLE_LIMIT:,})")
        table = {}
        for combo in itertools.product(*grids):
            table[combo] = m.var(0, 1)
        m.eq(lsum((1, z) for z in table.values()), 1)
        for pos, i in enumerate(tail):
            for d, col in self.sv[i].E.items():
                m.eq(lsum((1, z) for combo, z in table.items() if combo[pos] == d),
                     Lin({col: 1}))
        return lsum((depth_pattern_penalty(p, combo), z) for combo, z in table.items())

    # ------------------------------------------------------------ reading
    def decision(self, name: str) -> Lin:
        p = self.p
        if name == p.stem:
            return lsum((s, c) for s, c in self.stem.items())
        for st, v_ in zip(p.stages, self.sv):
            if name == st.width:
                return lsum((v, c) for v, c in v_.Y.items())
            if name == st.bottleneck:
                return lsum((b, c) for (b, _), c in v_.X.items())
            if name == st.kernel:
                return lsum((k, c) for (_, k), c in v_.X.items())
            if name == st.depth:
                return lsum((d, c) for d, c in v_.E.items())
        raise Unsupported(f"unknown decision '{name}'")

    def values(self, x: Any) -> dict[str, float]:
        """The program's own values of the metrics at a solution `x` (effectiveness from its
        log-width sums and depths), for comparison with the cost pass."""
        out = {name: e.value(x) for name, e in self.metrics.items()}
        if not self.penalty:  # not modelled: the closed form's value, for the comparison
            from archlang.solvers.milp.staged import scores

            s = scores(self.p, self.point(x))
            out["depth_penalty"], out["entropy_score"] = s["depth_penalty"], s["entropy_score"]
        ends = [j for j, _ in self.p.scale_ends() if j > 0]
        rho, depth = 0.0, 0.0
        for i, v_ in enumerate(self.sv):
            depth += sum(d * x[c] for d, c in v_.E.items())
            if i + 1 in ends:
                n = 1 + 3 * depth
                rho = max(rho, math.exp(math.log(n) - self.L[i].value(x) / n))
        out["effectiveness"] = rho
        return out

    def start(self, point: Point) -> tuple[list[int], list[float]]:
        """(columns, values) of the one-hots at `point`: a partial MIP start for HiGHS."""
        stem, stages = point
        cols, vals = [], []

        def put(group: dict, key: Any) -> None:
            for k, c in group.items():
                cols.append(c)
                vals.append(1.0 if k == key else 0.0)

        put(self.stem, stem)
        for v_, (d, w, b, k) in zip(self.sv, stages):
            put(v_.E, d)
            put(v_.Y, w)
            put(v_.X, (b, k))
        return cols, vals

    def point(self, x: Any) -> Point:
        def pick(group: dict) -> Any:
            return max(group, key=lambda k: x[group[k]])

        stem = pick(self.stem)
        stages = []
        for v_ in self.sv:
            b, k = pick(v_.X)
            stages.append((pick(v_.E), pick(v_.Y), b, k))
        return stem, tuple(stages)


# ---------------------------------------------------------------- solving

_STATUS = {"kOptimal": "optimal", "kTimeLimit": "time_limit", "kInfeasible": "infeasible",
           "kUnboundedOrInfeasible": "infeasible", "kUnbounded": "unbounded",
           "kInterrupt": "time_limit", "kSolutionLimit": "solution_limit"}
# HiGHS's presolve spends minutes probing the full-size models (thousands of one-hot
# binaries in long rows) before the first LP; the model is already reduced, so skip it.
PRESOLVE = {"presolve": "off"}
# Above this many one-hot values (widths, bottleneck x kernel pairs, depths) HiGHS spends the
# time limit in the root LP of the staged model (DeepMAD's R18 space: 3,940 of them, 23,000
# columns, a root LP of about 40 s whose bound is 42 % above the incumbent), and the box search
# does better; below it HiGHS proves small problems optimal in about a second.
BOXES_ABOVE = 1_000
CHECKED = ("params", "macs", "entropy", "effectiveness", "depth_penalty", "entropy_score")


def requirements(space: S.Space, sm: StagedModel) -> None:
    """The spec's requirements as rows (effectiveness is encoded by the model itself)."""
    from archlang.solvers.milp.program import comparison, linear

    def atom(name: str) -> Lin:
        if name.startswith("$"):
            if name[1:] not in sm.metrics:
                raise Unsupported(f"metric '{name[1:]}' is not linear in the staged "
                                  "formulation")
            return sm.metrics[name[1:]]
        return sm.decision(name)

    for c in space.constraints:
        if "effectiveness" in c.metrics:
            continue  # StagedModel._effectiveness
        op, a, b = comparison(c)
        diff = Lin.of(linear(a, atom)) - Lin.of(linear(b, atom))
        scale = max([abs(v) for v in diff.terms.values()] + [1.0])  # MACs rows reach 1e9
        diff = diff / scale
        if op in ("<=", "<"):
            sm.m.row(diff, upper=0.0)
        elif op in (">=", ">"):
            sm.m.row(diff, lower=0.0)
        else:
            sm.m.row(diff, 0.0, 0.0)


def solve_staged(space: S.Space, settings: Any, check: Any,
                 progress: Any = lambda text: None, engine: str = "auto") -> Any:
    """Recognise; then the box search (engine "boxes", or "auto" when it applies), else the
    HiGHS model (engine "milp"): build, start from a heuristic incumbent, solve, verify."""
    import time

    from archlang.solvers.milp.heuristic import polished, search
    from archlang.solvers.milp.program import Solution, objective_of
    from archlang.solvers.milp.staged import assignment, recognise, scores

    start = time.perf_counter()
    sense, metric = objective_of(space)
    p = recognise(space)
    onehots = sum(len(st.widths) + len(st.bottlenecks) * len(st.kernels) + len(st.depths)
                  for st in p.stages)
    if engine == "boxes" or (engine == "auto" and onehots > BOXES_ABOVE):
        try:
            from archlang.solvers.milp.boxsolve import solve_boxes

            return solve_boxes(space, p, settings, check, progress, start)
        except Unsupported as exc:
            if engine == "boxes":
                raise
            progress(f"box search does not apply ({exc.message}); using the HiGHS model")
    used = {metric} | {name for c in space.constraints for name in c.metrics}
    sm = StagedModel(space, p, used)
    if metric not in sm.metrics:
        raise Unsupported(f"metric '{metric}' is not linear in the staged formulation")
    requirements(space, sm)
    m = sm.m
    name = "staged (DeepMAD: joint (b, k) one-hots, depth transportation, disaggregated " \
        "products)"
    size = {"variables": m.ncols, "binaries": len(m.integer), "constraints": len(m.row_lower)}
    progress(f"staged formulation: {len(p.stages)} stages recognised; {size['variables']:,} "
             f"variables ({size['binaries']:,} binary), {size['constraints']:,} constraints")
    heur = min(15.0, max(0.5, 0.25 * settings.time_limit))
    t0 = time.perf_counter()
    incumbent, rank = search(space, p, metric, sense, heur, spans=sm.bspan)
    feasible_start = rank[0] == 0.0
    if feasible_start and onehots > BOXES_ABOVE:
        # HiGHS will not improve on a start in this model's size (its root LP alone takes
        # most of a minute): polish the start with exact stage and pair moves first.
        incumbent = polished(space, p, metric, sense, incumbent,
                             start + POLISH_START * settings.time_limit, pairs=True)
    if feasible_start:
        progress(f"heuristic incumbent {metric} = {scores(p, incumbent)[metric]:.6g} "
                 f"({time.perf_counter() - t0:.1f} s); solving with HiGHS")
    left = max(1.0, settings.time_limit - (time.perf_counter() - start))
    h = m.highs(sm.metrics[metric], sense == "maximize",
                {"threads": settings.threads, "time_limit": left,
                 "mip_rel_gap": settings.gap, "mip_abs_gap": 0.0,
                 "output_flag": settings.verbose, "log_to_console": settings.verbose,
                 **PRESOLVE})
    full = _complete(h, sm, incumbent, left) if feasible_start else None
    if full is not None:
        h.setSolution(len(full), np.arange(len(full), dtype=np.int32), full)
    h.setOptionValue("time_limit",
                     max(0.5, settings.time_limit - (time.perf_counter() - start)))
    _interrupt_at(h, start + settings.time_limit + 0.5)
    run(h)
    seconds = time.perf_counter() - start
    status = _STATUS.get(h.getModelStatus().name, h.getModelStatus().name)
    info = h.getInfo()
    bound = info.mip_dual_bound if math.isfinite(info.mip_dual_bound) else None
    if info.primal_solution_status == 2:
        x = np.array(h.getSolution().col_value)
        objective = float(info.objective_function_value)
    elif full is not None:  # HiGHS stopped before it read the start: the start stands
        x, objective = full, sm.metrics[metric].value(full)
        progress("HiGHS stopped before it used the heuristic start; reporting the start")
    elif feasible_start:  # nor could it complete the start in time: the start stands
        x, objective = None, scores(p, incumbent)[metric]
        progress("HiGHS found no solution in time; reporting the heuristic start")
    else:
        return Solution(status if status != "optimal" else "no_solution", None, bound, None,
                        seconds, None, formulation=name, size=size,
                        conflicts=_conflicts(space, p, status, settings, progress))
    point = incumbent if x is None else sm.point(x)
    closed = scores(p, point)
    values = closed if x is None else sm.values(x)
    chosen = assignment(p, point)
    metrics, broken = check(chosen)
    gap = None if bound is None else abs(bound - objective) / max(abs(objective), 1e-9)
    notes = []
    for k in CHECKED:
        for source, v in (("closed form", closed[k]), ("cost pass", metrics.get(k))):
            if v is None or not math.isclose(values[k], v, rel_tol=1e-6, abs_tol=1e-6):
                notes.append(f"the {source} gives {k} = {v}, the program {values[k]}")
    if broken:
        notes.append("the cost pass finds broken requirements: " + "; ".join(broken))
    return Solution(status, objective, bound, gap, seconds, chosen, metrics, name, size,
                    notes=tuple(notes))


POLISH_START = 0.5  # share of the time limit by which a large HiGHS model's start is polished


def _conflicts(space: S.Space, p: Staged, status: str, settings: Any, progress: Any) -> tuple:
    """The requirements to relax, when the problem is proven infeasible (`conflicts.py`)."""
    if status != "infeasible" or not settings.explain:
        return ()
    from archlang.solvers.milp.conflicts import explain_staged

    return explain_staged(space, p, settings.time_limit, progress)


def _interrupt_at(h: Any, deadline: float) -> None:
    """Stop HiGHS at `deadline` (wall clock) wherever it calls back (simplex iterations, the
    MIP loop). Its root cut separation on the large staged models does not call back nor
    check its time limit: a 14-s limit was measured running 27-30 s there either way."""
    import time

    def check(event: Any) -> None:
        if time.perf_counter() > deadline:
            event.interrupt()

    for hook in (h.cbSimplexInterrupt, h.cbIpmInterrupt, h.cbMipInterrupt):
        hook.subscribe(check)


def _complete(h: Any, sm: StagedModel, point: Point, seconds: float) -> np.ndarray | None:
    """Every column's value at `point` (a complete MIP start): fix the one-hots, let HiGHS
    (presolve on) fill in the continuous columns, then restore bounds and options."""
    cols, vals = sm.start(point)
    idx = np.array(cols, dtype=np.int32)
    lp = h.getLp()
    lower, upper = np.array(lp.col_lower_)[idx], np.array(lp.col_upper_)[idx]
    values = np.array(vals)
    options = {k: h.getOptionValue(k)[1] for k in ("presolve", "time_limit")}
    h.changeColsBounds(len(idx), idx, values, values)
    h.setOptionValue("presolve", "on")
    h.setOptionValue("time_limit", seconds)
    run(h)
    full = np.array(h.getSolution().col_value) if h.getInfo().primal_solution_status == 2 \
        else None
    h.changeColsBounds(len(idx), idx, lower, upper)
    for k, v in options.items():
        h.setOptionValue(k, v)
    h.clearSolver()  # the next run starts afresh (the fixed-bounds search is not reused)
    return full


__all__ = ["StagedModel", "solve_staged", "INF"]
