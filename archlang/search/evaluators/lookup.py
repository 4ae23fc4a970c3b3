"""The `lookup` evaluator: NAS-Bench-Graph's tables instead of training.

NAS-Bench-Graph (PyPI `nas-bench-graph`) ships, for each of 9 datasets, a pickled dict from an
architecture's key to its measured ``valid_perf``, ``perf`` (test), ``latency`` and ``para``
(parameters, in millions). An architecture is a list of 4 links (``link[i]`` is the node that
node i + 1 reads: 0 the input, k node k) and a list of 4 of its op names; the key is
``Arch(links, ops).valid_hash()``, which first maps the architecture onto one representative of
its isomorphism class (reorders nodes, moves skip nodes, sorts interchangeable siblings), so
every equivalent description finds the same entry. The all-skip cell has no entry.

The space is `examples/nasbench_graph.arch`; an assignment maps onto the benchmark like this:

- ``in2``, ``in3``, ``in4`` (node 1 always reads the input) -> ``links = [0, in2, in3, in4]``;
- ``n1.op`` .. ``n4.op`` (one_of branch indices) -> the op of that branch, named as the
  benchmark names it (``kgnn`` -> ``graph``, ``linear`` -> ``fc``, ``identity`` -> ``skip``;
  see `archlang.ir.gnn_ops.BENCHMARK_NAMES`). The branch -> op table is read from the space
  itself, so the order of the branches in the spec does not matter.

The tables hold one number per architecture (the benchmark's mean over its own seeds): the
trial seed is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from archlang.api import Architecture
from archlang.errors import ArchError
from archlang.ir import space as S
from archlang.ir.gnn_ops import BENCHMARK_NAMES
from archlang.search.evaluators import TrialFailed

DATASETS: tuple[str, ...] = ("cora", "citeseer", "pubmed", "cs", "physics", "photo",
                             "computers", "arxiv", "proteins")
NODES = 4
LINKS = tuple(f"in{i}" for i in range(2, NODES + 1))  # node 1 always reads the input
OPS = tuple(f"n{i}.op" for i in range(1, NODES + 1))

PROTEINS_OPS = ("gcn", "sage", "arma", "fc", "skip")  # the ops its proteins table covers

Key = tuple[tuple[int, ...], tuple[str, ...]]  # (links, benchmark op names)


@dataclass
class LookupEvaluator:
    dataset: str = "cora"
    name: str = "lookup"

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ArchError(f"NAS-Bench-Graph has no dataset '{self.dataset}'; its datasets "
                            f"are {', '.join(DATASETS)}")

    def evaluate(self, arch: Architecture, seed: int) -> dict[str, float]:
        out = self.lookup(benchmark_key(arch.space, arch.assignment))
        cost = arch.cost
        out["params"] = float(cost.params)  # archlang's count, as `require params` sees it
        out["macs"] = float(cost.macs)
        return out

    def lookup(self, key: Key) -> dict[str, float]:
        """The table's numbers for a (links, ops) key; TrialFailed when it has no entry."""
        links, ops = key
        entry = table(self.dataset).get(table_hash(links, ops))
        if entry is None:
            if self.dataset == "proteins" and not set(ops) <= set(PROTEINS_OPS):
                raise TrialFailed(f"the proteins table has only the ops {', '.join(PROTEINS_OPS)}"
                                  f", not {', '.join(sorted(set(ops) - set(PROTEINS_OPS)))}; "
                                  "load the space with proteins = true")
            raise TrialFailed(f"NAS-Bench-Graph has no {self.dataset} entry for links "
                              f"{list(links)}, ops {list(ops)}")
        return {
            "accuracy": float(entry["valid_perf"]),
            "val_accuracy": float(entry["valid_perf"]),
            "test_accuracy": float(entry["perf"]),
            "latency": float(entry["latency"]),
            "bench_params": float(entry["para"]) * 1e6,  # the benchmark's own model's count
        }


@cache
def table(dataset: str) -> dict[int, Mapping[str, Any]]:
    """One dataset's table, read once per process (0.2 s each)."""
    from nas_bench_graph import light_read

    return light_read(dataset)


def table_hash(links: tuple[int, ...], ops: tuple[str, ...]) -> int:
    """NAS-Bench-Graph's key of an architecture (its `Arch.valid_hash`)."""
    from nas_bench_graph import Arch

    try:
        return Arch(list(links), list(ops)).valid_hash()
    except (KeyError, UnboundLocalError) as exc:  # an op or link pattern it does not know
        raise TrialFailed(f"not a NAS-Bench-Graph architecture: links {list(links)}, "
                          f"ops {list(ops)} ({exc!r})") from exc


def benchmark_key(space: S.Space, assignment: Mapping[str, Any]) -> Key:
    """(links, op names) of an assignment of a NAS-Bench-Graph space."""
    names = op_names(space)
    try:
        links = (0, *(int(assignment[d]) for d in LINKS))
        ops = tuple(names[d][assignment[d]] for d in OPS)
    except (KeyError, IndexError) as exc:
        raise ArchError(f"'{space.name}' is not a NAS-Bench-Graph space: the lookup evaluator "
                        f"needs decisions {', '.join(LINKS + OPS)} "
                        "(see examples/nasbench_graph.arch)") from exc
    return links, ops


def op_names(space: S.Space) -> dict[str, tuple[str, ...]]:
    """For each node's op decision, the benchmark's op name of each one_of branch."""
    # keyed by identity: hashing a whole Space on every trial would cost more than the lookup
    cached = _OP_NAMES.get(id(space))
    if cached is None or cached[0] is not space:
        cached = _OP_NAMES[id(space)] = (space, _op_names(space))
    return cached[1]


_OP_NAMES: dict[int, tuple[S.Space, dict[str, tuple[str, ...]]]] = {}


def _op_names(space: S.Space) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for node in S.walk(space.root):
        if isinstance(node, S.OneOfNode) and re.fullmatch(r"n\d+\.op", node.decision):
            out[node.decision] = tuple(_branch_op(node.decision, b) for b in node.branches)
    return out


def _branch_op(decision: str, branch: S.Node) -> str:
    ops = [n.op for n in S.walk(branch) if isinstance(n, S.OpNode)]
    if len(ops) != 1 or ops[0] not in BENCHMARK_NAMES:
        raise ArchError(f"a branch of '{decision}' must be one NAS-Bench-Graph op "
                        f"({', '.join(BENCHMARK_NAMES)}), not {' '.join(ops) or 'empty'}")
    return BENCHMARK_NAMES[ops[0]]
