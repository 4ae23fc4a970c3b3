"""The JAX/Flax backend: a fixed architecture as a ``flax.nnx.Module`` or as standalone source.

    model = build(graph)    # model(*inputs): the same batch-first NCHW / (B, N, D) / (B, D)
                            # inputs the torch backend takes; NHWC inside
    text = emit(graph)      # a Python file that imports only jax and flax

Weights move between this backend and the torch one with :mod:`.transfer`.
"""

from .build import BUILDERS, GraphModel, build
from .emit import emit

__all__ = ["BUILDERS", "GraphModel", "build", "emit"]
