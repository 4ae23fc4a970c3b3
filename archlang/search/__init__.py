"""Search: strategies propose, evaluators measure, the trial store remembers.

    from archlang.search import SearchConfig, run_search
    result = run_search(SearchConfig("net.arch", strategy="mcts", budget=100, evaluator="train"))
    print(result.best.assignment, result.best.metrics["accuracy"])

The names below are loaded on first use, so that `archlang --help` (which imports
`archlang.search.cli`) stays fast; nothing here imports torch, ray or matplotlib until a search
or a report runs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Progress": "runner", "SearchConfig": "runner", "SearchResult": "runner",
    "run_search": "runner", "TrialRecord": "store", "TrialStore": "store",
    "assignment_from_db": "store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
