"""The PyTorch backend: every op builds, counts the parameters and FLOPs the op table says,
computes what the op means, and emits standalone source equivalent to the in-memory module."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from archlang.backends import BACKENDS, get_backend
from archlang.backends.torch import BUILDERS, build, emit
from archlang.errors import ArchError, Source, Span
from archlang.ir.graph import Graph, GraphBuilder
from archlang.ir.ops import OPS, with_defaults

# ---------------------------------------------------------------- building graphs by hand


class Net:
    """GraphBuilder with defaults filled in and automatic paths: ``net("relu", x)``."""

    def __init__(self, name: str = "net") -> None:
        self.builder = GraphBuilder(name)

    def input(self, *shape: int, path: str = "x", dtype: str = "float") -> int:
        return self.builder.input(path, shape, dtype)

    def __call__(self, op: str, *inputs: int, path: str | None = None, **attrs: object) -> int:
        path = path or f"{op}{len(self.builder.layers)}"
        return self.builder.add(op, with_defaults(op, attrs), inputs, path)

    def finish(self, output: int) -> Graph:
        return self.builder.finish(output)


def single(op: str, *shape: int, **attrs: object) -> Graph:
    """One op on an input of the given shape."""
    net = Net(op)
    return net.finish(net(op, net.input(*shape), **attrs))


def on_tokens(op: str, **attrs: object) -> Graph:
    """One op on 16 tokens of width 8, made by a patch embedding of a small image."""
    net = Net(op)
    tokens = net("patch_embed", net.input(3, 16, 16), dim=8, patch=4)
    return net.finish(net(op, tokens, **attrs))


def on_vector(op: str, **attrs: object) -> Graph:
    net = Net(op)
    return net.finish(net(op, net("gap", net.input(6, 4, 4)), **attrs))


def merge(op: str, count: int, **attrs: object) -> Graph:
    """A merge of `count` convolutions of one image, with kernels 1, 3, 5, ..."""
    net = Net(op)
    x = net.input(3, 8, 8)
    branches = [net("conv", x, out=4, kernel=2 * i + 1) for i in range(count)]
    return net.finish(net(op, *branches, **attrs))


def multiply_broadcast() -> Graph:
    net = Net("gate")
    x = net.input(4, 8, 8)
    gate = net("sigmoid", net("adaptive_avgpool", x, size=1))  # (4, 1, 1)
    return net.finish(net("multiply", x, gate))


def concat_tokens(axis: str) -> Graph:
    net = Net("concat_tokens")
    tokens = net("patch_embed", net.input(3, 8, 8), dim=8, patch=4)
    other = net("linear", tokens, out=8 if axis == "tokens" else 5)
    return net.finish(net("concat", tokens, other, axis=axis))


def concat_vectors() -> Graph:
    net = Net("concat_vectors")
    v = net("gap", net.input(6, 4, 4))
    return net.finish(net("concat", v, net("linear", v, out=3), net("linear", v, out=2)))


def to_image() -> Graph:
    net = Net("to_image")
    tokens = net("to_tokens", net.input(5, 4, 6))
    return net.finish(net("to_image", net("ln", tokens), height=4, width=6))


def language_model(tie: bool, causal: bool = True) -> Graph:
    net = Net("tiny_lm")
    ids = net.input(7, path="ids", dtype="int")
    h = net("embedding", ids, path="embed", vocab=11, dim=8)
    h = net("pos_embed", h, path="pos")
    h = net("add", h, net("attention", net("ln", h, path="blocks.0.norm1"),
                          path="blocks.0.attn", heads=2, causal=causal), path="blocks.0.add")
    h = net("ln", h, path="norm")
    return net.finish(net("unembed", h, path="head", vocab=11, tie="embed" if tie else ""))


def residual(identity_first: bool = False) -> Graph:
    """conv bn relu conv bn, plus the block input, relu."""
    net = Net("residual")
    x = net.input(4, 8, 8)
    y = net("conv", x, path="block.conv1", out=4, kernel=3, bias=False)
    y = net("relu", net("bn", y, path="block.bn1"), path="block.relu1")
    y = net("conv", y, path="block.conv2", out=4, kernel=3, bias=False)
    y = net("bn", y, path="block.bn2")
    y = net("add", *((x, y) if identity_first else (y, x)), path="block.add")
    y = net("relu", y, path="block.relu2")
    return net.finish(y)


def branches() -> Graph:
    """A DAG: one tensor feeds two branches and a skip; concat and add merge them."""
    net = Net("two branches")
    x = net("conv", net.input(3, 12, 12), path="stem", out=8, kernel=3, stride=2)
    a = net("relu", net("conv", x, path="left.conv", out=4, kernel=1), path="left.act")
    b = net("conv", x, path="right.conv", out=4, kernel=3)
    b = net("maxpool", b, path="right.pool", kernel=3, stride=1, padding=1)
    y = net("concat", a, b, path="merge")
    y = net("add", y, x, path="skip")
    y = net("se", y, path="se", reduced=2)
    return net.finish(net("linear", net("flatten", net("gap", y, path="pool")), path="fc", out=3))


def vit() -> Graph:
    net = Net("vit-tiny/4")
    h = net("patch_embed", net.input(3, 8, 8, path="image"), path="patch_embed", dim=8, patch=4)
    h = net("pos_embed", net("class_token", h, path="cls"), path="pos")
    for i in range(2):
        p = f"blocks.{i}"
        a = net("layer_scale", net("attention", net("ln", h, path=f"{p}.norm1"),
                                   path=f"{p}.attn", heads=2), path=f"{p}.ls1", init=0.1)
        h = net("add", h, a, path=f"{p}.add1")
        m = net("linear", net("ln", h, path=f"{p}.norm2"), path=f"{p}.mlp.fc1", out=16)
        m = net("linear", net("gelu", m, path=f"{p}.mlp.act"), path=f"{p}.mlp.fc2", out=8)
        h = net("add", h, m, path=f"{p}.add2")
    return net.finish(net("linear", net("select_token", h, path="pool"), path="head", out=4))


# name -> graph; together they use every op (test_every_op_is_covered checks)
CASES: dict[str, Callable[[], Graph]] = {
    "conv": lambda: single("conv", 3, 16, 16, out=8, kernel=3, stride=2),
    "conv_grouped": lambda: single("conv", 4, 9, 9, out=6, kernel=3, groups=2, dilation=2,
                                   padding=1, bias=False),
    "dwconv": lambda: single("dwconv", 4, 16, 16, kernel=3, stride=2, multiplier=2),
    "linear": lambda: on_vector("linear", out=5),
    "linear_tokens": lambda: on_tokens("linear", out=5, bias=False),
    "bn": lambda: single("bn", 3, 8, 8, eps=1e-3, momentum=0.01),
    "bn_vector": lambda: on_vector("bn"),
    "ln": lambda: on_tokens("ln", eps=1e-6),
    "ln_vector": lambda: on_vector("ln"),
    "ln2d": lambda: single("ln2d", 6, 5, 5),
    "gn": lambda: single("gn", 6, 5, 5, groups=3),
    **{act: (lambda act=act: single(act, 3, 6, 6)) for act in (
        "relu", "relu6", "silu", "hardswish", "hardsigmoid", "sigmoid", "tanh", "identity")},
    "gelu": lambda: single("gelu", 3, 6, 6),
    "gelu_tanh": lambda: single("gelu", 3, 6, 6, approximate="tanh"),
    "maxpool": lambda: single("maxpool", 3, 9, 9, kernel=3, stride=2, padding=1),
    "avgpool": lambda: single("avgpool", 3, 8, 8, kernel=2),
    "gap": lambda: single("gap", 3, 5, 5),
    "adaptive_avgpool": lambda: single("adaptive_avgpool", 3, 9, 9, size=2),
    "flatten": lambda: single("flatten", 3, 4, 5),
    "dropout": lambda: single("dropout", 3, 4, 4, p=0.25),
    "se": lambda: single("se", 8, 6, 6, reduced=2),
    "se_hard": lambda: single("se", 8, 6, 6, reduced=3, gate="hardsigmoid", act="silu"),
    "add": lambda: merge("add", 3),
    "multiply": multiply_broadcast,
    "concat": lambda: merge("concat", 2),
    "concat_tokens": lambda: concat_tokens("tokens"),
    "concat_token_channels": lambda: concat_tokens("channels"),
    "concat_vectors": concat_vectors,
    "patch_embed": lambda: single("patch_embed", 3, 16, 16, dim=8, patch=4, bias=False),
    "class_token": lambda: on_tokens("class_token"),
    "pos_embed": lambda: on_tokens("pos_embed"),
    "attention": lambda: on_tokens("attention", heads=2),
    "attention_causal": lambda: on_tokens("attention", heads=4, qkv_bias=False,
                                          proj_bias=False, causal=True),
    "lm_untied": lambda: language_model(tie=False),
    "lm_tied": lambda: language_model(tie=True),
    "layer_scale": lambda: on_tokens("layer_scale", init=0.5),
    "layer_scale_image": lambda: single("layer_scale", 3, 4, 4),
    "to_tokens": lambda: single("to_tokens", 3, 4, 5),
    "to_image": to_image,
    "select_token": lambda: on_tokens("select_token", index=-1),
    "token_mean": lambda: on_tokens("token_mean"),
    "residual": residual,
    "residual_identity_first": lambda: residual(identity_first=True),
    "branches": branches,
    "vit": vit,
}


def sample_inputs(graph: Graph, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    vocab = min((lay.attrs["vocab"] for lay in graph.layers if lay.op == "embedding"), default=1)
    return tuple(
        torch.randint(0, vocab, (batch, *layer.shape), generator=gen)
        if layer.attrs["dtype"] == "int" else torch.randn((batch, *layer.shape), generator=gen)
        for layer in graph.input_layers())


def load_emitted(graph: Graph) -> torch.nn.Module:
    """Execute the emitted source as a fresh module and instantiate its model class."""
    namespace: dict[str, object] = {"__name__": "emitted"}
    exec(compile(emit(graph), f"<emitted {graph.name}>", "exec"), namespace)
    classes = [v for k, v in namespace.items()
               if isinstance(v, type) and issubclass(v, torch.nn.Module) and k[0].isupper()]
    return classes[-1]()  # the model class comes after the helpers


# ---------------------------------------------------------------- every op


# Graph (GNN) ops need the edges as a tensor, which the fixed IR does not carry yet, so the
# torch backend reports them rather than building them.
GRAPH_OPS = sorted(name for name, spec in OPS.items()
                   if spec.infer.__module__ == "archlang.ir.gnn_ops")


def test_every_op_is_covered() -> None:
    used = {layer.op for make in CASES.values() for layer in make().layers}
    assert set(OPS) - set(GRAPH_OPS) - used == set()
    assert set(BUILDERS) == set(OPS) - set(GRAPH_OPS)


@pytest.mark.parametrize("op", GRAPH_OPS)
def test_graph_ops_are_reported_as_unsupported(op: str) -> None:
    graph = on_tokens(op, out=4, edges=20)
    with pytest.raises(ArchError, match=f"the torch backend does not support op '{op}'"):
        build(graph)


@pytest.mark.parametrize("case", CASES)
def test_output_shape(case: str) -> None:
    graph = CASES[case]()
    out = build(graph).eval()(*sample_inputs(graph, batch=3))
    assert out.shape == (3, *graph.output_shape)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("case", CASES)
def test_parameter_count_matches_op_table(case: str) -> None:
    graph = CASES[case]()
    model = build(graph)
    assert sum(p.numel() for p in model.parameters()) == sum(lay.params for lay in graph.layers)
    for layer in graph.layers[len(graph.inputs):]:
        own = sum(p.numel() for p in model.get_submodule(layer.path).parameters())
        assert own == layer.params, layer.path


@pytest.mark.parametrize("case", CASES)
def test_flops_match_op_table(case: str) -> None:
    graph = CASES[case]()
    model = build(graph).eval()  # eval: BatchNorm1d refuses a batch of one in training
    with FlopCounterMode(display=False) as counter:
        model(*sample_inputs(graph, batch=1))
    assert counter.get_total_flops() == 2 * sum(layer.macs for layer in graph.layers)
    per_module = counter.get_flop_counts()
    for layer in graph.layers[len(graph.inputs):]:
        flops = sum(per_module.get(f"GraphModule.{layer.path}", {}).values())
        assert flops == 2 * layer.macs, layer.path


@pytest.mark.parametrize("case", CASES)
def test_state_lives_under_parametrised_layer_paths(case: str) -> None:
    graph = CASES[case]()
    state = build(graph).state_dict()
    owners = {layer.path for layer in graph.layers if layer.params}
    # each key is `<path of a layer with parameters>.<name>`, and every such layer has keys
    owner_of = {key: [p for p in owners if key.startswith(p + ".")] for key in state}
    assert all(len(found) == 1 for found in owner_of.values()), owner_of
    assert {found[0] for found in owner_of.values()} == owners


@pytest.mark.parametrize("case", CASES)
def test_emitted_source_matches_build(case: str) -> None:
    graph = CASES[case]()
    built, emitted = build(graph).eval(), load_emitted(graph).eval()
    expected = {k: v.shape for k, v in built.state_dict().items()}
    assert {k: v.shape for k, v in emitted.state_dict().items()} == expected
    assert list(emitted.state_dict()) == list(built.state_dict())  # same order too
    emitted.load_state_dict(built.state_dict())
    inputs = sample_inputs(graph, seed=1)
    torch.testing.assert_close(emitted(*inputs), built(*inputs), rtol=0, atol=0)


# ---------------------------------------------------------------- semantics, against torch


def params(model: torch.nn.Module, path: str) -> dict[str, torch.Tensor]:
    return dict(model.get_submodule(path).named_parameters())


def randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial weights and running statistics, so that a wrong formula shows."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5 if "running_var" in name
                        else torch.randn(t.shape, generator=gen) * 0.5)
    return model


@pytest.mark.parametrize("identity_first", [False, True])
def test_residual_block_computes_the_textbook_formula(identity_first: bool) -> None:
    graph = residual(identity_first)
    model = randomise(build(graph)).eval()
    x = torch.randn(2, 4, 8, 8)

    def bn(y: torch.Tensor, path: str) -> torch.Tensor:
        m = model.get_submodule(path)
        return F.batch_norm(y, m.running_mean, m.running_var, m.weight, m.bias, eps=1e-5)

    y = F.relu(bn(F.conv2d(x, params(model, "block.conv1")["weight"], padding=1), "block.bn1"))
    y = bn(F.conv2d(y, params(model, "block.conv2")["weight"], padding=1), "block.bn2")
    torch.testing.assert_close(model(x), F.relu(y + x))


@pytest.mark.parametrize("identity_first", [False, True])
def test_residual_trains_with_in_place_ops_and_leaves_the_input_alone(
        identity_first: bool) -> None:
    graph = residual(identity_first)
    model = build(graph)
    assert model.block.relu1.inplace and model.block.relu2.inplace
    assert model.block.add.into == (1 if identity_first else 0)  # bn2's output, never the input
    a, b = torch.ones(3), torch.ones(3)
    assert model.block.add(a, b).data_ptr() == (b if identity_first else a).data_ptr()
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    before = x.detach().clone()
    model(x).square().sum().backward()
    assert torch.equal(x.detach(), before)
    # the same function without in-place ops gives the same gradient
    reference = load_emitted(graph)
    reference.load_state_dict(model.state_dict())
    for m in reference.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
        if hasattr(m, "into"):
            m.into = None
    x2 = before.clone().requires_grad_()
    reference(x2).square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_a_value_with_two_readers_is_not_overwritten() -> None:
    net = Net("fanout")
    y = net("conv", net.input(2, 4, 4), out=2, kernel=1)
    out = net("concat", net("relu", y, path="act"), y)
    model = build(net.finish(out))
    assert not model.act.inplace
    result = model(torch.randn(1, 2, 4, 4))
    torch.testing.assert_close(result[:, :2], F.relu(result[:, 2:]))


def test_branches_concat_channels_in_input_order() -> None:
    graph = branches()
    model = randomise(build(graph)).eval()
    seen: dict[str, torch.Tensor] = {}
    for path in ("stem", "left.act", "right.pool", "merge", "skip"):
        model.get_submodule(path).register_forward_hook(
            lambda m, args, out, path=path: seen.__setitem__(path, out.clone()))
    model(torch.randn(2, 3, 12, 12))
    torch.testing.assert_close(seen["merge"], torch.cat([seen["left.act"], seen["right.pool"]], 1))
    torch.testing.assert_close(seen["skip"], seen["merge"] + seen["stem"])


def test_squeeze_excite_formula() -> None:
    graph = single("se", 8, 6, 6, reduced=3, gate="hardsigmoid", act="silu")
    model = randomise(build(graph))
    p = params(model, "se1")
    x = torch.randn(2, 8, 6, 6)
    s = F.silu(F.conv2d(x.mean((2, 3), keepdim=True), p["fc1.weight"], p["fc1.bias"]))
    s = F.hardsigmoid(F.conv2d(s, p["fc2.weight"], p["fc2.bias"]))
    torch.testing.assert_close(model(x), x * s)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_scaled_dot_product_attention(causal: bool) -> None:
    graph = on_tokens("attention", heads=2, causal=causal)
    model = randomise(build(graph))
    p = params(model, "attention2")
    x = torch.randn(3, 16, 8)
    q, k, v = F.linear(x, p["qkv.weight"], p["qkv.bias"]).chunk(3, dim=-1)
    heads = [t.unflatten(-1, (2, 4)).transpose(1, 2) for t in (q, k, v)]
    out = F.scaled_dot_product_attention(*heads, is_causal=causal).transpose(1, 2).flatten(2)
    expected = F.linear(out, p["proj.weight"], p["proj.bias"])
    torch.testing.assert_close(model.attention2(x), expected)


def test_causal_attention_ignores_the_future() -> None:
    model = build(language_model(tie=True)).eval()
    ids = torch.randint(0, 11, (1, 7))
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % 11
    torch.testing.assert_close(model(ids)[:, :-1], model(changed)[:, :-1])
    assert not torch.allclose(model(ids)[:, -1], model(changed)[:, -1])


def test_tied_unembed_shares_the_embedding_weight() -> None:
    model = randomise(build(language_model(tie=True)))
    assert [k for k in model.state_dict() if k.startswith(("embed.", "head"))] == ["embed.weight"]
    h = torch.randn(2, 7, 8)
    torch.testing.assert_close(model.head(h), h @ model.embed.weight.T)
    model(torch.randint(0, 11, (2, 7))).sum().backward()
    assert model.embed.weight.grad is not None and model.embed.weight.grad.abs().sum() > 0


def test_tied_head_before_its_embedding_in_graph_order() -> None:
    net = Net("tied_first")
    tokens = net("patch_embed", net.input(3, 8, 8, path="image"), dim=8, patch=4)
    logits = net("unembed", tokens, path="head", vocab=8, tie="embed")
    embedded = net("embedding", net.input(5, path="ids", dtype="int"), path="embed", vocab=8,
                   dim=8)
    graph = net.finish(net("concat", logits, embedded, axis="tokens"))
    model = randomise(build(graph))
    assert "head" not in {k.split(".")[0] for k in model.state_dict()}
    emitted = load_emitted(graph)
    emitted.load_state_dict(model.state_dict())
    inputs = sample_inputs(graph)
    torch.testing.assert_close(emitted(*inputs), model(*inputs))


def test_tie_to_a_missing_embedding_is_an_error() -> None:
    net = Net("bad_tie")
    h = net("embedding", net.input(4, dtype="int"), path="embed", vocab=5, dim=8)
    graph = net.finish(net("unembed", h, path="head", vocab=5, tie="emb"))
    with pytest.raises(ArchError, match="tied to 'emb', but that is no layer"):
        build(graph)


def test_patch_embed_tokens_are_row_major_patches() -> None:
    graph = single("patch_embed", 3, 8, 8, dim=5, patch=4)
    model = randomise(build(graph))
    p = params(model, "patch_embed1")
    x = torch.randn(2, 3, 8, 8)
    patches = x.unfold(2, 4, 4).unfold(3, 4, 4)  # (B, C, 2, 2, 4, 4)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(2, 4, 3 * 16)
    expected = patches @ p["proj.weight"].reshape(5, -1).T + p["proj.bias"]
    torch.testing.assert_close(model(x), expected)


def test_token_ops() -> None:
    model = randomise(build(vit())).eval()
    h = torch.randn(2, 4, 8)
    with_cls = model.cls(h)
    torch.testing.assert_close(with_cls[:, 1:], h)
    torch.testing.assert_close(with_cls[:, 0], model.cls.token[0].expand(2, -1))
    torch.testing.assert_close(model.pos(with_cls), with_cls + model.pos.weight)
    assert torch.equal(build(vit()).blocks["0"].ls1.gamma, torch.full((8,), 0.1))
    torch.testing.assert_close(model.pool(with_cls), with_cls[:, 0])


def test_global_average_pool() -> None:
    x = torch.randn(2, 3, 5, 4)
    torch.testing.assert_close(build(single("gap", 3, 5, 4))(x), x.mean((2, 3)))


def test_to_tokens_and_back_is_the_identity() -> None:
    net = Net("roundtrip")
    x = net.input(5, 4, 6)
    graph = net.finish(net("to_image", net("to_tokens", x), height=4, width=6))
    model = build(graph)
    image = torch.randn(2, 5, 4, 6)
    assert torch.equal(model(image), image)
    assert torch.equal(model.to_tokens1(image)[:, 7], image[:, :, 1, 1])


def test_layer_norm_2d_normalises_channels() -> None:
    model = build(single("ln2d", 6, 5, 5))
    x = torch.randn(2, 6, 5, 5) * 3 + 1
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (6,), eps=1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(model(x), expected)


def test_token_mean_and_select_token() -> None:
    x = torch.randn(2, 5, 3)
    mean = build(single("token_mean", 5, 3))
    select = build(single("select_token", 5, 3, index=2))
    torch.testing.assert_close(mean(x), x.mean(1))
    assert torch.equal(select(x), x[:, 2])


@pytest.mark.parametrize(("make", "dim"), [
    (lambda: concat_tokens("tokens"), 1), (lambda: concat_tokens("channels"), 2),
    (concat_vectors, 1), (lambda: merge("concat", 2), 1),
])
def test_concat_dims(make: Callable[[], Graph], dim: int) -> None:
    graph = make()
    model = build(graph).eval()
    operands = [graph.layers[i].path for i in graph.layers[graph.output].inputs]
    seen: dict[str, torch.Tensor] = {}
    for path in operands:
        model.get_submodule(path).register_forward_hook(
            lambda m, args, out, path=path: seen.__setitem__(path, out))
    out = model(*sample_inputs(graph))
    assert torch.equal(out, torch.cat([seen[p] for p in operands], dim))


# ---------------------------------------------------------------- naming and structure


def test_state_dict_keys_follow_layer_paths() -> None:
    keys = list(build(residual()).state_dict())
    assert keys == [
        "block.conv1.weight",
        "block.bn1.weight", "block.bn1.bias", "block.bn1.running_mean", "block.bn1.running_var",
        "block.bn1.num_batches_tracked",
        "block.conv2.weight",
        "block.bn2.weight", "block.bn2.bias", "block.bn2.running_mean", "block.bn2.running_var",
        "block.bn2.num_batches_tracked",
    ]


def test_relink_sees_replaced_children() -> None:
    model = build(single("relu", 3))
    x = -torch.ones(1, 3)
    model.relu1 = torch.nn.Identity()
    assert torch.equal(model(x), torch.zeros(1, 3))  # the plan still holds the old ReLU
    model.relink()
    assert torch.equal(model(x), x)


def test_output_read_by_later_layers() -> None:
    # a graph not pruned by GraphBuilder.finish: the output feeds layers that come after it
    net = Net("early_exit")
    y = net("conv", net.input(2, 4, 4), path="conv", out=2, kernel=1)
    y = net("relu", y, path="act")
    graph = replace(net.finish(net("linear", net("gap", y), out=3)), output=y)
    x = torch.randn(1, 2, 4, 4)
    model = build(graph)
    expected = F.relu(model.conv(x))
    assert torch.equal(model(x), expected)
    emitted = load_emitted(graph)
    emitted.load_state_dict(model.state_dict())
    assert torch.equal(emitted(x), expected)


def test_forward_takes_inputs_in_declaration_order() -> None:
    net = Net("two_inputs")
    a, b = net.input(3, path="a"), net.input(3, path="b")
    graph = net.finish(net("concat", b, a))
    x, y = torch.zeros(1, 3), torch.ones(1, 3)
    assert torch.equal(build(graph)(x, y), torch.cat([y, x], 1))
    assert torch.equal(load_emitted(graph)(x, y), torch.cat([y, x], 1))
    assert "def forward(self, a: torch.Tensor, b: torch.Tensor)" in emit(graph)
    with pytest.raises(TypeError, match="takes 2 input"):
        build(graph)(x)


def test_unsupported_op_is_reported_at_its_position() -> None:
    graph = residual()
    span = Span(Source("net.arch", "x\nfrobnicate(3)\n"), 2, 1, 2, 11)
    bad = replace(graph.layers[2], op="frobnicate", span=span)
    graph = replace(graph, layers=(*graph.layers[:2], bad, *graph.layers[3:]))
    for convert in (build, emit):
        with pytest.raises(ArchError) as info:
            convert(graph)
        assert info.value.message == "the torch backend does not support op 'frobnicate'"
        assert info.value.span == span
        assert info.value.render().startswith("net.arch:2:1: error: the torch backend")


@pytest.mark.parametrize(("paths", "message"), [
    (("block", "block.conv"), "names a layer and also contains 'block.conv'"),
    (("a.training", "b"), "'training' is an attribute of torch.nn.Module"),
    (("forward", "b"), "'forward' is an attribute of torch.nn.Module"),
    (("a..b", "c"), "has an empty part"),
    (("same", "same"), "two layers have the path 'same'"),
])
def test_paths_that_cannot_name_modules(paths: tuple[str, str], message: str) -> None:
    net = Net("paths")
    y = net("conv", net.input(2, 4, 4), path=paths[0], out=2, kernel=1)
    graph = net.finish(net("conv", y, path=paths[1], out=2, kernel=1))
    for convert in (build, emit):
        with pytest.raises(ArchError, match=message):
            convert(graph)


def test_numeric_and_keyword_path_parts() -> None:
    net = Net('odd "names" \\')
    y = net("conv", net.input(2, 4, 4), path="0.conv", out=2, kernel=1)
    y = net("relu", y, path="blocks.class")
    graph = net.finish(net("conv", y, path="blocks.1", out=3, kernel=1))
    text = emit(graph)
    assert 'getattr(self, "0").conv' in text
    assert 'self.blocks["class"]' in text and 'self.blocks["1"]' in text
    assert list(build(graph).state_dict()) == [
        "0.conv.weight", "0.conv.bias", "blocks.1.weight", "blocks.1.bias"]
    emitted = load_emitted(graph)  # compiles, despite the quotes in the name
    assert type(emitted).__name__ == "OddNames"
    assert list(emitted.state_dict()) == list(build(graph).state_dict())


# ---------------------------------------------------------------- emitted source


def test_emit_is_deterministic_and_readable() -> None:
    text = emit(residual())
    assert text == emit(residual())
    assert "class Residual(nn.Module):" in text
    assert "        x = self.block.conv1(x0)  # [4, 8, 8]\n" in text
    assert "        x = self.block.bn1(x)  # [4, 8, 8]\n" in text
    assert "        x = self.block.add(x, x)" not in text
    assert "        x = self.block.add(x, x0)  # [4, 8, 8]\n" in text
    assert "self.block.relu1 = nn.ReLU(inplace=True)" in text
    assert "class Add(nn.Module):" in text and "class Concat(" not in text
    forward = text[text.rindex("    def forward"):]
    assert len(forward.splitlines()) == 2 + len(residual().layers) - 1  # def, layers, return


@pytest.mark.parametrize("case", ["branches", "vit", "lm_tied", "gelu_tanh", "se_hard"])
def test_emitted_source_imports_only_torch(case: str) -> None:
    tree = ast.parse(emit(CASES[case]()))
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert modules <= {"torch", "torch.nn.functional", "math"}


def _ruff() -> str | None:
    return shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(_ruff() is None, reason="ruff is not installed")
@pytest.mark.parametrize("case", ["branches", "vit", "lm_tied", "se_hard", "to_image"])
def test_emitted_source_is_ruff_clean(case: str, tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    path.write_text(emit(CASES[case]()))
    # the project's rules, given here so that the check does not depend on the project's config
    rules = ["--select", "E,F,W,I,B,UP", "--ignore", "E501", "--target-version", "py310"]
    done = subprocess.run([_ruff(), "check", "--no-cache", "--isolated", *rules, str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(("name", "expected"), [
    ("resnet50", "Resnet50"), ("digits_net", "DigitsNet"), ("vit-tiny/4", "VitTiny4"),
    ("3net", "Model3net"), ("add", "AddModel"), ("", "Model"),
])
def test_class_names(name: str, expected: str) -> None:
    from archlang.backends.torch.emit import class_name

    assert class_name(name) == expected


# ---------------------------------------------------------------- the registry


def test_registry() -> None:
    assert "torch" in BACKENDS
    backend = get_backend("torch")
    graph = residual()
    assert isinstance(backend.build(graph), torch.nn.Module)
    assert backend.emit(graph) == emit(graph)
    with pytest.raises(ArchError, match="unknown backend 'tensorflow'; the backends are torch"):
        get_backend("tensorflow")


def test_importing_archlang_does_not_import_torch() -> None:
    code = ("import sys, archlang, archlang.backends, archlang.ir.graph; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_inputs_named_like_module_globals_are_renamed() -> None:
    net = Net("shadow")
    graph = net.finish(net("add", net.input(3, path="torch"), net.input(3, path="F")))
    text = emit(graph)
    assert "def forward(self, x0: torch.Tensor, x1: torch.Tensor)" in text
    ones = torch.ones(1, 3)
    assert torch.equal(load_emitted(graph)(ones, ones), ones * 2)
    assert torch.equal(ones, torch.ones(1, 3))  # inputs are never overwritten
