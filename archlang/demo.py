"""`make demo`: the main job on the bundled examples.

Checks every example, prints a params/MACs table for each, samples three points of the digits
search space and writes their emitted PyTorch source under out/, then runs a short search of
that space on scikit-learn's digits (MCTS, trained candidates), reports it with plots, and
compiles the best architecture; last, designs a network with no data at all: `archlang solve`
on DeepMAD's ResNet-18-budget space (20 s), compiled to PyTorch.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

import archlang

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
OUT = Path("out")


def _si(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3f} {suffix}"
    return str(value)


def main() -> int:
    console = Console(highlight=False)
    table = Table("example", "kind", "decisions", "points", "params", "MACs", "depth",
                  title="archlang check examples/*.arch")
    for path in sorted(EXAMPLES.glob("*.arch")):
        try:
            space = archlang.load(path)
        except archlang.ArchError as exc:
            console.print(exc.render())
            return 1
        values = archlang.api.default_assignment(space)
        cost = archlang.fix(space, values).cost
        kind = "search space" if space.decisions else "network"
        size = archlang.size(space)
        points = "1" if not space.decisions else (
            f"{size:,}" if size != float("inf") else "infinite")
        table.add_row(path.name, kind, str(len(space.decisions)), points, f"{cost.params:,}",
                      _si(cost.macs), str(cost.depth))
    console.print(table)

    space = archlang.load(EXAMPLES / "digits_space.arch")
    OUT.mkdir(exist_ok=True)
    console.print(f"\nthree points of {space.name} (seed 0):")

    rng = random.Random(0)
    for i in range(3):
        arch = archlang.fix(space, archlang.sample(space, rng))
        target = OUT / f"digits_point{i}.py"
        target.write_text(arch.emit("torch"))
        model = arch.build("torch")
        built = sum(p.numel() for p in model.parameters())
        console.print(f"  {arch.hash}  params {arch.cost.params:>8,} (torch module: {built:,})  "
                      f"MACs {_si(arch.cost.macs):>9}  -> {target}")
    flax_target = OUT / "digits_point2_flax.py"
    flax_target.write_text(arch.emit("flax"))
    from archlang.backends.flax.parity import parity_report

    console.print(f"\nthe last point compiled to flax ({flax_target}), weights copied from torch:")
    console.print(parity_report(arch))
    return search_demo(console) or solve_demo(console)


def solve_demo(console: Console) -> int:
    """Mathematical design: the best architecture of a space under budgets, with a bound."""
    from archlang.cli import main as cli

    target = OUT / "deepmad_r18_solved.py"
    console.print("\n$ archlang solve examples/deepmad_r18.arch --time-limit 20 "
                  f"-o {target}")
    return cli(["solve", str(EXAMPLES / "deepmad_r18.arch"), "--time-limit", "20",
                "-o", str(target)])


def search_demo(console: Console) -> int:
    """A short search (under 3 minutes on 2 cores), its report, and the best model's source."""
    from archlang.cli import main as cli

    spec = str(EXAMPLES / "digits_space.arch")
    db = OUT / "demo.sqlite"
    for stale in OUT.glob("demo.sqlite*"):
        stale.unlink()
    console.print("\n$ archlang search examples/digits_space.arch --strategy mcts --budget 8 "
                  "--evaluator train --epochs 2 --workers 2 --db out/demo.sqlite")
    code = cli(["search", spec, "--strategy", "mcts", "--budget", "8", "--evaluator", "train",
                "--epochs", "2", "--workers", "2", "--db", str(db), "--seed", "0"])
    if code:
        return code
    plots = OUT / "demo_report"
    console.print("\n$ archlang report out/demo.sqlite --out out/demo_report")
    if code := cli(["report", str(db), "--out", str(plots)]):
        return code
    best = OUT / "best_digits.py"
    console.print("\n$ archlang compile --from-db out/demo.sqlite --best -o out/best_digits.py")
    if code := cli(["compile", "--from-db", str(db), "--best", "-o", str(best)]):
        return code
    from archlang.search.store import TrialStore, best_trial

    with TrialStore(db, readonly=True) as store:
        top = best_trial(store.trials())
    console.print(f"\nbest architecture: {top.hash}  validation accuracy "
                  f"{top.metrics.get('val_accuracy', top.metrics.get('accuracy')):.3f}  "
                  f"test accuracy {top.metrics.get('test_accuracy', float('nan')):.3f}")
    console.print(f"  assignment {top.assignment}")
    console.print(f"  emitted source: {best}\n  plots: {plots}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
