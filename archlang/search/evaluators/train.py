"""The `train` evaluator: build the torch model, train it, measure it on held-out data.

Deterministic given the seed: one torch thread, the seed sets the initial weights, dropout and
the order of the minibatches (the data split itself is fixed, see `data.py`), and the
caller's global torch random state is left as it was.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from archlang.api import Architecture
from archlang.errors import ArchError
from archlang.search.evaluators import TrialFailed
from archlang.search.evaluators import data as D

OPTIMIZERS = ("sgd", "adam", "adamw")
EVAL_BATCH = 512


@dataclass
class TrainEvaluator:
    dataset: str = "digits"
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    max_params: int = 10_000_000  # refuse a model this large before building it
    name: str = "train"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ArchError(f"unknown optimizer '{self.optimizer}'; the optimizers are "
                            f"{', '.join(OPTIMIZERS)}")
        if self.dataset not in D.DATASETS:
            raise ArchError(f"unknown dataset '{self.dataset}'; the datasets are "
                            f"{', '.join(D.DATASETS)}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ArchError("epochs, batch_size and lr must be positive")

    def evaluate(self, arch: Architecture, seed: int) -> dict[str, float]:
        import torch

        torch.set_num_threads(1)
        data = D.load(self.dataset)
        graph = arch.graph
        if len(graph.inputs) != 1:
            raise ArchError(f"the train evaluator feeds one input; '{graph.name}' has "
                            f"{len(graph.inputs)}")
        if graph.output_shape != (data.classes,):
            raise ArchError(f"the {data.name} dataset has {data.classes} classes, but the "
                            f"model's output has shape {list(graph.output_shape)}")
        x_train, x_val, x_test = D.fit_to(data, graph.layers[graph.inputs[0]].shape)
        cost = arch.cost
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            start = time.perf_counter()
            try:
                model = arch.build("torch", max_params=self.max_params)
                train_loss = self._train(model, x_train, data.y_train, seed)
                val_loss, val_acc = _measure(model, x_val, data.y_val)
                _, test_acc = _measure(model, x_test, data.y_test)
            except TrialFailed:
                raise
            except ArchError as exc:  # e.g. an op the torch backend cannot build
                raise TrialFailed(f"cannot build the model: {exc.message}") from exc
            except Exception as exc:  # noqa: BLE001 -- any failure fails this trial only
                raise TrialFailed(f"{type(exc).__name__} while training: {exc}") from exc
            elapsed = time.perf_counter() - start
        if not math.isfinite(val_loss):
            raise TrialFailed(f"validation loss is {val_loss}")
        return {
            "accuracy": val_acc, "val_accuracy": val_acc, "test_accuracy": test_acc,
            "loss": val_loss, "val_loss": val_loss, "train_loss": train_loss,
            "params": float(cost.params), "macs": float(cost.macs),
            "train_time": elapsed, "epochs": float(self.epochs),
        }

    def _train(self, model: Any, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        import torch
        import torch.nn.functional as F

        xs, ys = torch.from_numpy(x), torch.from_numpy(y)
        optimizer = self._optimizer(model.parameters())
        order = torch.Generator().manual_seed(seed)
        model.train()
        total, count = 0.0, 0
        for epoch in range(self.epochs):
            perm = torch.randperm(len(xs), generator=order)
            total, count = 0.0, 0
            for i in range(0, len(xs), self.batch_size):
                idx = perm[i:i + self.batch_size]
                if len(idx) < 2:  # batch norm cannot train on one example
                    continue
                loss = F.cross_entropy(model(xs[idx]), ys[idx])
                if not torch.isfinite(loss):
                    raise TrialFailed(f"the training loss became {loss.item()} "
                                      f"(epoch {epoch + 1}, step {i // self.batch_size + 1})")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
                count += len(idx)
        return total / max(count, 1)  # the last epoch's mean training loss

    def _optimizer(self, params: Any) -> Any:
        import torch

        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                                   weight_decay=self.weight_decay)
        cls = torch.optim.Adam if self.optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=self.lr, weight_decay=self.weight_decay)


def _measure(model: Any, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on one split, in eval mode."""
    import torch
    import torch.nn.functional as F

    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), EVAL_BATCH):
            xb, yb = torch.from_numpy(x[i:i + EVAL_BATCH]), torch.from_numpy(y[i:i + EVAL_BATCH])
            logits = model(xb)
            loss += F.cross_entropy(logits, yb, reduction="sum").item()
            correct += int((logits.argmax(1) == yb).sum())
    model.train()
    return loss / len(x), correct / len(x)
