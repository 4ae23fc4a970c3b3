"""The least MAC budget of an infeasible DeepMAD problem: archlang's exact DP vs evolution.

    .venv/bin/python bench/deepmad_explain.py [--macs M] [--params P] [--factor F]
        [--repeat R] [--problems r18,r34,r50]

For each problem (examples/deepmad_r{18,34,50}.arch with the MAC budget lowered to `--macs`,
default 10 M, which no architecture meets; the parameter budget the example's, or `--params`):
the least MACs over the architectures that meet every other requirement (parameters,
effectiveness <= 0.3, the space's own requirements) --

* archlang: `conflicts.exact_least`, what `archlang solve` uses to explain infeasibility: the
  Pareto DP of `leastcost.py` (the parameter budget imposed when it binds), exact, here with
  no point known to start from;
* baseline: steady-state evolution minimising MACs (archlang's staged heuristic, DeepMAD's
  mutation scheme, the same closed-form scores) followed by exact single-stage moves, given
  the DP's wall time and `--factor` (10) times it.

Prints the least found by each, the baseline's excess over the exact least, and the times
(min and median of `--repeat` runs of the DP).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import archlang  # noqa: E402
from archlang.solvers.milp.conflicts import exact_least  # noqa: E402
from archlang.solvers.milp.heuristic import StageMoves, search  # noqa: E402
from archlang.solvers.milp.staged import metric_bound, recognise, scores, spans, tables  # noqa: E402


def problem(name: str, params: float | None):
    """The example (its parameter budget replaced by `params`, if given) with its MAC budget
    dropped, as the least relaxation is asked of it; the recognised space and its tables."""
    text = (ROOT / "examples" / f"deepmad_{name}.arch").read_text("utf-8")
    if params is not None:
        text = re.sub(r"require params <= \S+", f"require params <= {params:.0f}", text)
    space = archlang.loads(text)
    rest = dataclasses.replace(space, constraints=tuple(
        c for c in space.constraints if not (c.metrics and metric_bound(c)[0] == "macs")))
    p = recognise(rest)
    return rest, p, tables(rest, p)


def exact(rest, p, t) -> tuple[float, float]:
    """(least MACs, seconds), proven (`exact_least` checks its answer against every
    requirement)."""
    start = time.perf_counter()
    text = exact_least(rest, p, t, "macs", math.inf, start + 600)
    seconds = time.perf_counter() - start
    assert isinstance(text, str), f"not proven: {text}"
    return float(text.split("<=")[1].replace(",", "")), seconds


def evolved(rest, p, t, seconds: float) -> float:
    """The least MACs evolution (then exact stage moves) finds in `seconds` (also the
    baseline of `deepmad_least_macs.py`)."""
    start = time.perf_counter()
    point, rank = search(rest, p, "macs", "minimize", 0.7 * seconds, spans=spans(p, t),
                         stall=10**9)  # use all the time it is given
    if rank[0] != 0.0:
        return math.inf
    point = StageMoves(rest, p, "macs", "minimize", t).improve(point, start + seconds)
    return scores(p, point)["macs"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--macs", type=float, default=10e6)
    ap.add_argument("--params", type=float, default=None)
    ap.add_argument("--factor", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--problems", default="r18,r34,r50")
    args = ap.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.node()} {platform.processor() or ''} "
          f"{os.cpu_count()} cores; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print("| problem | least MACs (DP, exact) | DP s (min / median) | evolution @1x | "
          f"evolution @{args.factor:g}x |")
    print("|---|---:|---:|---:|---:|")
    for name in args.problems.split(","):
        rest, p, t = problem(name, args.params)
        runs = [exact(rest, p, t) for _ in range(args.repeat)]
        least = runs[0][0]
        times = [s for _, s in runs]
        equal, ten = (evolved(rest, p, t, max(0.5, f * statistics.median(times)))
                      for f in (1.0, args.factor))
        params = "" if args.params is None else f", params <= {args.params:,.0f}"
        print(f"| {name} (macs <= {args.macs:,.0f}{params}) | {least:,.0f} | "
              f"{min(times):.2f} / {statistics.median(times):.2f} | "
              f"{equal:,.0f} (+{100 * (equal / least - 1):.1f}%) | "
              f"{ten:,.0f} (+{100 * (ten / least - 1):.1f}%) |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
