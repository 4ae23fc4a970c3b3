"""Graph -> flax.nnx.Module, in memory.

Each op has one builder that describes its layer instead of constructing it: a
:class:`Module` (a class created once, at the layer's path, and called in the forward) or a
:class:`Function` (a pure function applied in the forward; layers without state own nothing).
:func:`build` instantiates the descriptions; the emitter renders the very same descriptions as
source text, so the two can never disagree on names, shapes or creation order.

Layout: images are NHWC inside the model. The model's public inputs and outputs keep
archlang's batch-first layout, the one the torch backend takes: images (B, C, H, W), tokens
(B, N, D), vectors (B, D). Images are transposed once on the way in and once on the way out.

Modules live at their ``layer.path``: ``layer1.0.conv1`` is ``model.layer1["0"].conv1``
(nested ``nnx.Dict`` containers), so its parameters sit at the state path
``("layer1", "0", "conv1", "kernel")``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from archlang.backends.pysource import ModuleRef
from archlang.errors import ArchError
from archlang.ir.graph import Graph, Layer
from archlang.ir.ops import Shape, concat_dim

from . import layers as helpers

# ---------------------------------------------------------------- layer descriptions


Ref = ModuleRef  # the module of another layer, passed to a function (a tied embedding)


@dataclass(frozen=True, slots=True)
class Module:
    """``target(*args, **kwargs, rngs=rngs)`` created at the layer's path; ``nnx.X`` for flax
    classes, a bare name for the helpers of :mod:`.layers`."""

    target: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Function:
    """``target(*operands, *args, **kwargs)`` applied in the forward."""

    target: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


Description = Module | Function


def _kw(**pairs: tuple[Any, Any]) -> tuple[tuple[str, Any], ...]:
    """Keyword arguments given as ``name=(value, default)``; defaults are left out so that
    emitted code reads like hand-written code."""
    return tuple((k, v) for k, (v, default) in pairs.items() if v != default)


class Context:
    """What a builder may ask about the graph around its layer."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        readers: dict[int, list[int]] = {layer.index: [] for layer in graph.layers}
        for layer in graph.layers:
            for i in layer.inputs:
                readers[i].append(layer.index)
        self.readers = {i: tuple(r) for i, r in readers.items()}

    def in_shape(self, layer: Layer) -> Shape:
        return self.graph.layers[layer.inputs[0]].shape


def channels_last_flatten(graph: Graph, layer: Layer) -> bool:
    """Whether a flatten layer keeps NHWC order (a plain reshape) instead of PyTorch's NCHW.

    Only when every reader is a linear layer, whose kernel rows weight transfer permutes to
    match, and the flat vector is not the model's output; then no transpose is needed. Where
    the order cannot be observed (one channel, or a 1x1 image) both orders are the same.
    """
    shape = graph.layers[layer.inputs[0]].shape
    if len(shape) != 3 or shape[0] == 1 or shape[1] * shape[2] == 1:
        return True
    readers = [other for other in graph.layers if layer.index in other.inputs]
    return (layer.index != graph.output and bool(readers)
            and all(r.op == "linear" for r in readers))


def permuted_image(graph: Graph, layer: Layer) -> Shape | None:
    """The (C, H, W) image whose channels-last flatten a linear layer reads, else None: its
    kernel rows are in (H, W, C) order where torch's weight columns are in (C, H, W) order."""
    source = graph.layers[layer.inputs[0]]
    if layer.op != "linear" or source.op != "flatten":
        return None
    image = graph.layers[source.inputs[0]].shape
    if len(image) != 3 or image[0] == 1 or image[1] * image[2] == 1:
        return None
    return image if channels_last_flatten(graph, source) else None


# ---------------------------------------------------------------- one builder per op

Builder = Callable[[Layer, Context], Description]


def _conv(layer: Layer, ctx: Context) -> Description:
    a = layer.attrs
    k, s, p, d = a["kernel"], a["stride"], a["padding"], a["dilation"]
    return Module(
        "nnx.Conv",
        (ctx.in_shape(layer)[0], a["out"], (k, k)),
        # padding is always written: nnx.Conv's default is "SAME", not torch's 0
        _kw(strides=((s, s), (1, 1))) + (("padding", ((p, p), (p, p))),)
        + _kw(kernel_dilation=((d, d), (1, 1)), feature_group_count=(a["groups"], 1),
              use_bias=(a["bias"], True)),
    )


def _linear(layer: Layer, ctx: Context) -> Description:
    a = layer.attrs
    return Module("nnx.Linear", (ctx.in_shape(layer)[-1], a["out"]),
                  _kw(use_bias=(a["bias"], True)))


def _bn(layer: Layer, ctx: Context) -> Description:
    shape, a = ctx.in_shape(layer), layer.attrs
    return Module("BatchNorm", (shape[0],), _kw(eps=(a["eps"], 1e-5),
                                                momentum=(a["momentum"], 0.1)))


def _layer_norm(layer: Layer, ctx: Context) -> Description:
    # ln on the last axis and ln2d on an image's channels are one op in NHWC
    shape = ctx.in_shape(layer)
    width = shape[0] if len(shape) == 3 else shape[-1]
    # epsilon is always written: nnx.LayerNorm's default (1e-6) is not torch's (1e-5)
    return Module("nnx.LayerNorm", (width,), (("epsilon", layer.attrs["eps"]),))


def _gn(layer: Layer, ctx: Context) -> Description:
    a = layer.attrs
    return Module("nnx.GroupNorm", (ctx.in_shape(layer)[0],),
                  (("num_groups", a["groups"]), ("epsilon", a["eps"])))


def _function(target: str) -> Builder:
    """The builder of an op that is a function of its operands alone."""

    def builder(layer: Layer, ctx: Context) -> Description:
        return Function(target)

    builder.__name__ = f"_build_{target.rsplit('.', 1)[-1]}"
    return builder


def _gelu(layer: Layer, ctx: Context) -> Description:
    # jax.nn.gelu approximates by default; archlang's (and torch's) default is exact
    return Function("jax.nn.gelu", (), (("approximate", layer.attrs["approximate"] == "tanh"),))


def _pool(target: str) -> Builder:
    def builder(layer: Layer, ctx: Context) -> Description:
        a = layer.attrs
        k, s, p = a["kernel"], a["stride"], a["padding"]
        # both pad max pooling with -inf and count padding in the average, as torch does
        return Function(target, ((k, k),), (("strides", (s, s)),)
                        + _kw(padding=(((p, p), (p, p)), ((0, 0), (0, 0)))))

    builder.__name__ = f"_build_{target.rsplit('.', 1)[-1]}"
    return builder


def _adaptive_avgpool(layer: Layer, ctx: Context) -> Description:
    return Function("adaptive_avg_pool", (layer.attrs["size"],))


def _flatten(layer: Layer, ctx: Context) -> Description:
    keep = channels_last_flatten(ctx.graph, layer)
    return Function("flatten" if keep else "flatten_channels_first")


def _dropout(layer: Layer, ctx: Context) -> Description:
    return Module("nnx.Dropout", (layer.attrs["p"],))


def _se(layer: Layer, ctx: Context) -> Description:
    a = layer.attrs
    return Module("SqueezeExcite", (ctx.in_shape(layer)[0], a["reduced"]),
                  _kw(act=(a["act"], "relu"), gate=(a["gate"], "sigmoid")))


def _concat(layer: Layer, ctx: Context) -> Description:
    shape = ctx.in_shape(layer)
    dim = concat_dim(shape, layer.attrs["axis"])  # in archlang's layout, without batch
    axis = 3 if len(shape) == 3 else dim + 1  # an image's channels are last in NHWC
    return Function("concat", (), (("axis", axis),))


def _patch_embed(layer: Layer, ctx: Context) -> Description:
    a = layer.attrs
    return Module("PatchEmbed", (ctx.in_shape(layer)[0], a["dim"], a["patch"]),
                  _kw(bias=(a["bias"], True)))


def _class_token(layer: Layer, ctx: Context) -> Description:
    return Module("ClassToken", (ctx.in_shape(layer)[1],))


def _pos_embed(layer: Layer, ctx: Context) -> Description:
    return Module("PosEmbed", ctx.in_shape(layer))


def _attention(layer: Layer, ctx: Context) -> Description:
    a = layer.attrs
    return Module("SelfAttention", (ctx.in_shape(layer)[1], a["heads"]),
                  _kw(qkv_bias=(a["qkv_bias"], True), proj_bias=(a["proj_bias"], True),
                      causal=(a["causal"], False)))


def _embedding(layer: Layer, ctx: Context) -> Description:
    return Module("nnx.Embed", (layer.attrs["vocab"], layer.attrs["dim"]))


def _unembed(layer: Layer, ctx: Context) -> Description:
    a, dim = layer.attrs, ctx.in_shape(layer)[-1]
    if not a["tie"]:
        return Module("nnx.Linear", (dim, a["vocab"]), (("use_bias", False),))
    # a function of the embedding's table, so the shared parameter lives at one path only
    return Function("tied_unembed", (Ref(tied_embedding(layer, ctx.graph, dim).path),))


def tied_embedding(layer: Layer, graph: Graph, dim: int) -> Layer:
    """The embedding layer an unembed shares its table with, checked to fit."""
    tie, vocab = layer.attrs["tie"], layer.attrs["vocab"]
    owner = next((other for other in graph.layers if other.path == tie), None)
    if owner is None or owner.op != "embedding":
        found = "no layer" if owner is None else f"a '{owner.op}' layer"
        raise ArchError(f"unembed is tied to '{tie}', but that is {found}, not an embedding",
                        layer.span)
    if (owner.attrs["vocab"], owner.attrs["dim"]) != (vocab, dim):
        raise ArchError(
            f"unembed ({dim} -> {vocab}) cannot share the table of embedding '{tie}' "
            f"({owner.attrs['vocab']} x {owner.attrs['dim']})", layer.span)
    return owner


def _layer_scale(layer: Layer, ctx: Context) -> Description:
    shape = ctx.in_shape(layer)
    width = shape[0] if len(shape) == 3 else shape[-1]  # channels are last in NHWC either way
    return Module("LayerScale", (width,), _kw(init=(layer.attrs["init"], 1e-5)))


def _to_image(layer: Layer, ctx: Context) -> Description:
    return Function("to_image", (layer.attrs["height"], layer.attrs["width"]))


def _select_token(layer: Layer, ctx: Context) -> Description:
    return Function("select_token", (layer.attrs["index"],))


BUILDERS: dict[str, Builder] = {
    "conv": _conv,
    "dwconv": _conv,  # the shape rule has already set out and groups
    "linear": _linear,
    "bn": _bn,
    "ln": _layer_norm,
    "ln2d": _layer_norm,
    "gn": _gn,
    "relu": _function("jax.nn.relu"),
    "relu6": _function("jax.nn.relu6"),
    "gelu": _gelu,
    "silu": _function("jax.nn.silu"),
    "hardswish": _function("jax.nn.hard_swish"),
    "hardsigmoid": _function("jax.nn.hard_sigmoid"),
    "sigmoid": _function("jax.nn.sigmoid"),
    "tanh": _function("jnp.tanh"),
    "identity": _function("identity"),
    "maxpool": _pool("nnx.max_pool"),
    "avgpool": _pool("nnx.avg_pool"),
    "gap": _function("global_avg_pool"),
    "adaptive_avgpool": _adaptive_avgpool,
    "flatten": _flatten,
    "dropout": _dropout,
    "se": _se,
    "add": _function("add"),
    "multiply": _function("multiply"),
    "concat": _concat,
    "patch_embed": _patch_embed,
    "class_token": _class_token,
    "pos_embed": _pos_embed,
    "attention": _attention,
    "embedding": _embedding,
    "unembed": _unembed,
    "layer_scale": _layer_scale,
    "to_tokens": _function("to_tokens"),
    "to_image": _to_image,
    "select_token": _select_token,
    "token_mean": _function("token_mean"),
}


def describe(graph: Graph) -> dict[str, Description]:
    """The description of every layer but the inputs, by path, in graph order; raises
    ArchError for an op without a builder and for paths that cannot name modules."""
    ctx = Context(graph)
    out: dict[str, Description] = {}
    for layer in graph.layers:
        if layer.op == "input":
            continue
        builder = BUILDERS.get(layer.op)
        if builder is None:
            raise ArchError(f"the flax backend does not support op '{layer.op}'", layer.span)
        out[layer.path] = builder(layer, ctx)
    _check_paths(graph, out)
    return out


# ---------------------------------------------------------------- where modules live

# names a child cannot take: they would hide a method or an attribute nnx relies on
ROOT_RESERVED = frozenset(dir(nnx.Module)) | frozenset(
    {"graph_name", "steps", "input_slots", "image_inputs", "output", "image_output", "size"})
CONTAINER_RESERVED = frozenset(dir(nnx.Dict))


def _check_paths(graph: Graph, described: dict[str, Description]) -> None:
    layers = [lay for lay in graph.layers if lay.op != "input"]
    seen: set[str] = set()
    for layer in layers:
        if layer.path in seen:
            raise ArchError(f"two layers have the path '{layer.path}'", layer.span)
        seen.add(layer.path)
    owners = {lay.path: lay for lay in layers if isinstance(described[lay.path], Module)}
    for layer in owners.values():
        parts = layer.path.split(".")
        if not all(parts):
            raise ArchError(f"layer path '{layer.path}' has an empty part", layer.span)
        for depth, part in enumerate(parts):
            reserved = ROOT_RESERVED if depth == 0 else CONTAINER_RESERVED
            if part in reserved or part.startswith("_"):
                raise ArchError(
                    f"layer path '{layer.path}': '{part}' is an attribute of flax.nnx.Module "
                    "(or starts with '_') and cannot name a submodule; rename the layer",
                    layer.span)
            prefix = ".".join(parts[: depth + 1])
            if depth < len(parts) - 1 and prefix in owners:
                raise ArchError(
                    f"layer path '{prefix}' names a layer and also contains '{layer.path}'; "
                    "the flax backend nests modules by path", owners[prefix].span)


def resolve(name: str) -> Any:
    """The class or function a description's target names."""
    namespace, _, attr = name.rpartition(".")
    if namespace == "nnx":
        return getattr(nnx, attr)
    if namespace == "jax.nn":
        return getattr(jax.nn, attr)
    if namespace == "jnp":
        return getattr(jnp, attr)
    return getattr(helpers, name)


def submodule(root: nnx.Module, path: str) -> nnx.Module:
    """The module at a dotted layer path."""
    module = root
    for part in path.split("."):
        module = getattr(module, part)
    return module


def _place(root: nnx.Module, path: str, module: nnx.Module) -> None:
    parent = root
    *containers, name = path.split(".")
    for part in containers:
        child = getattr(parent, part, None)
        if child is None:
            child = nnx.Dict()
            setattr(parent, part, child)
        parent = child
    setattr(parent, name, module)


# one layer of forward: (path of its module or None, function or None, static arguments
# (Refs resolved at call time), keyword arguments, indices of its operands, its index)
Step = tuple[str | None, Callable[..., Any] | None, tuple[Any, ...], tuple[tuple[str, Any], ...],
             tuple[int, ...], int]


class GraphModel(nnx.Module):
    """A graph run as an NNX module: the layers with state hang at their paths, and
    ``__call__`` runs the layers in graph order from a plan made at build time.

    Inputs and output are batch first in archlang's layout: images (B, C, H, W), as the torch
    backend takes them. The plan is static data (paths, functions, ints), so ``nnx.jit`` and
    ``nnx.split`` see the layer modules as the only state.
    """

    def __init__(self, graph: Graph, steps: tuple[Step, ...]) -> None:
        self.graph_name = graph.name
        self.steps = steps
        self.input_slots = graph.inputs
        self.image_inputs = tuple(len(lay.shape) == 3 for lay in graph.input_layers())
        self.output = graph.output
        self.image_output = len(graph.output_shape) == 3
        self.size = len(graph.layers)

    def __call__(self, *inputs: jax.Array) -> jax.Array:
        if len(inputs) != len(self.input_slots):
            raise TypeError(f"{self.graph_name} takes {len(self.input_slots)} input(s), "
                            f"got {len(inputs)}")
        values: list[Any] = [None] * self.size
        for slot, x, image in zip(self.input_slots, inputs, self.image_inputs, strict=True):
            values[slot] = jnp.transpose(x, (0, 2, 3, 1)) if image else x  # NCHW -> NHWC
        for path, fn, args, kwargs, operands, out in self.steps:
            if path is not None:
                values[out] = submodule(self, path)(*(values[i] for i in operands))
            else:
                extra = (submodule(self, a.path) if isinstance(a, Ref) else a for a in args)
                values[out] = fn(*(values[i] for i in operands), *extra, **dict(kwargs))
        out = values[self.output]
        return jnp.transpose(out, (0, 3, 1, 2)) if self.image_output else out  # NHWC -> NCHW


def build(graph: Graph, *, seed: int = 0, rngs: nnx.Rngs | None = None) -> GraphModel:
    """The NNX module of a graph: ``model(*inputs)`` in ``graph.inputs`` order, each with a
    leading batch dimension, returns the value of ``graph.output``.

    Parameters are drawn from ``rngs`` (default ``nnx.Rngs(seed)``) in graph order, and each
    dropout layer forks its own key stream from it, so a seed fixes weights and masks alike.
    The module starts in training mode, as a torch module does; call ``.eval()`` for inference.

    Drawing random weights is slow for big models on a CPU (jax compiles each initializer for
    each new shape); ``transfer.from_torch`` builds one holding given weights without drawing
    any.
    """
    described = describe(graph)
    return _construct(graph, described, rngs if rngs is not None else nnx.Rngs(seed))


def _construct(graph: Graph, described: dict[str, Description], rngs: nnx.Rngs) -> GraphModel:
    steps: list[Step] = []
    modules: dict[str, nnx.Module] = {}
    for layer in graph.layers:
        if layer.op == "input":
            continue
        d = described[layer.path]
        if isinstance(d, Module):
            modules[layer.path] = instantiate(d, rngs)
            steps.append((layer.path, None, (), (), layer.inputs, layer.index))
        else:
            fn = resolve(d.target)
            steps.append((None, fn, d.args, d.kwargs, layer.inputs, layer.index))
    root = GraphModel(graph, tuple(steps))
    for path, module in modules.items():
        _place(root, path, module)
    return root


def instantiate(d: Module, rngs: nnx.Rngs) -> nnx.Module:
    return resolve(d.target)(*d.args, **dict(d.kwargs), rngs=rngs)

