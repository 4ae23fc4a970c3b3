"""DeepMAD's zero-cost scores (Shen et al., CVPR 2023), computed from a fixed Graph.

Metrics registered here (usable in `maximize`, `minimize` and `require`):

* ``entropy`` -- the multi-scale entropy ``H = sum_j alpha_j H_j`` with
  ``H_j = log(h_j * w_j * c_j) * f * sum_{i up to the end of scale j} log(w_i)``;
* ``effectiveness`` -- ``rho = L / (prod_i w_i)^(1/L)`` over the L counted conv layers;
* ``depth_penalty`` -- ``Q = exp(std of stage depths)``;
* ``entropy_score`` -- ``H - beta * Q``, the objective DeepMAD's search maximises.

Conventions (each is an option, defaults follow DeepMAD's released code, TinyNAS):

* A *counted layer* is a ``conv``/``dwconv`` applied to an image; its width is
  ``w_i = c_in * k^2 / groups``. Residual projections (a layer whose path has a ``downsample``
  segment) are skipped (``entropy.skip_projection``), as TinyNAS ignores its projection
  shortcut.
* ``entropy.half`` (true): the ``1/2`` factor ``f`` on the log-width sum (TinyNAS sums
  ``log(sqrt(w_i))``). A bottleneck block then contributes ``1/2 [log c_in + log b + log(b k^2)]``.
* ``entropy.boundary`` (``"block"``): a scale ends before each *block* containing a layer that
  lowers the resolution (TinyNAS: before each stride-2 block); ``"layer"`` ends it before that
  layer itself. The feature map leaving the scale is the input of the block's first counted
  layer: ``h_j, w_j`` its resolution, ``c_j`` its channels. The last scale ends after the last
  counted layer (its output is the feature map). Scales with no counted layer are dropped, so a
  stride-2 stem opens no scale.
* Blocks are path prefixes: a layer's block is its path up to the first numeric segment
  (``stage3.0.conv2`` -> ``stage3.0``), else its parent path, else the layer itself. A *stage*
  is the prefix before that numeric segment (``stage3``); its depth is its number of blocks.
* ``entropy.alpha`` ((1, 1, 1, 1, 8)): per-scale weights, aligned to the *last* scales (the
  last weight goes to the last scale); scales before the first weight get weight 1.
* ``effectiveness.prefix_max`` (true): rho is the maximum over the stage prefixes ending at
  each scale boundary (TinyNAS), else rho of the whole network. No ``1/2`` factor.
* ``depth_penalty.stages`` (3): the penalty covers the last N stages (0: all), as TinyNAS does
  for its ResNet space; ``depth_penalty.beta`` (10) weighs it in ``entropy_score``.

With these defaults, DeepMAD's published R18/R34/R50 structures score H = 32,120.2 /
43,142.7 / 48,919.3 and rho = 0.299 / 0.300 / 0.300 (see tests/test_entropy.py).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from archlang.ir.graph import Graph

COUNTED_OPS = ("conv", "dwconv")
PROJECTION_SEGMENT = "downsample"


@dataclass(frozen=True, slots=True)
class CountedLayer:
    """One conv layer as the scores see it."""

    index: int
    path: str
    log_width: float  # log(c_in * k^2 / groups)
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    block: str
    stage: str | None  # None: not inside a repeated stage (e.g. the stem)


@dataclass(frozen=True, slots=True)
class Scale:
    """A scale: the counted layers before its end, and the feature map leaving it."""

    end: int  # number of counted layers up to the end of this scale
    channels: int
    height: int
    width: int


def block_of(path: str) -> tuple[str, str | None]:
    """(block, stage) of a layer path: the prefix through the first numeric segment."""
    parts = path.split(".")
    for i, part in enumerate(parts):
        if part.isdigit() and i > 0:
            return ".".join(parts[: i + 1]), ".".join(parts[:i])
    if len(parts) > 1:
        return ".".join(parts[:-1]), None
    return path, None


def counted_layers(graph: Graph, skip_projection: bool = True) -> list[CountedLayer]:
    out = []
    for layer in graph.layers:
        if layer.op not in COUNTED_OPS or len(layer.shape) != 3:
            continue
        if skip_projection and PROJECTION_SEGMENT in layer.path.split("."):
            continue
        in_shape = graph.layers[layer.inputs[0]].shape
        if len(in_shape) != 3:
            continue
        a = layer.attrs
        width = in_shape[0] * a["kernel"] ** 2 / a["groups"]
        block, stage = block_of(layer.path)
        out.append(CountedLayer(layer.index, layer.path, math.log(width), tuple(in_shape),
                                tuple(layer.shape), block, stage))
    return out


def scales(layers: Sequence[CountedLayer], boundary: str = "block") -> list[Scale]:
    """Scale ends (see the module docstring); empty scales are dropped."""
    if not layers:
        return []
    first_of_block: dict[str, int] = {}
    for i, layer in enumerate(layers):
        first_of_block.setdefault(layer.block, i)
    cuts: list[int] = []
    for i, layer in enumerate(layers):
        if layer.out_shape[1] < layer.in_shape[1] or layer.out_shape[2] < layer.in_shape[2]:
            cut = first_of_block[layer.block] if boundary == "block" else i
            if cut > 0 and (not cuts or cut > cuts[-1]):
                cuts.append(cut)
    out = [Scale(cut, *layers[cut].in_shape) for cut in cuts]
    last = layers[-1].out_shape
    out.append(Scale(len(layers), *last))
    return out


def _alphas(alpha: Sequence[float], n: int) -> list[float]:
    alpha = list(alpha)
    return alpha[-n:] if len(alpha) >= n else [1.0] * (n - len(alpha)) + alpha


def entropy(graph: Graph, options: Mapping[str, Any]) -> float:
    layers = counted_layers(graph, options["entropy.skip_projection"])
    found = scales(layers, options["entropy.boundary"])
    factor = 0.5 if options["entropy.half"] else 1.0
    prefix = [0.0]
    for layer in layers:
        prefix.append(prefix[-1] + factor * layer.log_width)
    total = 0.0
    for a, s in zip(_alphas(options["entropy.alpha"], len(found)), found):
        total += a * math.log(s.height * s.width * s.channels) * prefix[s.end]
    return total


def effectiveness(graph: Graph, options: Mapping[str, Any]) -> float:
    layers = counted_layers(graph, options["entropy.skip_projection"])
    if not layers:
        return 0.0
    ends = [s.end for s in scales(layers, options["entropy.boundary"])] \
        if options["effectiveness.prefix_max"] else [len(layers)]
    best = 0.0
    for end in ends:
        log_sum = sum(layer.log_width for layer in layers[:end])
        best = max(best, math.exp(math.log(end) - log_sum / end))
    return best


def stage_depths(graph: Graph, options: Mapping[str, Any]) -> list[int]:
    """Blocks per stage, stages in order of appearance."""
    blocks: dict[str, set[str]] = {}
    for layer in counted_layers(graph, options["entropy.skip_projection"]):
        if layer.stage is not None:
            blocks.setdefault(layer.stage, set()).add(layer.block)
    return [len(b) for b in blocks.values()]


def depth_penalty(graph: Graph, options: Mapping[str, Any]) -> float:
    depths = stage_depths(graph, options)
    last = options["depth_penalty.stages"]
    if last:
        depths = depths[-last:]
    return math.exp(statistics.pstdev(depths)) if depths else 1.0


def entropy_score(graph: Graph, options: Mapping[str, Any]) -> float:
    return entropy(graph, options) - options["depth_penalty.beta"] * depth_penalty(graph, options)


def _register() -> None:
    from archlang.passes.metrics import register_metric, register_option

    register_option("entropy.alpha", (1, 1, 1, 1, 8),
                    "per-scale weights of the multi-scale entropy, aligned to the last scales")
    register_option("entropy.half", True, "1/2 factor on the log-width sum (TinyNAS)")
    register_option("entropy.boundary", "block",
                    "a scale ends before the 'block' (TinyNAS) or the 'layer' that downsamples")
    register_option("entropy.skip_projection", True,
                    "ignore residual projection convs ('downsample' in the path)")
    register_option("effectiveness.prefix_max", True,
                    "rho is the maximum over stage prefixes (TinyNAS), else the whole network")
    register_option("depth_penalty.stages", 3, "the penalty covers the last N stages (0: all)")
    register_option("depth_penalty.beta", 10.0, "weight of the depth penalty in entropy_score")
    register_metric("entropy", "DeepMAD multi-scale entropy H (zero-cost)", entropy)
    register_metric("effectiveness", "DeepMAD effectiveness rho = L / (prod w_i)^(1/L)",
                    effectiveness)
    register_metric("depth_penalty", "DeepMAD depth-uniformity penalty exp(std stage depths)",
                    depth_penalty)
    register_metric("entropy_score", "H - beta * depth_penalty (DeepMAD's search objective)",
                    entropy_score)


_register()
