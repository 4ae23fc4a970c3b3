"""The fewest MACs at DeepMAD's published entropy: `archlang solve` vs evolution.

    .venv/bin/python bench/deepmad_least_macs.py [--time-limit S] [--factor F]
        [--problems r18,r34,r50]

For each problem: examples/deepmad_r{18,34,50}.arch with its MAC budget dropped, the objective
`minimize macs` and `require entropy >= H`, H the multi-scale entropy of DeepMAD's published
structure for that budget (archlang's cost pass), parameters and effectiveness as in the
example. archlang: `solve` (the box search minimising MACs, the floor's multiplier weighing
the entropy) with its certificate; baseline: steady-state evolution minimising MACs
(DeepMAD's mutations, the same closed-form scores) then exact stage moves, given solve's wall
time and `--factor` (10) times it. The published structures' own MACs are printed for
reference (they are outside the example's space: see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import archlang  # noqa: E402
from archlang.solvers.milp import solve  # noqa: E402
from archlang.solvers.milp.staged import recognise, tables  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from deepmad_explain import evolved  # noqa: E402
from deepmad_milp import PUBLISHED, score  # noqa: E402


def problem(name: str, floor: float):
    text = (ROOT / "examples" / f"deepmad_{name}.arch").read_text("utf-8")
    text = re.sub(r"require macs <= \S+\n", "", text)
    text = text.replace("maximize entropy_score", f"require entropy >= {floor}\n    minimize macs")
    return archlang.loads(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--factor", type=float, default=10.0)
    ap.add_argument("--problems", default="r18,r34,r50")
    args = ap.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.node()} {os.cpu_count()} cores; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print("| problem | published: entropy, MACs | solve: MACs, bound, gap, s | evolution @1x | "
          f"evolution @{args.factor:g}x |")
    print("|---|---|---|---:|---:|")
    for name in args.problems.split(","):
        published = score(PUBLISHED[name])
        floor = round(published.entropy, 1)
        space = problem(name, floor)
        sol = solve(space, time_limit=args.time_limit, formulation="staged")
        assert sol.assignment is not None and not sol.notes, sol.notes
        assert not archlang.fix(space, sol.assignment).violations()
        p = recognise(space)
        t = tables(space, p)
        equal, ten = (evolved(space, p, t, f * sol.seconds) for f in (1.0, args.factor))
        print(f"| {name} (entropy >= {floor:,.1f}) | {published.entropy:,.1f}, "
              f"{published.macs / 1e9:.3f} G | {sol.objective / 1e9:.3f} G, "
              f"{sol.bound / 1e9:.3f} G, {100 * sol.gap:.1f}%, {sol.seconds:.1f} | "
              f"{equal / 1e9:.3f} G ({100 * (equal / sol.objective - 1):+.1f}%) | "
              f"{ten / 1e9:.3f} G ({100 * (ten / sol.objective - 1):+.1f}%) |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
