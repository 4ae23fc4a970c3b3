"""Graph -> standalone Flax NNX source text.

The emitted file imports only jax and flax (and math where a helper needs it). It holds the
helpers the model uses (pasted from :mod:`archlang.backends.flax.layers`) and one
``nnx.Module`` whose ``__init__`` creates the same modules, at the same paths and in the same
order, as :func:`archlang.backends.flax.build.build` (both render the same descriptions, so
one ``nnx.Rngs`` seed gives both the same weights), and whose ``__call__`` is straight-line
code, one line per layer.

Values that flow straight into the next layer and nowhere else reuse the name ``x``; a value
read later, or by several layers, keeps its own name ``x<index>``. The text depends only on
the graph, so it is byte-identical run to run.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
from typing import Any

from archlang.backends.pysource import Verbatim, assign, is_attribute_name
from archlang.backends.pysource import access as _access
from archlang.backends.pysource import render_call as _render
from archlang.ir.graph import Graph, Layer
from archlang.ir.ops import fmt

from . import layers as helpers
from .build import Description, Function, Module, describe

_HELPER_NAMES = tuple(h.__name__ for h in helpers.HELPERS)
# module-level names of the emitted file that a class or variable name must not shadow
_TAKEN = frozenset({"jax", "jnp", "nnx", "math", "self", "x", "rngs", *_HELPER_NAMES})


def emit(graph: Graph) -> str:
    described = describe(graph)
    names, params = _value_names(graph)
    owners = [(path, d) for path, d in described.items() if isinstance(d, Module)]
    cls = class_name(graph.name)
    model = "\n".join([
        f"class {cls}(nnx.Module):",
        f'    """{_summary(graph, params)}"""',
        "",
        "    def __init__(self, rngs: nnx.Rngs) -> None:",
        *(f"        {line}" for line in _init_lines(owners) or ["pass  # no weights"]),
        "",
        f"    def __call__({_signature(graph, params)}) -> jax.Array:",
        *(f"        {line}" for line in _call_lines(graph, described, names, params)),
    ])
    sources = [_source(h) for h in _helpers_used(described.values())]
    body = "\n\n".join(s.rstrip("\n") + "\n" for s in [*sources, model])
    return _header(graph, body) + "\n\n\n" + body


def class_name(name: str) -> str:
    """A CamelCase identifier for a graph name: ``digits_net`` -> ``DigitsNet``."""
    parts = re.split(r"[^0-9A-Za-z]+", name)
    out = "".join(p[0].upper() + p[1:] for p in parts if p) or "Model"
    if out[0].isdigit():
        out = "Model" + out
    return out + "Model" if out in _TAKEN else out


# ---------------------------------------------------------------- naming values


def _value_names(graph: Graph) -> tuple[dict[int, str], dict[int, str]]:
    """The variable holding each layer's value in ``__call__``, and each input's parameter."""
    consumers: dict[int, set[int]] = {layer.index: set() for layer in graph.layers}
    for layer in graph.layers:
        for i in layer.inputs:
            consumers[i].add(layer.index)

    def chained(layer: Layer) -> bool:
        # read only by the very next layer (or the output, read by nobody): it can live in `x`
        readers, is_output = consumers[layer.index], layer.index == graph.output
        return readers == ({layer.index + 1} if not is_output else set())

    names = {layer.index: ("x" if chained(layer) else f"x{layer.index}")
             for layer in graph.layers if layer.op != "input"}
    inputs = graph.input_layers()
    params: dict[int, str] = {}
    for layer in inputs:
        name = layer.path.replace(".", "_")
        usable = (is_attribute_name(name) and name not in _TAKEN
                  and not re.fullmatch(r"x\d*", name) and name not in params.values())
        params[layer.index] = name if usable else f"x{layer.index}"
        # an image is transposed into a new value; that value may live in `x`
        image = len(layer.shape) == 3
        alone = len(inputs) == 1 and chained(layer)
        names[layer.index] = "x" if image and alone else params[layer.index]
    return names, params


def _signature(graph: Graph, params: dict[int, str]) -> str:
    return ", ".join(["self", *(f"{params[i]}: jax.Array" for i in graph.inputs)])


def _summary(graph: Graph, params: dict[int, str]) -> str:
    ins = ", ".join(
        f"{params[layer.index]} {fmt(layer.shape)}"
        + (" (token ids)" if layer.attrs.get("dtype") == "int" else "")
        for layer in graph.input_layers())
    return (f"{graph.name}: {ins} -> {fmt(graph.output_shape)}, batch first; images are NCHW "
            "outside and NHWC inside.")


# ---------------------------------------------------------------- the two methods


def _init_lines(owners: list[tuple[str, Description]]) -> list[str]:
    lines: list[str] = []
    made: set[str] = set()
    for path, d in owners:
        parts = path.split(".")
        for depth in range(1, len(parts)):
            container = ".".join(parts[:depth])
            if container not in made:
                made.add(container)
                lines.append(_assign(container, "nnx.Dict()"))
        lines.append(_assign(path, _render(d.target, d.args, (*d.kwargs, ("rngs", Verbatim("rngs"))))))
    return lines


def _call_lines(graph: Graph, described: dict[str, Description], names: dict[int, str],
                params: dict[int, str]) -> list[str]:
    lines = []
    for layer in graph.input_layers():
        if len(layer.shape) == 3:
            lines.append(f"{names[layer.index]} = jnp.transpose({params[layer.index]}, "
                         "(0, 2, 3, 1))  # NCHW -> NHWC")
    for layer in graph.layers:
        if layer.op == "input":
            continue
        d = described[layer.path]
        operands = [Verbatim(names[i]) for i in layer.inputs]
        if isinstance(d, Module):
            call = _render(_access(layer.path), tuple(operands), ())
        else:
            call = _render(d.target, (*operands, *d.args), d.kwargs)
        lines.append(f"{names[layer.index]} = {call}  # {fmt(_inside(layer.shape))}")
    out = names[graph.output]
    if len(graph.output_shape) == 3:
        lines.append(f"return jnp.transpose({out}, (0, 3, 1, 2))  # NHWC -> NCHW")
    else:
        lines.append(f"return {out}")
    return lines


def _inside(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape as the model holds it: images (H, W, C)."""
    return (*shape[1:], shape[0]) if len(shape) == 3 else shape


# ---------------------------------------------------------------- rendering


def _assign(path: str, value: str) -> str:
    return assign(path, value, "setattr")


def _helpers_used(descriptions: Any) -> list[Any]:
    used = {d.target for d in descriptions if isinstance(d, (Module, Function))}
    return [h for h in helpers.HELPERS if h.__name__ in used]


@functools.cache
def _source(helper: Any) -> str:
    return inspect.getsource(helper)


def _uses_name(source: str, name: str) -> bool:
    """Whether code (not a docstring or comment) in `source` reads the global `name`."""
    return any(isinstance(node, ast.Name) and node.id == name
               for node in ast.walk(ast.parse(source)))


def _header(graph: Graph, body: str) -> str:
    imports = ["import math", ""] if _uses_name(body, "math") else []
    imports += ["import jax", "import jax.numpy as jnp", "from flax import nnx"]
    doc = (f'"""{graph.name}: a standalone Flax NNX model generated by archlang.\n\n'
           "Inputs and output are batch first in PyTorch's layout (images NCHW); inside, images\n"
           f"are NHWC. Build it with `model = {class_name(graph.name)}(nnx.Rngs(0))`, and call\n"
           "`model.eval()` before inference.\n"
           "Regenerate it from the spec rather than editing it by hand.\n"
           '"""')
    return doc + "\n\n" + "\n".join(imports)
