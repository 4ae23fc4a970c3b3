"""Graph -> torch.nn.Module, in memory.

Each op has one builder that describes the module for a layer as a :class:`Call` (a class name
and its arguments) instead of constructing it. :func:`build` instantiates the calls; the emitter
renders the very same calls as source text, so the two can never disagree on names or shapes.

Modules are registered by ``layer.path``: ``layer1.0.conv1`` becomes the child ``conv1`` of the
``nn.ModuleDict`` ``0`` of the ``nn.ModuleDict`` ``layer1`` of the root, which makes its
state_dict keys ``layer1.0.conv1.weight`` and so on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from archlang.backends.pysource import ModuleRef, Verbatim
from archlang.errors import ArchError
from archlang.ir.graph import Graph, Layer
from archlang.ir.ops import Shape, concat_dim

from . import layers as helpers

# ---------------------------------------------------------------- module descriptions


class Sym(Verbatim):
    """A class named in the generated code, passed as an argument (``nn.ReLU``)."""

    @property
    def name(self) -> str:
        return str(self)


Ref = ModuleRef  # the module of another layer (the embedding a head is tied to)


@dataclass(frozen=True, slots=True)
class Call:
    """``target(*args, **kwargs)``: ``nn.X`` for torch.nn classes, a bare name for helpers."""

    target: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


def _kw(**pairs: tuple[Any, Any]) -> tuple[tuple[str, Any], ...]:
    """Keyword arguments given as ``name=(value, torch_default)``; defaults are left out so that
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

    def can_overwrite(self, layer: Layer, operand: int = 0) -> bool:
        """Whether `layer` may write its result into the tensor of one of its inputs.

        Only when this layer is that value's one reader, the value is not the caller's input,
        and its producer's backward does not need it (conv, linear and bn save their inputs, an
        add saves nothing): the cases where a hand-written ResNet uses ReLU(inplace=True) and
        `out += identity`; not allocating those tensors keeps a built ResNet as fast as one.
        """
        source = self.graph.layers[layer.inputs[operand]]
        return (self.readers[source.index] == (layer.index,)
                and source.op in _OVERWRITABLE and source.index != self.graph.output)


# producers whose output autograd does not save for their backward, so it may be overwritten
_OVERWRITABLE = frozenset({"conv", "dwconv", "linear", "bn", "add"})


def _channels(shape: Shape) -> int:
    """The per-channel size: C of an image (C, H, W), the last dim of tokens or a vector."""
    return shape[0] if len(shape) == 3 else shape[-1]


# ---------------------------------------------------------------- one builder per op

Builder = Callable[[Layer, Context], Call]


def _conv(layer: Layer, ctx: Context) -> Call:
    a = layer.attrs
    return Call(
        "nn.Conv2d",
        (ctx.in_shape(layer)[0], a["out"], a["kernel"]),
        _kw(stride=(a["stride"], 1), padding=(a["padding"], 0), dilation=(a["dilation"], 1),
            groups=(a["groups"], 1), bias=(a["bias"], True)),
    )


def _dwconv(layer: Layer, ctx: Context) -> Call:
    return _conv(layer, ctx)  # the shape rule has already set out and groups


def _linear(layer: Layer, ctx: Context) -> Call:
    a = layer.attrs
    return Call("nn.Linear", (ctx.in_shape(layer)[-1], a["out"]), _kw(bias=(a["bias"], True)))


def _bn(layer: Layer, ctx: Context) -> Call:
    shape, a = ctx.in_shape(layer), layer.attrs
    target = "nn.BatchNorm2d" if len(shape) == 3 else "nn.BatchNorm1d"
    return Call(target, (shape[0],), _kw(eps=(a["eps"], 1e-5), momentum=(a["momentum"], 0.1)))


def _ln(layer: Layer, ctx: Context) -> Call:
    return Call("nn.LayerNorm", (ctx.in_shape(layer)[-1],),
                _kw(eps=(layer.attrs["eps"], 1e-5)))


def _ln2d(layer: Layer, ctx: Context) -> Call:
    return Call("LayerNorm2d", (ctx.in_shape(layer)[0],),
                _kw(eps=(layer.attrs["eps"], 1e-5)))


def _gn(layer: Layer, ctx: Context) -> Call:
    a = layer.attrs
    return Call("nn.GroupNorm", (a["groups"], ctx.in_shape(layer)[0]),
                _kw(eps=(a["eps"], 1e-5)))


def _stateless(target: str) -> Builder:
    """The builder of an op whose module takes no arguments."""

    def builder(layer: Layer, ctx: Context) -> Call:
        return Call(target)

    builder.__name__ = f"_build_{target.rsplit('.', 1)[-1]}"
    return builder


def _relu(layer: Layer, ctx: Context) -> Call:
    return Call("nn.ReLU", (), _kw(inplace=(ctx.can_overwrite(layer), False)))


def _gelu(layer: Layer, ctx: Context) -> Call:
    return Call("nn.GELU", (), _kw(approximate=(layer.attrs["approximate"], "none")))


def _pool(target: str) -> Builder:
    def builder(layer: Layer, ctx: Context) -> Call:
        a = layer.attrs
        # torch's stride defaults to the kernel, as archlang's does
        return Call(target, (a["kernel"],),
                    _kw(stride=(a["stride"], a["kernel"]), padding=(a["padding"], 0)))

    builder.__name__ = f"_build_{target.rsplit('.', 1)[-1]}"
    return builder


def _adaptive_avgpool(layer: Layer, ctx: Context) -> Call:
    return Call("nn.AdaptiveAvgPool2d", (layer.attrs["size"],))


def _dropout(layer: Layer, ctx: Context) -> Call:
    return Call("nn.Dropout", (layer.attrs["p"],))


_SE_ACTIVATIONS = {"relu": "nn.ReLU", "silu": "nn.SiLU"}
_SE_GATES = {"sigmoid": "nn.Sigmoid", "hardsigmoid": "nn.Hardsigmoid"}


def _se(layer: Layer, ctx: Context) -> Call:
    a = layer.attrs
    act, gate = Sym(_SE_ACTIVATIONS[a["act"]]), Sym(_SE_GATES[a["gate"]])
    return Call("SqueezeExcite", (ctx.in_shape(layer)[0], a["reduced"]),
                _kw(act=(act, Sym("nn.ReLU")), gate=(gate, Sym("nn.Sigmoid"))))


def _add(layer: Layer, ctx: Context) -> Call:
    # accumulate into the first operand that may be overwritten (the sum commutes)
    into = next((k for k in range(len(layer.inputs)) if ctx.can_overwrite(layer, k)), None)
    return Call("Add", (), _kw(into=(into, None)))


def _concat(layer: Layer, ctx: Context) -> Call:
    # concat_dim excludes the batch dimension; torch counts it
    return Call("Concat", (concat_dim(ctx.in_shape(layer), layer.attrs["axis"]) + 1,))


def _patch_embed(layer: Layer, ctx: Context) -> Call:
    a = layer.attrs
    return Call("PatchEmbed", (ctx.in_shape(layer)[0], a["dim"], a["patch"]),
                _kw(bias=(a["bias"], True)))


def _class_token(layer: Layer, ctx: Context) -> Call:
    return Call("ClassToken", (ctx.in_shape(layer)[1],))


def _pos_embed(layer: Layer, ctx: Context) -> Call:
    return Call("PosEmbed", ctx.in_shape(layer))


def _attention(layer: Layer, ctx: Context) -> Call:
    a = layer.attrs
    return Call("SelfAttention", (ctx.in_shape(layer)[1], a["heads"]),
                _kw(qkv_bias=(a["qkv_bias"], True), proj_bias=(a["proj_bias"], True),
                    causal=(a["causal"], False)))


def _embedding(layer: Layer, ctx: Context) -> Call:
    return Call("nn.Embedding", (layer.attrs["vocab"], layer.attrs["dim"]))


def _unembed(layer: Layer, ctx: Context) -> Call:
    a, dim = layer.attrs, ctx.in_shape(layer)[-1]
    if not a["tie"]:
        return Call("nn.Linear", (dim, a["vocab"]), _kw(bias=(False, True)))
    owner = _tied_embedding(layer, ctx.graph, dim)
    return Call("TiedLinear", (Ref(owner.path),))


def _tied_embedding(layer: Layer, graph: Graph, dim: int) -> Layer:
    """The embedding layer an unembed shares its weight with, checked to fit."""
    tie, vocab = layer.attrs["tie"], layer.attrs["vocab"]
    owner = next((other for other in graph.layers if other.path == tie), None)
    if owner is None or owner.op != "embedding":
        found = "no layer" if owner is None else f"a '{owner.op}' layer"
        raise ArchError(f"unembed is tied to '{tie}', but that is {found}, not an embedding",
                        layer.span)
    if (owner.attrs["vocab"], owner.attrs["dim"]) != (vocab, dim):
        raise ArchError(
            f"unembed ({dim} -> {vocab}) cannot share the weight of embedding '{tie}' "
            f"({owner.attrs['vocab']} x {owner.attrs['dim']})", layer.span)
    return owner


def _layer_scale(layer: Layer, ctx: Context) -> Call:
    shape = ctx.in_shape(layer)
    return Call("LayerScale", (_channels(shape),),
                _kw(init=(layer.attrs["init"], 1e-5), channels_first=(len(shape) == 3, False)))


def _to_image(layer: Layer, ctx: Context) -> Call:
    return Call("ToImage", (layer.attrs["height"], layer.attrs["width"]))


def _select_token(layer: Layer, ctx: Context) -> Call:
    return Call("SelectToken", (layer.attrs["index"],))


BUILDERS: dict[str, Builder] = {
    "conv": _conv,
    "dwconv": _dwconv,
    "linear": _linear,
    "bn": _bn,
    "ln": _ln,
    "ln2d": _ln2d,
    "gn": _gn,
    "relu": _relu,
    "relu6": _stateless("nn.ReLU6"),
    "gelu": _gelu,
    "silu": _stateless("nn.SiLU"),
    "hardswish": _stateless("nn.Hardswish"),
    "hardsigmoid": _stateless("nn.Hardsigmoid"),
    "sigmoid": _stateless("nn.Sigmoid"),
    "tanh": _stateless("nn.Tanh"),
    "identity": _stateless("nn.Identity"),
    "maxpool": _pool("nn.MaxPool2d"),
    "avgpool": _pool("nn.AvgPool2d"),
    "gap": _stateless("GlobalAvgPool"),
    "adaptive_avgpool": _adaptive_avgpool,
    "flatten": _stateless("nn.Flatten"),
    "dropout": _dropout,
    "se": _se,
    "add": _add,
    "multiply": _stateless("Multiply"),
    "concat": _concat,
    "patch_embed": _patch_embed,
    "class_token": _class_token,
    "pos_embed": _pos_embed,
    "attention": _attention,
    "embedding": _embedding,
    "unembed": _unembed,
    "layer_scale": _layer_scale,
    "to_tokens": _stateless("ToTokens"),
    "to_image": _to_image,
    "select_token": _select_token,
    "token_mean": _stateless("TokenMean"),
}


def describe(graph: Graph) -> dict[str, Call]:
    """The module call of every layer that owns a module, by path, in registration order."""
    ctx = Context(graph)
    return {layer.path: _describe(layer, ctx) for layer in module_layers(graph)}


def _describe(layer: Layer, ctx: Context) -> Call:
    builder = BUILDERS.get(layer.op)
    if builder is None:
        raise ArchError(f"the torch backend does not support op '{layer.op}'", layer.span)
    return builder(layer, ctx)


# ---------------------------------------------------------------- where modules live


# one layer of forward: (module, indices of its input values, index of its value, indices of
# the values nobody reads after it)
Step = tuple[nn.Module, tuple[int, ...], int, tuple[int, ...]]


class GraphModule(nn.Module):
    """A graph run as a torch module: its layers' modules hang at their paths, and forward
    runs them in graph order from a plan made once, at build time.

    The plan holds the layer modules themselves, so a child replaced after building (model
    surgery) is not seen by forward until :meth:`relink` is called.
    """

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self._graph = graph
        self._size = len(graph.layers)
        self._input_slots = graph.inputs
        self._output = graph.output
        self._steps: list[Step] = []

    def relink(self) -> None:
        """Rebuild the plan from the modules now registered at the layers' paths."""
        self._steps = _plan(self._graph, self)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) != len(self._input_slots):
            raise TypeError(f"{self._graph.name} takes {len(self._input_slots)} input(s) "
                            f"({', '.join(lay.path for lay in self._graph.input_layers())}), "
                            f"got {len(inputs)}")
        values: list[Any] = [None] * self._size
        for slot, x in zip(self._input_slots, inputs, strict=True):
            values[slot] = x
        for module, args, out, dead in self._steps:
            if len(args) == 1:  # most layers; skips building an argument list
                values[out] = module(values[args[0]])
            else:
                values[out] = module(*[values[i] for i in args])
            for i in dead:  # drop what no later layer reads, as a hand-written forward would
                values[i] = None
        return values[self._output]

    def extra_repr(self) -> str:
        return f"name={self._graph.name!r}"


# names a child cannot take: nn.Module.add_module refuses existing attributes
ROOT_RESERVED = frozenset(dir(nn.Module())) | frozenset(dir(GraphModule)) | frozenset(
    {"_graph", "_size", "_input_slots", "_output", "_steps"})
CONTAINER_RESERVED = frozenset(dir(nn.ModuleDict()))


def module_layers(graph: Graph) -> list[Layer]:
    """The layers that own a module, in the order they are registered, after checking that their
    paths can name nested modules.

    Tied heads come last: they refer to their embedding, which must exist by then.
    """
    own = [layer for layer in graph.layers if layer.op != "input"]
    ordered = [lay for lay in own if not _is_tied(lay)] + [lay for lay in own if _is_tied(lay)]
    _check_paths(ordered)
    return ordered


def _is_tied(layer: Layer) -> bool:
    return layer.op == "unembed" and bool(layer.attrs.get("tie"))


def _check_paths(ordered: list[Layer]) -> None:
    leaves = {layer.path: layer for layer in ordered}
    if len(leaves) != len(ordered):
        dup = next(lay for lay in ordered if sum(o.path == lay.path for o in ordered) > 1)
        raise ArchError(f"two layers have the path '{dup.path}'", dup.span)
    for layer in ordered:
        parts = layer.path.split(".")
        if not all(parts):
            raise ArchError(f"layer path '{layer.path}' has an empty part", layer.span)
        for depth, part in enumerate(parts):
            reserved = ROOT_RESERVED if depth == 0 else CONTAINER_RESERVED
            if part in reserved:
                raise ArchError(
                    f"layer path '{layer.path}': '{part}' is an attribute of torch.nn.Module "
                    "and cannot name a submodule; rename the layer", layer.span)
            prefix = ".".join(parts[: depth + 1])
            if depth < len(parts) - 1 and prefix in leaves:
                raise ArchError(
                    f"layer path '{prefix}' names a layer and also contains '{layer.path}'; "
                    "the torch backend nests modules by path", leaves[prefix].span)


# ---------------------------------------------------------------- building


def resolve(name: str) -> Any:
    """The class a Call target or Sym names."""
    if name.startswith("nn."):
        return getattr(nn, name[3:])
    return getattr(helpers, name)


def instantiate(call: Call, modules: dict[str, nn.Module]) -> nn.Module:
    def value(v: Any) -> Any:
        if isinstance(v, Sym):
            return resolve(v.name)
        if isinstance(v, Ref):
            return modules[v.path]
        return v

    cls = resolve(call.target)
    return cls(*(value(v) for v in call.args), **{k: value(v) for k, v in call.kwargs})


def _register(root: nn.Module, path: str, module: nn.Module) -> None:
    parent = root
    *containers, name = path.split(".")
    for part in containers:
        child = parent._modules.get(part)
        if child is None:
            child = nn.ModuleDict()
            parent.add_module(part, child)
        parent = child
    parent.add_module(name, module)


def _plan(graph: Graph, root: nn.Module) -> list[Step]:
    last_use: dict[int, int] = {}
    for layer in graph.layers:
        for i in layer.inputs:
            last_use[i] = layer.index
    steps = []
    for layer in graph.layers:
        if layer.op == "input":
            continue
        dead = tuple(sorted({i for i in layer.inputs
                             if last_use[i] == layer.index and i != graph.output}))
        steps.append((root.get_submodule(layer.path), layer.inputs, layer.index, dead))
    return steps


def build(graph: Graph) -> GraphModule:
    """The torch module of a graph: ``module(*inputs)`` in ``graph.inputs`` order, each with a
    leading batch dimension, returns the value of ``graph.output``."""
    calls = describe(graph)
    root = GraphModule(graph)
    modules: dict[str, nn.Module] = {}
    for path, call in calls.items():
        modules[path] = instantiate(call, modules)
        _register(root, path, modules[path])
    root.relink()
    return root
