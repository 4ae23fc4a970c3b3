"""Monte Carlo tree search over the sequence of active decisions (DeepArchitect, sec. 4.2).

A path from the root assigns the decisions that are active, one after the other in condition
order: which decision a node decides depends on the values above it, so branches of a
`one_of` or the repetitions of a `repeat` grow different subtrees. A proposal walks down the
expanded tree with UCT (unvisited children first, at random), then completes the assignment
with a random rollout. Feedback updates the statistics along the path and expands the tree
along the rollout, as DeepArchitect's searcher does. A continuous decision is cut into `bins`
equal intervals (in log space for `loguniform`); the tree picks an interval and the value is
drawn inside it. Rewards are rescaled to [0, 1] by the best and worst scores seen so far, so
the exploration constant means the same for accuracies and for negated MACs.

A fully decided discrete subtree whose leaves have all been proposed is marked exhausted and
skipped, so the walk does not keep returning to points it has already tried.

The tree is a function of the feedback received, in order, so the state saves that history
(compactly) rather than the tree, and `restore` replays it: a checkpoint stays small
(about 83k nodes after 1,000 trials on an 83-decision space would be megabytes of JSON).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from archlang.ir import space as S

from .base import Assignment, BaseStrategy, Result, active_iter, pack, unpack


class _Node:
    __slots__ = ("n", "total", "children", "done")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.children: list[_Node] | None = None  # None until expanded
        self.done = False  # every point below has been proposed


class MCTS(BaseStrategy):
    name = "mcts"

    def __init__(self, exploration: float = math.sqrt(2), bins: int = 4, **options: Any):
        super().__init__(**options)
        self.c = exploration
        self.bins = bins

    def setup(self, space: S.Space, seed: int) -> None:
        super().setup(space, seed)
        self.root = _Node()
        self.lo = math.inf  # worst and best scores seen, to rescale rewards
        self.hi = -math.inf
        # per feedback [packed assignment, score or None]; per leaf marked at proposal [packed]
        self.history: list[list[Any]] = []

    # ---- the tree's view of a decision: children are value indices or intervals

    def _arity(self, decision: S.Decision) -> int:
        d = decision.domain
        return self.bins if isinstance(d, S.FloatRange) else d.size

    def _value(self, decision: S.Decision, index: int) -> Any:
        d = decision.domain
        if not isinstance(d, S.FloatRange):
            return d.enumerate()[index]
        lo, hi = (math.log(d.lo), math.log(d.hi)) if d.log else (d.lo, d.hi)
        x = lo + (hi - lo) * (index + self.rng.random()) / self.bins
        x = math.exp(x) if d.log else x
        return min(max(x, d.lo), d.hi)  # exp/log round-off must not leave the domain

    def _index(self, decision: S.Decision, value: Any) -> int:
        d = decision.domain
        if not isinstance(d, S.FloatRange):
            return d.enumerate().index(value)
        lo, hi = (math.log(d.lo), math.log(d.hi)) if d.log else (d.lo, d.hi)
        x = math.log(value) if d.log else value
        if hi <= lo:
            return 0
        return min(int((x - lo) / (hi - lo) * self.bins), self.bins - 1)

    # ---- proposing

    def _pick(self, node: _Node) -> int:
        kids = node.children
        assert kids is not None
        fresh = [i for i, k in enumerate(kids) if k.n == 0 and not k.done]
        if fresh:
            return fresh[int(self.rng.random() * len(fresh))]
        span = self.hi - self.lo if self.hi > self.lo else 1.0
        log_n = math.log(max(node.n, 1))
        best, best_i = -math.inf, -1
        for i, k in enumerate(kids):
            if k.done:
                continue
            mean = (k.total / k.n - self.lo) / span if k.n else 0.0
            score = mean + self.c * math.sqrt(log_n / max(k.n, 1))
            if score > best:
                best, best_i = score, i
        return best_i

    def _propose(self) -> Assignment:
        values: Assignment = {}
        node: _Node | None = self.root
        path: list[_Node] = [self.root]
        continuous = False
        for decision in active_iter(self.space, values):
            continuous |= isinstance(decision.domain, S.FloatRange)
            if node is not None and node.children is not None and not node.done:
                i = self._pick(node)
                if i < 0:  # everything below is done: a rollout (the base de-duplicates)
                    node = None
                    i = int(self.rng.random() * self._arity(decision))
                else:
                    node = node.children[i]
                    path.append(node)
            else:
                node = None  # below the tree: random rollout
                i = int(self.rng.random() * self._arity(decision))
            values[decision.name] = self._value(decision, i)
        if node is not None and not continuous:
            # The whole point lies in the tree: once proposed, its leaf is done. Recorded in
            # the history, because replaying the feedback alone would not redo it.
            node.done = True
            self._mark_done(path)
            self.history.append([pack(self.space, values)])
        return values

    def _mark_done(self, path: list[_Node]) -> None:
        for parent in reversed(path[:-1]):
            if parent.children and all(k.done for k in parent.children):
                parent.done = True
            else:
                break

    # ---- learning

    def _feedback(self, assignment: Assignment, result: Result) -> None:
        self.history.append([pack(self.space, assignment),
                             float(result.score) if result.ok else None])
        self._learn(assignment, result)

    def _learn(self, assignment: Assignment, result: Result) -> None:
        if result.ok:
            reward = float(result.score)
            self.lo, self.hi = min(self.lo, reward), max(self.hi, reward)
        else:
            reward = self.lo if self.lo < math.inf else 0.0  # as bad as the worst seen
        node = self.root
        node.n += 1
        node.total += reward
        path = [node]
        values: Assignment = {}
        continuous = False
        for decision in active_iter(self.space, values):
            values[decision.name] = assignment[decision.name]
            continuous |= isinstance(decision.domain, S.FloatRange)
            if node.children is None:  # expand along the rollout
                node.children = [_Node() for _ in range(self._arity(decision))]
            node = node.children[self._index(decision, assignment[decision.name])]
            node.n += 1
            node.total += reward
            path.append(node)
        if not continuous and not node.done:
            node.done = True
            self._mark_done(path)

    def _state(self) -> dict[str, Any]:
        return {"history": self.history}

    def _restore(self, own: Mapping[str, Any]) -> None:
        self.root, self.lo, self.hi = _Node(), math.inf, -math.inf
        self.history = [list(h) for h in own["history"]]
        for event in self.history:
            values = unpack(self.space, event[0])
            if len(event) == 1:
                self._mark(values)
            else:
                self._learn(values, Result("ok", event[1]) if event[1] is not None
                            else Result("failed"))

    def _mark(self, assignment: Assignment) -> None:
        """Redo a proposal's mark: the leaf of `assignment`, which lies in the tree."""
        node, path, values = self.root, [self.root], {}
        for decision in active_iter(self.space, values):
            values[decision.name] = assignment[decision.name]
            assert node.children is not None, "a marked point lies in the tree"
            node = node.children[self._index(decision, assignment[decision.name])]
            path.append(node)
        node.done = True
        self._mark_done(path)
