"""Decisions, exact size, sampling, fixing, hashing and JSON round trips."""

from __future__ import annotations

import json
import random

import pytest

import archlang
from archlang.ir import decisions as D
from archlang.ir import space as S
from tests.conftest import EXAMPLES


def enumerate_points(space: S.Space) -> list[dict]:
    """Every assignment, by brute force over decisions in order (independent of size())."""
    out: list[dict] = []

    def rec(i: int, values: dict) -> None:
        if i == len(space.decisions):
            out.append(dict(values))
            return
        decision = space.decisions[i]
        if not D.is_active(space, decision, values):
            rec(i + 1, values)
            return
        for v in decision.domain.enumerate():
            values[decision.name] = v
            rec(i + 1, values)
            del values[decision.name]

    rec(0, {})
    return out


SPACES = {
    "flat": """arch a {
        input x[3, 8, 8]
        conv(choice(4, 8), choice(1, 3)) relu
    }""",
    "repeat_body": """arch a {
        input x[3, 8, 8]
        repeat choice(0, 1, 2, 3) { conv(8, choice(1, 3, 5)) }
    }""",
    "shared_let_in_structure": """arch a {
        input x[3, 8, 8]
        let d = choice(1, 2)
        let w = choice(4, 8, 16)
        repeat d { conv(w, choice(1, 3)) }
        repeat d + 1 { relu }
        if d == 2 { optional { conv(w, 3) } }
    }""",
    "nested_conditional": """arch a {
        input x[3, 8, 8]
        one_of {
            repeat choice(1, 2) { optional { conv(choice(4, 8), 3) } }
        } or {
            maxpool(2)
        } or {
            conv(intrange(4, 12, step = 4), 1)
        }
        optional { one_of { relu } or { gelu(choice("none", "tanh")) } }
    }""",
    "dag_choice": """arch a {
        input x[3, 8, 8]
        conv(8, 1) -> n0
        @one_of(x, n0) conv(8, choice(1, 3)) -> n1
        @one_of(x, n0, n1) conv(8, 3) -> n2
        concat(@n1, @n2)
    }""",
}


@pytest.mark.parametrize("name", sorted(SPACES))
def test_size_is_exact(name):
    space = archlang.loads(SPACES[name])
    points = enumerate_points(space)
    assert space.size == len(points)
    # all distinct, and each one fixes and elaborates
    assert len({D.assignment_hash(p) for p in points}) == len(points)
    for p in points:
        assert archlang.fix(space, p).graph.layers


def test_samples_are_valid_points_and_cover_the_space():
    space = archlang.loads(SPACES["nested_conditional"])
    points = {D.assignment_hash(p) for p in enumerate_points(space)}
    rng = random.Random(1)
    seen = {archlang.fix(space, archlang.sample(space, rng)).hash for _ in range(20000)}
    assert seen == points


def test_sampling_is_seeded():
    space = archlang.load(EXAMPLES / "digits_space.arch")
    a = [archlang.sample(space, seed=7) for _ in range(3)]
    b = [archlang.sample(space, seed=7) for _ in range(3)]
    assert a == b
    rng1, rng2 = random.Random(3), random.Random(3)
    assert [archlang.sample(space, rng1) for _ in range(20)] == \
        [archlang.sample(space, rng2) for _ in range(20)]


def test_decision_names_are_path_based_and_per_repetition():
    space = archlang.load(EXAMPLES / "digits_space.arch")
    names = [d.name for d in space.decisions]
    assert names[:5] == ["width", "stage1.depth", "stage1.0.conv1.kernel",
                         "stage1.1.conv1.kernel", "stage1.2.conv1.kernel"]
    deep = space.decision("stage1.2.conv1.kernel")
    assert [archlang.api.E.show(c) for c in deep.condition] == ["(stage1.depth > 2)"]


def test_digits_space_size():
    # width 3 x depth (2 + 2^2 + 2^3) x one_of (2 + 1) x optional se 2 x optional dropout (1 + 1
    # with the continuous rate counted once)
    space = archlang.load(EXAMPLES / "digits_space.arch")
    assert space.size == float("inf")
    assert D.size(space, continuous_as_one=True) == 3 * 14 * 3 * 2 * 2


def test_huge_space_size_without_enumeration():
    stages = "\n".join(
        f'"s{i}": repeat choice(1, 2, 3, 4) {{ conv(choice(8, 16, 24, 32), choice(3, 5, 7)) relu }}'
        for i in range(8))
    space = archlang.loads(f"arch big {{\n input x[3, 32, 32]\n{stages}\n}}")
    per_stage = sum(12**n for n in range(1, 5))
    assert space.size == per_stage**8
    assert space.size > 10**30


def test_fix_errors_name_each_problem():
    space = archlang.load(EXAMPLES / "digits_space.arch")
    good = archlang.sample(space, seed=0)
    bad = dict(good)
    bad["width"] = 17
    bad.pop("stage1.depth")
    bad["widht"] = 16
    with pytest.raises(archlang.ArchError) as info:
        archlang.fix(space, bad)
    text = str(info.value)
    assert "'width' = 17 is outside its domain choice(16, 24, 32)" in text
    assert "missing decision 'stage1.depth'" in text
    assert "unknown decision 'widht' (did you mean 'width'?)" in text


def test_inactive_decision_is_rejected_and_canonical_drops_it():
    space = archlang.load(EXAMPLES / "digits_space.arch")
    values = archlang.sample(space, seed=0)
    values.update({"one_of1": 1, "down.conv1.kernel": 3})
    with pytest.raises(archlang.ArchError, match="'down.conv1.kernel' is not active"):
        archlang.fix(space, values)
    assert "down.conv1.kernel" not in D.canonical(space, values)
    archlang.fix(space, D.canonical(space, values))


def test_assignment_hash_is_order_independent_and_stable():
    a = {"width": 16, "stage1.depth": 2}
    b = {"stage1.depth": 2, "width": 16}
    assert archlang.assignment_hash(a) == archlang.assignment_hash(b)
    assert archlang.assignment_hash(a) != archlang.assignment_hash({**a, "width": 24})
    # the documented definition: sha256 of compact JSON with sorted keys, first 16 hex digits
    import hashlib

    digest = hashlib.sha256(b'{"stage1.depth":2,"width":16}').hexdigest()[:16]
    assert archlang.assignment_hash(a) == digest


def test_space_json_round_trip():
    for path in sorted(EXAMPLES.glob("*.arch")):
        space = archlang.load(path)
        text = archlang.space_to_json(space)
        again = archlang.space_from_json(text)
        assert again == space
        assert json.loads(text)["format"] == "archlang.space/1"
    space = archlang.load(EXAMPLES / "digits_space.arch")
    again = archlang.space_from_json(archlang.space_to_json(space))
    values = archlang.sample(space, seed=4)
    assert archlang.fix(again, values).cost == archlang.fix(space, values).cost


def test_assignment_json_round_trip():
    space = archlang.load(EXAMPLES / "digits_space.arch")
    values = archlang.sample(space, seed=5)
    assert archlang.assignment_from_json(archlang.assignment_to_json(values)) == values


def test_decision_constraints_and_feasible_sampling():
    space = archlang.loads("""arch a {
        input x[3, 8, 8]
        let w1 = choice(8, 16, 32)
        let w2 = choice(8, 16, 32)
        conv(w1, 3) conv(w2, 3)
        require w2 >= w1
        require params <= 6000
    }""")
    for seed in range(30):
        arch = archlang.fix(space, archlang.sample(space, seed=seed, feasible=True))
        assert arch.assignment["w2"] >= arch.assignment["w1"]
        assert arch.cost.params <= 6000
    broken = archlang.fix(space, {"w1": 32, "w2": 8})
    assert broken.violations() == ["w2 >= w1"]
    assert archlang.fix(space, {"w1": 32, "w2": 32}).violations() == ["params <= 6000"]


def test_import_archlang_loads_no_framework():
    import subprocess
    import sys

    code = ("import sys, archlang; archlang.load('examples/resnet18.arch'); "
            "bad = [m for m in ('torch', 'jax', 'flax', 'pyomo', 'numpy') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=EXAMPLES.parent, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
