"""A one-screen check that the torch and flax builds of an architecture are the same model:
parameter counts, outputs with the torch weights copied over, and the weights copied back.

``archlang.demo`` prints ``parity_report(arch)`` for one example (needs torch and jax).
"""

from __future__ import annotations

import numpy as np

from archlang.ir.graph import Graph

from .transfer import flax_to_torch, from_torch


def parity_report(arch: object, batch: int = 2, seed: int = 0) -> str:
    """Build ``arch`` (an Architecture, or a Graph) with both backends, copy torch's random
    weights into the flax module, and compare; the text says what was compared and how close."""
    import jax
    import jax.numpy as jnp
    import torch
    from flax import nnx

    from archlang.backends.torch import build as torch_build

    graph: Graph = arch if isinstance(arch, Graph) else arch.graph  # type: ignore[attr-defined]
    torch.manual_seed(seed)
    reference = torch_build(graph).eval()
    model = from_torch(reference.state_dict(), graph)
    model.eval()

    ops = sum(layer.params for layer in graph.layers)
    torch_count = sum(p.numel() for p in reference.parameters())
    flax_count = sum(int(np.prod(v.shape))
                     for v in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)))

    gen = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 10, (batch, *lay.shape), generator=gen)
              if lay.attrs.get("dtype") == "int" else torch.randn((batch, *lay.shape), generator=gen)
              for lay in graph.input_layers()]
    with torch.no_grad():
        want = reference(*inputs).numpy()
    got = np.asarray(nnx.jit(lambda m, *xs: m(*xs))(model, *(jnp.asarray(x.numpy())
                                                            for x in inputs)))
    err = float(np.abs(got - want).max())
    back = flax_to_torch(model, graph)
    state = reference.state_dict()
    same = list(back) == list(state) and all(torch.equal(back[k], state[k]) for k in state)

    counts_ok = ops == torch_count == flax_count
    lines = [
        f"flax parity of {graph.name} (torch weights copied into flax, eval mode, batch {batch}):",
        f"  parameters   archlang {ops:,}  torch {torch_count:,}  flax {flax_count:,}  "
        + ("ok" if counts_ok else "MISMATCH"),
        f"  outputs      max |flax - torch| = {err:.1e} over {got.size:,} values  "
        + ("ok (<= 1e-4)" if err <= 1e-4 else "ABOVE 1e-4"),
        f"  round trip   flax -> torch state_dict {'identical' if same else 'DIFFERS'} "
        f"({len(state)} tensors)",
    ]
    return "\n".join(lines)
