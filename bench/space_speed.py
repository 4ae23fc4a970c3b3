"""Benchmarks (c) and (d) of the core: checking and sizing a huge space; sample+fix throughput.

(c) `check` (parse, lower, probe elaboration) and the exact size of a space with more than
    10^30 points — target < 1 s.
(d) assignments sampled and fixed per second on the digits space — target >= 50,000/s. The
    baseline, measured in the same run, is a bare Python dict sampler (random.choice per
    decision, no conditions, no validation); published figures for the same kind of space:
    DeepArchitect about 5,600/s, Optuna define-by-run about 3,300/s.

Run: .venv/bin/python bench/space_speed.py
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import machine  # noqa: E402

import archlang  # noqa: E402
from archlang.ir import decisions as D  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def huge_space_text(stages: int = 12) -> str:
    body = "\n".join(
        f'"s{i}": repeat choice(1, 2, 3, 4, 5, 6) {{ unit(choice(16, 32, 48, 64), '
        f"stride = {2 if i % 4 == 0 else 1}) }}"
        for i in range(stages))
    return f"""import "std"
block unit(c: int, stride: int = 1) {{
    residual {{ conv(c, choice(3, 5, 7), stride = stride, bias = false) bn relu
               one_of {{ conv(c, 3, bias = false) bn }} or {{ dwconv(choice(3, 5)) bn }} }}
    optional {{ squeeze_excite(choice(0.25, 0.5)) }}
    relu
}}
arch huge {{
    input image[3, 224, 224]
    stem: conv(32, 3, stride = 2, bias = false) bn relu
{body}
    gap linear(1000)
    require params <= 30M
}}
"""


def bench_check_and_size() -> None:
    text = huge_space_text()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        space = archlang.loads(text)  # parse, lower, and check 17 elaborated probe points
        size = space.size
        times.append(time.perf_counter() - start)
    print(f"(c) check + exact size of a space of {size:.3e} points ({len(space.decisions)} "
          f"decisions): min {min(times):.3f} s, median {sorted(times)[2]:.3f} s (target < 1 s)")


def bench_sample_fix(seconds: float = 2.0) -> None:
    space = archlang.load(ROOT / "examples" / "digits_space.arch")
    domains = [(d.name, list(d.domain.enumerate()) if d.domain.discrete else None)
               for d in space.decisions]

    def dict_sampler(rng: random.Random) -> dict:
        return {name: rng.choice(values) if values else rng.random() for name, values in domains}

    def ours(rng: random.Random) -> archlang.Architecture:
        return archlang.fix(space, D.sample(space, rng))

    rates = {}
    for label, fn in (("archlang sample+fix", ours), ("bare dict sampler", dict_sampler)):
        best = 0.0
        for _ in range(5):
            rng = random.Random(0)
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds / 5:
                for _ in range(1000):
                    fn(rng)
                n += 1000
            best = max(best, n / (time.perf_counter() - start))
        rates[label] = best
        print(f"(d) {label:22s} {best:12,.0f} /s (best of 5)")
    print(f"(d) ratio archlang / dict sampler: {rates['archlang sample+fix'] / rates['bare dict sampler']:.3f}"
          f"  (target >= 50,000/s; DeepArchitect ~5,600/s, Optuna ~3,300/s published)")
    rng = random.Random(1)
    start, n = time.perf_counter(), 300
    for _ in range(n):
        assert archlang.fix(space, D.sample(space, rng)).cost.params
    print(f"(d') sample+fix+elaborate+cost: {n / (time.perf_counter() - start):,.0f} /s")


if __name__ == "__main__":
    print(f"machine: {machine()}")
    bench_check_and_size()
    bench_sample_fix()
