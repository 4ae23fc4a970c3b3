"""`archlang solve` on what it cannot do exactly: spaces no formulation encodes (a clear
refusal, or with `--fallback` a search scored by the cost pass), objectives a program cannot
state, settings and output paths it cannot use."""

from __future__ import annotations

import json

import pytest

import archlang
from archlang.ir import decisions as D
from archlang.solvers.milp import Unsupported, solve
from archlang.solvers.milp.fallback import search
from tests.test_milp import brute_force  # the optimum by enumeration, scored by the cost pass

# `p` is continuous: the MILP refuses the space; dropout changes no cost, so the best point
# is the best over the discrete decisions, which enumeration gives.
CONTINUOUS = """arch a {
    input image[3, 16, 16]
    let w = choice(8, 16, 24, 32)
    let k = choice(1, 3, 5)
    let p = uniform(0.0, 0.5)
    conv(w, k) relu dropout(p)
    conv(w, 3) relu
    require params <= 6000
    maximize macs
}
"""

DISCRETE = CONTINUOUS.replace("uniform(0.0, 0.5)", "choice(0.1)")

FINITE = """arch a {
    input image[3, 16, 16]
    let w = choice(8, 16, 24)
    let deep = choice(true, false)
    conv(w, 3) relu
    if deep {
        let k = choice(3, 5)
        conv(w, k) relu
        require k * w <= 100
    }
    OBJECTIVE
}
"""


def _check(space):
    def check(assignment):
        arch = archlang.fix(space, assignment)
        return arch.metrics(), arch.violations()
    return check


def test_refused_space_names_the_reason_and_the_fallback():
    space = archlang.loads(CONTINUOUS)
    with pytest.raises(Unsupported) as info:
        solve(space, time_limit=5)
    assert "'p' is continuous" in info.value.message
    assert any("--fallback evolution" in n for n in info.value.notes)


@pytest.mark.parametrize("strategy", ["random", "evolution"])
def test_fallback_search_finds_the_best_point_and_meets_every_requirement(strategy):
    space = archlang.loads(CONTINUOUS)
    solution = solve(space, time_limit=4, fallback=strategy)
    assert solution.status == "heuristic" and solution.bound is None and solution.gap is None
    arch = archlang.fix(space, solution.assignment)
    assert arch.violations() == []
    assert solution.objective == arch.metrics()["macs"] == solution.metrics["macs"]
    assert solution.objective == brute_force(archlang.loads(DISCRETE))
    assert solution.size["feasible"] >= 1 and solution.size["candidates"] >= 12
    assert any("no exact formulation" in n for n in solution.notes)


@pytest.mark.parametrize("sense", ["maximize", "minimize"])
def test_fallback_that_enumerates_a_finite_space_is_optimal(sense):
    space = archlang.loads(FINITE.replace("OBJECTIVE", f"{sense} params"))
    solution = search(space, "random", 30.0, "a test", _check(space))
    assert solution.status == "optimal" and solution.gap == 0.0
    assert solution.bound == solution.objective == brute_force(space)
    assert solution.size["candidates"] == D.size(space)


def test_fallback_proves_infeasible_only_by_enumeration():
    space = archlang.loads(FINITE.replace("OBJECTIVE", "require params <= 10\n maximize params"))
    solution = search(space, "evolution", 30.0, "a test", _check(space))
    assert solution.status == "infeasible" and solution.assignment is None
    assert solution.size["feasible"] == 0 and solution.size["candidates"] == D.size(space)


def test_cli_fallback_and_its_refusal(run_cli, tmp_path):
    spec = tmp_path / "net.arch"
    spec.write_text(CONTINUOUS)
    code, out, err = run_cli("solve", str(spec), "--time-limit", "3")
    assert code == 1 and "Traceback" not in err
    assert "error: decision 'p' is continuous" in err and "--fallback evolution" in err
    code, out, err = run_cli("solve", str(spec), "--time-limit", "3", "--fallback",
                             "evolution", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "heuristic" and data["bound"] is None
    assert data["objective"] == brute_force(archlang.loads(DISCRETE))
    code, _, err = run_cli("solve", str(spec), "--time-limit", "3", "--fallback", "annealing")
    assert code == 1 and "unknown fallback strategy 'annealing'" in err


def test_measured_objective_is_a_located_error(run_cli, tmp_path):
    spec = tmp_path / "net.arch"
    spec.write_text(FINITE.replace("OBJECTIVE", "maximize accuracy"))
    code, _, err = run_cli("solve", str(spec))
    assert code == 1 and "Traceback" not in err
    assert f"{spec}:11:14: error: 'accuracy'" in err and "archlang search" in err
    assert "^^^^^^^^" in err


def test_several_objectives_solve_the_first_and_say_so():
    space = archlang.loads(FINITE.replace("OBJECTIVE", "maximize params\n minimize macs"))
    solution = solve(space, time_limit=10)
    assert solution.status == "optimal"
    assert solution.objective == brute_force(space)
    assert any("first objective only (maximize params)" in n and "minimize macs" in n
               for n in solution.notes)


@pytest.mark.parametrize("flag,value,message", [
    ("--time-limit", "0", "time limit must be positive"),
    ("--gap", "-0.1", "gap must be a non-negative fraction"),
    ("--threads", "0", "threads must be at least 1"),
])
def test_bad_settings_are_one_line_errors(run_cli, tmp_path, flag, value, message):
    spec = tmp_path / "net.arch"
    spec.write_text(FINITE.replace("OBJECTIVE", "maximize params"))
    code, out, err = run_cli("solve", str(spec), flag, value)
    assert code == 1 and message in err and "Traceback" not in err and out == ""


def test_unwritable_output_keeps_the_answer_and_says_why(run_cli, tmp_path):
    spec = tmp_path / "net.arch"
    spec.write_text(FINITE.replace("OBJECTIVE", "maximize params"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = run_cli("solve", str(spec), "-o", str(blocker / "net.py"))
    assert code == 1 and "Traceback" not in err
    assert "optimal" in out and "assignment:" in out  # the answer is printed first
    assert f"error: cannot write '{blocker / 'net.py'}'" in err
    code, out, err = run_cli("solve", str(spec), "-o", str(tmp_path / "net.py"), "--backend",
                             "tf")
    assert code == 1 and out == "" and "unknown backend 'tf'" in err  # before solving


def test_solver_banner_only_with_verbose(tmp_path):
    # HiGHS prints its banner once per process, so each case runs in a fresh one
    import subprocess
    import sys

    spec = tmp_path / "net.arch"
    spec.write_text(FINITE.replace("OBJECTIVE", "maximize params"))
    code = "import sys; from archlang.cli import main; sys.exit(main(sys.argv[1:]))"
    runs = {flag: subprocess.run([sys.executable, "-c", code, "solve", str(spec), *flag],
                                 capture_output=True, text=True)
            for flag in ((), ("--verbose",))}
    quiet, verbose = runs[()], runs[("--verbose",)]
    assert quiet.returncode == verbose.returncode == 0
    assert "optimal" in quiet.stdout and "HiGHS 1." not in quiet.stdout + quiet.stderr
    assert "Running HiGHS" in verbose.stdout + verbose.stderr
