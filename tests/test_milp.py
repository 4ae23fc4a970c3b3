"""The MILP solver: exact against brute force on small spaces, certificates, infeasibility."""

from __future__ import annotations

import functools
import math
import time

import pytest

import archlang
from archlang.ir import decisions as D
from archlang.solvers.milp import Unsupported, solve

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
        solve(space, time_limit=5, formulation="generic")


def test_no_pyomo_on_import():
    import subprocess
    import sys

    code = "import archlang, sys; assert 'pyomo' not in sys.modules and 'highspy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert math.isfinite(1.0)


# ---------------------------------------------------------------- the staged (DeepMAD) formulation

STAGED = """block bneck(c: int, b: int, k: int, stride: int = 1, proj: str = "auto") {{
    residual(proj = proj) {{
        conv(b, 1, bias = false) bn relu
        conv(b, k, stride = stride, bias = false) bn relu
        conv(c, 1, bias = false) bn
    }}
    relu
}}
arch small {{
    input image[3, 32, 32]
    let s = choice({stems})
    stem: conv(s, 3, stride = 2, bias = false) bn relu
    {stages}
    {body}
}}"""

STAGE = """let w{i} = intrange({wlo}, {whi}, 8)
    let b{i} = intrange(8, {whi}, 8)
    let k{i} = choice({kernels})
    stage{i}: repeat intrange(1, {dmax}) as j {{
        bneck(w{i}, b{i}, k{i}, stride = if j == 0 then {stride} else 1, proj = if j == 0 then "conv_bn" else "auto")
    }}
    require b{i} <= w{i}
    require {ratio} * b{i} >= w{i}"""


def staged_space(strides, body, whi=16, dmax=2, kernels="3, 5", stems="8, 16", ratio=2,
                 monotone=True):
    stages = "\n    ".join(STAGE.format(i=i, wlo=8, whi=whi, kernels=kernels, dmax=dmax,
                                        stride=s, ratio=ratio)
                           for i, s in enumerate(strides, 1))
    if monotone:
        stages += "".join(f"\n    require w{i + 1} >= w{i}" for i in range(1, len(strides)))
    return archlang.loads(STAGED.format(stems=stems, stages=stages, body=body))


STAGED_CASES = [
    "require params <= 6000\n maximize entropy_score",
    "require macs <= 400k\n require effectiveness <= 0.6\n maximize entropy_score",
    "require params <= 8000\n require effectiveness <= 0.55\n maximize entropy",
    "require entropy >= 60\n minimize macs",
    "require entropy_score >= 40\n require effectiveness <= 0.6\n minimize params",
]


@pytest.mark.parametrize("formulation", ["staged", "staged-boxes"])
@pytest.mark.parametrize("body", STAGED_CASES)
def test_staged_equals_brute_force_on_the_cost_pass(body, formulation):
    """Two stages, every point scored by archlang's own cost pass; the HiGHS model and the
    box branch and bound (which also minimises a cost under a floor on the entropy)."""
    space = staged_space((2, 2), body)
    assert space.size <= 2000
    expected = brute_force(space)
    solution = solve(space, time_limit=60, formulation=formulation)
    assert solution.formulation.startswith("staged")
    assert ("boxes" in solution.formulation) == (formulation == "staged-boxes")
    assert solution.status == "optimal" and solution.gap <= 1e-4
    assert solution.objective == pytest.approx(expected, rel=1e-7)
    metric = space.objectives[0].metric
    assert solution.metrics[metric] == pytest.approx(expected, rel=1e-7)
    assert not archlang.fix(space, solution.assignment).violations()
    assert not solution.notes  # program values == closed form == cost pass


def test_long_limit_on_a_small_problem_ends_when_proven():
    """Limits above a pass (`boxsolve.PASS_SECONDS`) repeat the incumbent phases from new
    starts, but only while passes use their time: a small problem converges at once, and the
    box search then proves it, long before the limit."""
    space = staged_space((2, 2), STAGED_CASES[0])
    solution = solve(space, time_limit=300, formulation="staged-boxes")
    assert solution.status == "optimal" and solution.seconds < 30
    assert solution.objective == pytest.approx(brute_force(space), rel=1e-7)


def test_staged_equals_brute_force_on_three_stages():
    """DeepMAD's shape shrunk: three stages (strides 2, 1, 2, so stages 2 and 3 share a scale
    end), four widths, depths 1..3, effectiveness and the depth penalty active. Brute force
    over the closed form, which `recognise` checks against the cost pass (and so does the
    solver on its answer)."""
    from archlang.solvers.milp.staged import assignment, recognise, scores

    space = staged_space((2, 1, 2), "require params <= 40k\n require macs <= 2.5M\n"
                         " require effectiveness <= 0.45\n maximize entropy_score",
                         whi=32, dmax=3, ratio=3)
    p = recognise(space)
    best, best_point = -math.inf, None
    for point in D_points(p):
        s = scores(p, point)
        if s["params"] <= 40_000 and s["macs"] <= 2.5e6 and s["effectiveness"] <= 0.45 \
                and s["entropy_score"] > best:
            best, best_point = s["entropy_score"], point
    assert best_point is not None
    cost_pass = archlang.fix(space, assignment(p, best_point)).metrics()["entropy_score"]
    assert cost_pass == pytest.approx(best, rel=1e-9)
    solution = solve(space, time_limit=60, formulation="staged")
    assert solution.status == "optimal"
    assert solution.objective == pytest.approx(best, rel=1e-6)
    assert not solution.notes and not archlang.fix(space, solution.assignment).violations()


@pytest.mark.parametrize("every", [0, 1, 2])
def test_box_search_proves_the_optimum_however_often_it_re_prices(monkeypatch, every):
    """Re-pricing a subtree's multipliers (a box of every `REPRICE_EVERY`-th level; 0: never,
    every box at the first box's multipliers) changes how fast the bound falls, never what it
    proves: on the shrunken three-stage space the search from no incumbent proves the
    brute-force optimum."""
    from archlang.solvers.milp import boxbb
    from archlang.solvers.milp.staged import tables

    monkeypatch.setattr(boxbb, "REPRICE_EVERY", every)
    space, p, table = _three_stage_scores()
    best = max(s["entropy_score"] for _, s in table if s["params"] <= 40_000
               and s["macs"] <= 2.5e6 and s["effectiveness"] <= 0.45)
    boxes = boxbb.BoxSearch(space, p, "entropy_score", "maximize", tables(space, p))
    out = boxes.search(None, 120.0, 0.0)
    assert out.status == "optimal" and out.nodes > 4  # deep enough to re-price
    assert out.objective == pytest.approx(best, rel=1e-9)
    assert out.bound == pytest.approx(best, rel=1e-9)


@pytest.mark.parametrize("after", [2, 30])
def test_a_tree_split_between_two_searches_proves_the_optimum(after):
    """Two processes bound one tree: after `after` boxes the search hands every other open
    box to a second search (here in-process, as the worker would run it), which starts from
    them. Each proves only its part; merged (`boxsolve._merged`) they prove the brute-force
    optimum, and neither part alone may claim more than it searched."""
    from archlang.solvers.milp import boxbb
    from archlang.solvers.milp.boxsolve import _merged
    from archlang.solvers.milp.staged import tables

    space, p, table = _three_stage_scores()
    best = max(s["entropy_score"] for _, s in table if s["params"] <= 40_000
               and s["macs"] <= 2.5e6 and s["effectiveness"] <= 0.45)
    boxes = boxbb.BoxSearch(space, p, "entropy_score", "maximize", tables(space, p))
    given: list = []
    polls = iter(range(10**9))

    def hand_over():
        return (lambda nodes, point: given.append((nodes, point))) \
            if next(polls) >= after else None

    mine = boxes.search(None, 120.0, 0.0, hand_over=hand_over)
    assert len(given) == 1 and len(given[0][0]) >= 1
    nodes, point = given[0]
    assert mine.handed == max(-node.key for node in nodes)
    other = boxbb.BoxSearch(space, p, "entropy_score", "maximize", tables(space, p))
    theirs = other.search(point, 120.0, 0.0, opened=nodes)
    assert theirs.status in ("optimal", "infeasible") and mine.status == "optimal"
    merged = _merged(mine, (theirs.bound, theirs.status, theirs.nodes))
    if theirs.point is not None and (mine.point is None or theirs.objective > mine.objective):
        merged = boxes.adopt(merged, [theirs.point])
    assert merged.status == "optimal" and merged.nodes == mine.nodes + theirs.nodes
    assert merged.objective == pytest.approx(best, rel=1e-9)
    assert merged.bound == pytest.approx(best, rel=1e-9)
    # a worker that never reports leaves its boxes at the bounds they were handed with
    lost = _merged(mine, None)
    assert lost.status == "time_limit" and lost.bound == max(mine.bound, mine.handed)


def test_relaxed_starts_are_one_point_per_total_depth_most_promising_first():
    """The passes after the first start from the first box's relaxed points
    (`Incumbents.relaxed_starts`): one per total depth, ordered by their total's bound, at
    most RELAXED_STARTS; they may break a budget, and a stage move repairs some of them."""
    import numpy as np

    from archlang.solvers.milp.boxbb import ROOT_STEPS, BoxSearch
    from archlang.solvers.milp.boxsolve import RELAXED_STARTS, Incumbents
    from archlang.solvers.milp.heuristic import StageMoves
    from archlang.solvers.milp.staged import tables

    space, p = _deepmad_r18()
    t = tables(space, p)
    boxes = BoxSearch(space, p, "entropy_score", "maximize", t)
    moves = StageMoves(space, p, "entropy_score", "maximize", t)
    starts = Incumbents(space, p, "maximize", boxes, moves, 60, time.perf_counter(),
                        lambda when, point: None).relaxed_starts()
    assert 1 < len(starts) <= RELAXED_STARTS
    totals = [sum(d for d, *_ in stages) for _, stages in starts]
    assert len(set(totals)) == len(totals)
    root = boxes.propagate(boxes.root())
    _, duals = boxes.bound(root, boxes.first_duals(), -math.inf, ROOT_STEPS)

    def own(total: int):  # the total's bound and relaxed point at its own multipliers
        found = boxes.relax_totals(root, duals[total])
        g = int(np.flatnonzero(found.totals == total)[0])
        return float(found.values[g]), found.at(g).point

    bounds = []
    for total, point in zip(totals, starts):
        bound, relaxed = own(total)
        assert relaxed == point
        bounds.append(bound)
    assert bounds == sorted(bounds, reverse=True)
    others = [own(total)[0] for total in duals if total is not None and total not in totals]
    assert not others or max(others) <= min(bounds)
    repaired = [moves.improve(point, time.perf_counter() + 2) for point in starts]
    assert any(moves.meets(point) for point in repaired)


def D_points(p):
    """Every point meeting the requirements over decisions (b <= w <= 3 b, widths monotone)."""
    import itertools

    per_stage = [[(d, w, b, k) for d, w, b, k in itertools.product(
        st.depths, st.widths, st.bottlenecks, st.kernels) if b <= w <= 3 * b]
        for st in p.stages]
    for stem in p.stems:
        for stages in itertools.product(*per_stage):
            if all(a[1] <= b[1] for a, b in zip(stages, stages[1:])):
                yield stem, stages


def test_staged_refuses_with_a_reason():
    # a stage whose block is not a bottleneck
    space = archlang.loads("""arch a {
        input x[3, 16, 16]
        let w = choice(8, 16)
        stem: conv(w, 3, stride = 2) relu
        s1: repeat choice(1, 2) { conv(w, 3) relu }
        maximize entropy_score
    }""")
    with pytest.raises(Unsupported, match="residual|bottleneck"):
        solve(space, formulation="staged")
    # a conv after the stages: it would count in the entropy, which the head may not
    space = staged_space((2, 2), "conv(8, 1)\n maximize entropy_score")
    with pytest.raises(Unsupported, match="after the last stage"):
        solve(space, formulation="staged")


HEAD_CASES = [
    "gap fc: linear(10)\n require params <= 6500\n maximize entropy_score",
    "gap linear(7, bias = false)\n require entropy >= 60\n minimize params",
    "gap fc: linear(10)\n require macs <= 400k\n require effectiveness <= 0.6\n"
    " maximize entropy",
]


@pytest.mark.parametrize("formulation", ["staged", "staged-boxes"])
@pytest.mark.parametrize("body", HEAD_CASES)
def test_staged_with_a_classifier_head_equals_brute_force(body, formulation):
    """A classifier after the stages (its costs affine in the last width, measured by the
    cost pass) on both engines, against every point scored by the cost pass."""
    from archlang.solvers.milp.staged import recognise

    space = staged_space((2, 2), body)
    assert recognise(space).head.params_per_width in (10, 7)
    expected = brute_force(space)
    solution = solve(space, time_limit=60, formulation=formulation)
    assert solution.formulation.startswith("staged")
    assert solution.status == "optimal" and solution.gap <= 1e-4
    assert solution.objective == pytest.approx(expected, rel=1e-7)
    assert not archlang.fix(space, solution.assignment).violations()
    assert not solution.notes


def test_cli_solves_deepmad_r18_within_a_time_limit(run_cli, tmp_path):
    """The full-size problem: a feasible answer, verified by the cost pass, within the limit
    (certifying the optimum takes far longer; see BENCHMARKS.md), compiled to a torch model
    that has the answer's parameters and runs."""
    import importlib.util
    import json
    import time

    from tests.conftest import EXAMPLES

    start = time.perf_counter()
    code, out, err = run_cli("solve", str(EXAMPLES / "deepmad_r18.arch"), "--time-limit", "12",
                             "--json", "-o", str(tmp_path / "r18.py"))
    seconds = time.perf_counter() - start
    assert code == 0, err
    data = json.loads(out)
    assert data["formulation"].startswith("staged")
    assert data["status"] in ("optimal", "time_limit")
    assert data["bound"] is None or data["bound"] >= data["objective"] - 1e-6
    assert not data["notes"]  # program values == closed form == cost pass, budgets met
    space = archlang.load(EXAMPLES / "deepmad_r18.arch")
    arch = archlang.fix(space, data["assignment"])
    assert not arch.violations()
    m = arch.metrics()
    assert m["entropy_score"] == pytest.approx(data["objective"], rel=1e-6)
    assert m["params"] <= 11.69e6 and m["macs"] <= 1.82e9 and m["effectiveness"] <= 0.3
    assert seconds < 45
    import torch

    spec = importlib.util.spec_from_file_location("r18", tmp_path / "r18.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.DeepmadR18().eval()
    assert sum(t.numel() for t in model.parameters()) == m["params"] == data["params"]
    with torch.no_grad():
        assert tuple(model(torch.zeros(1, 3, 224, 224)).shape)[:2] == (1, data["assignment"]["w5"])


# ---------------------------------------------------------------- box branch and bound


def _deepmad_r18(head: bool = False):
    from archlang.solvers.milp.staged import recognise
    from tests.conftest import EXAMPLES

    space = archlang.load(EXAMPLES / "deepmad_r18.arch", params={"head": head})
    p = recognise(space)
    assert (p.head.params_per_width, p.head.macs_per_width) == ((1000, 1000) if head else (0, 0))
    return space, p


def _random_points(p, n, seed):
    import random

    rng = random.Random(seed)
    for _ in range(n):
        widths = sorted(rng.choice(st.widths[:128]) for st in p.stages)
        yield rng.choice(p.stems), tuple(
            (rng.choice(st.depths), w, max(8, -(-w // 80) * 8), rng.choice(st.kernels))
            for st, w in zip(p.stages, widths))


def test_scores_batch_equals_the_closed_form():
    import numpy as np

    from archlang.solvers.milp.staged import scores, scores_batch

    _, p = _deepmad_r18()
    points = list(_random_points(p, 30, 3))
    for point in points:
        want = scores(p, point)
        got = scores_batch(p, *point)
        for name, value in want.items():
            assert float(got[name]) == pytest.approx(value, rel=1e-12)
    # one stage as arrays, the rest fixed: element i is the point with that stage's option i
    stem, stages = points[0]
    batched = list(stages)
    batched[2] = tuple(np.array([pt[1][2][i] for pt in points]) for i in range(4))
    batch = scores_batch(p, stem, batched)
    for i, pt in enumerate(points):
        single = list(stages)
        single[2] = pt[1][2]
        want = scores(p, (stem, tuple(single)))
        for name in ("entropy_score", "macs", "params", "effectiveness"):
            assert float(batch[name][i]) == pytest.approx(want[name], rel=1e-12)


@pytest.mark.parametrize("head", [False, True])  # a classifier after the stages
def test_box_bound_is_exact_at_a_point_and_an_upper_bound_everywhere(head):
    """A box holding one point, with zero multipliers, bounds that point's score exactly; with
    any multipliers it bounds it from above when the point meets the budgets; and
    a wider box's bound is at least the best point inside it (checked on its random points)."""
    import numpy as np

    from archlang.solvers.milp.boxbb import Box, BoxSearch, _slot
    from archlang.solvers.milp.staged import scores, tables

    space, p = _deepmad_r18(head)
    t = tables(space, p)
    boxes = BoxSearch(space, p, "entropy_score", "maximize", t)

    def box_of(point):
        stem, stages = point
        lo = [p.stems.index(stem)]
        for st, (d, w, b, k) in zip(p.stages, stages):
            lo += [st.depths.index(d), st.widths.index(w), st.bottlenecks.index(b),
                   st.kernels.index(k)]
        return Box(tuple(lo), tuple(lo))

    rng = np.random.default_rng(0)
    for point in _random_points(p, 12, 5):
        exact = scores(p, point)
        r = boxes.relax(box_of(point), np.zeros(boxes.nduals))
        assert r.point == point
        assert r.bound == pytest.approx(exact["entropy_score"], rel=1e-12)
        duals = rng.uniform(0, 3000, boxes.nduals)
        bound = boxes.relax(box_of(point), duals).bound
        meets = exact["macs"] <= 1.82e9 and exact["params"] <= 11.69e6 and \
            exact["effectiveness"] <= 0.3
        if meets:
            assert bound >= exact["entropy_score"] - 1e-6
    # a box around a point: width +-2 steps, every depth, bottleneck and kernel
    stem, stages = next(_random_points(p, 1, 9))
    box = box_of((stem, stages))
    lo, hi = list(box.lo), list(box.hi)
    for t_, st in enumerate(p.stages):
        s = _slot(t_, 1)
        lo[s], hi[s] = max(0, lo[s] - 2), min(len(st.widths) - 1, hi[s] + 2)
        for what, n in ((0, len(st.depths)), (2, len(st.bottlenecks)), (3, len(st.kernels))):
            lo[_slot(t_, what)], hi[_slot(t_, what)] = 0, n - 1
    box = Box(tuple(lo), tuple(hi))
    r = boxes.relax(box, np.zeros(boxes.nduals))
    rng2 = np.random.default_rng(1)
    for _ in range(300):
        pick = [int(rng2.integers(a, b + 1)) for a, b in zip(box.lo, box.hi)]
        stages2 = tuple((st.depths[pick[_slot(i, 0)]], st.widths[pick[_slot(i, 1)]],
                         st.bottlenecks[pick[_slot(i, 2)]], st.kernels[pick[_slot(i, 3)]])
                        for i, st in enumerate(p.stages))
        value = scores(p, (p.stems[pick[0]], stages2))["entropy_score"]
        assert r.bound >= value - 1e-6


@pytest.mark.parametrize("head", [False, True])
def test_box_stage_maximum_in_closed_form_equals_the_table(head):
    """The per-depth best of a stage found from the stationary bottleneck (every cost
    written out in closed form, the head's with the last stage) equals the max over every
    (width, bottleneck, kernel) of the box's table, for random boxes and multipliers."""
    import random

    import numpy as np

    from archlang.solvers.milp.boxbb import Box, BoxSearch, _Prices
    from archlang.solvers.milp.staged import tables

    space, p = _deepmad_r18(head)
    boxes = BoxSearch(space, p, "entropy_score", "maximize", tables(space, p))
    rng = random.Random(4)
    root = boxes.root()
    for trial in range(40):
        lo, hi = list(root.lo), list(root.hi)
        for i in range(1, len(lo)):
            a, b = sorted(rng.randint(root.lo[i], root.hi[i]) for _ in range(2))
            lo[i], hi[i] = a, b
        box = Box(tuple(lo), tuple(hi))
        t = len(p.stages) - 1 if head and trial % 2 else rng.randrange(len(p.stages))
        tab = boxes.tables[t]
        assert tab.contiguous
        pr = _Prices(rng.uniform(0, 80), [(4.0, math.log(49), rng.uniform(0, 50))],
                     rng.uniform(0, 60), boxes.log0, rng.uniform(0, 5e-6),
                     rng.uniform(0, 5e-4), float(p.stages[t].widths[rng.randrange(64)]))
        dense = boxes._stage_dense(t, tab, box, pr)
        closed = boxes._stage_analytic(t, tab, box, pr)
        assert (dense is None) == (closed is None)
        if dense is not None:
            assert np.allclose(dense[1], closed[1], rtol=1e-12, atol=1e-9)


def _lagrangian(boxes, point, duals):
    """The Lagrangian of `point` at `duals`, as the box bounds price it (effectiveness rows
    exact): what every box bound must be at least, for every point of the box."""
    from archlang.solvers.milp.boxbb import RHO_SCALE
    from archlang.solvers.milp.staged import scores

    p, b = boxes.p, boxes.budgets
    s = scores(p, point)
    value = s["entropy_score"] + duals[0] * (1 - s["macs"] / b.macs) + \
        duals[1] * (1 - s["params"] / b.params)
    stem, stages = point
    logs, c = [], stem
    for d, w, bb, k in stages:
        logs.append(math.log(c) + d * (2 * math.log(bb) + 2 * math.log(k))
                    + (d - 1) * math.log(w))
        c = w
    for r, j in enumerate(boxes.rho_ends):
        upto = boxes.ends[j][0]
        n = 1 + 3 * sum(d for d, *_ in stages[:upto])
        value += duals[2 + r] / RHO_SCALE * (boxes.log0 + sum(logs[:upto]) - boxes._g(n))
    return value


def _box_around(boxes, point, width_steps, depth_steps, pin_stem=False):
    """The root box narrowed to `width_steps` widths and `depth_steps` depths either side of
    the point's, per stage (and to its stem if `pin_stem`)."""
    from archlang.solvers.milp.boxbb import Box, _slot

    p = boxes.p
    lo, hi = list(boxes.root().lo), list(boxes.root().hi)
    if pin_stem:
        lo[0] = hi[0] = p.stems.index(point[0])
    for t, (st, (d, w, _, _)) in enumerate(zip(p.stages, point[1])):
        for what, values, v, r in ((0, st.depths, d, depth_steps), (1, st.widths, w, width_steps)):
            i = values.index(v)
            lo[_slot(t, what)] = max(0, i - r)
            hi[_slot(t, what)] = min(len(values) - 1, i + r)
    return Box(tuple(lo), tuple(hi))


def test_box_bound_per_total_depth_is_above_every_point_of_that_total():
    """`relax_totals` splits a box's bound by total depth (the sum of the stage depths): for
    random multipliers each total's bound is at least the Lagrangian of every sampled point of
    the box with that total, its relaxed point has that total, the box's bound is the largest
    of them, and a box narrowed to one total keeps that total's bound alone."""
    import numpy as np

    from archlang.solvers.milp.boxbb import BoxSearch, _slot
    from archlang.solvers.milp.staged import tables

    space, p = _deepmad_r18()
    boxes = BoxSearch(space, p, "entropy_score", "maximize", tables(space, p))
    rng = np.random.default_rng(7)
    for centre in _random_points(p, 3, 11):
        box = _box_around(boxes, centre, 3, 2)
        duals = rng.uniform(0, 3000, boxes.nduals)
        found = boxes.relax_totals(box, duals)
        by_total = dict(zip(found.totals.tolist(), found.values.tolist()))
        assert len(by_total) > 1
        assert max(by_total.values()) == pytest.approx(boxes.relax(box, duals).bound, rel=1e-12)
        for g, total in enumerate(found.totals.tolist()):
            assert sum(d for d, *_ in found.at(g).point[1]) == total
        for _ in range(200):
            pick = [int(rng.integers(a, b + 1)) for a, b in zip(box.lo, box.hi)]
            stages = tuple((st.depths[pick[_slot(i, 0)]], st.widths[pick[_slot(i, 1)]],
                            st.bottlenecks[pick[_slot(i, 2)]], st.kernels[pick[_slot(i, 3)]])
                           for i, st in enumerate(p.stages))
            point = (p.stems[pick[0]], stages)
            lagrangian = _lagrangian(boxes, point, duals)
            assert by_total[sum(d for d, *_ in stages)] >= lagrangian - 1e-9 * abs(lagrangian)
        total = sorted(by_total)[len(by_total) // 2]
        one = boxes.propagate(boxes._with_totals(box, (total, total)))
        narrowed = boxes.relax_totals(one, duals)
        assert narrowed.totals.tolist() == [total]
        assert narrowed.values[0] == pytest.approx(by_total[total], rel=1e-12)


def test_relaxed_points_marked_infeasible_break_a_requirement():
    """The search skips scoring a relaxed point marked `infeasible` (its relaxed costs are
    lower bounds of its real ones and its logs exact): every point so marked must break a
    requirement when scored by the cost pass."""
    import numpy as np

    from archlang.solvers.milp.boxbb import BoxSearch
    from archlang.solvers.milp.staged import tables

    space, p = _deepmad_r18()
    boxes = BoxSearch(space, p, "entropy_score", "maximize", tables(space, p))
    rng = np.random.default_rng(11)
    marked = 0
    for centre in _random_points(p, 6, 5):
        box = _box_around(boxes, centre, 3, 2)
        for _ in range(4):
            found = boxes.relax_totals(box, rng.uniform(0, 3000, boxes.nduals))
            for g in range(len(found.totals)):
                r = found.at(g)
                if r.infeasible:
                    marked += 1
                    assert not boxes.feasible(r.point), r.point
    assert marked > 0


def test_box_bound_of_a_point_with_fewer_stages_than_the_depth_penalty_covers():
    """The depth penalty covers the last three stages; on a two-stage space it covers both,
    once each: a one-point box's bound with zero multipliers is the point's score."""
    import numpy as np

    from archlang.solvers.milp.boxbb import Box, BoxSearch
    from archlang.solvers.milp.staged import recognise, scores, tables

    space = staged_space((2, 2), "require params <= 6500\n maximize entropy_score")
    p = recognise(space)
    assert p.penalty_stages == 3 and len(p.stages) == 2
    boxes = BoxSearch(space, p, "entropy_score", "maximize", tables(space, p))
    for stem, stages in _random_points(p, 6, 3):
        lo = [p.stems.index(stem)]
        for st, (d, w, b, k) in zip(p.stages, stages):
            lo += [st.depths.index(d), st.widths.index(w), st.bottlenecks.index(b),
                   st.kernels.index(k)]
        r = boxes.relax(Box(tuple(lo), tuple(lo)), np.zeros(boxes.nduals))
        assert r.bound == pytest.approx(scores(p, (stem, stages))["entropy_score"], rel=1e-12)


@pytest.mark.parametrize("head", [False, True])  # a classifier after the stages
def test_chain_bound_is_exact_at_a_point_and_above_every_point_of_a_box(head):
    """The width-exact bound (`chainbound.py`): a one-point box with zero multipliers gives
    the point's score; for random multipliers, boxes of fixed or ranging depths, its bound is
    at least the Lagrangian of every sampled point of the box (budgets broken or not)."""
    import numpy as np

    from archlang.solvers.milp.boxbb import Box, BoxSearch, _slot
    from archlang.solvers.milp.staged import scores, tables

    space, p = _deepmad_r18(head)
    boxes = BoxSearch(space, p, "entropy_score", "maximize", tables(space, p))
    assert boxes.chain is not None
    rng = np.random.default_rng(3)
    for point in _random_points(p, 6, 11):
        lo = [p.stems.index(point[0])]
        for st, (d, w, b, k) in zip(p.stages, point[1]):
            lo += [st.depths.index(d), st.widths.index(w), st.bottlenecks.index(b),
                   st.kernels.index(k)]
        one = Box(tuple(lo), tuple(lo))
        r = boxes.chain.relax(one, np.zeros(boxes.nduals))
        assert r.point == point
        assert r.bound == pytest.approx(scores(p, point)["entropy_score"], rel=1e-12)
        duals = rng.uniform(0, 3000, boxes.nduals)
        assert boxes.chain.relax(one, duals).bound == pytest.approx(
            _lagrangian(boxes, point, duals), rel=1e-9)
    for width_steps, depth_steps in ((3, 0), (6, 0), (2, 1)):
        center = next(_random_points(p, 1, 20 + width_steps))
        box = boxes.propagate(_box_around(boxes, center, width_steps, depth_steps))
        for _ in range(3):
            duals = rng.uniform(0, 3000, boxes.nduals)
            bound = boxes.chain.relax(box, duals).bound
            for _ in range(200):
                pick = [int(rng.integers(a, b + 1)) for a, b in zip(box.lo, box.hi)]
                stages = tuple(sorted((st.widths[pick[_slot(i, 1)]], st.depths[pick[_slot(i, 0)]],
                                       i) for i, st in enumerate(p.stages)))
                stages = [(p.stages[i].depths[pick[_slot(i, 0)]], w) for w, _, i in stages]
                if any(st.widths.index(w) not in range(box.lo[_slot(i, 1)], box.hi[_slot(i, 1)] + 1)
                       for i, (st, (_, w)) in enumerate(zip(p.stages, stages))):
                    continue  # sorting the widths (monotone) left the box
                full = []
                for st, (d, w) in zip(p.stages, stages):
                    allowed = [b for b in st.bottlenecks if b <= w <= 10 * b]
                    full.append((d, w, allowed[int(rng.integers(len(allowed)))],
                                 st.kernels[int(rng.integers(len(st.kernels)))]))
                point = (p.stems[pick[0]], tuple(full))
                assert bound >= _lagrangian(boxes, point, duals) - 1e-6


def test_chain_bound_is_exact_in_the_widths():
    """With the depths fixed, the width-exact bound over a box equals (within the kappa grid's
    chord and the first stage's widest second-stage width) the largest stage-by-stage bound of
    its one-width-profile boxes, where the stage-by-stage bound is exact in the widths; and it
    is far below the stage-by-stage bound of the whole box."""
    import itertools

    import numpy as np

    from archlang.solvers.milp.boxbb import Box, BoxSearch, _slot
    from archlang.solvers.milp.staged import tables

    space, p = _deepmad_r18()
    boxes = BoxSearch(space, p, "entropy_score", "maximize", tables(space, p))
    center = (32, ((1, 96, 16, 5), (2, 392, 40, 5), (15, 632, 64, 5), (14, 656, 72, 5),
                   (9, 968, 104, 5)))
    box = _box_around(boxes, center, 1, 0, pin_stem=True)
    lo, hi = list(box.lo), list(box.hi)
    duals = np.array([1490.0, 1990.0, 0, 0, 0, 50.0])
    chain = boxes.chain.relax(box, duals).bound
    best = -math.inf
    for profile in itertools.product(*[range(lo[_slot(t, 1)], hi[_slot(t, 1)] + 1)
                                       for t in range(len(p.stages))]):
        a, b = list(lo), list(hi)
        for t, i in enumerate(profile):
            a[_slot(t, 1)] = b[_slot(t, 1)] = i
        one = boxes.propagate(Box(tuple(a), tuple(b)))
        if one is not None:
            best = max(best, boxes.relax(one, duals).bound)
    assert best - 1e-6 <= chain <= best + 1e-4 * abs(best)
    assert boxes.relax(box, duals).bound > chain + 1e-3 * abs(chain)


def test_stage_moves_improve_and_keep_every_requirement():
    from archlang.solvers.milp.heuristic import StageMoves, search
    from archlang.solvers.milp.staged import assignment, scores

    space, p = _deepmad_r18()
    start, rank = search(space, p, "entropy_score", "maximize", 1.0)
    assert rank[0] == 0.0
    moves = StageMoves(space, p, "entropy_score", "maximize")
    import time

    better = moves.improve(start, time.perf_counter() + 30)
    assert scores(p, better)["entropy_score"] > scores(p, start)["entropy_score"]
    assert not archlang.fix(space, assignment(p, better)).violations()


def test_pair_moves_improve_a_stage_move_optimum_and_keep_every_requirement():
    """From a point no single-stage move improves, re-choosing two stages at once does."""
    import time

    from archlang.solvers.milp.heuristic import StageMoves
    from archlang.solvers.milp.staged import assignment, scores

    space, p = _deepmad_r18()
    moves = StageMoves(space, p, "entropy_score", "maximize")
    start = (32, ((1, 88, 32, 5), (1, 400, 64, 5), (14, 640, 64, 5), (15, 656, 72, 5),
                  (10, 960, 96, 5)))
    assert moves.improve(start, time.perf_counter() + 30) == start  # a stage-move optimum
    better = moves.improve_pairs(start, time.perf_counter() + 3, sizes=((4, 1, 1),))
    assert scores(p, better)["entropy_score"] > scores(p, start)["entropy_score"]
    assert moves.meets(better)
    assert not archlang.fix(space, assignment(p, better)).violations()


def test_triple_moves_with_a_filler_improve_a_pair_move_optimum():
    """From a 60-s R18 answer that no stage move and no small pair move improves, re-choosing
    three stages at once improves it, and more so with a fourth stage's bottleneck re-chosen
    with them (the filler restores the effectiveness limit the reshaping moves)."""
    import time

    from archlang.solvers.milp.heuristic import StageMoves
    from archlang.solvers.milp.staged import assignment, scores

    space, p = _deepmad_r18()
    moves = StageMoves(space, p, "entropy_score", "maximize")
    start = (32, ((1, 144, 24, 5), (1, 144, 56, 5), (14, 648, 72, 5), (15, 688, 72, 5),
                  (11, 880, 88, 5)))
    assert moves.improve(start, time.perf_counter() + 30) == start
    assert moves.improve_pairs(start, time.perf_counter() + 30, sizes=((4, 1, 1),)) == start
    plain = moves.improve_triples(start, time.perf_counter() + 30, filler_steps=0)
    filled = moves.improve_triples(start, time.perf_counter() + 30)
    value = {name: scores(p, point)["entropy_score"]
             for name, point in (("start", start), ("plain", plain), ("filled", filled))}
    assert value["start"] < value["plain"] < value["filled"]
    for point in (plain, filled):
        assert moves.meets(point)
        assert not archlang.fix(space, assignment(p, point)).violations()


@pytest.mark.parametrize("formulation", ["staged-boxes", "staged-milp"])
def test_staged_infeasible_budget_is_reported(formulation):
    """Budgets below the cheapest point: both engines say infeasible and return no point."""
    space = staged_space((2, 2), "require macs <= 1k\n maximize entropy_score")
    solution = solve(space, time_limit=20, formulation=formulation)
    assert solution.status == "infeasible" and solution.assignment is None


# ---------------------------------------------------------------- explaining infeasibility

THREE = ("require params <= 40k\n require macs <= 2.5M\n require effectiveness <= 0.45\n"
         " maximize entropy_score")


@functools.cache
def _three_stage_scores(body: str = THREE):
    """The shrunken DeepMAD space of `test_staged_equals_brute_force_on_three_stages` and the
    closed-form scores of every point meeting its requirements over decisions."""
    from archlang.solvers.milp.staged import recognise, scores

    space = staged_space((2, 1, 2), body, whi=32, dmax=3, ratio=3)
    p = recognise(space)
    return space, p, [(point, scores(p, point)) for point in D_points(p)]


def _least(table, metric, **limits):
    return min(s[metric] for _, s in table if all(s[k] <= v for k, v in limits.items()))


@pytest.mark.parametrize("metric, rho, other", [
    ("macs", 0.45, None), ("params", 0.45, None), ("macs", 0.4, 30_000),
    ("params", 0.45, 1.5e6), ("macs", None, None)])
def test_least_cost_equals_brute_force(metric, rho, other):
    """The Pareto DP of `leastcost.py` against enumeration: the least MACs (parameters) under
    an effectiveness limit, with and without the other cost's budget."""
    from archlang.solvers.milp.leastcost import least_cost
    from archlang.solvers.milp.staged import scores, tables

    space, p, table = _three_stage_scores()
    second = "params" if metric == "macs" else "macs"
    limits = {} if rho is None else {"effectiveness": rho}
    if other is not None:
        limits[second] = other
    expected = _least(table, metric, **limits)
    value, point = least_cost(p, tables(space, p), rho, metric, math.inf, other)
    assert value == expected
    s = scores(p, point)
    assert s[metric] == expected and all(s[k] <= v for k, v in limits.items())
    # under a ceiling below the least there is nothing
    assert least_cost(p, tables(space, p), rho, metric, expected - 1, other) is None


@pytest.mark.parametrize("metric", ["macs", "params"])
def test_least_cost_with_a_head_equals_brute_force(metric):
    from archlang.solvers.milp.leastcost import least_cost
    from archlang.solvers.milp.staged import tables

    space, p, table = _three_stage_scores("gap fc: linear(10)\n" + THREE)
    assert p.head.params_per_width == 10
    expected = _least(table, metric, effectiveness=0.45)
    value, _ = least_cost(p, tables(space, p), 0.45, metric, math.inf, None)
    assert value == expected


def test_box_search_minimising_a_cost_proves_the_least():
    """The box search in its cost mode (the least MACs under the other requirements):
    its answer equals enumeration and its bound is proven."""
    import dataclasses

    from archlang.solvers.milp.boxbb import BoxSearch
    from archlang.solvers.milp.heuristic import search
    from archlang.solvers.milp.staged import scores, tables

    space, p, table = _three_stage_scores()
    rest = dataclasses.replace(space, constraints=tuple(
        c for c in space.constraints if "macs" not in c.metrics))
    expected = _least(table, "macs", params=40_000, effectiveness=0.45)
    start, rank = search(rest, p, "macs", "minimize", 1.0)
    assert rank[0] == 0.0
    boxes = BoxSearch(rest, p, "macs", "minimize", tables(rest, p),
                      scale=scores(p, start)["macs"])
    out = boxes.search(start, 60.0, 0.0, iterations=8)
    assert out.status == "optimal"
    assert out.objective / boxes.sign == pytest.approx(expected, rel=1e-9)
    assert out.bound / boxes.sign <= expected * (1 + 1e-9)


def test_staged_infeasibility_names_each_budget_and_its_least_relaxation(run_cli, tmp_path):
    """A MAC budget below every architecture: `solve` exits 1 and gives, for the MAC budget
    and the effectiveness limit, the least relaxation that admits an architecture meeting
    every other requirement -- equal to enumeration."""
    body = THREE.replace("macs <= 2.5M", "macs <= 200k")
    space, p, table = _three_stage_scores(body)
    least_macs = _least(table, "macs", params=40_000, effectiveness=0.45)
    least_rho = _least(table, "effectiveness", params=40_000, macs=200_000)
    assert least_macs > 200_000
    solution = solve(space, time_limit=20, formulation="staged-boxes")
    assert solution.status == "infeasible" and solution.assignment is None
    least = {r.constraint: r.least for r in solution.conflicts}
    assert least["macs <= 200k"] == f"macs <= {least_macs:,}"
    shown = float(least["effectiveness <= 0.45"].split("<=")[1])
    assert least_rho <= shown <= least_rho * (1 + 2e-5)
    assert "params <= 40k" not in least  # relaxing the parameters alone does not help
    spec = tmp_path / "small.arch"
    spec.write_text(STAGED.format(stems="8, 16", body=body, stages="\n    ".join(
        STAGE.format(i=i, wlo=8, whi=32, kernels="3, 5", dmax=3, stride=s, ratio=3)
        for i, s in enumerate((2, 1, 2), 1)) + "".join(
        f"\n    require w{i + 1} >= w{i}" for i in (1, 2))), "utf-8")
    code, out, err = run_cli("solve", str(spec), "--time-limit", "20")
    assert code == 1
    assert "error: no solution (infeasible)" in err
    assert f"require macs <= 200k   ->   macs <= {least_macs:,}" in err


def test_stage_moves_read_any_requirement_over_metrics():
    """Stage moves evaluate every `require` over metrics on arrays (here a lower bound on the
    entropy and a ratio of two metrics) exactly as the ranker does on single points, and
    polish a start of `minimize macs` without breaking any."""
    import numpy as np

    from archlang.solvers.milp.heuristic import StageMoves, ranker, search
    from archlang.solvers.milp.staged import scores_batch

    body = ("require entropy >= 60\n require macs <= 40 * params\n"
            " require effectiveness <= 0.45\n minimize macs")
    space, p, table = _three_stage_scores(body)
    moves = StageMoves(space, p, "macs", "minimize")
    rank = ranker(space, p, "macs", "minimize")
    points = [point for point, _ in table[::97]]
    stems = np.array([stem for stem, _ in points])
    stages = [tuple(np.array([stages[i][j] for _, stages in points]) for j in range(4))
              for i in range(len(p.stages))]
    ok = moves._feasible(scores_batch(p, stems, stages))
    expected = np.array([rank(point)[0] == 0.0 for point in points])
    assert expected.any() and not expected.all()
    assert np.array_equal(ok, expected)
    start, r = search(space, p, "macs", "minimize", 1.0)
    assert r[0] == 0.0
    polished = moves.improve(start, time.perf_counter() + 10)
    assert rank(polished)[0] == 0.0 and rank(polished)[1] <= r[1]


def test_box_search_least_macs_under_an_entropy_floor_equals_brute_force():
    """`minimize macs` under `require entropy_score >= ...` (the entropy's multiplier is the
    floor's), effectiveness and a parameter budget, on the three-stage space: from a
    heuristic start the box search proves its answer within 1 % of the enumerated least,
    with its bound below it."""
    from archlang.solvers.milp.boxbb import BoxSearch
    from archlang.solvers.milp.heuristic import search
    from archlang.solvers.milp.staged import scores, tables

    body = ("require entropy_score >= 1000\n require params <= 40k\n"
            " require effectiveness <= 0.45\n minimize macs")
    space, p, table = _three_stage_scores(body)
    feasible = [s["macs"] for _, s in table if s["entropy_score"] >= 1000
                and s["params"] <= 40_000 and s["effectiveness"] <= 0.45]
    least = min(feasible)
    assert 0 < len(feasible) < len(table)
    assert least > min(s["macs"] for _, s in table if s["params"] <= 40_000
                       and s["effectiveness"] <= 0.45)  # the floor binds
    start, rank = search(space, p, "macs", "minimize", 2.0)
    assert rank[0] == 0.0
    boxes = BoxSearch(space, p, "macs", "minimize", tables(space, p),
                      scale=scores(p, start)["macs"])
    out = boxes.search(start, 300.0, 1e-2, iterations=8)
    assert out.status == "optimal"
    found, bound = out.objective / boxes.sign, out.bound / boxes.sign
    assert least <= found <= least * (1 + 1e-2)
    assert found * (1 - 1e-2) <= bound <= least * (1 + 1e-9)


def test_infeasible_entropy_floor_is_proven_and_relaxed():
    """A floor above every architecture's entropy score: proven infeasible (the box bound of
    the largest score is below it) and relaxed to a score some architecture reaches."""
    body = ("require entropy_score >= 5000\n require params <= 40k\n"
            " require effectiveness <= 0.45\n minimize macs")
    space, p, table = _three_stage_scores(body)
    most = max(s["entropy_score"] for _, s in table if s["params"] <= 40_000
               and s["effectiveness"] <= 0.45)
    assert most < 5000
    solution = solve(space, time_limit=20, formulation="staged-boxes")
    assert solution.status == "infeasible" and solution.assignment is None
    least = {r.constraint: r.least for r in solution.conflicts}
    shown = float(least["entropy_score >= 5000"].split(">=")[1].split("(")[0])
    assert 0.9 * most <= shown <= most


def test_branching_weighs_a_scale_end_by_its_share_of_the_layers():
    """A width that owns a scale end multiplies, in the entropy, the log-widths of every layer
    before that end, so its branching weight is its alpha times the end's share of the relaxed
    point's layers: with the same log-range open at the first stage's width (its end follows 4
    of the point's 127 layers) and at the fourth's (alpha 1 too, 97 layers), the fourth is
    split first; a weight by alpha alone would tie them."""
    from archlang.solvers.milp.boxbb import Box, BoxSearch, _slot
    from archlang.solvers.milp.staged import tables

    space, p = _deepmad_r18()
    boxes = BoxSearch(space, p, "entropy_score", "maximize", tables(space, p))
    point = (32, ((1, 144, 32, 5), (1, 144, 56, 5), (14, 640, 64, 5), (16, 704, 72, 5),
                  (10, 912, 96, 5)))
    box = _box_around(boxes, point, 0, 0, pin_stem=True)
    lo, hi = list(box.lo), list(box.hi)
    for t, (low, high) in ((0, (72, 144)), (3, (352, 704))):
        widths = p.stages[t].widths
        lo[_slot(t, 1)], hi[_slot(t, 1)] = widths.index(low), widths.index(high)
    for t in range(len(p.stages)):  # bottlenecks and kernels held at the point's
        lo[_slot(t, 2)] = hi[_slot(t, 2)] = p.stages[t].bottlenecks.index(point[1][t][2])
        lo[_slot(t, 3)] = hi[_slot(t, 3)] = p.stages[t].kernels.index(point[1][t][3])
    left, right = boxes.branch(Box(tuple(lo), tuple(hi)), point)
    split = [i for i in range(len(lo)) if left.hi[i] != hi[i] or right.lo[i] != lo[i]]
    assert split == [_slot(3, 1)]


def test_near_polish_takes_each_point_once_within_its_share_and_window():
    """A feasible point a little below the incumbent is polished once, only from `after`
    seconds into the search, only while polishing has taken at most NEAR_SHARE of it, and
    only while the search's gap is above NEAR_GAP."""
    import time

    from archlang.solvers.milp.boxbb import NEAR_GAP, NEAR_POLISH, NEAR_SHARE, _NearPolish

    best = 1000.0
    open_, certain = best * (1 + 2 * NEAR_GAP), best * (1 + NEAR_GAP / 2)  # search bounds
    close, far = best * (1 - NEAR_POLISH / 2), best * (1 - 2 * NEAR_POLISH)
    point = (32, ((1, 8, 8, 3),))
    early = _NearPolish(time.perf_counter(), after=3600.0)
    assert not early.worth(close, best, point, open_)  # before its window
    near = _NearPolish(time.perf_counter() - 10.0, after=0.0)
    assert near.worth(close, best, point, open_)
    assert not near.worth(close, best, point, certain)  # the certificate is near
    assert not near.worth(far, best, point, open_)
    assert not near.worth(close, None, point, open_)  # no incumbent: it would be one
    calls = []
    assert near.polish(lambda p: calls.append(p) or p, point) == point and calls == [point]
    assert not near.worth(close, best, point, open_)  # polished once
    other = (16, ((1, 8, 8, 3),))
    near.spent = NEAR_SHARE * 20.0  # more than its share of the 10 s so far
    assert not near.worth(close, best, other, open_)


def test_screen_drops_totals_with_no_feasible_point_and_keeps_every_feasible_point():
    """`screen` drops a box's greatest and least total depths where the Lagrangian of
    feasibility proves no point meets the budgets and the last effectiveness limit. On the
    shrunken three-stage space, for random boxes, every point of the box that meets every
    requirement (brute force) is still in the screened box, and some boxes are narrowed."""
    import numpy as np

    from archlang.solvers.milp.boxbb import BoxSearch, _slot
    from archlang.solvers.milp.staged import tables

    space, p, table = _three_stage_scores()
    boxes = BoxSearch(space, p, "entropy_score", "maximize", tables(space, p))
    feasible = [point for point, s in table if s["params"] <= 40_000 and s["macs"] <= 2.5e6
                and s["effectiveness"] <= 0.45]
    assert boxes._screen_prices() is not None and feasible

    def index(point):
        stem, stages = point
        at = [p.stems.index(stem)]
        for st, (d, w, b, k) in zip(p.stages, stages):
            at += [st.depths.index(d), st.widths.index(w), st.bottlenecks.index(b),
                   st.kernels.index(k)]
        return at + [sum(d for d, *_ in stages)]

    def inside(at, box):
        return all(lo <= a <= hi for a, lo, hi in zip(at, box.lo, box.hi))

    rng = np.random.default_rng(3)
    root = boxes.propagate(boxes.root())
    depths = {_slot(t, 0) for t in range(len(p.stages))}
    narrowed = emptied = 0
    for _ in range(300):
        lo, hi = list(root.lo), list(root.hi)
        for slot in range(len(lo)):
            if slot in depths or rng.random() < 0.3:  # a depth, or another decision at times
                a, b = sorted(rng.integers(root.lo[slot], root.hi[slot] + 1, 2))
                lo[slot], hi[slot] = int(a), int(b)
        box = boxes.propagate(type(root)(tuple(lo), tuple(hi)))
        if box is None:
            continue
        screened = boxes.screen(box)
        if screened is None:
            emptied += 1
        elif screened != box:
            narrowed += 1
        for point in feasible:
            at = index(point)
            if inside(at, box):
                assert screened is not None and inside(at, screened), point
    assert narrowed > 10 and emptied > 10  # 99 and 60 when written


@pytest.mark.parametrize("every", [1, 3])
def test_box_search_proves_the_optimum_however_often_it_screens(monkeypatch, every):
    """Screening (`screen`, every `SCREEN_EVERY`-th level) changes how fast the bound falls,
    never what it proves: on the shrunken three-stage space the search from no incumbent
    proves the brute-force optimum."""
    from archlang.solvers.milp import boxbb
    from archlang.solvers.milp.staged import tables

    monkeypatch.setattr(boxbb, "SCREEN_EVERY", every)
    space, p, table = _three_stage_scores()
    best = max(s["entropy_score"] for _, s in table if s["params"] <= 40_000
               and s["macs"] <= 2.5e6 and s["effectiveness"] <= 0.45)
    boxes = boxbb.BoxSearch(space, p, "entropy_score", "maximize", tables(space, p))
    out = boxes.search(None, 120.0, 0.0)
    assert out.status == "optimal"
    assert out.objective == pytest.approx(best, rel=1e-9)
    assert out.bound == pytest.approx(best, rel=1e-9)
