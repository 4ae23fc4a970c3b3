"""Random search: every active decision drawn uniformly, in condition order.

The baseline every other strategy must beat. Conditional spaces are handled by the core's
`sample`, which only draws a decision once the decisions its condition reads are drawn.
"""

from __future__ import annotations

from .base import BaseStrategy


class RandomSearch(BaseStrategy):
    name = "random"
