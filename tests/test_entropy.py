"""DeepMAD's zero-cost scores: published numbers, conventions as options, registry."""

from __future__ import annotations

import math

import pytest

import archlang
from archlang import api
from archlang.passes import entropy as H
from archlang.passes.metrics import compute, option_defaults
from tests.conftest import EXAMPLES

# DeepMAD's released structures (configs/classification/models/ of TinyNAS):
# stem width, then per stage (depth, width, bottleneck, kernel, stride).
PUBLISHED = {
    "r18": (32, [(1, 96, 40, 5, 2), (6, 384, 40, 5, 2), (9, 384, 64, 5, 2), (10, 1024, 104, 3, 1),
                 (12, 672, 104, 5, 2)], 32120.2, 0.299),
    "r34": (24, [(1, 128, 24, 5, 2), (10, 512, 48, 5, 2), (13, 896, 88, 5, 2), (11, 1024, 104, 5, 1),
                 (14, 616, 128, 5, 2)], 43142.7, 0.300),
    "r50": (32, [(1, 128, 40, 5, 2), (11, 512, 48, 5, 2), (12, 872, 88, 5, 2), (13, 1024, 104, 5, 1),
                 (15, 1232, 120, 5, 2)], 48919.3, 0.300),
}


def published_assignment(stem: int, stages) -> dict:
    values = {"stem_w": stem}
    for i, (d, w, b, k, _) in enumerate(stages, 1):
        values.update({f"w{i}": w, f"b{i}": b, f"k{i}": k, f"stage{i}.depth": d})
    return values


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_structures(name):
    stem, stages, h, rho = PUBLISHED[name]
    space = archlang.load(EXAMPLES / f"deepmad_{name}.arch")
    arch = archlang.fix(space, published_assignment(stem, stages))
    m = arch.metrics()
    assert round(m["entropy"], 1) == h
    assert round(m["effectiveness"], 3) == rho
    # depths of the last three stages (9,10,12 / 13,11,14 / 12,13,15) all have std 1.247
    depths = [d for d, *_ in stages][-3:]
    q = math.exp(math.sqrt(sum((d - sum(depths) / 3) ** 2 for d in depths) / 3))
    assert m["depth_penalty"] == pytest.approx(q)
    assert m["entropy_score"] == pytest.approx(m["entropy"] - 10 * q)
    # They meet DeepMAD's budgets; some leave the space (R18/R34 narrow the last stage,
    # R50's last bottleneck 120 is below 1232 / 10), which only decision requirements catch.
    metric_texts = {c.text for c in space.constraints if c.metrics}
    assert not set(arch.violations()) & metric_texts


def _r18_graph():
    stem, stages, *_ = PUBLISHED["r18"]
    space = archlang.load(EXAMPLES / "deepmad_r18.arch")
    return archlang.fix(space, published_assignment(stem, stages)).graph


def test_conventions_are_options():
    graph = _r18_graph()
    base = compute(graph, ["entropy", "effectiveness", "depth_penalty"])
    full = compute(graph, ["entropy"], {"entropy.half": False})
    assert full["entropy"] == pytest.approx(2 * base["entropy"])
    flat = compute(graph, ["entropy"], {"entropy.alpha": (1, 1, 1, 1, 1)})
    assert flat["entropy"] < base["entropy"]
    whole = compute(graph, ["effectiveness"], {"effectiveness.prefix_max": False})
    assert whole["effectiveness"] <= base["effectiveness"]
    every = compute(graph, ["depth_penalty"], {"depth_penalty.stages": 0})
    assert every["depth_penalty"] != base["depth_penalty"]
    by_layer = compute(graph, ["entropy"], {"entropy.boundary": "layer"})
    assert by_layer["entropy"] != base["entropy"]
    with_proj = compute(graph, ["entropy"], {"entropy.skip_projection": False})
    assert with_proj["entropy"] > base["entropy"]


def test_scales_follow_tinynas():
    graph = _r18_graph()
    layers = H.counted_layers(graph)
    found = H.scales(layers)
    # after the stem, then before each stride-2 stage (stage 4 has stride 1), then the end
    assert [(s.channels, s.height) for s in found] == [(32, 112), (96, 56), (384, 28),
                                                        (1024, 14), (672, 7)]
    assert [s.end for s in found] == [1, 1 + 3, 1 + 3 * 7, 1 + 3 * 26, 1 + 3 * 38]
    assert H.stage_depths(graph, option_defaults()) == [1, 6, 9, 10, 12]


def test_block_of():
    assert H.block_of("stage3.0.conv2") == ("stage3.0", "stage3")
    assert H.block_of("layer1.conv") == ("layer1", None)
    assert H.block_of("stem") == ("stem", None)


def test_every_example_gets_scores():
    # The registry computes every metric for every graph: none may fail on other kinds of model
    for name in ("resnet18", "resnet50", "mobilenet_v2", "vit_tiny", "digits_space",
                 "deepmad_r18"):
        path = EXAMPLES / f"{name}.arch"
        space = archlang.load(path)
        m = archlang.fix(space, api.default_assignment(space)).metrics()
        for name in ("entropy", "effectiveness", "depth_penalty", "entropy_score"):
            assert math.isfinite(m[name]), (path.name, name)


def test_objective_and_requirement_in_a_spec():
    space = archlang.loads("""arch a {
        input x[3, 32, 32]
        option entropy.alpha = (1, 2)
        stem: conv(16, 3, stride = 2)
        s: repeat choice(1, 2) { conv(choice(8, 16), 3) }
        require effectiveness <= 0.5
        maximize entropy
    }""")
    assert dict(space.options)["entropy.alpha"] == (1, 2)
    arch = archlang.fix(space, api.default_assignment(space))
    assert arch.metrics()["entropy"] > 0
