"""NAS-Bench-Graph: search strategies on its 9 datasets, by table lookup (issue 4, item 8a).

    .venv/bin/python bench/nasbench_graph.py                    # all 9 datasets, 100 seeds
    .venv/bin/python bench/nasbench_graph.py --seeds 5 --datasets cora
    .venv/bin/python bench/nasbench_graph.py --write            # also update BENCHMARKS.md

Each run searches examples/nasbench_graph.arch with one strategy and one seed until it has
evaluated `budget` distinct benchmark entries (500; 40 on proteins, whose table has 2,021).
Distinct means distinct NAS-Bench-Graph entries: a proposal that is isomorphic to an entry
already evaluated (the benchmark's `valid_hash` maps both to one key) is answered from the
run's cache and fed back without spending budget, as is a repeat; the all-skip cell, which
the spec's `require depth >= 3` excludes and the benchmark lacks, is fed back as infeasible.
Strategies are guided by validation accuracy; a run reports the test accuracy of its
best-by-validation architecture (the first found, on ties).

The lookup is the evaluator's (`archlang.search.evaluators.lookup`), with the assignment ->
key map precomputed for the whole space once (157,464 points) so that the benchmark measures
the strategies, not the elaboration of graphs. Differences between strategies are tested with
a two-sided Mann-Whitney U test over the seeds.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from timing import machine, replace_section

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "nasbench_graph.arch"
DATASETS = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv",
            "proteins")
STRATEGIES: dict[str, dict[str, Any]] = {
    "random": {},
    "evolution": {"population": 20, "tournament": 5},
    "mcts": {},
    "smbo": {},
}
BUDGET, PROTEINS_BUDGET = 500, 40
MAX_PROPOSALS = 20  # x budget: a strategy stuck on known entries ends its run there
SECTION = "## NAS-Bench-Graph"


@dataclass(frozen=True)
class Run:
    dataset: str
    strategy: str
    seed: int
    best_val: float
    best_test: float
    distinct: int
    proposals: int
    seconds: float  # strategy time (propose + feedback), lookups excluded


# ---------------------------------------------------------------- the space and its keys


class Bench:
    """One dataset's view of the space: assignment -> (key, val, test), or None (all-skip)."""

    def __init__(self, dataset: str) -> None:
        from archlang.search.evaluators.lookup import table

        self.space, self.order, keys = space_keys(dataset == "proteins")
        entries = table(dataset)
        self.results: dict[tuple[Any, ...], tuple[int, float, float] | None] = {
            values: None if key is None else
            (key, float(entries[key]["valid_perf"]), float(entries[key]["perf"]))
            for values, key in keys.items()}

    def result(self, assignment: dict[str, Any]) -> tuple[int, float, float] | None:
        return self.results[tuple(assignment[d] for d in self.order)]


_KEYS: dict[bool, tuple[Any, tuple[str, ...], dict[tuple[Any, ...], int | None]]] = {}


def space_keys(proteins: bool) -> tuple[Any, tuple[str, ...], dict[tuple[Any, ...], int | None]]:
    """The space, its decision order, and every point's benchmark key (None: all-skip)."""
    if proteins not in _KEYS:
        import archlang
        from archlang.search.evaluators.lookup import LINKS, OPS, benchmark_key, table_hash

        space = archlang.load(SPEC, params={"proteins": proteins})
        order = LINKS + OPS
        keys: dict[tuple[Any, ...], int | None] = {}
        domains = [space.decision(d).domain.enumerate() for d in order]
        for values in itertools.product(*domains):
            links, ops = benchmark_key(space, dict(zip(order, values)))
            keys[values] = None if all(op == "skip" for op in ops) else table_hash(links, ops)
        _KEYS[proteins] = (space, order, keys)
    return _KEYS[proteins]


_BENCHES: dict[str, Bench] = {}


def bench(dataset: str) -> Bench:
    if dataset not in _BENCHES:
        _BENCHES[dataset] = Bench(dataset)
    return _BENCHES[dataset]


# ---------------------------------------------------------------- one search


def run(dataset: str, strategy_name: str, seed: int, budget: int) -> Run:
    from archlang.solvers import Result, get_strategy

    b = bench(dataset)
    strategy = get_strategy(strategy_name, **STRATEGIES[strategy_name])
    spent = 0.0
    start = time.perf_counter()
    strategy.setup(b.space, seed)
    spent += time.perf_counter() - start
    seen: dict[int, tuple[float, float]] = {}
    best = (-math.inf, math.nan)
    proposals = 0
    while len(seen) < budget and proposals < MAX_PROPOSALS * budget:
        start = time.perf_counter()
        assignment = strategy.propose()
        spent += time.perf_counter() - start
        proposals += 1
        found = b.result(assignment)
        if found is None:
            result = Result("infeasible")
        else:
            key, val, test = found
            if key not in seen:
                seen[key] = (val, test)
                if val > best[0]:
                    best = (val, test)
            result = Result("ok", val, {"val_accuracy": val, "test_accuracy": test})
        start = time.perf_counter()
        strategy.feedback(assignment, result)
        spent += time.perf_counter() - start
    return Run(dataset, strategy_name, seed, best[0], best[1], len(seen), proposals, spent)


def _run_many(tasks: list[tuple[str, str, int, int]]) -> list[Run]:
    return [run(*t) for t in tasks]


def run_all(datasets: Iterable[str], strategies: Iterable[str], seeds: int,
            workers: int) -> list[Run]:
    tasks = [(d, s, seed, PROTEINS_BUDGET if d == "proteins" else BUDGET)
             for d in datasets for s in strategies for seed in range(seeds)]
    # chunks of one (dataset, strategy) pair keep each worker's space cache warm
    chunks = [tasks[i:i + 10] for i in range(0, len(tasks), 10)]
    if workers <= 1:
        return _run_many(tasks)
    with ProcessPoolExecutor(workers) as pool:
        return [r for chunk in pool.map(_run_many, chunks) for r in chunk]


# ---------------------------------------------------------------- statistics and report


def p_value(a: list[float], b: list[float]) -> float:
    """Two-sided Mann-Whitney U test of two samples of per-seed results."""
    from scipy.stats import mannwhitneyu

    if len(set(a) | set(b)) == 1:
        return 1.0
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def summarise(runs: list[Run], strategies: list[str]) -> str:
    lines = []
    by: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        by.setdefault((r.dataset, r.strategy), []).append(r)
    datasets = [d for d in DATASETS if any(k[0] == d for k in by)]
    head = "| dataset | budget | " + " | ".join(strategies) + " | best in table |"
    lines += ["Test accuracy (%) of the best-by-validation architecture, mean ± std over "
              "seeds:", "", head, "|" + " --- |" * (len(strategies) + 3)]
    from archlang.search.evaluators.lookup import table

    for d in datasets:
        cells = []
        for s in strategies:
            tests = [100 * r.best_test for r in by.get((d, s), [])]
            cells.append(f"{statistics.fmean(tests):.2f} ± {_std(tests):.2f}" if tests else "-")
        entries = table(d).values()
        top = max(entries, key=lambda e: e["valid_perf"])  # the oracle by validation
        budget = PROTEINS_BUDGET if d == "proteins" else BUDGET
        lines.append(f"| {d} | {budget} | " + " | ".join(cells) +
                     f" | {100 * float(top['perf']):.2f} |")
    lines += ["", "\"best in table\": the test accuracy of the architecture with the highest "
              "validation accuracy in the whole table.", "",
              "Validation accuracy (%) of the best found (what the strategies maximise), mean "
              "± std; \"best in table\" is the table's highest:", "",
              head, "|" + " --- |" * (len(strategies) + 3)]
    for d in datasets:
        cells = []
        for s in strategies:
            vals = [100 * r.best_val for r in by.get((d, s), [])]
            cells.append(f"{statistics.fmean(vals):.2f} ± {_std(vals):.2f}" if vals else "-")
        top = max(float(e["valid_perf"]) for e in table(d).values())
        budget = PROTEINS_BUDGET if d == "proteins" else BUDGET
        lines.append(f"| {d} | {budget} | " + " | ".join(cells) + f" | {100 * top:.2f} |")
    lines.append("")
    others = [s for s in strategies if s != "random"]
    pairs = [(s, "random") for s in others if "random" in strategies]
    pairs += [(s, "evolution") for s in ("mcts", "smbo") if s in strategies
              and "evolution" in strategies]
    if pairs:
        lines += ["Difference of mean test accuracy (points) and two-sided Mann-Whitney U "
                  "p-value (`*`: p < 0.05):", "",
                  "| dataset | " + " | ".join(f"{a} − {b}" for a, b in pairs) + " |",
                  "|" + " --- |" * (len(pairs) + 1)]
        for d in datasets:
            cells = []
            for a, b in pairs:
                xa = [r.best_test for r in by.get((d, a), [])]
                xb = [r.best_test for r in by.get((d, b), [])]
                if not xa or not xb:
                    cells.append("-")
                    continue
                p = p_value(xa, xb)
                diff = 100 * (statistics.fmean(xa) - statistics.fmean(xb))
                cells.append(f"{diff:+.2f} (p={p:.2g}){'*' if p < 0.05 else ''}")
            lines.append(f"| {d} | " + " | ".join(cells) + " |")
        lines.append("")
    proposals = {s: sum(r.proposals for r in runs if r.strategy == s) for s in strategies}
    seconds = {s: sum(r.seconds for r in runs if r.strategy == s) for s in strategies}
    lines += ["Strategy time per proposal (propose + feedback, lookups excluded): " + ", ".join(
        f"{s} {1000 * seconds[s] / max(proposals[s], 1):.2f} ms" for s in strategies) + "."]
    return "\n".join(lines)


def _std(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                        choices=list(STRATEGIES))
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    runs = run_all(args.datasets, args.strategies, args.seeds, args.workers)
    wall = time.perf_counter() - start
    report = summarise(runs, args.strategies)
    command = "python bench/nasbench_graph.py " + " ".join(argv if argv is not None
                                                           else sys.argv[1:])
    header = (f"{date.today().isoformat()}, {machine()}; `{command.strip()}`; "
              f"{args.seeds} seeds per (dataset, strategy), {args.workers} worker processes, "
              f"{wall:.0f} s wall.\n\nSpace: examples/nasbench_graph.arch (157,464 points, "
              "26,206 distinct entries; with `proteins = true` 15,000 points, 2,021 entries). "
              "Evolution: population 20, tournament 5. Budget: distinct benchmark entries.\n")
    print(header)
    print(report)
    if args.write:
        replace_section(ROOT / "BENCHMARKS.md", SECTION, header + "\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
