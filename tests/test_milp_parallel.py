"""The box search on two cores (`solvers/milp/boxsolve.py`): the incumbent phases in a second
process, the bounding here, points exchanged both ways."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import archlang
from archlang.solvers.milp import boxsolve, solve
from tests.test_milp import HEAD_CASES, STAGED_CASES, brute_force, staged_space

MAXIMISING = [case for case in STAGED_CASES + HEAD_CASES if "maximize" in case]


@pytest.mark.parametrize("body", MAXIMISING)
def test_two_processes_equal_brute_force(body, workers):
    space = staged_space((2, 2), body)
    solution = solve(space, time_limit=60, formulation="staged-boxes", threads=2)
    assert solution.status == "optimal" and solution.gap <= 1e-4
    assert solution.objective == pytest.approx(brute_force(space), rel=1e-7)
    assert not archlang.fix(space, solution.assignment).violations()
    assert not solution.notes
    # the proof ends the solve: the worker is stopped, not waited for
    assert len(workers) == 1 and workers[0].process.poll() is not None
    assert solution.seconds < 30


def test_two_processes_prove_infeasibility_at_once():
    space = staged_space((2, 2), "require macs <= 1k\n maximize entropy_score")
    solution = solve(space, time_limit=30, formulation="staged-boxes", threads=2)
    assert solution.status == "infeasible" and solution.assignment is None
    assert solution.seconds < 20


def test_a_failed_worker_leaves_the_box_search_to_finish(monkeypatch):
    """A worker that dies at once (here: its code raises) costs nothing but its points."""
    monkeypatch.setattr(boxsolve, "WORKER_CODE", "raise SystemExit({} + {})")
    space = staged_space((2, 2), STAGED_CASES[0])
    solution = solve(space, time_limit=60, formulation="staged-boxes", threads=2)
    assert solution.status == "optimal"
    assert solution.objective == pytest.approx(brute_force(space), rel=1e-7)


def test_full_size_problem_on_two_cores_takes_the_workers_points(workers):
    """DeepMAD's R18 problem for a few seconds: the worker's phases are reported here, then
    it bounds half of the open boxes (from half the limit); the answer is verified by the
    cost pass, the bound is above it, the worker has ended."""
    lines: list[str] = []
    space = archlang.load("examples/deepmad_r18.arch")
    solution = solve(space, time_limit=12, gap=1e-3, threads=2, progress=lines.append)
    assert solution.status == "time_limit" and "boxes" in solution.formulation
    assert any("after the heuristic and stage moves" in line for line in lines)
    assert any("open boxes handed to the second process" in line for line in lines)
    assert any(" boxes, " in line and " open, bound " in line for line in lines)
    assert solution.bound >= solution.objective > 30_000
    assert not solution.notes  # closed form == cost pass, every requirement met
    assert not archlang.fix(space, solution.assignment).violations()
    assert solution.seconds < 20
    assert len(workers) == 1 and workers[0].process.poll() is not None


def test_a_script_without_a_main_guard_solves_once(tmp_path):
    """The worker is its own `python -c`: a caller's script is not run again in it (as
    multiprocessing's spawn would do without an `if __name__ == "__main__"` guard)."""
    script = tmp_path / "design.py"
    script.write_text(textwrap.dedent("""
        from archlang.solvers.milp import solve
        from tests.test_milp import STAGED_CASES, staged_space
        print("solving")
        space = staged_space((2, 2), STAGED_CASES[0])
        print(solve(space, time_limit=30, formulation="staged-boxes", threads=2).status)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=str(tmp_path), env={
                              "PYTHONPATH": str(Path(__file__).parents[1]),
                              "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["solving", "optimal"]


def test_highs_thread_counts_can_change_within_a_process():
    """HiGHS sizes its thread pool at its first run and refuses a run asking for another
    size: `lin.use_threads` resizes it, so callers may mix thread counts (the CLI's default
    is 2, the library's 1)."""
    from tests.test_milp import SPACE, points

    space = archlang.loads(SPACE.format(body="require params <= 3000\n maximize macs"))
    expected = max(archlang.fix(space, v).cost.macs for v in points(space)
                   if archlang.fix(space, v).cost.params <= 3000)
    for threads in (1, 2, 1, 2):
        solution = solve(space, threads=threads)
        assert solution.status == "optimal" and solution.objective == expected


@pytest.mark.parametrize("wait", [False, True])
def test_an_orphaned_worker_ends_quietly(wait):
    """The bounding process dies (`os._exit`) before the worker has read the problem, or
    (`wait`) once the worker has sent its first point: the worker, in a session of its own,
    ends at once, or at its next message to the closed pipe, long before its limit, and
    without a traceback on the stderr it shares with its parent."""
    import time

    code = textwrap.dedent(f"""
        import os, time
        import archlang
        from archlang.solvers.milp import boxsolve
        from archlang.solvers.milp.staged import recognise
        space = archlang.load("examples/deepmad_r18.arch")
        worker = boxsolve._Worker(space, recognise(space), 120.0, time.perf_counter(), print)
        if {wait}:
            assert worker.inbox.poll(100)  # blocks until the worker's first message
        os._exit(0)
    """)
    begun = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=150, cwd=str(Path(__file__).parents[1]))
    # run() returns when every holder of the stderr pipe has closed it: the worker too
    assert done.returncode == 0
    assert "Traceback" not in done.stderr and "Error" not in done.stderr
    assert time.perf_counter() - begun < 60  # its limit was 120 s


def test_the_second_process_proves_what_the_box_search_cannot(workers):
    """R18 with 20 M MACs: below the least MACs of any architecture that meets the
    effectiveness limit (22.3 M), above the least without it, so no box closes by its least
    costs and the box search alone would bound until the limit. The second process, whose
    heuristic finds no feasible start, proves it infeasible by the least-cost DP
    (`beyond_budgets`) and the solve ends at once with the least relaxation of each
    conflicting requirement."""
    text = Path("examples/deepmad_r18.arch").read_text()
    assert "require macs <= 1.82G" in text
    space = archlang.loads(text.replace("require macs <= 1.82G", "require macs <= 0.02G"))
    solution = solve(space, time_limit=120, threads=2)
    assert solution.status == "infeasible" and solution.assignment is None
    assert solution.seconds < 60  # the proof, then the explanation; not the limit
    least = {r.constraint: r.least for r in solution.conflicts}
    assert least["macs <= 0.02G"] == "macs <= 22,303,232"
    assert len(workers) == 1 and workers[0].process.poll() is not None
