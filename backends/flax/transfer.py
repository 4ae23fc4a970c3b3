"""Weights between the torch and flax builds of one graph, both ways.

Each layer's state is a list of :class:`Slot`: a torch ``state_dict`` key (``layer.path`` plus a
suffix), the flax variable at the same layer path, and the two layout conversions:

===============================  ==========================  =================================
torch                            flax                        conversion
===============================  ==========================  =================================
conv weight (O, I/g, kh, kw)     kernel (kh, kw, I/g, O)     OIHW <-> HWIO (groups need none)
linear weight (O, I)             kernel (I, O)               transpose; rows permuted (C,H,W)
                                                             -> (H,W,C) after an NHWC flatten
bn weight/bias/running_*         scale/bias/mean/var         none
bn num_batches_tracked (int64)   num_batches_tracked (int32) dtype
ln, ln2d, gn weight/bias         scale/bias                  none
se fc1/fc2 weight (O, I, 1, 1)   fc1/fc2 kernel (I, O)       1x1 conv -> linear
attention qkv/proj weight        qkv/proj kernel             transpose (q, k, v stay in order)
patch_embed proj.weight          proj.kernel                 OIHW <-> HWIO
class_token token, pos_embed     token, weight               none (both (1, N, D))
embedding weight (V, D)          embedding (V, D)            none
unembed weight (V, D)            kernel (D, V)               transpose; a tied head has none
layer_scale gamma (C, 1, 1)      gamma (C,)                  reshape (NHWC scales last axis)
===============================  ==========================  =================================

Torch is imported only by :func:`flax_to_torch`, which has to make torch tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from archlang.ir.graph import Graph, Layer

from .build import GraphModel, build, permuted_image, submodule

Convert = Callable[[np.ndarray], np.ndarray]


def _same(a: np.ndarray) -> np.ndarray:
    return a


def _oihw_to_hwio(w: np.ndarray) -> np.ndarray:
    return w.transpose(2, 3, 1, 0)


def _hwio_to_oihw(k: np.ndarray) -> np.ndarray:
    return k.transpose(3, 2, 0, 1)


def _transpose(a: np.ndarray) -> np.ndarray:
    return a.T


def _conv1x1_to_linear(w: np.ndarray) -> np.ndarray:
    return w[:, :, 0, 0].T


def _linear_to_conv1x1(k: np.ndarray) -> np.ndarray:
    return k.T[:, :, None, None]


@dataclass(frozen=True, slots=True)
class Slot:
    torch_key: str  # after the layer path: "weight", "qkv.bias", ...
    flax_path: tuple[str, ...]  # attributes below the layer's module: ("qkv", "kernel")
    to_flax: Convert = _same
    to_torch: Convert = _same


def _conv_slots(prefix: str, bias: bool) -> list[Slot]:
    p = f"{prefix}." if prefix else ""
    head = (prefix,) if prefix else ()
    out = [Slot(f"{p}weight", (*head, "kernel"), _oihw_to_hwio, _hwio_to_oihw)]
    return out + ([Slot(f"{p}bias", (*head, "bias"))] if bias else [])


def _linear_slots(prefix: str, bias: bool) -> list[Slot]:
    p = f"{prefix}." if prefix else ""
    head = (prefix,) if prefix else ()
    out = [Slot(f"{p}weight", (*head, "kernel"), _transpose, _transpose)]
    return out + ([Slot(f"{p}bias", (*head, "bias"))] if bias else [])


def _flattened_linear_slots(image: tuple[int, ...], bias: bool) -> list[Slot]:
    """A linear layer reading a channels-last flatten of a (C, H, W) image: torch's weight
    columns run over (C, H, W), the flax kernel's rows over (H, W, C)."""
    c, h, w = image

    def to_flax(weight: np.ndarray) -> np.ndarray:
        out = weight.shape[0]
        return weight.reshape(out, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, out)

    def to_torch(kernel: np.ndarray) -> np.ndarray:
        out = kernel.shape[1]
        return kernel.reshape(h, w, c, out).transpose(3, 2, 0, 1).reshape(out, c * h * w)

    return [Slot("weight", ("kernel",), to_flax, to_torch)] + (
        [Slot("bias", ("bias",))] if bias else [])


def _norm_slots() -> list[Slot]:
    return [Slot("weight", ("scale",)), Slot("bias", ("bias",))]


def slots(graph: Graph, layer: Layer) -> list[Slot]:
    """The state of one layer, in the order torch's state_dict lists it."""
    a, op = layer.attrs, layer.op
    if op in ("conv", "dwconv"):
        return _conv_slots("", a["bias"])
    if op == "linear":
        image = permuted_image(graph, layer)
        return (_flattened_linear_slots(image, a["bias"]) if image is not None
                else _linear_slots("", a["bias"]))
    if op == "bn":
        return [*_norm_slots(), Slot("running_mean", ("mean",)), Slot("running_var", ("var",)),
                Slot("num_batches_tracked", ("num_batches_tracked",))]
    if op in ("ln", "ln2d", "gn"):
        return _norm_slots()
    if op == "se":
        return [Slot(f"{fc}.{name}", (fc, "kernel" if name == "weight" else "bias"),
                     *((_conv1x1_to_linear, _linear_to_conv1x1) if name == "weight"
                       else (_same, _same)))
                for fc in ("fc1", "fc2") for name in ("weight", "bias")]
    if op == "patch_embed":
        return _conv_slots("proj", a["bias"])
    if op == "class_token":
        return [Slot("token", ("token",))]
    if op == "pos_embed":
        return [Slot("weight", ("weight",))]
    if op == "attention":
        return _linear_slots("qkv", a["qkv_bias"]) + _linear_slots("proj", a["proj_bias"])
    if op == "embedding":
        return [Slot("weight", ("embedding",))]
    if op == "unembed":
        return [] if a["tie"] else _linear_slots("", False)
    if op == "layer_scale":
        shape = graph.layers[layer.inputs[0]].shape
        torch_shape = (shape[0], 1, 1) if len(shape) == 3 else (shape[-1],)
        return [Slot("gamma", ("gamma",), lambda g: g.reshape(-1),
                     lambda g: g.reshape(torch_shape))]
    return []  # stateless ops


def _entries(graph: Graph, module: nnx.Module) -> Iterator[tuple[str, Slot, nnx.Variable]]:
    for layer in graph.layers:
        if layer.op == "input":
            continue
        for slot in slots(graph, layer):
            target: Any = submodule(module, layer.path)
            for part in slot.flax_path:
                target = getattr(target, part)
            yield f"{layer.path}.{slot.torch_key}", slot, target


def _numpy(value: Any) -> np.ndarray:
    """A copy: jnp.asarray may alias a numpy buffer on CPU, and torch updates its running
    statistics in place, which would otherwise change the flax model's too."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.array(value, copy=True)


def torch_to_flax(state_dict: Mapping[str, Any], graph: Graph,
                  flax_module: nnx.Module) -> nnx.Module:
    """Copy a torch ``state_dict`` of ``graph``'s torch build into ``flax_module`` (a flax build
    of the same graph), in place; returns the module. Raises ValueError naming any key that is
    missing, left over, or of the wrong shape."""
    used: set[str] = set()
    for key, slot, var in _entries(graph, flax_module):
        if key not in state_dict:
            raise ValueError(f"the state dict has no '{key}'")
        value = slot.to_flax(_numpy(state_dict[key]))
        current = var.get_value()  # an array, or a ShapeDtypeStruct in an abstract module
        if value.shape != current.shape:
            raise ValueError(f"'{key}' has shape {tuple(state_dict[key].shape)}, which does not "
                             f"fit the flax variable of shape {tuple(current.shape)}")
        var.set_value(jnp.asarray(value, dtype=current.dtype))
        used.add(key)
    extra = [k for k in state_dict if k not in used]
    if extra:
        raise ValueError(f"the state dict has keys this graph does not: {', '.join(extra)}")
    return flax_module


def from_torch(state_dict: Mapping[str, Any], graph: Graph, *, seed: int = 0) -> GraphModel:
    """The flax build of ``graph`` holding a torch ``state_dict``'s weights, made without drawing
    random initial weights (for a ResNet-50 on a CPU that takes jax minutes).

    The module's shapes come from ``nnx.eval_shape``; the transfer fills every parameter and
    statistic, and each dropout layer gets its own key stream from ``seed`` (not the stream a
    ``build(graph, seed=seed)`` would give it).
    """
    model = nnx.eval_shape(lambda: build(graph, seed=seed))
    torch_to_flax(state_dict, graph, model)
    base = jax.random.key(seed)
    for i, (path, var) in enumerate(_abstract_variables(model)):
        if isinstance(var, nnx.RngKey):
            var.set_value(jax.random.fold_in(base, i))
        elif isinstance(var, nnx.RngCount):
            var.set_value(jnp.zeros(var.get_value().shape, var.get_value().dtype))
        else:
            raise ValueError(f"no value for the flax variable at {'.'.join(map(str, path))}")
    return model


def _abstract_variables(model: nnx.Module) -> list[tuple[tuple[Any, ...], nnx.Variable]]:
    return [(path, node) for path, node in nnx.iter_graph(model)
            if isinstance(node, nnx.Variable)
            and isinstance(node.get_value(), jax.ShapeDtypeStruct)]


def flax_to_torch(flax_module: nnx.Module, graph: Graph) -> dict[str, Any]:
    """The torch ``state_dict`` (same keys, order, shapes and dtypes as the torch build's) that
    holds ``flax_module``'s weights and statistics."""
    import torch

    state: dict[str, Any] = {}
    for key, slot, var in _entries(graph, flax_module):
        value = np.array(slot.to_torch(np.asarray(var.get_value())))  # a copy torch may own
        tensor = torch.from_numpy(value)
        state[key] = tensor.long() if key.endswith("num_batches_tracked") else tensor
    return state
