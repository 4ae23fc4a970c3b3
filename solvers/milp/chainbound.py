"""A box bound that is exact in the widths, for the box branch and bound (`boxbb.py`).

`BoxSearch.relax` bounds a box stage by stage, so it must relax what links stages: the
entropy's scale-end products ``phi_j(c_j) Lambda_j`` take the box's widest ``c_j`` for every
earlier stage, and a stage's first block is costed at the narrowest previous width (so the
monotone widths are not enforced either). On DeepMAD's R18 problem with the depths fixed
that costs about 0.1 % of the objective per width step of the box (measured: 0.05 % for a
one-point box, 0.26 % at +-2 steps, 0.86 % at +-8, 7 % with the widths free), and a branch and
bound over widths never closes it.

`ChainBound.relax` prices the same Lagrangian but keeps the widths exact:

* a DP over the chain of stages, forward, whose state is the stage's width: a stage's value is
  tabulated for every (previous width, width) pair of the box, with the best bottleneck in
  closed form (the value is ``x log b - y b - z b^2``, concave) and the best kernel and depth;
  chain requirements (widths non-decreasing) mask pairs;
* the coefficient of the log-widths of the stages before the last, ``kappa``, is set by the
  last two widths (the two last scale ends: on DeepMAD's spaces the last carries alpha = 8).
  The DP runs for a grid of ``kappa`` values; for each (second-to-last, last) width pair the
  head's value is read off the grid by linear interpolation. The head's best value is a max of
  functions affine in ``kappa``, hence convex, so the chord lies above it: the bound stays
  valid;
* the ends owned by earlier stages use the owner's own width for the owner and the box's
  widest for the stages before it (the first stages hold few layers, so this is small);
* depths: per stage the best in the box's range. The effectiveness terms ``-nu_j g(n_j)`` are
  exact where the depths before end j are fixed, else replaced by a tangent of the convex
  ``g`` (a valid over-estimate); the depth penalty takes its least value over the box.

With the depths fixed the bound is within 0.1 % of the best point of boxes many width steps
wide; where depths range the Lagrangian mixes depth profiles and the bound is loose, so the
search fixes depths before it leans on this bound (see `BoxSearch.branch`).
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass

import numpy as np

from archlang.solvers.milp.boxbb import RHO_SCALE, Relaxed, _slot
from archlang.solvers.milp.terms import Unsupported

GRID_STEP = 0.5  # spacing of the kappa grid (kappa is about 30-60 on DeepMAD's problems)
GRID_MAX = 12


@dataclass
class _Head:
    """The head DP at one kappa: best value per width of the second-to-last stage, and what
    is needed to recover the choices behind it."""

    value: np.ndarray  # (n_o,)
    back: list  # per head stage t >= 1: best previous index per width index
    stem_arg: np.ndarray  # per width of the first stage: best stem index
    tables: list  # per head stage: (b, k, d) argmax arrays over (prev, width)


class ChainBound:
    """Exact-width Lagrangian bounds for the boxes of one `BoxSearch`."""

    def __init__(self, search) -> None:
        p = search.p
        self.s, self.p = search, p
        nst = len(p.stages)
        self.owners = [i - 1 for i, _ in search.ends]
        if nst < 2 or len(self.owners) < 2 or self.owners[-1] != nst - 1 or \
                self.owners[-2] != nst - 2:
            raise Unsupported("the last two scale ends are not owned by the last two stages")
        if not all(tab.contiguous for tab in search.tables):
            raise Unsupported("some width's allowed bottlenecks are not an interval")
        if any(a <= 0 for a in search.alphas):
            raise Unsupported("a scale-end weight is not positive")
        self.o = nst - 2
        self._qmin_cache: dict = {}

    # ------------------------------------------------------------ pieces
    def _phi(self, j: int, c):
        _, res = self.s.ends[j]
        return self.p.half * self.s.alphas[j] * np.log(res * res * np.asarray(c, dtype=float))

    def _widths(self, box, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, values) of stage t's widths in the box (t = -1: the stem)."""
        if t < 0:
            idx = np.arange(box.lo[0], box.hi[0] + 1)
            return idx, self.s.stems[idx]
        slot = _slot(t, 1)
        idx = np.arange(box.lo[slot], box.hi[slot] + 1)
        return idx, self.s.tables[t].widths[idx]

    def work(self, box) -> int:
        """Rough number of table entries one `relax` evaluates (to decide whether it pays)."""
        total = 0
        for t in range(len(self.p.stages)):
            n_prev = len(self._widths(box, t - 1)[0])
            n_w = len(self._widths(box, t)[0])
            n_d = box.size(_slot(t, 0))
            n_k = box.size(_slot(t, 3))
            total += n_prev * n_w * n_d * n_k
        return total * self._grid_size(box)

    def _kappa_range(self, box) -> tuple[float, float]:
        _, wo = self._widths(box, self.o)
        _, wl = self._widths(box, self.o + 1)
        a = float(self._phi(len(self.owners) - 1, wl[0]) + self._phi(len(self.owners) - 2, wo[0]))
        b = float(self._phi(len(self.owners) - 1, wl[-1]) + self._phi(len(self.owners) - 2, wo[-1]))
        return a, b

    def _grid_size(self, box) -> int:
        a, b = self._kappa_range(box)
        return 1 if b - a <= 1e-12 else min(GRID_MAX, max(2, math.ceil((b - a) / GRID_STEP) + 1))

    def _stage(self, t: int, c: np.ndarray, box, K: np.ndarray, tau: float, lam: float,
               mu: float):
        """Best value of stage t for every (previous width c, width of the box), with the
        stage's log-widths weighted by K (one per width): (value, b index, k index, d index),
        each (n_c, n_w); -inf where no bottleneck is allowed or the chain forbids the pair."""
        st, tab = self.p.stages[t], self.s.tables[t]
        s0 = _slot(t, 0)
        wi = np.arange(box.lo[s0 + 1], box.hi[s0 + 1] + 1)
        blo = np.maximum(tab.b_first[wi], box.lo[s0 + 2])
        bhi = np.minimum(tab.b_last[wi], box.hi[s0 + 2])
        ok_w = (tab.b_first[wi] >= 0) & (blo <= bhi)
        blo, bhi = np.where(ok_w, blo, 0), np.where(ok_w, bhi, 0)
        cc = c.astype(float)[:, None, None, None]
        w = tab.widths[wi][None, :, None, None]
        kv = np.array(st.kernels[box.lo[s0 + 3]: box.hi[s0 + 3] + 1], dtype=float)
        k = kv[None, None, :, None]
        d = tab.depths[box.lo[s0]: box.hi[s0] + 1][None, None, None, :]
        KK = K[None, :, None, None]
        r2, big = float(st.res_out ** 2), float(st.res_in ** 2)
        ym = big * cc + r2 * w * (2 * d - 1)
        yp = cc + 4 * d + w * (2 * d - 1)
        x = 2 * d * KK
        y = lam * ym + mu * yp
        z = d * k * k * (lam * r2 + mu)
        with np.errstate(divide="ignore", invalid="ignore"):
            star = np.where(z > 0, (-y + np.sqrt(y * y + 8 * z * x)) / (4 * z),
                            np.where(y > 0, x / y, np.inf))
        j = np.searchsorted(tab.bottlenecks, star)
        lo4, hi4 = blo[None, :, None, None], bhi[None, :, None, None]
        classifier = self.p.head_after(t)  # the layers after the last stage, if any
        base = KK * (np.log(cc) + 2 * d * np.log(k) + (d - 1) * np.log(w)) \
            - lam * (r2 * cc * w + classifier.macs(w)) \
            - mu * (cc * w + 2 * w * (d + 1) + classifier.params(w)) - tau * d
        best = bidx = None
        for cand in (np.clip(j - 1, lo4, hi4), np.clip(j, lo4, hi4)):
            b = tab.bottlenecks[cand]
            v = base + x * np.log(b) - b * y - z * b * b
            if best is None:
                best, bidx = v, cand
            else:
                better = v > best
                best = np.where(better, v, best)
                bidx = np.where(better, cand, bidx)
        shape = best.shape
        flat = best.reshape(shape[0], shape[1], -1)
        arg = np.argmax(flat, axis=2)
        value = np.take_along_axis(flat, arg[..., None], axis=2)[..., 0]
        ki, di = np.divmod(arg, shape[3])
        bsel = np.take_along_axis(np.broadcast_to(bidx, shape).reshape(flat.shape),
                                  arg[..., None], axis=2)[..., 0]
        value = np.where(ok_w[None, :], value, -np.inf)
        chain = self.s.chains[t]
        if chain is not None:
            ci = self._widths(box, t - 1)[0]
            value = np.where(chain[np.ix_(ci, wi)], value, -np.inf)
        return value, bsel, ki + box.lo[s0 + 3], di + box.lo[s0]

    def _stem_terms(self, s: np.ndarray, lam: float, mu: float) -> np.ndarray:
        p, k2 = self.p, self.s.stem_k2
        return -lam * p.stem_res ** 2 * k2 * s - mu * (k2 + 2) * s

    def _coefficients(self, box, t: int, kappa: float, nu: np.ndarray) -> np.ndarray:
        """K per width of head stage t: kappa (which holds the last two ends), plus the ends
        owned by stages t..o-1: exact for stage t's own, the box's widest for later owners."""
        _, wv = self._widths(box, t)
        K = np.full(len(wv), kappa)
        for j, u in enumerate(self.owners[:-2]):
            if u < t:
                continue
            if u == t:
                K = K + self._phi(j, wv) + nu[j]
            else:
                K = K + float(self._phi(j, self._widths(box, u)[1][-1])) + nu[j]
        return K

    def _head(self, box, kappa: float, nu: np.ndarray, tau: np.ndarray, lam: float,
              mu: float) -> _Head:
        si, sv = self._widths(box, -1)
        K0 = self._coefficients(box, 0, kappa, nu)
        val, *arg0 = self._stage(0, sv, box, K0, tau[0], lam, mu)
        stem_end = [j for j, u in enumerate(self.owners) if u == -1]
        stem = self._stem_terms(sv, lam, mu)[:, None] + self.s.log0 * K0[None, :]
        for j in stem_end:
            stem = stem + self.s.log0 * (self._phi(j, sv) + nu[j])[:, None]
        total = val + stem
        stem_arg = np.argmax(total, axis=0)
        F = total[stem_arg, np.arange(total.shape[1])]
        back, tables = [], [tuple(arg0)]
        for t in range(1, self.o + 1):
            _, cv = self._widths(box, t - 1)
            K = self._coefficients(box, t, kappa, nu)
            val, *arg = self._stage(t, cv, box, K, tau[t], lam, mu)
            total = F[:, None] + val
            prev = np.argmax(total, axis=0)
            F = total[prev, np.arange(total.shape[1])]
            back.append(prev)
            tables.append(tuple(arg))
        return _Head(F, back, stem_arg, tables)

    def _qmin(self, box) -> float:
        """Least depth penalty over the box's depth ranges."""
        s = self.s
        if not s.beta:
            return 0.0
        ranges = tuple((box.lo[_slot(t, 0)], box.hi[_slot(t, 0)]) for t in s.penalised)
        hit = self._qmin_cache.get(ranges)
        if hit is None:
            depths = [self.p.stages[t].depths[a: b + 1] for t, (a, b) in zip(s.penalised, ranges)]
            hit = min(math.exp(statistics.pstdev(combo)) for combo in itertools.product(*depths))
            self._qmin_cache[ranges] = hit
        return hit

    # ------------------------------------------------------------ the bound
    def relax(self, box, duals: np.ndarray):
        """Upper bound over `box` for multipliers `duals` (as `BoxSearch.relax`), with its
        subgradient and a point of the box (the relaxation's choice; None if empty)."""
        s, p = self.s, self.p
        nst = len(p.stages)
        M, P = s.budgets.macs or 0.0, s.budgets.params or 0.0
        lam = duals[0] / M if M else 0.0
        mu = duals[1] / P if P else 0.0
        nu = np.zeros(len(s.ends))
        for r, j in enumerate(s.rho_ends):
            nu[j] = duals[2 + r] / RHO_SCALE
        const = duals[0] + duals[1] - s.beta * self._qmin(box)
        # effectiveness: exact where the depths before the end are fixed, else a tangent
        tau = np.zeros(nst)
        tangents = {}
        for j in s.rho_ends:
            upto = s.ends[j][0]
            lo = [p.stages[t].depths[box.lo[_slot(t, 0)]] for t in range(upto)]
            hi = [p.stages[t].depths[box.hi[_slot(t, 0)]] for t in range(upto)]
            if lo == hi:
                continue  # exact: -nu g(n) with the chosen (fixed) depths, added below
            n0 = 1 + 3 * sum((a + b) / 2 for a, b in zip(lo, hi))
            slope = math.log(n0 / s.budgets.rho) + 1.0
            tangents[j] = (n0, slope)
            const -= nu[j] * (s._g(n0) + slope * (1 - n0))
            tau[:upto] += nu[j] * 3 * slope
        # the last stage, for every (second-to-last width, last width)
        last, o = nst - 1, self.o
        _, wo = self._widths(box, o)
        _, wl = self._widths(box, last)
        jl, j2 = len(s.ends) - 1, len(s.ends) - 2
        K_last = self._phi(jl, wl) + nu[jl]
        v_last, *arg_last = self._stage(last, wo, box, K_last, tau[last], lam, mu)
        kap = self._phi(jl, wl)[None, :] + self._phi(j2, wo)[:, None]  # (n_o, n_l)
        lo_k, hi_k = self._kappa_range(box)
        m = self._grid_size(box)
        grid = np.linspace(lo_k, hi_k, m) if m > 1 else np.array([lo_k])
        shift = nu[jl] + nu[j2]
        heads = [self._head(box, float(g) + shift, nu, tau, lam, mu) for g in grid]
        G = np.stack([h.value for h in heads])  # (m, n_o)
        if m > 1:
            pos = np.clip((kap - lo_k) / (hi_k - lo_k) * (m - 1), 0, m - 1)
            g0 = np.minimum(np.floor(pos).astype(int), m - 2)
            f = pos - g0
        else:
            g0 = np.zeros(kap.shape, dtype=int)
            f = np.zeros(kap.shape)
        rows = np.arange(len(wo))[:, None]
        lower, upper = G[g0, rows], G[np.minimum(g0 + 1, m - 1), rows]
        with np.errstate(invalid="ignore"):
            chord = np.where(f > 0, (1 - f) * lower + f * upper, lower)
        total = v_last + chord
        if not np.isfinite(total).any():
            return None
        flat = int(np.argmax(total))
        a, b = np.unravel_index(flat, total.shape)
        bound = float(total[a, b]) + const
        # the choices behind it: the last stage, and the head at the grid points used
        weights = [(int(g0[a, b]), 1 - float(f[a, b]))]
        if f[a, b] > 0:
            weights.append((int(g0[a, b]) + 1, float(f[a, b])))
        tail = self._choice(box, last, a, b, arg_last)
        parts_l = self._parts(last, *tail)
        # the relaxation's constraint values (its subgradient): the head's, weighted as the
        # chord weighs its grid points, plus the last stage's
        macs, params = parts_l[0], parts_l[1]
        logs = np.zeros(nst)  # log-width sum per stage
        depth = np.zeros(nst)
        logs[last], depth[last] = parts_l[2], tail[-1][0]
        points = []
        for g, wgt in weights:
            stem, stages, parts, stem_parts = self._recover(box, heads[g], a)
            points.append((wgt, stem, stages))
            macs += wgt * (sum(x[0] for x in parts) + stem_parts[0])
            params += wgt * (sum(x[1] for x in parts) + stem_parts[1])
            logs[: o + 1] += wgt * np.array([x[2] for x in parts])
            depth[: o + 1] += wgt * np.array([d for d, *_ in stages])
        _, stem, stages = max(points, key=lambda x: x[0])
        point = (stem, tuple(stages) + (tail[-1],))
        grad = np.zeros(s.nduals)
        if M:
            grad[0] = 1.0 - macs / M
        if P:
            grad[1] = 1.0 - params / P
        for r, j in enumerate(s.rho_ends):
            upto = s.ends[j][0]
            n = 1 + 3 * float(depth[:upto].sum())
            if j in tangents:
                n0, slope = tangents[j]
                ghat = s._g(n0) + slope * (n - n0)
            else:  # the depths before end j are fixed: its term is exact
                ghat = s._g(n)
                bound -= nu[j] * ghat
            grad[2 + r] = (s.log0 + float(logs[:upto].sum()) - ghat) / RHO_SCALE
        return Relaxed(bound, grad, point)

    # ------------------------------------------------------------ recovering choices
    def _choice(self, box, t: int, ci: int, wi_: int, arg) -> tuple:
        """(c, (d, w, b, k)) of stage t at previous-width position ci, width position wi_."""
        st, tab = self.p.stages[t], self.s.tables[t]
        bsel, ksel, dsel = (x[ci, wi_] for x in arg)
        _, cv = self._widths(box, t - 1)
        _, wv = self._widths(box, t)
        return float(cv[ci]), (int(st.depths[dsel]), int(wv[wi_]),
                               int(tab.bottlenecks[bsel]), int(st.kernels[ksel]))

    def _recover(self, box, head: _Head, a: int):
        """The head's choices ending at position a of the second-to-last stage's widths."""
        stages, parts = [], []
        pos = a
        for t in range(self.o, -1, -1):
            prev = head.back[t - 1][pos] if t >= 1 else head.stem_arg[pos]
            c, choice = self._choice(box, t, prev, pos, head.tables[t])
            stages.append(choice)
            parts.append(self._parts(t, c, choice))
            pos = prev
        stem = int(self._widths(box, -1)[1][pos])
        k2 = self.s.stem_k2
        stem_parts = (self.p.stem_res ** 2 * k2 * stem, (k2 + 2) * stem)
        return stem, stages[::-1], parts[::-1], stem_parts

    def _parts(self, t: int, c: float, choice: tuple) -> tuple[float, float, float]:
        """(MACs, params, log-width sum) of stage t's blocks with input width c."""
        d, w, b, k = choice
        st = self.p.stages[t]
        r2, big = st.res_out ** 2, st.res_in ** 2
        classifier = self.p.head_after(t)  # the layers after the last stage, if any
        macs = r2 * c * w + b * (big * c + r2 * w * (2 * d - 1)) + d * k * k * r2 * b * b \
            + classifier.macs(w)
        params = c * w + 2 * w * (d + 1) + b * (c + 4 * d + w * (2 * d - 1)) + d * k * k * b * b \
            + classifier.params(w)
        logs = math.log(c) + d * (2 * math.log(b) + 2 * math.log(k)) + (d - 1) * math.log(w)
        return macs, params, logs


__all__ = ["ChainBound"]
