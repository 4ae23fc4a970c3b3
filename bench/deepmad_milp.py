"""DeepMAD: `archlang solve` vs evolution on examples/deepmad_r{18,34,50}.arch.

    .venv/bin/python bench/deepmad_milp.py [--time-limit S] [--threads T] [--factor F]
        [--candidates N] [--seed K] [--problems r18,r34,r50]

For each problem: `archlang.solvers.milp.solve` (the staged formulation; at this size its box
branch and bound) with its certificate (status, objective, bound, gap, seconds) and its answer
re-scored by the cost pass;
DeepMAD's released evolutionary search as the baseline, its best at solve's wall time and
at `--factor` (10) times it (steady
state, parent drawn uniformly from the best 256, two single-block mutations per child, a child
enters only if it meets every requirement, every block mutable, the last one included); and
the published DeepMAD structures scored under the same budgets.

Candidates are scored with a closed form of archlang's cost pass for this one space (no graph
is built, which is what makes 500,000 candidates affordable); the script first checks that the
closed form equals the cost pass (params, MACs, entropy, effectiveness, depth penalty) on
random points and on the published structures, and stops if it does not.
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import archlang  # noqa: E402
from archlang.ir import decisions as D  # noqa: E402

MAX_DEPTH = (3, 20, 20, 20, 20)
STRIDES = (2, 2, 2, 1, 2)
STEMS = (16, 24, 32)
BUDGETS = {"r18": (1.82e9, 11.69e6), "r34": (3.68e9, 21.80e6), "r50": (4.13e9, 25.55e6)}
PUBLISHED = {
    "r18": (32, [(1, 96, 40, 5), (6, 384, 40, 5), (9, 384, 64, 5), (10, 1024, 104, 3),
                 (12, 672, 104, 5)]),
    "r34": (24, [(1, 128, 24, 5), (10, 512, 48, 5), (13, 896, 88, 5), (11, 1024, 104, 5),
                 (14, 616, 128, 5)]),
    "r50": (32, [(1, 128, 40, 5), (11, 512, 48, 5), (12, 872, 88, 5), (13, 1024, 104, 5),
                 (15, 1232, 120, 5)]),
}

Net = tuple[int, tuple[tuple[int, int, int, int], ...]]  # stem, per stage (depth, w, b, k)
# The initial structure of DeepMAD's released configs (deepmad_R*_FLOPs.py).
INITIAL: Net = (32, ((1, 256, 64, 3), (1, 512, 128, 3), (1, 768, 256, 3), (1, 1024, 256, 3),
                     (1, 2048, 512, 3)))


@dataclass(frozen=True, slots=True)
class Score:
    params: int
    macs: int
    entropy: float
    rho: float
    q: float

    @property
    def objective(self) -> float:  # entropy_score with beta = 10
        return self.entropy - 10.0 * self.q


def score(net: Net, res: int = 224) -> Score:
    """archlang's cost pass for this space, in closed form (checked by `verify`)."""
    stem, stages = net
    r = res // 2
    params, macs = 27 * stem + 2 * stem, r * r * 27 * stem
    logs = [math.log(27)]  # counted layer log widths, in order
    ends: list[tuple[int, int, int]] = []  # (layers so far, channels, resolution) at a cut
    c = stem
    for (d, w, b, k), s in zip(stages, STRIDES):
        if s == 2:
            ends.append((len(logs), c, r))
        ro = r // s
        params += c * b + 2 * b + b * b * k * k + 2 * b + b * w + 2 * w + c * w + 2 * w
        macs += r * r * c * b + ro * ro * (b * b * k * k + b * w + c * w)
        logs += [math.log(c), math.log(b * k * k), math.log(b)]
        params += (d - 1) * (2 * w * b + b * b * k * k + 4 * b + 2 * w)
        macs += (d - 1) * ro * ro * (2 * w * b + b * b * k * k)
        logs += [math.log(w), math.log(b * k * k), math.log(b)] * (d - 1)
        c, r = w, ro
    ends.append((len(logs), c, r))
    prefix = [0.0]
    for x in logs:
        prefix.append(prefix[-1] + x)
    ends = [e for e in ends if e[0] > 0]
    alphas = [1.0] * max(0, len(ends) - 5) + [1, 1, 1, 1, 8][-len(ends):]
    h = sum(a * math.log(rr * rr * cc) * 0.5 * prefix[n] for a, (n, cc, rr) in zip(alphas, ends))
    rho = max(math.exp(math.log(n) - prefix[n] / n) for n, _, _ in ends)
    q = math.exp(statistics.pstdev([d for d, *_ in stages][-3:]))
    return Score(params, macs, h, rho, q)


def assignment(net: Net) -> dict:
    stem, stages = net
    out = {"stem_w": stem}
    for i, (d, w, b, k) in enumerate(stages, 1):
        out.update({f"w{i}": w, f"b{i}": b, f"k{i}": k, f"stage{i}.depth": d})
    return out


def from_assignment(values: dict) -> Net:
    return values["stem_w"], tuple((values[f"stage{i}.depth"], values[f"w{i}"], values[f"b{i}"],
                                    values[f"k{i}"]) for i in range(1, 6))


def feasible(net: Net, s: Score, macs_budget: float, params_budget: float) -> bool:
    _, stages = net
    widths = [w for _, w, _, _ in stages]
    return (s.macs <= macs_budget and s.params <= params_budget and s.rho <= 0.3
            and all(b <= w and 10 * b >= w for _, w, b, _ in stages)
            and all(a <= b for a, b in zip(widths, widths[1:])))


def verify(space, n: int = 20, seed: int = 0) -> None:
    rng = random.Random(seed)
    nets = [(p[0], tuple(p[1])) for p in PUBLISHED.values()]
    nets += [from_assignment(D.sample(space, rng)) for _ in range(n)]
    for net in nets:
        arch = archlang.fix(space, assignment(net))
        m, s = arch.metrics(), score(net)
        ok = (m["params"] == s.params and m["macs"] == s.macs
              and math.isclose(m["entropy"], s.entropy, rel_tol=1e-12)
              and math.isclose(m["effectiveness"], s.rho, rel_tol=1e-12)
              and math.isclose(m["depth_penalty"], s.q, rel_tol=1e-12))
        if not ok:
            raise SystemExit(f"closed form differs from the cost pass at {net}: {m} vs {s}")


# ---------------------------------------------------------------- DeepMAD's evolution


def _round8(x: float) -> int:
    return min(2048, max(8, int(round(x / 8)) * 8))


def mutate(net: Net, rng: random.Random) -> Net:
    """One single-block mutation (TinyNAS's k1kxk1 mutator, every block mutable)."""
    stem, stages = net
    block = rng.randrange(len(stages) + 1)
    if block == 0:
        return rng.choice([s for s in STEMS if s != stem]), stages
    d, w, b, k = stages[block - 1]
    what = rng.choice(("out", "k", "btn", "L"))
    if what == "out":
        w = _round8(w * rng.choice((1.5, 1.25, 0.8, 0.6, 0.5)))
    elif what == "k":
        k = 8 - k  # 3 <-> 5
    elif what == "btn":
        b = min(w, _round8(b * rng.choice((1.5, 1.25, 0.8, 0.6, 0.5))))
    else:
        d = min(MAX_DEPTH[block - 1], max(1, d + rng.choice((-2, -1, 1, 2))))
    if b < w / 10:  # TinyNAS: the bottleneck must stay above out / 10
        b = _round8(math.ceil(w / 10 / 8) * 8)
    b = min(b, w)
    new = list(stages)
    new[block - 1] = (d, w, b, k)
    return stem, tuple(new)


def evolve(seed_net: Net, macs_budget: float, params_budget: float, candidates: int,
           rng: random.Random, checkpoints: list[float]) -> list[tuple[float, int, float]]:
    """Steady-state evolution until the last checkpoint (seconds) or `candidates` (0: no cap);
    returns (seconds, candidates, best objective) at each checkpoint."""
    population: list[tuple[float, Net]] = [(-score(seed_net).objective, seed_net)]
    seen = {seed_net}
    out = []
    start = time.perf_counter()
    todo = sorted(checkpoints)
    n = 0
    while todo and (not candidates or n < candidates):
        n += 1
        parent = population[rng.randrange(len(population))][1]
        child = mutate(mutate(parent, rng), rng)
        if child not in seen:
            s = score(child)
            if feasible(child, s, macs_budget, params_budget):
                seen.add(child)
                bisect.insort(population, (-s.objective, child))
                population = population[:256]
        elapsed = time.perf_counter() - start
        while todo and elapsed >= todo[0]:
            out.append((todo.pop(0), n, -population[0][0]))
    if todo:
        out.append((time.perf_counter() - start, n, -population[0][0]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0, help="solve's seconds")
    parser.add_argument("--threads", type=int, default=2,
                        help="solve's cores (default 2; the EA is sequential: one core)")
    parser.add_argument("--factor", type=float, default=10.0,
                        help="the EA's second checkpoint, in multiples of solve's time")
    parser.add_argument("--candidates", type=int, default=0, help="cap on EA candidates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--problems", default="r18,r34,r50")
    args = parser.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.node()} "
          f"{platform.processor() or ''} python {platform.python_version()}, "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}", flush=True)
    from archlang.solvers.milp import Unsupported, solve

    for name in args.problems.split(","):
        space = archlang.load(ROOT / "examples" / f"deepmad_{name}.arch")
        verify(space)
        macs_budget, params_budget = BUDGETS[name]
        t = time.perf_counter()
        try:
            sol = solve(space, time_limit=args.time_limit, threads=args.threads, gap=1e-3)
            m = sol.metrics
            milp = (f"{sol.status}, objective {sol.objective:.1f}, bound "
                    f"{'-' if sol.bound is None else f'{sol.bound:.1f}'}, gap "
                    f"{'-' if sol.gap is None else f'{100 * sol.gap:.2f}%'}, "
                    f"{sol.seconds:.1f} s; cost pass: params {m['params']:,}, MACs "
                    f"{m['macs']:,}, rho {m['effectiveness']:.4f}, entropy_score "
                    f"{m['entropy_score']:.1f}; "
                    f"{'verified' if not sol.notes else 'MISMATCH: ' + '; '.join(sol.notes)}; "
                    f"{sol.formulation.split(' (')[0]}; "
                    f"{from_assignment(sol.assignment)}")
            milp_seconds = sol.seconds
        except Unsupported as exc:
            milp = f"not encoded ({exc.message}); {time.perf_counter() - t:.1f} s"
            milp_seconds = args.time_limit
        stem, stages = PUBLISHED[name]
        pub = (stem, tuple(stages))
        ps = score(pub)
        pub_ok = "meets" if feasible(pub, ps, macs_budget, params_budget) else "violates"
        print(f"## {name}: MACs <= {macs_budget:.3g}, params <= {params_budget:.4g}, rho <= 0.3")
        print(f"solve: {milp}", flush=True)
        print(f"published: entropy {ps.entropy:.1f}, entropy_score {ps.objective:.1f}, "
              f"params {ps.params:,}, MACs {ps.macs:,}, rho {ps.rho:.4f} ({pub_ok} the "
              "space's requirements)", flush=True)
        trace = evolve(INITIAL, macs_budget, params_budget, args.candidates,
                       random.Random(args.seed), [milp_seconds, args.factor * milp_seconds])
        for seconds, n, best in trace:
            print(f"EA: {seconds:8.1f} s  {n:>9,} candidates  best entropy_score {best:.1f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
