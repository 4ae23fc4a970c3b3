"""Graph -> standalone PyTorch source text.

The emitted file imports only torch. It holds the helper classes the model uses (pasted from
:mod:`archlang.backends.torch.layers`) and one ``nn.Module`` whose ``__init__`` creates the same
modules at the same paths as :func:`archlang.backends.torch.build.build` (both render the same
:class:`Call` descriptions) and whose ``forward`` is straight-line code, one line per layer.

Values that flow straight into the next layer and nowhere else reuse the name ``x``, so a plain
chain reads ``x = self.conv1(x)``; a value read later, or by several layers, keeps its own
name ``x<index>``. The text depends only on the graph, so it is byte-identical run to run.
"""

from __future__ import annotations

import ast
import inspect
import re
from typing import Any

from archlang.backends.pysource import access as _access
from archlang.backends.pysource import assign, is_attribute_name, render_call
from archlang.ir.graph import Graph, Layer
from archlang.ir.ops import fmt

from . import layers as helpers
from .build import Call, Sym, describe

_HELPER_NAMES = tuple(cls.__name__ for cls in helpers.HELPERS)
# module-level names of the emitted file that a class or argument name must not shadow
_TAKEN = frozenset({"torch", "nn", "F", "self", "x", *_HELPER_NAMES})


def emit(graph: Graph) -> str:
    calls = describe(graph)
    by_path = {layer.path: layer for layer in graph.layers}
    ordered = [by_path[path] for path in calls]
    names = _value_names(graph)
    cls = class_name(graph.name)
    model = "\n".join([
        f"class {cls}(nn.Module):",
        f'    """{_summary(graph, names)}"""',
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        *(f"        {line}" for line in _init_lines(ordered, calls)),
        "",
        f"    def forward({_signature(graph, names)}) -> torch.Tensor:",
        *(f"        {line}" for line in _forward_lines(graph, names)),
        f"        return {names[graph.output]}",
    ])
    sources = [inspect.getsource(c) for c in _helpers_used(calls.values())]
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


def _value_names(graph: Graph) -> dict[int, str]:
    """The variable that holds each layer's value in forward."""
    consumers: dict[int, set[int]] = {layer.index: set() for layer in graph.layers}
    for layer in graph.layers:
        for i in layer.inputs:
            consumers[i].add(layer.index)

    def chained(layer: Layer) -> bool:
        # read only by the very next layer, or the output and read by nobody: it can live in
        # `x`, because whatever `x` held before is dead by the time it is overwritten
        readers, is_output = consumers[layer.index], layer.index == graph.output
        return readers == ({layer.index + 1} if not is_output else set())

    names = {layer.index: ("x" if chained(layer) else f"x{layer.index}")
             for layer in graph.layers if layer.op != "input"}
    inputs = graph.input_layers()
    for layer in inputs:
        names[layer.index] = _input_name(layer, len(inputs) == 1 and chained(layer))
    seen: set[str] = set()
    for layer in inputs:  # two inputs may sanitise to one name
        if names[layer.index] in seen:
            names[layer.index] = f"x{layer.index}"
        seen.add(names[layer.index])
    return names


def _input_name(layer: Layer, chained: bool) -> str:
    if chained:
        return "x"
    name = layer.path.replace(".", "_")
    usable = (is_attribute_name(name) and name not in _TAKEN
              and not re.fullmatch(r"x\d+", name))
    return name if usable else f"x{layer.index}"


def _signature(graph: Graph, names: dict[int, str]) -> str:
    return ", ".join(["self", *(f"{names[i]}: torch.Tensor" for i in graph.inputs)])


def _summary(graph: Graph, names: dict[int, str]) -> str:
    ins = ", ".join(
        f"{names[layer.index]} {fmt(layer.shape)}"
        + (" (token ids)" if layer.attrs.get("dtype") == "int" else "")
        for layer in graph.input_layers())
    return f"{_doc(graph.name)}: {ins} -> {fmt(graph.output_shape)}, batch first."


# ---------------------------------------------------------------- the two methods


def _init_lines(ordered: list[Layer], calls: dict[str, Call]) -> list[str]:
    lines: list[str] = []
    made: set[str] = set()
    for layer in ordered:
        parts = layer.path.split(".")
        for depth in range(1, len(parts)):
            container = ".".join(parts[:depth])
            if container not in made:
                made.add(container)
                lines.append(_assign(container, "nn.ModuleDict()"))
        lines.append(_assign(layer.path, _render(calls[layer.path])))
    return lines


def _forward_lines(graph: Graph, names: dict[int, str]) -> list[str]:
    lines = []
    for layer in graph.layers:
        if layer.op == "input":
            continue
        args = ", ".join(names[i] for i in layer.inputs)
        lines.append(f"{names[layer.index]} = {_access(layer.path)}({args})  "
                     f"# {fmt(layer.shape)}")
    return lines


# ---------------------------------------------------------------- rendering


def _render(call: Call) -> str:
    return render_call(call.target, call.args, call.kwargs)


def _assign(path: str, value: str) -> str:
    return assign(path, value, "self.add_module")


def _doc(text: str) -> str:
    """`text` made safe inside a triple-quoted docstring."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _helpers_used(calls: Any) -> list[type]:
    used: set[str] = set()
    for call in calls:
        used.add(call.target)
        used.update(v.name for v in (*call.args, *(v for _, v in call.kwargs))
                    if isinstance(v, Sym))
    return [cls for cls in helpers.HELPERS if cls.__name__ in used]


def _uses_name(source: str, name: str) -> bool:
    """Whether code (not a docstring or comment) in `source` reads the global `name`."""
    return any(isinstance(node, ast.Name) and node.id == name
               for node in ast.walk(ast.parse(source)))


def _header(graph: Graph, body: str) -> str:
    imports = ["import torch"]
    if _uses_name(body, "F"):
        imports.append("import torch.nn.functional as F")
    imports.append("from torch import nn")
    doc = (f'"""{_doc(graph.name)}: a standalone PyTorch model generated by archlang.\n\n'
           "Regenerate it from the spec rather than editing it by hand.\n"
           '"""')
    return doc + "\n\n" + "\n".join(imports)
