"""`archlang search` and `archlang report`.

Imported by `archlang.cli` on every start: only argparse here at module level; the search
machinery, rich and matplotlib are imported when a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_DB = "runs.sqlite"
_EVALUATOR_FLAGS = ("dataset", "epochs", "batch_size", "lr", "optimizer")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("search", help="search a space: propose, check, evaluate, record")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--strategy", default="evolution",
                   help="random, evolution, mcts or smbo (default evolution)")
    p.add_argument("--budget", type=int, default=20,
                   help="trials to evaluate; infeasible points do not count (default 20)")
    p.add_argument("--evaluator", default="train",
                   help="train, lookup, zero-cost, or module:factory (default train)")
    p.add_argument("--dataset", help="the evaluator's dataset (digits, mnist, cora, ...)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer")
    p.add_argument("--evaluator-option", action="append", metavar="NAME=VALUE",
                   help="another evaluator option")
    p.add_argument("--strategy-option", action="append", metavar="NAME=VALUE",
                   help="a strategy option, e.g. population=20")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--db", default=DEFAULT_DB, help=f"trial database (default {DEFAULT_DB})")
    p.add_argument("--resume", action="store_true",
                   help="continue the run of this spec, strategy, seed and evaluator in --db")
    p.add_argument("--workers", type=int, default=1, help="trials evaluated at once")
    p.add_argument("--executor", default="local", choices=("local", "inprocess", "ray"),
                   help="local (processes when --workers > 1), inprocess, or ray")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--top", type=int, default=10, help="rows in the final table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="override a parameter of the arch")
    p.add_argument("--arch", help="which arch, when a file defines several")
    p.set_defaults(run=cmd_search)

    p = subparsers.add_parser("report", help="top trials of a search database, and plots")
    p.add_argument("db", metavar="DB")
    p.add_argument("--out", metavar="DIR", help="where to write the PNG plots "
                   "(default: DB's name + '_report')")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(run=cmd_report)


def cmd_search(args: argparse.Namespace) -> int:
    from archlang.cli import _pairs
    from archlang.search.report import print_top, summary_lines
    from archlang.search.runner import SearchConfig, run_search

    evaluator_options = {k: getattr(args, k) for k in _EVALUATOR_FLAGS
                         if getattr(args, k) is not None}
    evaluator_options.update(_pairs(args.evaluator_option or [], "--evaluator-option"))
    config = SearchConfig(
        spec=args.file, strategy=args.strategy, budget=args.budget, evaluator=args.evaluator,
        seed=args.seed, db=args.db, resume=args.resume, workers=args.workers,
        executor=args.executor, address=args.address,
        strategy_options=_pairs(args.strategy_option or [], "--strategy-option"),
        evaluator_options=evaluator_options, params=_pairs(args.param or [], "--param"),
        arch=args.arch)
    console = _console()
    try:
        if args.quiet:
            result = run_search(config)
        else:
            with _ProgressBar(console, config.budget) as bar:
                result = run_search(config, on_trial=bar.update)
    except KeyboardInterrupt:
        # every finished trial is already committed
        console.print(f"interrupted; continue with the same command and --resume "
                      f"(trials are in {args.db})")
        return 130
    print_top(console, result.trials, result.run.objectives, args.top,
              title=f"top trials of run {result.run.id} ({result.run.strategy}, "
                    f"seed {result.run.seed})")
    for line in summary_lines(result):
        console.print(line)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from archlang.search.report import report

    out = Path(args.out) if args.out else Path(args.db).with_name(Path(args.db).stem + "_report")
    report(args.db, None if args.no_plots else out, console=_console(), top=args.top)
    return 0


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


class _ProgressBar:
    """trials done / budget, best so far, time left (rich)."""

    def __init__(self, console, budget: int):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"), TimeElapsedColumn(),
            TextColumn("left"), TimeRemainingColumn(), console=console, transient=False)
        self.budget = budget

    def __enter__(self) -> _ProgressBar:
        self.progress.start()
        self.task = self.progress.add_task("search", total=self.budget, best="-")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def update(self, p) -> None:
        best = "-" if p.best is None else f"{p.best.score:.4g} (#{p.best.number})"
        self.progress.update(self.task, completed=p.evaluated, best=best)
