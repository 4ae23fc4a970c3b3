"""The cost model: exact parameters, MACs, FLOPs, activation memory and depth of a Graph.

Costs come from each op's rule in `archlang.ir.ops` (already applied per layer by the graph
builder); this pass adds them up. `flops` is 2 x `macs`, the convention of
`torch.utils.flop_counter.FlopCounterMode`; `macs` follows torchvision's published GFLOPS.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from archlang.ir.graph import Graph
from archlang.ir.ops import OPS


@dataclass(frozen=True, slots=True)
class Cost:
    params: int = 0
    macs: int = 0
    activations: int = 0  # elements of every layer output, batch 1 (x4 for float32 bytes)
    depth: int = 0  # weighted layers on the longest input-to-output path

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs,
                    self.activations + other.activations, max(self.depth, other.depth))

    def as_dict(self) -> dict[str, int]:
        out = asdict(self)
        out["flops"] = self.flops
        return out


def cost(graph: Graph) -> Cost:
    depth = [0] * len(graph.layers)
    params = macs = activations = 0
    for layer in graph.layers:
        params += layer.params
        macs += layer.macs
        if layer.op != "input":
            activations += math.prod(layer.shape)
        weighted = 1 if layer.op != "input" and OPS[layer.op].weighted else 0
        depth[layer.index] = max((depth[i] for i in layer.inputs), default=0) + weighted
    return Cost(params, macs, activations, depth[graph.output])


def _register() -> None:
    from archlang.passes.metrics import register_metric

    docs = {
        "params": "trainable parameters",
        "macs": "multiply-accumulates of one forward pass (batch 1)",
        "flops": "2 x macs (torch.utils.flop_counter's convention)",
        "activations": "elements of every layer output (batch 1)",
        "depth": "weighted layers (conv, linear, attention, ...) on the longest path",
    }
    for name, doc in docs.items():
        register_metric(name, doc,
                        lambda graph, options, name=name: getattr(_cost_once(graph), name))


_last: tuple[Graph | None, Cost] = (None, Cost())


def _cost_once(graph: Graph) -> Cost:
    """cost(graph), remembered for the last graph: the five cost metrics share one pass."""
    global _last
    if _last[0] is not graph:
        _last = (graph, cost(graph))
    return _last[1]


_register()
