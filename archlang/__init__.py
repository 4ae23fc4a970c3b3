"""archlang: a compiler for neural-network architectures and architecture search spaces.

The public API lives in :mod:`archlang.api` and is re-exported here. Importing archlang imports
no framework: torch (or jax) is loaded only when a model is built or emitted.
"""

from archlang.api import (
    ArchError,
    Architecture,
    Decision,
    Space,
    assignment_from_json,
    assignment_hash,
    assignment_to_json,
    check,
    fix,
    load,
    loads,
    sample,
    size,
    space_from_json,
    space_to_json,
)

__version__ = "0.1.0"

__all__ = [
    "Architecture", "ArchError", "Decision", "Space", "assignment_from_json", "assignment_hash",
    "assignment_to_json", "check", "fix", "load", "loads", "sample", "size", "space_from_json",
    "space_to_json",
]
