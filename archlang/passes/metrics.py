"""The registry of metrics a spec can name in `require`, `maximize` and `minimize`.

A metric is computed from a fixed Graph (no training): parameters, MACs, ..., and any zero-cost
score a pass registers. Metrics may read spec-level options (`option NAME = value` in the arch
body); each option is declared here with its default, so a misspelt option is an error.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from archlang.ir.graph import Graph


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    doc: str
    compute: Callable[[Graph, Mapping[str, Any]], float]  # (graph, options) -> value


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    default: Any
    doc: str


METRICS: dict[str, Metric] = {}
OPTIONS: dict[str, Option] = {}

# Metrics that only an evaluator produces (training, a benchmark table, a device); usable in
# objectives, and in `require` only when the search supplies them.
MEASURED = {
    "accuracy": "validation accuracy after training",
    "val_accuracy": "validation accuracy after training",
    "test_accuracy": "test accuracy after training",
    "loss": "validation loss after training",
    "val_loss": "validation loss after training",
    "latency": "measured inference latency",
    "train_time": "seconds spent training",
}

# Modules that register metrics when imported; all are pure Python over the fixed IR.
_PROVIDERS = ("archlang.passes.cost", "archlang.passes.entropy")


def register_metric(name: str, doc: str, compute: Callable[[Graph, Mapping[str, Any]], float]):
    METRICS[name] = Metric(name, doc, compute)


def register_option(name: str, default: Any, doc: str) -> None:
    OPTIONS[name] = Option(name, default, doc)


def _load_providers() -> None:
    for module in _PROVIDERS:
        importlib.import_module(module)


def metric_names() -> list[str]:
    _load_providers()
    return list(METRICS)


def option_defaults() -> dict[str, Any]:
    _load_providers()
    return {o.name: o.default for o in OPTIONS.values()}


def compute(graph: Graph, names: list[str] | None = None,
            options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Values of the named metrics (all registered ones by default) for one graph."""
    _load_providers()
    opts = {**option_defaults(), **(options or {})}
    return {n: METRICS[n].compute(graph, opts) for n in (names or list(METRICS))}
