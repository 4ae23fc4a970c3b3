"""The PyTorch backend: a fixed architecture as a ``torch.nn.Module`` or as standalone source.

    module = build(graph)   # module(*inputs), each input with a leading batch dimension
    text = emit(graph)      # a Python file that imports only torch
"""

from .build import BUILDERS, GraphModule, build
from .emit import emit

__all__ = ["BUILDERS", "GraphModule", "build", "emit"]
