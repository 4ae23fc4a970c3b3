"""Digits search: best validation accuracy against trials, for each strategy (issue 4, 8b).

    .venv/bin/python bench/digits_search.py                  # budget 12, seeds 0 1, 3 epochs
    .venv/bin/python bench/digits_search.py --budget 20 --seeds 0 1 2 --write

Every strategy searches examples/digits_space.arch with the `train` evaluator (scikit-learn's
digits, fixed split, Adam). A proposal that breaks the spec's `require params <= 200k` is fed
back as infeasible and not trained, and does not count as a trial. The evaluator is
deterministic given (architecture, seed), so an architecture proposed by two strategies is
trained once per seed and both see the same result.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from timing import machine, replace_section

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "digits_space.arch"
STRATEGIES: dict[str, dict[str, Any]] = {
    "random": {},
    "evolution": {"population": 5, "tournament": 2},  # a population that fits a short budget
    "mcts": {},
    "smbo": {"startup": 4},
}
SECTION = "## Digits search"
MAX_INFEASIBLE = 1000


def search(space: Any, evaluator: Any, strategy_name: str, seed: int, budget: int,
           cache: dict[tuple[str, int], float]) -> list[float]:
    """The best validation accuracy after each trial of one search."""
    import archlang
    from archlang.search.evaluators import TrialFailed
    from archlang.solvers import Result, get_strategy

    strategy = get_strategy(strategy_name, **STRATEGIES[strategy_name])
    strategy.setup(space, seed)
    curve: list[float] = []
    best, infeasible = 0.0, 0  # 0.0: no trial has succeeded yet
    while len(curve) < budget and infeasible < MAX_INFEASIBLE:
        assignment = strategy.propose()
        arch = archlang.fix(space, assignment)
        if arch.violations():
            infeasible += 1
            strategy.feedback(assignment, Result("infeasible"))
            continue
        key = (arch.hash, seed)
        if key not in cache:
            try:
                cache[key] = evaluator.evaluate(arch, seed)["val_accuracy"]
            except TrialFailed:
                cache[key] = float("nan")
        score = cache[key]
        failed = score != score  # nan
        strategy.feedback(assignment, Result("failed") if failed else Result("ok", score))
        best = best if failed else max(best, score)
        curve.append(best)
    return curve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                        choices=list(STRATEGIES))
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args(argv)

    import archlang
    from archlang.search.evaluators import get_evaluator

    space = archlang.load(SPEC)
    evaluator = get_evaluator("train", dataset="digits", epochs=args.epochs, lr=3e-3)
    cache: dict[tuple[str, int], float] = {}
    curves: dict[str, list[list[float]]] = {}
    start = time.perf_counter()
    for name in args.strategies:
        curves[name] = [search(space, evaluator, name, seed, args.budget, cache)
                        for seed in args.seeds]
        print(f"{name}: {curves[name]}", file=sys.stderr)
    wall = time.perf_counter() - start

    marks = sorted({m for m in (1, 2, 4, 8, 12, 16, 24, 32, args.budget) if m <= args.budget})
    lines = ["Best validation accuracy (%) after n trials, mean over seeds:", "",
             "| strategy | " + " | ".join(f"n={m}" for m in marks) + " |",
             "|" + " --- |" * (len(marks) + 1)]
    for name, runs in curves.items():
        cells = [f"{100 * statistics.fmean(run[m - 1] for run in runs):.1f}"
                 if all(len(run) >= m for run in runs) else "-" for m in marks]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    command = "python bench/digits_search.py " + " ".join(argv if argv is not None
                                                          else sys.argv[1:])
    header = (f"{time.strftime('%Y-%m-%d')}, {machine()}; `{command.strip()}`; seeds "
              f"{', '.join(map(str, args.seeds))}; `train` evaluator, {args.epochs} epochs, "
              f"Adam lr 3e-3, batch 64; {len(cache)} distinct trainings, {wall:.0f} s wall. "
              "Evolution: population 5, tournament 2; SMBO: 4 random start-up trials.\n")
    report = "\n".join(lines)
    print(header)
    print(report)
    if args.write:
        replace_section(ROOT / "BENCHMARKS.md", SECTION, header + "\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
