"""What a search database says: the top trials (rich) and PNG plots (matplotlib).

Plots: `best_so_far.png`, the best score against the number of evaluated trials for each
strategy in the file (one line per run; with several runs of a strategy, their mean in bold); `pareto.png`, with two objectives, every ok trial
and the Pareto front.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archlang.search.objectives import Objectives, oriented, pareto_front
from archlang.search.store import RunInfo, TrialRecord, TrialStore, best_trial

_SHOWN_METRICS = ("accuracy", "test_accuracy", "params", "macs", "train_time")


def top_trials(records: Sequence[TrialRecord], n: int) -> list[TrialRecord]:
    ok = [r for r in records if r.status == "ok" and r.score is not None]
    return sorted(ok, key=lambda r: (-r.score, r.run_id, r.number))[:n]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:.3g}{suffix}"
        return f"{value:.4g}"
    return str(value)


def print_top(console, records: Sequence[TrialRecord], objectives: Objectives, n: int = 10,
              title: str = "top trials") -> None:
    from rich.table import Table

    metric_names = [m for _, m in objectives]
    metric_names += [m for m in _SHOWN_METRICS if m not in metric_names
                     and any(m in r.metrics for r in records)]
    rows = [[str(r.run_id), str(r.number), *(_fmt(r.metrics.get(m, "")) for m in metric_names)]
            for r in top_trials(records, n)]
    headers = ["run", "trial", *metric_names]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    table = Table(title=title)
    for header, width in zip(headers, widths):
        table.add_column(header, no_wrap=True, justify="right", min_width=width)
    # the assignment gets the width that is left, cut with an ellipsis
    left = max(console.width - sum(widths) - 3 * len(widths) - 4, 20)
    table.add_column("assignment", no_wrap=True, overflow="ellipsis", max_width=left)
    for r, row in zip(top_trials(records, n), rows):
        table.add_row(*row, " ".join(f"{k}={_fmt(v)}" for k, v in r.assignment.items()))
    console.print(table)


def summary_lines(result) -> list[str]:
    """The closing lines of `archlang search`: counts, best trial, front, where things are."""
    trials = result.trials
    counts = {s: sum(r.status == s for r in trials) for s in ("ok", "failed", "infeasible")}
    lines = [f"{len(trials)} trials in {result.db} (run {result.run.id}): {counts['ok']} ok, "
             f"{counts['failed']} failed, {counts['infeasible']} infeasible "
             f"(stopped: {result.stopped})"]
    objective = " ".join(result.run.objectives[0])
    if result.best is not None:
        b = result.best
        lines.append(f"best: trial {b.number} ({objective} = "
                     f"{_fmt(b.metrics.get(result.run.objectives[0][1]))}) "
                     f"{json.dumps(b.assignment)}")
        lines.append(f"compile it: archlang compile --from-db {result.db} --best -o best.py")
    if result.front:
        lines.append("Pareto front (" + ", ".join(" ".join(o) for o in result.run.objectives)
                     + "): trials " + ", ".join(str(r.number) for r in result.front))
    return lines


def best_so_far(records: Sequence[TrialRecord]) -> list[float]:
    """The best score after each evaluated trial (infeasible points are not trials here)."""
    out, best = [], -math.inf
    for r in sorted(records, key=lambda r: r.number):
        if r.status == "infeasible":
            continue
        if r.status == "ok" and r.score is not None and r.score > best:
            best = r.score
        out.append(best)
    return out


def _label(run: RunInfo) -> str:
    return f"{run.strategy} (seed {run.seed}, run {run.id})"


def plot_best_so_far(runs: Sequence[RunInfo], by_run: dict[int, list[TrialRecord]],
                     path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups: dict[str, list[RunInfo]] = {}
    for run in runs:
        groups.setdefault(run.strategy, []).append(run)
    for color, (strategy, members) in enumerate(groups.items()):
        sense = members[0].objectives[0][0]
        sign = 1 if sense == "maximize" else -1
        curves = [[sign * y if math.isfinite(y) else math.nan
                   for y in best_so_far(by_run.get(run.id, []))] for run in members]
        if len(members) == 1:
            ax.plot(range(1, len(curves[0]) + 1), curves[0], color=f"C{color}",
                    label=_label(members[0]), drawstyle="steps-post")
            continue
        # several seeds: each run faint, their mean (where all runs have a value) bold
        for curve in curves:
            ax.plot(range(1, len(curve) + 1), curve, color=f"C{color}", alpha=0.25,
                    linewidth=0.8, drawstyle="steps-post")
        length = min(len(c) for c in curves)
        mean = []
        for i in range(length):
            column = [c[i] for c in curves]
            mean.append(math.nan if any(math.isnan(v) for v in column)
                        else sum(column) / len(column))
        ax.plot(range(1, length + 1), mean, color=f"C{color}", linewidth=2,
                label=f"{strategy} (mean of {len(members)} runs)", drawstyle="steps-post")
    if runs:
        sense, metric = runs[0].objectives[0]
        ax.set_ylabel(f"best {metric} so far ({sense})")
    ax.set_xlabel("evaluated trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_pareto(records: Sequence[TrialRecord], objectives: Objectives, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if r.status == "ok"]
    points = [oriented(r.metrics, objectives[:2]) for r in ok]
    front = set(pareto_front(points))
    (sx, mx), (sy, my) = objectives[0], objectives[1]
    xs = [r.metrics.get(mx, math.nan) for r in ok]
    ys = [r.metrics.get(my, math.nan) for r in ok]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(xs, ys, s=12, alpha=0.4, label="trials")
    fx = sorted((xs[i], ys[i]) for i in front)
    ax.plot([p[0] for p in fx], [p[1] for p in fx], "o-", color="C3", label="Pareto front")
    ax.set_xlabel(f"{mx} ({sx})")
    ax.set_ylabel(f"{my} ({sy})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report(db: str | Path, out: Path | None, console, top: int = 10) -> list[Path]:
    """Print the top trials of every run in `db`; write the plots into `out` (if given)."""
    with TrialStore(db, readonly=True) as store:
        runs = store.runs()
        records = store.trials()
    by_run: dict[int, list[TrialRecord]] = {}
    for r in records:
        by_run.setdefault(r.run_id, []).append(r)
    for run in runs:
        mine = by_run.get(run.id, [])
        counts = {s: sum(r.status == s for r in mine) for s in ("ok", "failed", "infeasible")}
        best = best_trial(mine)
        console.print(f"run {run.id}: {run.strategy}, seed {run.seed}, evaluator "
                      f"{run.evaluator}, {Path(run.spec_path).name}: {len(mine)} trials "
                      f"({counts['ok']} ok, {counts['failed']} failed, "
                      f"{counts['infeasible']} infeasible)"
                      + (f"; best trial {best.number}" if best else ""))
    objectives = runs[0].objectives if runs else (("maximize", "accuracy"),)
    print_top(console, records, objectives, top)
    written: list[Path] = []
    if out is not None and runs:
        out.mkdir(parents=True, exist_ok=True)
        written.append(plot_best_so_far(runs, by_run, out / "best_so_far.png"))
        if len(objectives) >= 2:
            written.append(plot_pareto(records, objectives, out / "pareto.png"))
        for path in written:
            console.print(f"wrote {path}")
    return written
