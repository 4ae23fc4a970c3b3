"""The MILP solver: exact against brute force on small spaces, certificates, infeasibility."""

from __future__ import annotations

import math

import pytest
from archlang.solvers.milp import Unsupported, solve

import archlang
from archlang.ir import decisions as D

SPACE = """arch a {{
    input x[3, 8, 8]
    let w = choice(4, 8)
    conv(w, choice(1, 3)) relu
    repeat choice(1, 2) {{ conv(w, choice(1, 3)) }}
    one_of {{ conv(8, 3, stride = 2) }} or {{ maxpool(2) }}
    optional {{ conv(choice(8, 16), 3) }}
    gap linear(10)
    {body}
}}"""

CHAIN = """arch b {{
    input x[3, 16, 16]
    let w1 = choice(4, 8, 16)
    let w2 = choice(4, 8, 16)
    s1: repeat choice(1, 2) {{ conv(w1, choice(1, 3)) bn relu }}
    s2: repeat choice(1, 2) {{ conv(w2, 3, stride = 2) bn relu }}
    gap linear(5)
    require w2 >= w1
    {body}
}}"""


def points(space):
    out = []

    def rec(i, values):
        if i == len(space.decisions):
            out.append(dict(values))
            return
        d = space.decisions[i]
        if not D.is_active(space, d, values):
            rec(i + 1, values)
            return
        for v in d.domain.enumerate():
            values[d.name] = v
            rec(i + 1, values)
            del values[d.name]

    rec(0, {})
    return out


def brute_force(space):
    sense, metric = space.objectives[0].sense, space.objectives[0].metric
    best = None
    for values in points(space):
        arch = archlang.fix(space, values)
        if arch.violations():
            continue
        value = arch.metrics()[metric]
        if best is None or (value > best if sense == "maximize" else value < best):
            best = value
    return best


CASES = [
    (SPACE, "require params <= 3000\n maximize macs"),
    (SPACE, "require macs >= 20k\n require params <= 5000\n minimize params"),
    (SPACE, "require macs <= 15k\n maximize params"),
    (SPACE, "require params <= 1500\n maximize entropy"),
    (CHAIN, "require macs <= 40k\n maximize params"),
    (CHAIN, "require params <= 1200\n require effectiveness <= 0.6\n maximize entropy_score"),
]


@pytest.mark.parametrize("template, body", CASES)
def test_optimum_equals_brute_force(template, body):
    space = archlang.loads(template.format(body=body))
    assert space.size <= 10**5
    expected = brute_force(space)
    solution = solve(space, time_limit=60)
    assert solution.status == "optimal"
    assert solution.gap is not None and solution.gap <= 1e-4
    assert solution.objective == pytest.approx(expected, rel=1e-7)
    # the assignment is a real point: the cost pass agrees and every requirement holds
    metric = space.objectives[0].metric
    assert solution.metrics[metric] == pytest.approx(expected, rel=1e-7)
    assert not archlang.fix(space, solution.assignment).violations()
    assert not solution.notes


def test_infeasible_names_the_conflict_and_least_relaxation():
    space = archlang.loads(SPACE.format(body="require params <= 50\n maximize macs"))
    least = min(archlang.fix(space, v).cost.params for v in points(space))
    solution = solve(space)
    assert solution.status == "infeasible" and solution.assignment is None
    assert [(r.constraint, r.least) for r in solution.conflicts] == \
        [("params <= 50", f"params <= {least}")]


def test_cli_solve_json_and_infeasible(run_cli, tmp_path):
    spec = tmp_path / "net.arch"
    spec.write_text(SPACE.format(body="require params <= 3000\n maximize macs"))
    code, out, _ = run_cli("solve", str(spec), "--json", "-o", str(tmp_path / "net.py"))
    assert code == 0
    import json

    data = json.loads(out)
    for key in ("status", "objective", "bound", "gap", "seconds", "assignment", "params", "macs"):
        assert key in data
    assert data["status"] == "optimal" and data["macs"] == pytest.approx(data["objective"])
    assert "class" in (tmp_path / "net.py").read_text()
    spec.write_text(SPACE.format(body="require params <= 50\n require macs <= 1M\n maximize macs"))
    code, out, err = run_cli("solve", str(spec))
    assert code == 1
    space = archlang.loads(spec.read_text())
    least = min(archlang.fix(space, v).cost.params for v in points(space))
    assert "require params <= 50" in err and f"params <= {least}" in err
    assert "macs <= 1M" not in err  # not part of the conflict


def test_too_large_for_the_generic_formulation_says_why():
    space = archlang.load(archlang.api.Path(__file__).resolve().parent.parent
                          / "examples" / "deepmad_r18.arch")
    with pytest.raises(Unsupported, match="not a sum of per-layer terms|joint values"):
        solve(space, time_limit=5)


def test_no_pyomo_on_import():
    import subprocess
    import sys

    code = "import archlang, sys; assert 'pyomo' not in sys.modules and 'highspy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert math.isfinite(1.0)
