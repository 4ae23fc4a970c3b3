"""The JAX/Flax backend: for every op and every example, the flax module counts the parameters
the op table says, computes what the torch module computes (weights copied from torch), gives
the weights back unchanged, trains under jax.jit, and emits source that builds the same module.
"""

from __future__ import annotations

import ast
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # before jax is imported; tests run on the CPU
# These tests compile many small programs and run each once or twice: XLA's CPU backend would
# spend most of their time optimising machine code (several seconds for one truncated-normal
# initializer on a busy machine). Read when jax starts its CPU backend; the caller's flags win.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 "
                                   "--xla_llvm_disable_expensive_passes=true")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

import archlang  # noqa: E402
import archlang.ir.gnn_ops  # noqa: E402,F401  (registers the GNN ops neither backend builds)
from archlang.backends import get_backend  # noqa: E402
from archlang.backends.flax import BUILDERS, GraphModel, build, emit  # noqa: E402
from archlang.backends.flax.build import submodule  # noqa: E402
from archlang.backends.flax.transfer import flax_to_torch, from_torch, torch_to_flax  # noqa: E402
from archlang.backends.torch import BUILDERS as TORCH_BUILDERS  # noqa: E402
from archlang.backends.torch import build as torch_build  # noqa: E402
from archlang.errors import ArchError, Source, Span  # noqa: E402
from archlang.ir.graph import Graph  # noqa: E402
from archlang.ir.ops import OPS  # noqa: E402
from tests.conftest import EXAMPLES  # noqa: E402
from tests.test_torch_backend import CASES as TORCH_CASES  # noqa: E402
from tests.test_torch_backend import Net, randomise, residual, sample_inputs, single  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden" / "flax"
ATOL = 1e-4  # the bound, float32, eval mode

# ---------------------------------------------------------------- graphs beyond torch's cases


def flatten_into(*readers: str) -> Graph:
    """conv, flatten, then the given readers of the flat vector (concatenated if several)."""
    net = Net("flatten_" + "_".join(readers))
    flat = net("flatten", net("conv", net.input(3, 4, 5), out=6, kernel=3), path="flat")
    outs = [net(op, flat, **({"out": 7} if op == "linear" else {})) for op in readers]
    return net.finish(outs[0] if len(outs) == 1 else net("concat", *outs))


def bn_net() -> Graph:
    """Batch norm on an image and on a vector, between convs: train mode shows in both."""
    net = Net("bn_net")
    y = net("relu", net("bn", net("conv", net.input(3, 6, 6), out=4, kernel=3), momentum=0.3))
    return net.finish(net("bn", net("linear", net("gap", y), out=5)))


def tied_head_first() -> Graph:
    """A head tied to an embedding that comes after it in graph order (two inputs)."""
    net = Net("tied_first")
    tokens = net("patch_embed", net.input(3, 8, 8, path="image"), dim=8, patch=4)
    logits = net("unembed", tokens, path="head", vocab=8, tie="embed")
    embedded = net("embedding", net.input(5, path="ids", dtype="int"), path="embed", vocab=8,
                   dim=8)
    return net.finish(net("concat", logits, embedded, axis="tokens"))


CASES: dict[str, Callable[[], Graph]] = {
    **TORCH_CASES,
    "flatten_linear": lambda: flatten_into("linear"),  # NHWC flatten, kernel rows permuted
    "flatten_two_linears": lambda: flatten_into("linear", "linear"),
    "flatten_linear_and_relu": lambda: flatten_into("linear", "relu"),  # NCHW flatten
    "bn_net": bn_net,
    "tied_head_first": tied_head_first,
}


# ---------------------------------------------------------------- helpers


def param_count(model: nnx.Module) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(nnx.state(model,
                                                                                 nnx.Param)))


def perturb(model: torch.nn.Module, graph: Graph, seed: int = 3) -> torch.nn.Module:
    """Torch's random initial weights, with batch norms' affine maps and running statistics
    moved off their identity values (mildly, so that a deep network's outputs stay of order
    one and a 1e-4 bound still means something)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in graph.layers:
            if layer.op != "bn":
                continue
            bn = model.get_submodule(layer.path)
            bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=gen) + 0.5)
            for t in (bn.weight, bn.bias, bn.running_mean):
                t.add_(torch.randn(t.shape, generator=gen) * 0.1)
    return model


def to_jax(xs: tuple[torch.Tensor, ...]) -> list[jax.Array]:
    return [jnp.asarray(x.numpy()) for x in xs]


@nnx.jit
def forward(model: nnx.Module, *xs: jax.Array) -> jax.Array:
    return model(*xs)


@nnx.jit
def forward_both(a: nnx.Module, b: nnx.Module, *xs: jax.Array) -> tuple[jax.Array, jax.Array]:
    return a(*xs), b(*xs)


@nnx.jit
def forward_three(a: nnx.Module, b: nnx.Module, c: nnx.Module,
                  *xs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    return a(*xs), b(*xs), c(*xs)


def emitted_class(graph: Graph) -> type[nnx.Module]:
    """Execute the emitted source as a fresh module; its model class comes last."""
    namespace: dict[str, Any] = {"__name__": "emitted"}
    exec(compile(emit(graph), f"<emitted {graph.name}>", "exec"), namespace)
    classes = [v for k, v in namespace.items()
               if isinstance(v, type) and issubclass(v, nnx.Module) and k[0].isupper()]
    return classes[-1]


def shapes(model: nnx.Module) -> Any:
    return jax.tree_util.tree_map(lambda v: (tuple(v.shape), str(v.dtype)), nnx.state(model))


def emitted_with_weights_of(graph: Graph, model: nnx.Module) -> nnx.Module:
    """The emitted model, built abstractly (no random draws), holding `model`'s state."""
    cls = emitted_class(graph)
    other = nnx.eval_shape(lambda: cls(nnx.Rngs(0)))
    assert shapes(other) == shapes(model)  # the same tree: paths, shapes, dtypes
    nnx.update(other, nnx.state(model))
    return other


def assert_close_to_torch(got: jax.Array, want: torch.Tensor) -> None:
    want_np = want.detach().numpy()
    assert got.shape == want_np.shape
    err = float(np.abs(np.asarray(got) - want_np).max())
    scale = float(np.abs(want_np).max())
    assert err <= ATOL, f"max abs error {err:.2e}"
    # relative to the output's size too, so that a tiny output cannot pass by being tiny
    assert err <= 1e-5 * max(scale, 1.0) or err <= 1e-3 * scale, (err, scale)


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key


# ---------------------------------------------------------------- every op


def test_every_op_is_built_or_reported() -> None:
    assert set(BUILDERS) == set(TORCH_BUILDERS)
    used = {layer.op for make in CASES.values() for layer in make().layers}
    assert set(BUILDERS) <= used
    # the ops without a builder in either backend are the graph ops (reported as errors below)
    graph_ops = set(archlang.ir.gnn_ops.BENCHMARK_NAMES) - {"linear", "identity"}
    assert set(OPS) - set(BUILDERS) == graph_ops


def check_against_torch(graph: Graph, reference: torch.nn.Module, batch: int = 2,
                        seed: int = 0) -> None:
    """Counts, eval-mode outputs of the flax build and of the emitted source, the round trip of
    the weights, and (without dropout) a train-mode step: outputs and updated statistics."""
    model = from_torch(reference.state_dict(), graph)

    expected = sum(layer.params for layer in graph.layers)
    assert param_count(model) == expected == sum(p.numel() for p in reference.parameters())
    for layer in graph.layers:
        if layer.params and not (layer.op == "unembed" and layer.attrs["tie"]):
            assert param_count(submodule(model, layer.path)) == layer.params, layer.path

    assert_same_state(flax_to_torch(model, graph), reference.state_dict())

    inputs = sample_inputs(graph, batch=batch, seed=seed)
    emitted = emitted_with_weights_of(graph, model)
    trained = nnx.clone(model)
    model.eval(), emitted.eval(), trained.train()
    with torch.no_grad():
        want_eval = reference.eval()(*inputs)
        want_train = reference.train()(*inputs)
    # one compiled program: eval outputs of the build and of the emitted source, and a
    # train-mode forward (which updates `trained`'s batch statistics)
    got, got_emitted, got_train = forward_three(model, emitted, trained, *to_jax(inputs))
    assert_close_to_torch(got, want_eval)
    assert np.array_equal(np.asarray(got_emitted), np.asarray(got))
    if any(layer.op == "dropout" for layer in graph.layers):
        return  # a train-mode forward draws a random mask
    assert_close_to_torch(got_train, want_train)
    after, expected_state = flax_to_torch(trained, graph), reference.state_dict()
    assert list(after) == list(expected_state)
    for key, value in expected_state.items():
        torch.testing.assert_close(after[key], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_op_parity_with_torch(case: str) -> None:
    graph = CASES[case]()
    check_against_torch(graph, randomise(torch_build(graph)))


def test_flatten_layouts() -> None:
    def flatten_fn(graph: Graph) -> str:
        flat = graph.layer("flat").index
        model = nnx.eval_shape(lambda: build(graph))  # the plan without drawing weights
        return next(step for step in model.steps if step[5] == flat)[1].__name__

    assert flatten_fn(flatten_into("linear")) == "flatten"
    assert flatten_fn(flatten_into("linear", "linear")) == "flatten"
    assert flatten_fn(flatten_into("linear", "relu")) == "flatten_channels_first"
    assert flatten_fn(flatten_into("relu")) == "flatten_channels_first"


# ---------------------------------------------------------------- the examples


@cache
def example_graphs() -> dict[str, Graph]:
    graphs = {}
    for path in sorted(EXAMPLES.glob("*.arch")):
        space = archlang.load(path)
        graphs[path.stem] = archlang.fix(space, archlang.api.default_assignment(space)).graph
    return graphs


def _builds_in_torch(graph: Graph) -> bool:
    from archlang.backends.torch.build import describe  # what build checks, without weights

    try:
        describe(graph)
    except ArchError:
        return False
    return True


SUPPORTED = [n for n, g in example_graphs().items() if _builds_in_torch(g)]
UNSUPPORTED = [n for n in example_graphs() if n not in SUPPORTED]


def test_examples_are_all_accounted_for() -> None:
    names = {p.stem for p in EXAMPLES.glob("*.arch")}
    assert set(SUPPORTED) | set(UNSUPPORTED) == names
    assert {"resnet18", "resnet50", "mobilenet_v2", "vit_tiny", "digits_space"} <= set(SUPPORTED)


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_example_with_unsupported_ops_is_an_error_at_the_op(name: str) -> None:
    graph = example_graphs()[name]
    missing = next(lay for lay in graph.layers if lay.op != "input" and lay.op not in BUILDERS)
    for convert in (build, emit):
        with pytest.raises(ArchError) as info:
            convert(graph)
        assert info.value.message == f"the flax backend does not support op '{missing.op}'"
        assert info.value.span == missing.span and missing.span is not None
    with pytest.raises(ArchError, match="the torch backend does not support op"):
        torch_build(graph)


@pytest.mark.parametrize("name", SUPPORTED)
def test_example_parity_with_torch(name: str) -> None:
    """Batch 1, eval mode: one torch and one jit-compiled flax forward per example."""
    graph = example_graphs()[name]
    torch.manual_seed(0)
    reference = perturb(torch_build(graph), graph).eval()
    model = from_torch(reference.state_dict(), graph)
    assert param_count(model) == sum(lay.params for lay in graph.layers) == sum(
        p.numel() for p in reference.parameters())
    assert_same_state(flax_to_torch(model, graph), reference.state_dict())
    inputs = sample_inputs(graph, batch=1)
    with torch.no_grad():
        want = reference(*inputs)
    model.eval()
    emitted = emitted_with_weights_of(graph, model)  # checks that the state trees agree
    emitted.eval()
    if graph.layers in checked_graphs:  # another example is this very network: checked already
        return
    if model_size(graph) < 1_000_000:
        got, got_emitted = forward_both(model, emitted, *to_jax(inputs))
        assert np.array_equal(np.asarray(got_emitted), np.asarray(got))
    else:  # a second compilation of a big model costs more than it tells; its tree is checked
        got = forward(model, *to_jax(inputs))
    assert_close_to_torch(got, want)
    assert float(want.abs().max()) > 1e-3  # the comparison is not of two near-zero tensors
    checked_graphs.append(graph.layers)


checked_graphs: list[Any] = []


def model_size(graph: Graph) -> int:
    return sum(layer.params for layer in graph.layers)


# deepmad_r34/r50 share deepmad_r18's first point, so their golden files would be copies
GOLDEN_CASES = [n for n in SUPPORTED if n not in ("deepmad_r34", "deepmad_r50")]


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_example_emitted_source_is_golden(name: str) -> None:
    graph = example_graphs()[name]
    text = emit(graph)
    golden = GOLDEN / f"{name}.py"
    if os.environ.get("ARCHLANG_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), f"regenerate with ARCHLANG_UPDATE_GOLDEN=1: {golden}"


# ---------------------------------------------------------------- the search space


def digits_points(count: int = 4) -> list[tuple[str, Graph]]:
    space = archlang.load(EXAMPLES / "digits_space.arch")
    rng = random.Random(7)
    points = []
    for _ in range(count):
        arch = archlang.fix(space, archlang.sample(space, rng))
        points.append((arch.hash, arch.graph))
    return points


@pytest.mark.parametrize("point", range(4))
def test_digits_space_points(point: int) -> None:
    _, graph = digits_points()[point]
    # torch's initial weights: randomise()'s large ones make a deep net's outputs too big for
    # an absolute bound in float32
    check_against_torch(graph, perturb(torch_build(graph), graph), batch=4, seed=point)


def test_digits_points_are_distinct() -> None:
    assert len({h for h, _ in digits_points()}) == 4


# ---------------------------------------------------------------- training


def test_optax_steps_on_digits_reduce_the_loss() -> None:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = jnp.asarray(data.images[:256, None] / 16.0, dtype=jnp.float32)  # (256, 1, 8, 8)
    y = jnp.asarray(data.target[:256])
    space = archlang.load(EXAMPLES / "digits_space.arch")
    graph = archlang.fix(space, archlang.api.default_assignment(space)).graph
    # torch's initial weights: drawing jax's costs seconds per new shape on a CPU
    torch.manual_seed(0)
    model = from_torch(torch_build(graph).state_dict(), graph)
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model: GraphModel, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
        def loss_fn(model: GraphModel) -> jax.Array:
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer, x, y)) for _ in range(10)]
    assert losses[-1] < 0.7 * losses[0], losses
    stats = [m for _, m in nnx.iter_modules(model) if type(m).__name__ == "BatchNorm"]
    assert stats and all(int(m.num_batches_tracked[...]) == 10 for m in stats)
    model.eval()
    eval_loss = optax.softmax_cross_entropy_with_integer_labels(forward(model, x), y).mean()
    assert float(eval_loss) < losses[0]


# ---------------------------------------------------------------- batch norm and dropout


def test_batch_norm_uses_batch_statistics_in_training_and_running_ones_in_eval() -> None:
    graph = bn_net()
    torch.manual_seed(0)
    model = from_torch(torch_build(graph).state_dict(), graph)
    x = jnp.asarray(np.random.default_rng(1).normal(1.0, 2.0, (6, 3, 6, 6)), jnp.float32)
    # train: each example's output depends on the rest of the batch, and statistics move
    full = model(x)
    assert not np.allclose(np.asarray(full[:3]), np.asarray(model(x[:3])), atol=1e-3)
    norms = [m for _, m in nnx.iter_modules(model) if type(m).__name__ == "BatchNorm"]
    assert [int(m.num_batches_tracked[...]) for m in norms] == [2, 2]
    assert not np.allclose(np.asarray(norms[0].mean[...]), 0.0)
    # eval: examples are independent, statistics stay put
    model.eval()
    before = [np.asarray(m.mean[...]) for m in norms]
    np.testing.assert_allclose(np.asarray(model(x)[:3]), np.asarray(model(x[:3])), atol=1e-5)
    assert all(np.array_equal(np.asarray(m.mean[...]), b) for m, b in zip(norms, before))
    assert [int(m.num_batches_tracked[...]) for m in norms] == [2, 2]


def test_dropout_is_keyed_by_the_models_rngs() -> None:
    graph = single("dropout", 4, 16, 16, p=0.5)
    x = jnp.ones((2, 4, 16, 16))
    a, b, other = build(graph, seed=1), build(graph, seed=1), build(graph, seed=2)
    first = forward(a, x)
    assert np.array_equal(np.asarray(first), np.asarray(forward(b, x)))  # same seed, same mask
    second = forward(a, x)
    assert not np.array_equal(np.asarray(first), np.asarray(second))  # the stream moves on
    assert np.array_equal(np.asarray(second), np.asarray(forward(b, x)))
    assert not np.array_equal(np.asarray(first), np.asarray(forward(other, x)))
    kept = float((np.asarray(first) != 0).mean())
    assert 0.4 < kept < 0.6 and set(np.unique(np.asarray(first))) == {0.0, 2.0}
    # explicit streams: the dropout key comes from the `dropout` stream of the rngs given
    c = build(graph, rngs=nnx.Rngs(params=5, dropout=1))
    d = build(graph, rngs=nnx.Rngs(params=6, dropout=1))
    assert np.array_equal(np.asarray(forward(c, x)), np.asarray(forward(d, x)))
    a.eval()
    assert np.array_equal(np.asarray(forward(a, x)), np.asarray(x))


# ---------------------------------------------------------------- emitted source


def test_emitted_module_with_the_same_seed_has_the_same_weights() -> None:
    graph = residual()  # one kernel shape: each new one costs jax an initializer compilation
    built, emitted = build(graph, seed=4), emitted_class(graph)(nnx.Rngs(4))
    assert shapes(built) == shapes(emitted)
    for u, v in zip(jax.tree_util.tree_leaves(nnx.state(built, nnx.Param)),
                    jax.tree_util.tree_leaves(nnx.state(emitted, nnx.Param)), strict=True):
        assert np.array_equal(np.asarray(u), np.asarray(v))


@pytest.mark.parametrize("case", ["branches", "vit", "lm_tied", "se_hard", "adaptive_avgpool",
                                  "flatten_linear_and_relu"])
def test_emitted_source_imports_only_jax_and_flax(case: str) -> None:
    tree = ast.parse(emit(CASES[case]()))
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert modules <= {"jax", "jax.numpy", "flax", "math"}


def _ruff() -> str | None:
    return shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(_ruff() is None, reason="ruff is not installed")
def test_emitted_source_is_ruff_clean(tmp_path: Path) -> None:
    for case in ("branches", "vit", "lm_tied", "adaptive_avgpool", "to_image"):
        (tmp_path / f"{case}.py").write_text(emit(CASES[case]()))
    config = Path(__file__).resolve().parents[1] / "pyproject.toml"
    done = subprocess.run([_ruff(), "check", "--no-cache", "--config", str(config),
                           str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_emit_is_deterministic_and_readable() -> None:
    text = emit(residual())
    assert text == emit(residual())
    assert "class Residual(nnx.Module):" in text
    # the input is called x; `x` is the emitted file's name for chained values
    assert "    def __call__(self, x0: jax.Array) -> jax.Array:" in text
    assert "        x0 = jnp.transpose(x0, (0, 2, 3, 1))  # NCHW -> NHWC\n" in text
    assert "        x = self.block.conv1(x0)  # [8, 8, 4]\n" in text
    assert "        x = add(x, x0)  # [8, 8, 4]\n" in text
    assert "        return jnp.transpose(x, (0, 3, 1, 2))  # NHWC -> NCHW\n" in text
    assert ("self.block.conv1 = nnx.Conv(4, 4, (3, 3), padding=((1, 1), (1, 1)), "
            "use_bias=False, rngs=rngs)") in text
    assert "class BatchNorm(nnx.Module):" in text and "def concat(" not in text


# ---------------------------------------------------------------- transfer, errors, registry


def test_transfer_refuses_a_state_dict_that_does_not_fit() -> None:
    graph = residual()
    state = torch_build(graph).state_dict()
    model = nnx.eval_shape(lambda: build(graph))
    with pytest.raises(ValueError, match="has no 'block.conv1.weight'"):
        torch_to_flax({k: v for k, v in state.items() if k != "block.conv1.weight"}, graph,
                      model)
    with pytest.raises(ValueError, match="keys this graph does not: extra"):
        torch_to_flax({**state, "extra": torch.zeros(1)}, graph, model)
    bad = {**state, "block.bn1.weight": torch.zeros(5)}
    with pytest.raises(ValueError, match="'block.bn1.weight' has shape"):
        torch_to_flax(bad, graph, model)


def test_tied_head_shares_the_embedding_parameter() -> None:
    graph = CASES["lm_tied"]()
    model = from_torch(torch_build(graph).state_dict(), graph)
    paths = {".".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    assert not any(p.startswith("head") for p in paths) and "embed.embedding" in paths
    ids = jnp.arange(7)[None] % 11

    def loss(model: GraphModel) -> jax.Array:
        return model(ids).sum()

    grads = nnx.jit(nnx.grad(loss))(model)
    assert float(jnp.abs(grads["embed"]["embedding"][...]).sum()) > 0


def test_unsupported_op_is_reported_at_its_position() -> None:
    graph = residual()
    span = Span(Source("net.arch", "x\nfrobnicate(3)\n"), 2, 1, 2, 11)
    bad = replace(graph.layers[2], op="frobnicate", span=span)
    graph = replace(graph, layers=(*graph.layers[:2], bad, *graph.layers[3:]))
    for convert in (build, emit):
        with pytest.raises(ArchError) as info:
            convert(graph)
        assert info.value.message == "the flax backend does not support op 'frobnicate'"
        assert info.value.span == span
        assert info.value.render().startswith("net.arch:2:1: error: the flax backend")


@pytest.mark.parametrize(("paths", "message"), [
    (("block", "block.conv"), "names a layer and also contains 'block.conv'"),
    (("a.items", "b"), "'items' is an attribute of flax.nnx.Module"),
    (("eval", "b"), "'eval' is an attribute of flax.nnx.Module"),
    (("a._x", "b"), "starts with '_'"),
    (("same", "same"), "two layers have the path 'same'"),
])
def test_paths_that_cannot_name_modules(paths: tuple[str, str], message: str) -> None:
    net = Net("paths")
    y = net("conv", net.input(2, 4, 4), path=paths[0], out=2, kernel=1)
    graph = net.finish(net("conv", y, path=paths[1], out=2, kernel=1))
    for convert in (build, emit):
        with pytest.raises(ArchError, match=message):
            convert(graph)


def test_registry_and_cli(run_cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    backend = get_backend("flax")
    graph = single("relu", 3)
    assert isinstance(backend.build(graph), GraphModel)
    assert backend.emit(graph) == emit(graph)
    target = tmp_path / "resnet18.py"
    code, out, err = run_cli("compile", str(EXAMPLES / "resnet18.arch"), "--backend", "flax",
                             "-o", str(target))
    assert code == 0, err
    assert target.read_text() == (GOLDEN / "resnet18.py").read_text()


def test_importing_archlang_does_not_import_jax() -> None:
    code = ("import sys, archlang, archlang.backends, archlang.ir.graph; "
            "sys.exit('jax' in sys.modules or 'flax' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---------------------------------------------------------------- a solved architecture


def test_solved_deepmad_architecture_compiles_to_flax() -> None:
    """`archlang solve`'s answer on DeepMAD's R18 problem (a few seconds: a verified point,
    not the optimum) emits a Flax model with the parameters the cost pass counts, whose
    output has the last stage's width (built and run abstractly: no 11 M random draws)."""
    from archlang.solvers.milp import solve

    space = archlang.load(EXAMPLES / "deepmad_r18.arch")
    solution = solve(space, time_limit=6, gap=1e-3)
    assert solution.assignment is not None and not solution.notes
    graph = archlang.fix(space, solution.assignment).graph
    abstract = nnx.eval_shape(lambda: emitted_class(graph)(nnx.Rngs(0)))
    params = jax.tree_util.tree_leaves(nnx.state(abstract, nnx.Param))
    assert sum(int(np.prod(p.shape)) for p in params) == solution.metrics["params"]
    graphdef, state = nnx.split(abstract)

    def run(state: Any, x: jax.Array) -> jax.Array:
        model = nnx.merge(graphdef, state)
        model.eval()
        return model(x)

    out = jax.eval_shape(run, state, jax.ShapeDtypeStruct((1, 3, 224, 224), jnp.float32))
    assert out.shape[:2] == (1, solution.assignment["w5"])
