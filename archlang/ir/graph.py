"""The fixed IR: one architecture, every value chosen, every shape known.

A :class:`Graph` is a topologically ordered tuple of :class:`Layer` values. Structural
constructs of the language (blocks, residuals, repeats, branches) are gone by now: a residual is
an ``add`` layer (plus a projection where shapes differed), a block is a path prefix. This is
all a backend ever sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from archlang.errors import Span
from archlang.ir.ops import OPS, Shape


@dataclass(frozen=True, slots=True)
class Layer:
    index: int
    path: str  # dotted module path, e.g. "layer1.0.conv1"; unique within a graph
    op: str  # a key of archlang.ir.ops.OPS, or "input"
    attrs: dict[str, Any] = field(hash=False)  # complete: every parameter explicit
    inputs: tuple[int, ...]  # indices of the layers feeding this one
    shape: Shape  # output shape without the batch dimension
    params: int = 0
    macs: int = 0
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Graph:
    name: str
    layers: tuple[Layer, ...]
    inputs: tuple[int, ...]  # indices of the input layers, in declaration order
    output: int  # index of the layer whose value is the model's output

    def input_layers(self) -> tuple[Layer, ...]:
        return tuple(self.layers[i] for i in self.inputs)

    @property
    def output_shape(self) -> Shape:
        return self.layers[self.output].shape

    def layer(self, path: str) -> Layer:
        return next(layer for layer in self.layers if layer.path == path)


class GraphBuilder:
    """Appends layers one at a time, running each op's shape and cost rules as it goes.

    Raises :class:`ShapeError` (without a position; the caller knows the span) when an op
    rejects its inputs.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.layers: list[Layer] = []
        self.inputs: list[int] = []

    def input(self, path: str, shape: Shape, dtype: str = "float", span: Span | None = None) -> int:
        index = len(self.layers)
        self.layers.append(Layer(index, path, "input", {"dtype": dtype}, (), shape, span=span))
        self.inputs.append(index)
        return index

    def add(self, op: str, attrs: dict[str, Any], inputs: tuple[int, ...], path: str,
            span: Span | None = None) -> int:
        spec = OPS[op]
        in_shapes = tuple(self.layers[i].shape for i in inputs)
        full, shape = spec.infer(attrs, in_shapes)
        index = len(self.layers)
        self.layers.append(Layer(
            index, path, op, full, inputs, shape,
            params=spec.count_params(full, in_shapes, shape),
            macs=spec.count_macs(full, in_shapes, shape),
            span=span,
        ))
        return index

    def shape(self, index: int) -> Shape:
        return self.layers[index].shape

    def finish(self, output: int) -> Graph:
        """Drop layers the output does not depend on and renumber the rest densely."""
        needed = {output, *self.inputs}
        for layer in reversed(self.layers):
            if layer.index in needed:
                needed.update(layer.inputs)
        if len(needed) == len(self.layers):  # the usual case: nothing is dead, keep indices
            return Graph(self.name, tuple(self.layers), tuple(self.inputs), output)
        renumber: dict[int, int] = {}
        kept: list[Layer] = []
        for layer in self.layers:
            if layer.index in needed:
                renumber[layer.index] = len(kept)
                kept.append(replace(layer, index=len(kept),
                                    inputs=tuple(renumber[i] for i in layer.inputs)))
        return Graph(self.name, tuple(kept), tuple(renumber[i] for i in self.inputs),
                     renumber[output])
