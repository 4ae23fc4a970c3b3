"""Search strategies (random, regularized evolution, MCTS, SMBO) behind one protocol.

    from archlang.solvers import get_strategy
    strategy = get_strategy("mcts")
    strategy.setup(space, seed=0)
    values = strategy.propose()
    strategy.feedback(values, Result("ok", 0.93))

Each strategy module is imported only when asked for, and none imports numpy or torch:
`archlang.solvers` stays cheap to import (the MILP solver lives in `archlang.solvers.milp`).
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Result, Strategy

# name -> (module, class); aliases share an entry
STRATEGIES: dict[str, tuple[str, str]] = {
    "random": ("random_search", "RandomSearch"),
    "evolution": ("evolution", "RegularizedEvolution"),
    "mcts": ("mcts", "MCTS"),
    "smbo": ("smbo", "TPE"),
}
ALIASES = {"re": "evolution", "regularized-evolution": "evolution", "tpe": "smbo"}

__all__ = ["STRATEGIES", "Result", "Strategy", "get_strategy", "strategy_names"]


def strategy_names() -> list[str]:
    return list(STRATEGIES)


def get_strategy(name: str, **options: Any) -> Strategy:
    """A fresh strategy by name; options go to its constructor (e.g. population=20)."""
    key = ALIASES.get(name, name)
    if key not in STRATEGIES:
        raise ValueError(f"unknown strategy '{name}' (known: {', '.join(STRATEGIES)})")
    module, cls = STRATEGIES[key]
    package = __name__  # "archlang.solvers" when installed, "solvers" from the source tree
    return getattr(importlib.import_module(f"{package}.{module}"), cls)(**options)
