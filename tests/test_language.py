"""The language, construct by construct: each snippet's graph (paths, shapes, costs)."""

from __future__ import annotations

from pathlib import Path

import pytest

import archlang
from archlang.lang.parse import number


def graph(text: str, **values):
    space = archlang.loads(text)
    return archlang.fix(space, values).graph


def paths(g) -> list[str]:
    return [layer.path for layer in g.layers]


@pytest.mark.parametrize("text, value", [
    ("50k", 50_000), ("3.5M", 3_500_000), ("4.1G", 4_100_000_000), ("1e-3", 0.001),
    ("2", 2), ("0.25", 0.25), ("1.5k", 1500), ("1T", 10**12), ("0.0001k", 0.1),
])
def test_si_numbers(text, value):
    assert number(text) == value
    assert type(number(text)) is type(value)


def test_sequences_labels_and_auto_names():
    g = graph("""arch a {
        input x[3, 16, 16]
        stem: conv(8, 3, bias = false) bn relu   # comment
        conv(8, 3) relu
        gap head: linear(10)
    }""")
    assert paths(g) == ["x", "stem", "bn1", "relu1", "conv1", "relu2", "gap1", "head"]
    assert g.output_shape == (10,)
    assert g.layer("stem").params == 8 * 3 * 9


def test_for_loops_with_interpolated_labels_and_repeat_indices():
    g = graph("""arch a {
        input x[3, 32, 32]
        for (i, c) in [(1, 8), (2, 16)] {
            "stage{i}": repeat 2 as j { conv(c, 3, stride = if j == 0 then 2 else 1) }
        }
    }""")
    assert paths(g)[1:] == ["stage1.0.conv1", "stage1.1.conv1", "stage2.0.conv1", "stage2.1.conv1"]
    assert g.output_shape == (16, 8, 8)


def test_range_loops_and_expressions():
    g = graph("""arch a(base: int = 8) {
        input x[3, 8, 8]
        for i in range(3) { conv(make_divisible(base * (i + 1) * 1.3, 8), 1) }
        conv(max(4, min(base // 3, 100)) + 2 * 3 - 10 % 4, 1)
    }""")
    assert [layer.shape[0] for layer in g.layers[1:]] == [16, 24, 32, 8]


def test_residual_projection_inserted_when_shapes_differ():
    g = graph("""arch a {
        input x[8, 16, 16]
        residual { conv(16, 3, stride = 2) }
    }""")
    assert paths(g) == ["x", "conv1", "downsample.0", "downsample.1", "add"]
    proj = g.layer("downsample.0")
    assert (proj.attrs["kernel"], proj.attrs["stride"], proj.shape) == (1, 2, (16, 8, 8))
    assert g.layer("downsample.1").op == "bn"


def test_residual_projection_modes():
    same = graph("arch a {\n input x[8, 4, 4]\n residual(proj = \"conv\") { conv(8, 3) }\n}")
    assert [layer.op for layer in same.layers] == ["input", "conv", "conv", "add"]
    assert same.layers[2].attrs["bias"] is True
    tokens = graph("arch a {\n input x[10, 8]\n residual { linear(16) }\n}")
    assert [layer.op for layer in tokens.layers] == ["input", "linear", "linear", "add"]
    skipped = graph("""arch a {
        input x[8, 4, 4]
        residual(proj = "none", when = in_channels == 16) { conv(16, 1) }
    }""")
    assert [layer.op for layer in skipped.layers] == ["input", "conv"]


def test_named_tensors_dag_and_merges():
    g = graph("""arch a {
        input x[4, 8, 8]
        conv(8, 1) -> a
        @x conv(8, 3) -> b
        add(@a, @b) -> s
        multiply(@s, @a) -> m
        concat(@m, @x)
    }""")
    assert g.output_shape == (12, 8, 8)
    assert [layer.op for layer in g.layers] == ["input", "conv", "conv", "add", "multiply",
                                                "concat"]
    assert g.layers[-1].inputs == (4, 0)


def test_parallel_branches():
    g = graph("""arch a {
        input x[4, 8, 8]
        parallel concat { conv(8, 1) } and { conv(8, 3) } and { maxpool(3, stride = 1, padding = 1) }
        parallel add { conv(6, 1) } and { conv(6, 3) }
    }""")
    assert g.layer("concat1").shape == (20, 8, 8)
    assert g.output_shape == (6, 8, 8)


def test_searched_input_choice():
    space = archlang.loads("""arch a {
        input x[4, 8, 8]
        conv(8, 1) -> n0
        @one_of(x, n0) conv(8, 3) -> n1
    }""")
    assert [(d.name, d.kind) for d in space.decisions] == [("choose1", "input")]
    name = space.decisions[0].name
    from_x = archlang.fix(space, {name: "x"}).graph
    from_n0 = archlang.fix(space, {name: "n0"}).graph
    assert from_x.layers[-1].inputs == (0,)
    assert len(from_x.layers) == 2  # n0 is dead when not read, and dropped
    assert from_n0.layers[-1].inputs == (1,)


def test_one_of_optional_and_shared_let():
    space = archlang.loads("""arch a {
        input x[3, 8, 8]
        let w = choice(4, 8)
        conv(w, 3)
        one_of { conv(w, 1) } or { relu }
        optional { conv(2 * w, 1) }
    }""")
    names = [d.name for d in space.decisions]
    assert names == ["w", "one_of1", "optional1"]
    g = archlang.fix(space, {"w": 8, "one_of1": 0, "optional1": True}).graph
    assert [layer.shape[0] for layer in g.layers[1:]] == [8, 8, 16]
    assert space.size == 2 * 2 * 2


def test_decisions_inside_blocks_are_per_instance():
    space = archlang.loads("""
    block unit(c: int) {
        let k = choice(3, 5)
        conv(c, k) conv(c, k)
    }
    arch a {
        input x[3, 8, 8]
        unit(4) unit(8)
    }""")
    assert [d.name for d in space.decisions] == ["unit1.k", "unit2.k"]
    g = archlang.fix(space, {"unit1.k": 5, "unit2.k": 3}).graph
    assert [layer.attrs.get("kernel") for layer in g.layers[1:]] == [5, 5, 3, 3]


def test_value_decisions_int_range_and_log_float():
    space = archlang.loads("""arch a {
        input x[3, 8, 8]
        conv(intrange(8, 32, step = 8), 3)
        dropout(loguniform(0.001, 0.5))
    }""")
    width, rate = space.decisions
    assert width.domain.enumerate() == (8, 16, 24, 32)
    assert rate.domain.log and rate.domain.lo == 0.001
    for seed in range(20):
        values = archlang.sample(space, seed=seed)
        assert 0.001 <= values[rate.name] <= 0.5


def test_conditionals_expression_and_statement():
    g = graph("""arch a(wide: bool = true) {
        input x[3, 8, 8]
        conv(if wide then 32 else 8, 1)
        if in_channels > 16 { relu } else { gelu }
        if not wide { conv(3, 1) }
    }""")
    assert [layer.op for layer in g.layers] == ["input", "conv", "relu"]


def test_shape_values_are_read_where_written():
    g = graph("""
    block widen(f: int) {
        let c = in_channels
        conv(c * f, 1) conv(c, 1)
    }
    arch a {
        input x[6, 4, 4]
        widen(4)
    }""")
    assert [layer.shape[0] for layer in g.layers[1:]] == [24, 6]


def test_arch_parameters_can_be_overridden():
    space = archlang.load("examples/resnet18.arch", params={"classes": 10})
    assert archlang.fix(space, {}).graph.output_shape == (10,)


def test_transformer_ops_and_tied_embedding():
    g = graph("""import "std"
    arch lm(vocab: int = 100, dim: int = 32) {
        input ids: int[16]
        tok: embedding(vocab, dim)
        pos_embed
        repeat 2 { transformer(4, causal = true) }
        ln
        unembed(vocab, tie = "tok")
    }""")
    assert g.output_shape == (16, 100)
    head = g.layers[-1]
    assert head.params == 0 and head.attrs["tie"] == "tok"
    attn = next(layer for layer in g.layers if layer.op == "attention")
    assert attn.attrs["causal"] is True
    assert attn.macs == 16 * 32 * 96 + 2 * 16 * 16 * 32 + 16 * 32 * 32


def test_image_token_round_trip_and_norms():
    g = graph("""arch a {
        input x[8, 4, 4]
        ln2d gn(4) to_tokens layer_scale ln to_image(4, 4) hardswish hardsigmoid sigmoid tanh
        silu relu6 gelu(approximate = "tanh") identity dropout(0.1) adaptive_avgpool(2) flatten
    }""")
    assert g.output_shape == (32,)
    assert g.layer("layer_scale1").params == 8


def test_vision_transformer_tokens():
    g = graph("""arch a {
        input x[3, 32, 32]
        patch_embed(48, 8) class_token pos_embed attention(3) token_mean linear(5)
    }""")
    assert [layer.shape for layer in g.layers[1:4]] == [(16, 48), (17, 48), (17, 48)]
    assert g.layers[3].params == 17 * 48


def test_space_printer_shows_structure():
    from archlang.ir.printer import print_space

    space = archlang.load("examples/digits_space.arch")
    text = print_space(space)
    assert "repeat stage1.depth" in text
    assert "one_of one_of1" in text
    assert "conv stem(out=width, kernel=3" in text


IR_FIXTURES = sorted((Path(__file__).parent / "fixtures" / "ir").glob("*.arch"))


@pytest.mark.parametrize("spec", IR_FIXTURES, ids=lambda p: p.stem)
def test_golden_ir_dump(spec, run_cli):
    """Spec snippet -> the lowered IR, exactly (tests/fixtures/ir/NAME.ir)."""
    code, out, err = run_cli("show", "--ir", str(spec))
    assert code == 0, err
    assert out == spec.with_suffix(".ir").read_text()
