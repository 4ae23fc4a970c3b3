"""Graph neural network ops: message passing over the nodes of one graph.

A graph's node features are a tokens-shaped tensor ``(N, D)``: N nodes, D features each. The
edges are not a tensor of the spec; each op takes their count, ``edges`` (directed edges, as
PyTorch Geometric's ``edge_index.size(1)`` counts them), because aggregation costs depend on it.

These are the operations of NAS-Bench-Graph (Qin et al., NeurIPS 2022 Datasets and Benchmarks),
each with PyTorch Geometric's standard definition and its default options, which the benchmark
used. ``fc`` and ``skip`` of the benchmark are the ordinary ``linear`` and ``identity`` ops.

Counting conventions, as for the other ops of ``archlang.ir.ops``: parameters are the
trainable weights; MACs are the multiply-adds of dense transforms (``N x D_in x D_out``) plus
those of sparse propagation, counted as a sparse matmul: one multiply-add per stored edge (self
loops included where the layer adds them) per feature it carries. Element-wise work
(normalisation, activations, softmax) is not counted.

==========  =====================================  =====================================
op          layer (PyG default options)            params / MACs (in = D_in, out)
==========  =====================================  =====================================
gcn         GCNConv: D^-1/2 (A+I) D^-1/2 X W + b    in*out + out /
                                                     N*in*out + (E+N)*out
gat         GATConv(in, out/heads, heads), concat  in*out + 3*out /
                                                     N*in*out + 2*N*out + (E+N)*out
gin         GINConv(Linear), eps = 0               in*out + out /
                                                     E*in + N*in*out
cheb        ChebConv(K = 2), sym. normalisation    K*in*out + out /
                                                     (K-1)*E*in + K*N*in*out
sage        SAGEConv, mean aggregation             2*in*out + out /
                                                     E*in + 2*N*in*out
arma        ARMAConv(1 stack, 1 layer)             2*in*out + out*out + out /
                                                     2*N*in*out + E*out
kgnn        GraphConv (k-GNN, Morris et al.), add  2*in*out + out /
                                                     E*in + 2*N*in*out
==========  =====================================  =====================================

GIN's update network is one linear layer and ARMA counts PyG's ``out x out`` weight that a
one-layer ARMA allocates but never uses. With these definitions, changing the op of a node
that reads a 256-wide tensor changes the parameter count exactly as the ``para`` column of
NAS-Bench-Graph's Cora table does (checked for all 8 weighted ops).
"""

from __future__ import annotations

from archlang.ir.ops import OPS, Attrs, OpSpec, Param, Shape, ShapeError, fmt

# NAS-Bench-Graph's names for the ops (its `gnn_list`), by archlang op
BENCHMARK_NAMES: dict[str, str] = {
    "gat": "gat", "gcn": "gcn", "gin": "gin", "cheb": "cheb", "sage": "sage", "arma": "arma",
    "kgnn": "graph", "linear": "fc", "identity": "skip",
}

_OUT = Param("out", "int", minimum=1)
_EDGES = Param("edges", "int", minimum=0)
_BIAS = Param("bias", "bool", True)


def _nodes(shape: Shape, op: str) -> tuple[int, int]:
    if len(shape) != 2:
        raise ShapeError(f"{op} expects node features (N, D), got a tensor of shape "
                         f"{fmt(shape)}")
    return shape  # type: ignore[return-value]


def _infer(op: str):
    def infer(attrs: Attrs, ins: tuple[Shape, ...]) -> tuple[Attrs, Shape]:
        n, _ = _nodes(ins[0], op)
        a = dict(attrs)
        if op == "gat" and a["out"] % a["heads"]:
            raise ShapeError(f"gat heads ({a['heads']}) must divide the width ({a['out']}): "
                             "the heads' outputs are concatenated")
        return a, (n, a["out"])

    return infer


def _bias(a: Attrs) -> int:
    return a["out"] if a["bias"] else 0


# each rule: (attrs, input shapes, output shape) -> int; n nodes, i = D_in, o = D_out, e edges
def _gcn_params(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    return ins[0][1] * a["out"] + _bias(a)


def _gcn_macs(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    (n, i), o = ins[0], a["out"]
    return n * i * o + (a["edges"] + n) * o


def _gat_params(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    # linear map (no bias), one source and one target attention vector per output feature
    return ins[0][1] * a["out"] + 2 * a["out"] + _bias(a)


def _gat_macs(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    (n, i), o = ins[0], a["out"]
    return n * i * o + 2 * n * o + (a["edges"] + n) * o


def _gin_macs(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    # sum the neighbours' D_in-wide features, then the update network
    (n, i), o = ins[0], a["out"]
    return a["edges"] * i + n * i * o


def _cheb_params(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    return a["k"] * ins[0][1] * a["out"] + _bias(a)


def _cheb_macs(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    (n, i), o, k = ins[0], a["out"], a["k"]
    return (k - 1) * a["edges"] * i + k * n * i * o


def _two_weight_params(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    # sage, arma, kgnn: one weight for the neighbours, one for the node itself, one bias
    return 2 * ins[0][1] * a["out"] + _bias(a)


def _arma_params(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    return _two_weight_params(a, ins, out) + a["out"] ** 2


def _aggregate_first_macs(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    # sage and kgnn aggregate the D_in-wide features, then apply both weights
    (n, i), o = ins[0], a["out"]
    return a["edges"] * i + 2 * n * i * o


def _arma_macs(a: Attrs, ins: tuple[Shape, ...], out: Shape) -> int:
    # ARMA transforms first, then propagates the D_out-wide result (no self loops)
    (n, i), o = ins[0], a["out"]
    return 2 * n * i * o + a["edges"] * o


def _register(name: str, extra: tuple[Param, ...], count_params, count_macs, doc: str) -> None:
    OPS[name] = OpSpec(name, (_OUT, _EDGES, *extra, _BIAS), _infer(name), count_params,
                       count_macs, doc, weighted=True)


_register("gcn", (), _gcn_params, _gcn_macs, "graph convolution (Kipf & Welling)")
_register("gat", (Param("heads", "int", 2, 1),), _gat_params, _gat_macs,
          "graph attention (Velickovic et al.); heads of out/heads features, concatenated")
_register("gin", (), _gcn_params, _gin_macs,
          "graph isomorphism network layer (Xu et al.), a linear update, eps = 0")
_register("cheb", (Param("k", "int", 2, 1),), _cheb_params, _cheb_macs,
          "Chebyshev spectral graph convolution of order k (Defferrard et al.)")
_register("sage", (), _two_weight_params, _aggregate_first_macs,
          "GraphSAGE layer with mean aggregation (Hamilton et al.)")
_register("arma", (), _arma_params, _arma_macs,
          "ARMA graph convolution, one stack and one layer (Bianchi et al.)")
_register("kgnn", (), _two_weight_params, _aggregate_first_macs,
          "k-GNN graph convolution with add aggregation (Morris et al.)")
