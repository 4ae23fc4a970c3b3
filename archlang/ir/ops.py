"""The op table: every primitive op's signature, shape rule, parameter count and MACs.

This is the one place that says what an op *is*. The front end uses the signatures to check
calls, the passes use the shape and cost rules, and each backend has one builder per op name.

Shapes exclude the batch dimension: an image is ``(C, H, W)``, a token sequence ``(N, D)``, a
vector ``(D,)``. MACs count the multiply-adds of convolutions, linear layers and matmuls
(attention included) and nothing else — torchvision's convention for its published GFLOPS, and
half of what ``torch.utils.flop_counter.FlopCounterMode`` reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Shape = tuple[int, ...]
Attrs = dict[str, Any]

REQUIRED = object()


class ShapeError(Exception):
    """An op cannot accept its input shapes or attributes; the caller adds the position."""


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: str  # "int", "float", "bool", "str"
    default: Any = REQUIRED
    minimum: float | None = None  # inclusive lower bound on numbers
    options: tuple[str, ...] = ()  # allowed values of a "str" parameter

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True, slots=True)
class OpSpec:
    name: str
    params: tuple[Param, ...]
    # returns (complete attributes, output shape); raises ShapeError
    infer: Callable[[Attrs, tuple[Shape, ...]], tuple[Attrs, Shape]]
    count_params: Callable[[Attrs, tuple[Shape, ...], Shape], int]
    count_macs: Callable[[Attrs, tuple[Shape, ...], Shape], int]
    doc: str
    inputs: int = 1  # 1 for ordinary ops; 0 means "two or more named tensors" (merges)
    weighted: bool = False  # counts towards depth (conv, linear, attention, ...)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def _zero(attrs: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    return 0


def _prod(shape: Shape) -> int:
    return math.prod(shape)


def _image(shape: Shape, op: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(f"{op} expects an image (C, H, W), got a tensor of shape {fmt(shape)}")
    return shape  # type: ignore[return-value]


def _tokens(shape: Shape, op: str) -> tuple[int, int]:
    if len(shape) != 2:
        raise ShapeError(f"{op} expects tokens (N, D), got a tensor of shape {fmt(shape)}")
    return shape  # type: ignore[return-value]


def fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int, op: str) -> int:
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ShapeError(
            f"{op} with kernel {kernel}, stride {stride}, padding {padding} leaves no output "
            f"on an input of size {size}"
        )
    return out


# ---------------------------------------------------------------- convolution and linear


def _infer_conv(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    c, h, w = _image(ins[0], "conv")
    a = dict(attrs)
    k, d = a["kernel"], a["dilation"]
    if a["padding"] is None:
        a["padding"] = d * (k - 1) // 2
    if c % a["groups"] or a["out"] % a["groups"]:
        raise ShapeError(
            f"conv groups ({a['groups']}) must divide both in-channels ({c}) and "
            f"out-channels ({a['out']})"
        )
    ho = _conv_out(h, k, a["stride"], a["padding"], d, "conv")
    wo = _conv_out(w, k, a["stride"], a["padding"], d, "conv")
    return a, (a["out"], ho, wo)


def _infer_dwconv(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    c = _image(ins[0], "dwconv")[0]
    a = dict(attrs)
    a["out"] = c * a.pop("multiplier")
    a["groups"] = c
    return _infer_conv(a, ins)


def _conv_params(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    c = ins[0][0]
    return a["out"] * (c // a["groups"]) * a["kernel"] ** 2 + (a["out"] if a["bias"] else 0)


def _conv_macs(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    return _prod(out) * (ins[0][0] // a["groups"]) * a["kernel"] ** 2


def _infer_linear(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    if len(ins[0]) not in (1, 2):
        raise ShapeError(
            f"linear expects a vector (D) or tokens (N, D), got {fmt(ins[0])}; "
            "add `gap` or `flatten` before it"
        )
    return dict(attrs), (*ins[0][:-1], attrs["out"])


def _linear_params(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    return ins[0][-1] * a["out"] + (a["out"] if a["bias"] else 0)


def _linear_macs(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    return _prod(out) * ins[0][-1]


# ---------------------------------------------------------------- normalisation


def _infer_bn(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    if len(ins[0]) not in (1, 3):
        raise ShapeError(
            f"bn expects an image (C, H, W) or a vector (D), got {fmt(ins[0])}; "
            "use `ln` on tokens"
        )
    return dict(attrs), ins[0]


def _infer_ln(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    if len(ins[0]) == 3:
        raise ShapeError("ln normalises the last dimension of tokens or vectors; use `ln2d` on images")
    return dict(attrs), ins[0]


def _infer_image_same(op: str) -> Callable[[Attrs, tuple[Shape, ...]], tuple[Attrs, Shape]]:
    def infer(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
        _image(ins[0], op)
        return dict(attrs), ins[0]

    return infer


def _infer_gn(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    c = _image(ins[0], "gn")[0]
    if c % attrs["groups"]:
        raise ShapeError(f"gn groups ({attrs['groups']}) must divide the channels ({c})")
    return dict(attrs), ins[0]


def _channel_params(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    # weight and bias per channel: dim 0 of an image, the last dim otherwise
    return 2 * (ins[0][0] if len(ins[0]) == 3 else ins[0][-1])


# ---------------------------------------------------------------- shape-preserving and pooling


def _infer_same(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    return dict(attrs), ins[0]


def _infer_pool(op: str) -> Callable[[Attrs, tuple[Shape, ...]], tuple[Attrs, Shape]]:
    def infer(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
        c, h, w = _image(ins[0], op)
        a = dict(attrs)
        if a["stride"] is None:
            a["stride"] = a["kernel"]
        k, s, p = a["kernel"], a["stride"], a["padding"]
        if 2 * p > k:
            raise ShapeError(f"{op} padding ({p}) must be at most half the kernel ({k})")
        return a, (c, _conv_out(h, k, s, p, 1, op), _conv_out(w, k, s, p, 1, op))

    return infer


def _infer_gap(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    return dict(attrs), (_image(ins[0], "gap")[0],)


def _infer_adaptive(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    c = _image(ins[0], "adaptive_avgpool")[0]
    return dict(attrs), (c, attrs["size"], attrs["size"])


def _infer_flatten(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    return dict(attrs), (_prod(ins[0]),)


def _infer_dropout(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    if not 0.0 <= attrs["p"] < 1.0:
        raise ShapeError(f"dropout probability must be in [0, 1), got {attrs['p']}")
    return dict(attrs), ins[0]


def _infer_se(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    _image(ins[0], "se")
    return dict(attrs), ins[0]


def _se_params(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    c, r = ins[0][0], a["reduced"]
    return c * r + r + r * c + c


def _se_macs(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    return 2 * ins[0][0] * a["reduced"]


# ---------------------------------------------------------------- merges


def _infer_add(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    for s in ins[1:]:
        if s != ins[0]:
            raise ShapeError(
                "add needs equal shapes, got " + " and ".join(fmt(s) for s in ins)
            )
    return dict(attrs), ins[0]


def _infer_multiply(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    out = ins[0]
    for s in ins[1:]:
        if len(s) != len(out) or any(a != b and 1 not in (a, b) for a, b in zip(s, out)):
            raise ShapeError(
                "multiply needs shapes that broadcast, got " + " and ".join(fmt(s) for s in ins)
            )
        out = tuple(max(a, b) for a, b in zip(s, out))
    return dict(attrs), out


def concat_dim(shape: Shape, axis: str) -> int:
    """Index (without batch) of the dimension that `concat` joins along."""
    if axis == "tokens":
        return 0
    return 0 if len(shape) != 2 else 1  # channels: C of an image, D of tokens or a vector


def _infer_concat(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    axis = attrs["axis"]
    if axis == "tokens" and len(ins[0]) != 2:
        raise ShapeError(f"concat along tokens needs tokens (N, D), got {fmt(ins[0])}")
    d = concat_dim(ins[0], axis)
    rest = [s[:d] + s[d + 1 :] for s in ins]
    if any(len(s) != len(ins[0]) for s in ins) or any(r != rest[0] for r in rest):
        raise ShapeError(
            f"concat along {axis} needs shapes that agree elsewhere, got "
            + " and ".join(fmt(s) for s in ins)
        )
    out = list(ins[0])
    out[d] = sum(s[d] for s in ins)
    return dict(attrs), tuple(out)


# ---------------------------------------------------------------- transformer ops


def _infer_patch(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    c, h, w = _image(ins[0], "patch_embed")
    p = attrs["patch"]
    if h % p or w % p:
        raise ShapeError(f"patch_embed patch size {p} must divide the image size {h}x{w}")
    return dict(attrs), ((h // p) * (w // p), attrs["dim"])


def _patch_params(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    return a["dim"] * ins[0][0] * a["patch"] ** 2 + (a["dim"] if a["bias"] else 0)


def _patch_macs(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    return out[0] * a["dim"] * ins[0][0] * a["patch"] ** 2


def _infer_class_token(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    n, d = _tokens(ins[0], "class_token")
    return dict(attrs), (n + 1, d)


def _infer_tokens_same(op: str) -> Callable[[Attrs, tuple[Shape, ...]], tuple[Attrs, Shape]]:
    def infer(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
        _tokens(ins[0], op)
        return dict(attrs), ins[0]

    return infer


def _infer_attention(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    _, d = _tokens(ins[0], "attention")
    if d % attrs["heads"]:
        raise ShapeError(f"attention heads ({attrs['heads']}) must divide the width ({d})")
    return dict(attrs), ins[0]


def _attention_params(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    d = ins[0][1]
    return 3 * d * d + (3 * d if a["qkv_bias"] else 0) + d * d + (d if a["proj_bias"] else 0)


def _attention_macs(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    n, d = ins[0]
    # qkv projection, q @ k^T, attn @ v, output projection
    return n * d * 3 * d + 2 * n * n * d + n * d * d


def _infer_embedding(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    if len(ins[0]) != 1:
        raise ShapeError(f"embedding expects a sequence of token ids (N), got {fmt(ins[0])}")
    return dict(attrs), (ins[0][0], attrs["dim"])


def _infer_unembed(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    n, _ = _tokens(ins[0], "unembed")
    return dict(attrs), (n, attrs["vocab"])


def _unembed_params(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    return 0 if a["tie"] else a["vocab"] * ins[0][1]


def _layer_scale_params(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    return ins[0][0] if len(ins[0]) == 3 else ins[0][-1]


def _infer_to_tokens(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    c, h, w = _image(ins[0], "to_tokens")
    return dict(attrs), (h * w, c)


def _infer_to_image(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    n, c = _tokens(ins[0], "to_image")
    if attrs["height"] * attrs["width"] != n:
        raise ShapeError(
            f"to_image({attrs['height']}, {attrs['width']}) needs "
            f"{attrs['height'] * attrs['width']} tokens, got {n}"
        )
    return dict(attrs), (c, attrs["height"], attrs["width"])


def _infer_select(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    n, d = _tokens(ins[0], "select_token")
    if not -n <= attrs["index"] < n:
        raise ShapeError(f"select_token index {attrs['index']} is outside {n} tokens")
    return dict(attrs), (d,)


def _infer_token_mean(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
    return dict(attrs), (_tokens(ins[0], "token_mean")[1],)


# ---------------------------------------------------------------- the table

_POS = 1  # minimum for sizes: they must be positive


def _p(name: str, type_: str, default: Any = REQUIRED, minimum: float | None = None,
       options: tuple[str, ...] = ()) -> Param:
    return Param(name, type_, default, minimum, options)


_CONV_COMMON = (
    _p("stride", "int", 1, _POS),
    _p("padding", "int", None, 0),
    _p("dilation", "int", 1, _POS),
)

_ACTIVATIONS = {
    "relu": "max(x, 0)",
    "relu6": "min(max(x, 0), 6)",
    "silu": "x * sigmoid(x) (swish)",
    "hardswish": "x * relu6(x + 3) / 6",
    "hardsigmoid": "relu6(x + 3) / 6",
    "sigmoid": "logistic sigmoid",
    "tanh": "hyperbolic tangent",
    "identity": "returns its input",
}

OPS: dict[str, OpSpec] = {}


def _register(spec: OpSpec) -> None:
    OPS[spec.name] = spec


_register(OpSpec("conv", (_p("out", "int", minimum=_POS), _p("kernel", "int", minimum=_POS),
                          *_CONV_COMMON, _p("groups", "int", 1, _POS), _p("bias", "bool", True)),
                 _infer_conv, _conv_params, _conv_macs,
                 "2-d convolution; padding defaults to 'same' for stride 1", weighted=True))
_register(OpSpec("dwconv", (_p("kernel", "int", minimum=_POS), *_CONV_COMMON,
                            _p("multiplier", "int", 1, _POS), _p("bias", "bool", True)),
                 _infer_dwconv, _conv_params, _conv_macs,
                 "depthwise 2-d convolution (groups = in-channels)", weighted=True))
_register(OpSpec("linear", (_p("out", "int", minimum=_POS), _p("bias", "bool", True)),
                 _infer_linear, _linear_params, _linear_macs,
                 "affine map of the last dimension", weighted=True))
_register(OpSpec("bn", (_p("eps", "float", 1e-5, 0), _p("momentum", "float", 0.1, 0)),
                 _infer_bn, _channel_params, _zero, "batch norm over channels"))
_register(OpSpec("ln", (_p("eps", "float", 1e-5, 0),), _infer_ln, _channel_params, _zero,
                 "layer norm over the last dimension (channels-last)"))
_register(OpSpec("ln2d", (_p("eps", "float", 1e-6, 0),), _infer_image_same("ln2d"),
                 _channel_params, _zero, "layer norm over the channels of an image"))
_register(OpSpec("gn", (_p("groups", "int", minimum=_POS), _p("eps", "float", 1e-5, 0)),
                 _infer_gn, _channel_params, _zero, "group norm"))
for _name, _doc in _ACTIVATIONS.items():
    _register(OpSpec(_name, (), _infer_same, _zero, _zero, _doc))
_register(OpSpec("gelu", (_p("approximate", "str", "none", options=("none", "tanh")),),
                 _infer_same, _zero, _zero, "GELU, exact or tanh-approximated"))
for _name in ("maxpool", "avgpool"):
    _register(OpSpec(_name, (_p("kernel", "int", minimum=_POS), _p("stride", "int", None, _POS),
                             _p("padding", "int", 0, 0)),
                     _infer_pool(_name), _zero, _zero, f"{_name[:3]} pooling over space"))
_register(OpSpec("gap", (), _infer_gap, _zero, _zero, "global average pool: (C, H, W) -> (C)"))
_register(OpSpec("adaptive_avgpool", (_p("size", "int", minimum=_POS),), _infer_adaptive, _zero,
                 _zero, "average pool to a fixed size x size"))
_register(OpSpec("flatten", (), _infer_flatten, _zero, _zero, "flatten to a vector"))
_register(OpSpec("dropout", (_p("p", "float", 0.5, 0),), _infer_dropout, _zero, _zero,
                 "dropout with probability p"))
_register(OpSpec("se", (_p("reduced", "int", minimum=_POS),
                        _p("gate", "str", "sigmoid", options=("sigmoid", "hardsigmoid")),
                        _p("act", "str", "relu", options=("relu", "silu"))),
                 _infer_se, _se_params, _se_macs, "squeeze-excitation with `reduced` channels"))
_register(OpSpec("add", (), _infer_add, _zero, _zero, "sum of named tensors", inputs=0))
_register(OpSpec("multiply", (), _infer_multiply, _zero, _zero,
                 "product of named tensors (broadcasting size-1 dims)", inputs=0))
_register(OpSpec("concat", (_p("axis", "str", "channels", options=("channels", "tokens")),),
                 _infer_concat, _zero, _zero, "concatenation of named tensors", inputs=0))
_register(OpSpec("patch_embed", (_p("dim", "int", minimum=_POS), _p("patch", "int", minimum=_POS),
                                 _p("bias", "bool", True)),
                 _infer_patch, _patch_params, _patch_macs,
                 "non-overlapping patches to tokens: (C, H, W) -> (HW/p^2, dim)", weighted=True))
_register(OpSpec("class_token", (), _infer_class_token, lambda a, i, o: i[0][1], _zero,
                 "prepend a learned class token"))
_register(OpSpec("pos_embed", (), _infer_tokens_same("pos_embed"), lambda a, i, o: _prod(i[0]),
                 _zero, "add a learned positional embedding"))
_register(OpSpec("attention", (_p("heads", "int", minimum=_POS), _p("qkv_bias", "bool", True),
                               _p("proj_bias", "bool", True), _p("causal", "bool", False)),
                 _infer_attention, _attention_params, _attention_macs,
                 "multi-head self-attention", weighted=True))
_register(OpSpec("embedding", (_p("vocab", "int", minimum=_POS), _p("dim", "int", minimum=_POS)),
                 _infer_embedding, lambda a, i, o: a["vocab"] * a["dim"], _zero,
                 "token embedding: ids (N) -> (N, dim)"))
_register(OpSpec("unembed", (_p("vocab", "int", minimum=_POS), _p("tie", "str", "")),
                 _infer_unembed, _unembed_params,
                 lambda a, i, o: _prod(o) * i[0][1],
                 "output head to vocabulary logits; `tie` names an embedding to share",
                 weighted=True))
_register(OpSpec("layer_scale", (_p("init", "float", 1e-5, 0),), _infer_same, _layer_scale_params,
                 _zero, "learned per-channel scale"))
_register(OpSpec("to_tokens", (), _infer_to_tokens, _zero, _zero, "(C, H, W) -> (HW, C)"))
_register(OpSpec("to_image", (_p("height", "int", minimum=_POS), _p("width", "int", minimum=_POS)),
                 _infer_to_image, _zero, _zero, "(HW, C) -> (C, H, W)"))
_register(OpSpec("select_token", (_p("index", "int", 0),), _infer_select, _zero, _zero,
                 "take one token: (N, D) -> (D)"))
_register(OpSpec("token_mean", (), _infer_token_mean, _zero, _zero,
                 "average over tokens: (N, D) -> (D)"))


def with_defaults(op: str, given: Attrs) -> Attrs:
    """The attributes of a call to `op`: the given ones plus every default (no type checks)."""
    spec = OPS[op]
    out = {p.name: p.default for p in spec.params if not p.required}
    out.update(given)
    return out


# The graph ops (GCN, GAT, ...) live in their own module and register themselves into OPS.
from archlang.ir import gnn_ops  # noqa: E402,F401
