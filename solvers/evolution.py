"""Regularized (aging) evolution, Real et al. 2019, on conditional spaces.

The population holds the last `population` successful trials. Until it is full, proposals
are random. Then a tournament of `tournament` members drawn with replacement picks the best
as parent; the child changes ONE active decision of the parent to another value, drops the
decisions that change made inactive (`canonical`) and samples the ones it made active. The
oldest member, not the worst, leaves when a child arrives: that is the regularization.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from archlang.ir import decisions as D
from archlang.ir import space as S

from .base import Assignment, BaseStrategy, Result, fill, pack, unpack


def mutate(space: S.Space, parent: Mapping[str, Any], rng) -> Assignment:
    """Change one active decision that has another value to take; repair the rest."""
    movable = [d for d in space.decisions
               if d.name in parent and (d.domain.size > 1)]
    if not movable:
        return dict(parent)
    decision = movable[int(rng.random() * len(movable))]
    old = parent[decision.name]
    value = old
    if isinstance(decision.domain, S.FloatRange):
        value = decision.domain.sample(rng)
    else:
        values = [v for v in decision.domain.enumerate() if v != old]
        value = values[int(rng.random() * len(values))]
    child = D.canonical(space, {**parent, decision.name: value})
    return fill(space, child, rng)


class RegularizedEvolution(BaseStrategy):
    name = "evolution"

    def __init__(self, population: int = 20, tournament: int = 5, **options: Any):
        super().__init__(**options)
        if population < 1 or not 1 <= tournament:
            raise ValueError("population and tournament must be at least 1")
        self.population_size = population
        self.tournament = tournament

    def setup(self, space: S.Space, seed: int) -> None:
        super().setup(space, seed)
        self.population: deque[tuple[Assignment, float]] = deque()

    def _propose(self) -> Assignment:
        if len(self.population) < self.population_size:
            return D.sample(self.space, self.rng)
        n = len(self.population)
        picks = [self.population[int(self.rng.random() * n)] for _ in range(self.tournament)]
        parent = max(picks, key=lambda member: member[1])[0]
        return mutate(self.space, parent, self.rng)

    def _feedback(self, assignment: Assignment, result: Result) -> None:
        if not result.ok:  # failed or infeasible: never a parent
            return
        self.population.append((assignment, float(result.score)))
        while len(self.population) > self.population_size:
            self.population.popleft()

    def _state(self) -> dict[str, Any]:
        return {"population": [[pack(self.space, a), s] for a, s in self.population]}

    def _restore(self, own: Mapping[str, Any]) -> None:
        self.population = deque((unpack(self.space, a), s) for a, s in own["population"])
