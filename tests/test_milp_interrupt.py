"""Ctrl-C during `solve` stops the search, not the command: the best architecture found so
far is returned (status "interrupted") with the bound proven so far. The interrupt is raised
from inside the search at a chosen moment, as a signal handler would raise it there."""

from __future__ import annotations

import itertools

import pytest

import archlang
from archlang.solvers.milp import solve
from archlang.solvers.milp.boxbb import BoxSearch
from archlang.solvers.milp.heuristic import StageMoves
from tests.conftest import EXAMPLES
from tests.test_milp import _three_stage_scores, brute_force, staged_space
from tests.test_milp_fallback import CONTINUOUS, DISCRETE, _check


def interrupt_at(call: int):
    """A callable that raises KeyboardInterrupt at its `call`-th call (counting from 1)."""
    calls = itertools.count(1)

    def hook(*args, **kwargs):
        if next(calls) >= call:
            raise KeyboardInterrupt
        return []

    return hook


@pytest.mark.parametrize("call", [1, 3, 12, 40])
def test_interrupted_box_search_keeps_a_proven_bound(call):
    """Wherever it is interrupted, the search's bound is still above the optimum (the box
    being bounded at that moment is counted), and its answer is a feasible point."""
    from archlang.solvers.milp.heuristic import search
    from archlang.solvers.milp.staged import tables

    space, p, table = _three_stage_scores()
    best = max(s["entropy_score"] for _, s in table if s["params"] <= 40_000
               and s["macs"] <= 2.5e6 and s["effectiveness"] <= 0.45)
    start, rank = search(space, p, "entropy_score", "maximize", 0.3)
    assert rank[0] == 0.0
    boxes = BoxSearch(space, p, "entropy_score", "maximize", tables(space, p))
    out = boxes.search(start, 60.0, 0.0, offers=interrupt_at(call), interruptible=True)
    assert out.status == "interrupted"
    assert out.bound >= best - 1e-6
    assert out.objective <= best + 1e-6 and boxes.feasible(out.point)
    with pytest.raises(KeyboardInterrupt):  # not interruptible: the interrupt goes on up
        boxes.search(start, 60.0, 0.0, offers=interrupt_at(call))


def test_interrupted_incumbent_phases_return_the_best_point_so_far(monkeypatch):
    """Interrupted before the box search has bounded anything (in the pair moves): the best
    point of the phases so far, verified, with no bound."""
    monkeypatch.setattr(StageMoves, "improve_pairs", interrupt_at(1))
    lines: list[str] = []
    space = archlang.load(EXAMPLES / "deepmad_r18.arch")
    solution = solve(space, time_limit=8, threads=1, progress=lines.append)
    assert solution.status == "interrupted"
    assert solution.bound is None and solution.gap is None
    assert not solution.notes and not archlang.fix(space, solution.assignment).violations()
    reached = [float(line.split(" = ")[1].split()[0]) for line in lines
               if line.startswith("incumbent entropy_score = ")]
    assert reached and solution.objective == pytest.approx(max(reached), abs=0.051)  # %.6g


def test_interrupted_two_process_solve_stops_its_worker(monkeypatch, workers):
    # every box of the bounding process asks whether it is too costly: interrupted at the 30th
    too_costly = BoxSearch.too_costly
    interrupt = interrupt_at(30)

    def interrupting(self, box):
        interrupt()
        return too_costly(self, box)

    monkeypatch.setattr(BoxSearch, "too_costly", interrupting)
    space = staged_space((2, 1, 2), "require params <= 40k\n require macs <= 2.5M\n"
                         " require effectiveness <= 0.45\n maximize entropy_score",
                         whi=32, dmax=3, ratio=3)
    solution = solve(space, time_limit=60, formulation="staged-boxes", threads=2, gap=0.0)
    assert solution.status == "interrupted" and solution.size["boxes"] == 30
    assert solution.assignment is not None and not solution.notes
    assert len(workers) == 1 and workers[0].process.poll() is not None


def test_cli_prints_the_interrupted_answer_writes_it_and_exits_130(run_cli, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setattr(StageMoves, "improve_pairs", interrupt_at(1))
    out_py = tmp_path / "r18.py"
    code, out, err = run_cli("solve", str(EXAMPLES / "deepmad_r18.arch"), "--time-limit", "8",
                             "--threads", "1", "-o", str(out_py))
    assert code == 130
    assert out.startswith("deepmad_r18: interrupted  objective ")
    assert "note: interrupted" in err and "Traceback" not in err
    assert "class DeepmadR18" in out_py.read_text()


def test_interrupted_fallback_search_returns_its_best_point():
    space = archlang.loads(CONTINUOUS)
    check = _check(space)
    calls = itertools.count(1)

    def interrupting(assignment):
        if next(calls) > 200:
            raise KeyboardInterrupt
        return check(assignment)

    from archlang.solvers.milp.fallback import search

    solution = search(space, "random", 60, "continuous", interrupting)
    assert solution.status == "interrupted" and solution.bound is None
    assert not archlang.fix(space, solution.assignment).violations()
    assert solution.objective <= brute_force(archlang.loads(DISCRETE))
    assert solution.size["candidates"] == 201
