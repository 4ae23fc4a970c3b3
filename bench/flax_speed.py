"""The flax backend's speed: resnet18 and vit_tiny built by archlang vs the same models written
by hand in Flax NNX (bench/flax_reference.py), with the same weights, in one run.

For each model: trace and compile time of the jit-compiled eval forward and of the train-mode
forward+backward (value and gradient of a loss, batch statistics updated), then both timed
interleaved (min and median of `repeat` runs), with the ratio archlang / hand-written
(target <= 1.02).

Run: .venv/bin/python bench/flax_speed.py [--quick] [--batch N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import flax_reference  # noqa: E402
from timing import machine, side_by_side  # noqa: E402

import archlang  # noqa: E402
from archlang.backends.flax import build  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def fill(model: nnx.Module) -> None:
    """Deterministic weights, a function of each variable's path and shape only, so that two
    models with the same paths get the same weights (and no random initializer is compiled)."""
    for path, var in nnx.iter_graph(model):
        if not isinstance(var, nnx.Variable):
            continue
        value = var.get_value()
        if not jnp.issubdtype(value.dtype, jnp.floating):  # counters (num_batches_tracked)
            var.set_value(jnp.zeros(value.shape, value.dtype))
            continue
        name = ".".join(map(str, path))
        leaf, shape = name.rsplit(".", 1)[-1], tuple(value.shape)
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        if leaf == "kernel":
            w = rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:-1])), shape)
        elif leaf == "var":
            w = rng.uniform(0.5, 1.5, shape)
        elif leaf == "scale":
            w = 1.0 + 0.1 * rng.normal(size=shape)
        else:  # biases, running means, tokens, positions
            w = 0.02 * rng.normal(size=shape)
        var.set_value(jnp.asarray(w, dtype=value.dtype))


def archlang_model(name: str) -> nnx.Module:
    graph = archlang.fix(archlang.load(ROOT / "examples" / f"{name}.arch"), {}).graph
    model = nnx.eval_shape(lambda: build(graph))
    fill(model)
    return model


def reference_model(name: str) -> nnx.Module:
    cls = {"resnet18": flax_reference.ResNet18, "vit_tiny": flax_reference.VitTiny}[name]
    model = nnx.eval_shape(lambda: cls(rngs=nnx.Rngs(0)))
    fill(model)
    return model


def programs(model: nnx.Module) -> tuple[Callable[..., Any], Callable[..., Any], Any]:
    """The eval forward and the train-mode forward+backward as pure jitted functions of the
    model's state (no nnx.jit bookkeeping per call, which would time Python, not XLA)."""
    model.eval()
    eval_def, eval_state = nnx.split(model)
    model.train()
    train_def, params, rest = nnx.split(model, nnx.Param, ...)

    @jax.jit
    def forward(state: Any, x: jax.Array) -> jax.Array:
        return nnx.merge(eval_def, state)(x)

    @jax.jit
    def forward_backward(params: Any, rest: Any, x: jax.Array) -> tuple[Any, Any]:
        m = nnx.merge(train_def, params, rest)
        _, grads = nnx.value_and_grad(lambda m: jnp.mean(jnp.square(m(x))))(m)
        return grads, nnx.state(m, nnx.BatchStat)

    return forward, forward_backward, (eval_state, params, rest)


def compile_times(fn: Callable[..., Any], *args: Any) -> tuple[float, float, Any]:
    start = time.perf_counter()
    lowered = fn.lower(*args)
    traced = time.perf_counter() - start
    start = time.perf_counter()
    compiled = lowered.compile()
    return traced, time.perf_counter() - start, compiled


def bench(name: str, batch: int, repeat: int) -> None:
    ours, theirs = archlang_model(name), reference_model(name)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, 3, 224, 224)), jnp.float32)
    runs = {}
    for who, model in (("archlang", ours), ("hand-written", theirs)):
        forward, forward_backward, (state, params, rest) = programs(model)
        t1, c1, fwd = compile_times(forward, state, x)
        t2, c2, fwd_bwd = compile_times(forward_backward, params, rest, x)
        print(f"{name} {who:12s}  trace+compile: forward {t1:.2f}+{c1:.2f} s, "
              f"forward+backward {t2:.2f}+{c2:.2f} s")
        runs[who] = (lambda f=fwd, s=state: f(s, x).block_until_ready(),
                     lambda f=fwd_bwd, p=params, r=rest: jax.block_until_ready(f(p, r, x)))
    a, b = runs["archlang"][0](), runs["hand-written"][0]()
    err = float(jnp.abs(a - b).max())
    assert err < 1e-3 * max(1.0, float(jnp.abs(b).max())), f"the two {name}s differ by {err}"
    print(f"{name}: same weights, eval outputs (max |y| = {float(jnp.abs(b).max()):.2f}) "
          f"agree to {err:.1e}")
    runs["archlang"][1](), runs["hand-written"][1]()  # warm-up
    side_by_side(f"{name}: jit forward (eval), batch {batch}", runs["archlang"][0],
                 runs["hand-written"][0], repeat=repeat, target=1.02)
    side_by_side(f"{name}: jit forward+backward (train), batch {batch}", runs["archlang"][1],
                 runs["hand-written"][1], repeat=repeat, target=1.02)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    print(f"machine: {machine()}, jax {jax.__version__} on {jax.devices()[0].platform}, "
          f"flax {__import__('flax').__version__}")
    for model_name in ("resnet18", "vit_tiny"):
        bench(model_name, args.batch, repeat=3 if args.quick else 9)
