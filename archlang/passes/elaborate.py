"""Space IR + assignment -> fixed Graph: evaluate every value, infer every shape.

This is where shape errors are found: each op's rule in `archlang.ir.ops` either accepts its
input shapes or raises, and the error is reported at the op's position in the spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archlang.errors import ArchError
from archlang.ir import expr as E
from archlang.ir import space as S
from archlang.ir.graph import Graph, GraphBuilder
from archlang.ir.ops import OPS, ShapeError, fmt
from archlang.lang.lower import check_value


class _Run:
    def __init__(self, space: S.Space, values: Mapping[str, Any]) -> None:
        self.values = dict(values)  # captured shape-dependent values are added as we go
        self.builder = GraphBuilder(space.name)
        self.current: int | None = None
        self.bindings: dict[str, int] = {}
        self.embeddings: dict[str, str] = {}  # label -> path, for tied output heads

    # ------------------------------------------------------------ helpers
    def shape_of(self, what: str) -> int:
        if self.current is None:
            raise ArchError(f"'{what}' is used before any tensor exists")
        shape = self.builder.shape(self.current)
        if what == "in_channels":
            return shape[0] if len(shape) != 2 else shape[1]
        if what in ("in_height", "in_width"):
            if len(shape) != 3:
                raise ArchError(f"'{what}' needs an image, the current tensor is {fmt(shape)}")
            return shape[1] if what == "in_height" else shape[2]
        if len(shape) != 2:
            raise ArchError(f"'{what}' needs tokens, the current tensor is {fmt(shape)}")
        return shape[0]

    def eval(self, expr: E.Expr) -> Any:
        try:
            return E.evaluate(expr, self.values, self.shape_of)
        except ArchError as exc:
            if exc.span is None:
                raise ArchError(exc.message, getattr(expr, "span", None), exc.notes) from None
            raise

    def need_current(self, node) -> int:
        if self.current is None:
            raise ArchError("no tensor to apply this to; declare an `input` first", node.span)
        return self.current

    def add(self, op: str, attrs: dict[str, Any], inputs: tuple[int, ...], path: str,
            span) -> int:
        try:
            return self.builder.add(op, attrs, inputs, path, span)
        except ShapeError as exc:
            raise ArchError(str(exc), span) from None

    # ------------------------------------------------------------ nodes
    def run(self, node: S.Node) -> None:
        match node:
            case S.Seq(items):
                for item in items:
                    self.run(item)
            case S.InputNode(name, path, dims, dtype, span):
                shape = tuple(self.eval(d) for d in dims)
                self.current = self.builder.input(name, shape, dtype, span)
            case S.OpNode():
                self.op(node)
            case S.SourceNode(sel):
                self.current = self.select(sel)
            case S.BindNode(ident):
                self.bindings[ident] = self.need_current(node)
            case S.LetNode():
                pass
            case S.CaptureNode(name, value):
                self.values[name] = self.eval(value)
            case S.ResidualNode():
                self.residual(node)
            case S.ParallelNode(path, merge, branches, span):
                start = self.need_current(node)
                outs = []
                for branch in branches:
                    self.current = start
                    self.run(branch)
                    outs.append(self.current)
                self.current = self.add(merge, _defaults(merge), tuple(outs), path, span)
            case S.RepeatNode(count, reps, _, span):
                n = self.eval(count)
                if not isinstance(n, int) or n < 0 or n > len(reps):
                    raise ArchError(f"repeat count must be an integer in 0..{len(reps)}, "
                                    f"got {n!r}", span)
                for rep in reps[:n]:
                    self.run(rep)
            case S.OneOfNode(decision, branches):
                self.run(branches[self.values[decision]])
            case S.OptionalNode(decision, body):
                if self.values[decision]:
                    self.run(body)
            case S.IfNode(test, then, orelse):
                self.run(then if self.eval(test) else orelse)
            case _:  # pragma: no cover
                raise AssertionError(node)

    def select(self, sel: S.TensorSel) -> int:
        index = 0 if sel.decision is None else sel.names.index(self.values[sel.decision])
        ident = sel.ids[index]
        if ident not in self.bindings:
            raise ArchError(f"tensor '{sel.names[index]}' has no value here (it is bound in a "
                            "branch or repetition that did not run)", sel.span)
        return self.bindings[ident]

    def op(self, node: S.OpNode) -> None:
        spec = OPS[node.op]
        attrs = {}
        given = dict(node.args)
        for param in spec.params:
            if param.name in given:
                value = self.eval(given[param.name])
                span = getattr(given[param.name], "span", None) or node.span
                attrs[param.name] = check_value(node.op, param, value, span)
            else:
                attrs[param.name] = param.default
        if node.sources:
            inputs = tuple(self.select(s) for s in node.sources)
        else:
            inputs = (self.need_current(node),)
        if node.op == "unembed" and attrs["tie"]:
            if attrs["tie"] not in self.embeddings:
                raise ArchError(f"unembed ties to '{attrs['tie']}', which is not an embedding "
                                "defined before it", node.span)
            attrs["tie"] = self.embeddings[attrs["tie"]]
        self.current = self.add(node.op, attrs, inputs, node.path, node.span)
        if node.op == "embedding":
            label = node.path.rsplit(".", 1)[-1]
            self.embeddings[label] = node.path
            self.embeddings[node.path] = node.path

    def residual(self, node: S.ResidualNode) -> None:
        start = self.need_current(node)
        if not self.eval(node.when):
            self.run(node.body)
            return
        self.run(node.body)
        out = self.need_current(node)
        x_shape, y_shape = self.builder.shape(start), self.builder.shape(out)
        shortcut = start
        if x_shape != y_shape or node.proj in ("conv", "conv_bn", "linear"):
            shortcut = self.projection(node, start, x_shape, y_shape)
        self.current = self.add("add", {}, (shortcut, out), node.add_path, node.span)

    def projection(self, node: S.ResidualNode, start: int, x_shape, y_shape) -> int:
        proj = node.proj
        if proj == "none":
            raise ArchError(f"residual shapes differ ({fmt(x_shape)} in, {fmt(y_shape)} out) "
                            "and proj = \"none\"", node.span)
        if len(x_shape) == 3 and len(y_shape) == 3 and proj in ("auto", "conv", "conv_bn"):
            # the stride whose 1x1 conv maps the input's size onto the output's, in both dims
            strides = [s for s in range(1, x_shape[1] + 1)
                       if (x_shape[1] - 1) // s + 1 == y_shape[1]
                       and (x_shape[2] - 1) // s + 1 == y_shape[2]]
            if not strides:
                raise ArchError(f"residual cannot project {fmt(x_shape)} onto {fmt(y_shape)}: "
                                "no strided 1x1 convolution maps one size onto the other",
                                node.span)
            stride = strides[0]
            conv = {"out": y_shape[0], "kernel": 1, "stride": stride, "padding": 0,
                    "dilation": 1, "groups": 1, "bias": proj == "conv"}
            index = self.add("conv", conv, (start,), f"{node.path}.0", node.span)
            if proj != "conv":
                index = self.add("bn", _defaults("bn"), (index,), f"{node.path}.1", node.span)
            return index
        if len(x_shape) in (1, 2) and x_shape[:-1] == y_shape[:-1] and proj in ("auto", "linear"):
            return self.add("linear", {"out": y_shape[-1], "bias": True}, (start,),
                            f"{node.path}.0", node.span)
        raise ArchError(f"residual shapes differ ({fmt(x_shape)} in, {fmt(y_shape)} out) and "
                        f"no {proj} projection maps one onto the other", node.span)


def _defaults(op: str) -> dict[str, Any]:
    return {p.name: p.default for p in OPS[op].params}


def elaborate(space: S.Space, values: Mapping[str, Any]) -> Graph:
    run = _Run(space, values)
    run.run(space.root)
    if run.current is None:
        raise ArchError(f"arch '{space.name}' produces no tensor", space.span)
    return run.builder.finish(run.current)
