"""The `zero-cost` evaluator: score an architecture at initialisation, without training.

Proxies (option ``proxy``):

- ``naswot``: Mellor et al., "Neural Architecture Search without Training" (ICML 2021). For a
  minibatch, each example's binary code says which ReLU units it switches on; the kernel
  ``K[i, j] = units - hamming(c_i, c_j)`` counts the units on which two examples agree, and the
  score is ``log |det K|``: high when the untrained network already tells the inputs apart.
- ``params``: the parameter count (the simplest proxy; needs neither torch nor data).
- ``entropy``: the DeepMAD expressiveness metric, when a pass registers a metric of that name in
  `archlang.passes.metrics` (computed from the graph, under the spec's options).

The score is returned as ``accuracy`` (what a search maximises) and under its own name.
Deterministic given the seed: it sets the initial weights and which examples form the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from archlang.api import Architecture
from archlang.errors import ArchError
from archlang.passes.metrics import metric_names
from archlang.search.evaluators import TrialFailed
from archlang.search.evaluators import data as D

BUILTIN_PROXIES = ("naswot", "params")


def proxies() -> tuple[str, ...]:
    """The proxies on offer: the built-in ones, plus `entropy` once it is registered."""
    return BUILTIN_PROXIES + (("entropy",) if "entropy" in metric_names() else ())


@dataclass
class ZeroCostEvaluator:
    proxy: str = "naswot"
    dataset: str = "digits"
    batch_size: int = 64
    max_params: int = 10_000_000
    name: str = "zero-cost"

    def __post_init__(self) -> None:
        if self.proxy not in proxies():
            extra = "" if self.proxy != "entropy" else \
                " (no `entropy` metric is registered in archlang.passes.metrics yet)"
            raise ArchError(f"unknown zero-cost proxy '{self.proxy}'{extra}; the proxies are "
                            f"{', '.join(proxies())}")
        if self.dataset not in D.DATASETS:
            raise ArchError(f"unknown dataset '{self.dataset}'; the datasets are "
                            f"{', '.join(D.DATASETS)}")
        if self.batch_size < 2:
            raise ArchError("the NASWOT batch needs at least 2 examples")

    def evaluate(self, arch: Architecture, seed: int) -> dict[str, float]:
        cost = arch.cost
        if self.proxy == "params":
            score = float(cost.params)
        elif self.proxy == "entropy":
            score = float(arch.metrics()["entropy"])
        else:
            score = self._naswot(arch, seed)
        if not math.isfinite(score):
            raise TrialFailed(f"the {self.proxy} score is {score}")
        return {"accuracy": score, self.proxy: score,
                "params": float(cost.params), "macs": float(cost.macs)}

    def _naswot(self, arch: Architecture, seed: int) -> float:
        import torch

        torch.set_num_threads(1)
        data = D.load(self.dataset)
        graph = arch.graph
        x_train, _, _ = D.fit_to(data, graph.layers[graph.inputs[0]].shape)
        rng = np.random.default_rng(seed)
        batch = torch.from_numpy(x_train[rng.choice(len(x_train), self.batch_size,
                                                    replace=False)])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            try:
                model = arch.build("torch", max_params=self.max_params)
                return naswot(model, batch)
            except TrialFailed:
                raise
            except ArchError as exc:
                raise TrialFailed(f"cannot build the model: {exc.message}") from exc
            except Exception as exc:  # noqa: BLE001 -- any failure fails this trial only
                raise TrialFailed(f"{type(exc).__name__} while scoring: {exc}") from exc


def naswot(model: Any, batch: Any) -> float:
    """log |det K| of the ReLU-pattern kernel of `model` on `batch` (Mellor et al.)."""
    import torch
    from torch import nn

    n = len(batch)
    kernel = torch.zeros(n, n, dtype=torch.float64)
    units = 0

    def hook(module: Any, inputs: Any, output: Any) -> None:
        nonlocal units
        codes = (output.detach().reshape(n, -1) > 0).to(torch.float64)
        # agreements: units both switch on plus units both leave off
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)
        units += codes.shape[1]

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.ReLU, nn.ReLU6))]
    if not handles:
        raise TrialFailed("NASWOT needs ReLU units, and this model has none")
    try:
        model.train()  # as in the paper: batch statistics, not running ones
        with torch.no_grad():
            model(batch)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign != 0 else -math.inf
