"""Monte Carlo tree search over the sequence of active decisions (DeepArchitect, sec. 4.2).

A path from the root assigns the decisions that are active, one after the other in condition
order: which decision a node decides depends on the values above it, so branches of a
`one_of` or the repetitions of a `repeat` grow different subtrees. A proposal walks down the
expanded tree with UCT, then completes the assignment with a rollout. Feedback updates the
statistics along the path and expands the tree by `expand` nodes along the rollout (0: the
whole rollout, as DeepArchitect's searcher does). A continuous decision is cut into `bins`
equal intervals (in log space for `loguniform`); the tree picks an interval and the value is
drawn inside it.

With a few hundred trials, most nodes below the first levels are visited once or never, so
plain UCT (every child tried once before any is preferred) is random search there. Three
things make the statistics go further:

- Rewards are ranks: a score's percentile among the scores received so far (0 the worst, 1 the
  best, ties averaged), so the reward scale is the same for accuracies and for negated MACs,
  and a few outliers do not squash the rest. A failed or infeasible trial scores 0.
- RAVE (all moves as first, Gelly & Silver 2007): every (decision, value) keeps the mean reward
  of all trials that gave the decision that value, wherever in the tree. A child's value
  blends its own mean with its move's mean, weight beta = sqrt(k / (3 n + k)) on the move's
  (k = `rave`; 0 turns RAVE off), so an unvisited child is judged by its move, not tried
  blindly, and the node statistics take over as visits accumulate. The UCT bonus is
  `exploration * sqrt(ln N / (n + 1))`.
- The rollout is guided by the same move statistics (MAST, Finnsson & Bjoernsson 2008): each
  value is drawn with probability proportional to exp(move mean / `temperature`); moves never
  tried count as average (0.5).

Every mean (a node's, a move's) is shrunk towards 0.5 by `prior` pseudo-trials, so that one
unlucky early trial (the second trial's rank is 0 or 1) cannot bury a value for good. The
defaults (exploration 0.3, rave 100, temperature 0.1, prior 1) were tuned on the validation
accuracy of NAS-Bench-Graph's cora and citeseer with seeds other than the benchmark's.

A fully decided discrete subtree whose leaves have all been proposed is marked exhausted and
skipped, so the walk does not keep returning to points it has already tried.

The tree is a function of the feedback received, in order, so the state saves that history
(compactly) rather than the tree, and `restore` replays it: a checkpoint stays small
(about 83k nodes after 1,000 trials on an 83-decision space would be megabytes of JSON).
"""

from __future__ import annotations

import bisect
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

    def __init__(self, exploration: float = 0.3, bins: int = 4, rave: float = 100.0,
                 temperature: float = 0.1, expand: int = 0, prior: float = 1.0,
                 **options: Any):
        super().__init__(**options)
        if exploration < 0 or rave < 0 or temperature <= 0 or expand < 0 or bins < 1:
            raise ValueError("mcts: exploration, rave, expand >= 0; temperature > 0; bins >= 1")
        self.c = exploration
        self.bins = bins
        self.rave = rave
        self.temperature = temperature
        self.expand = expand
        self.prior = prior

    def setup(self, space: S.Space, seed: int) -> None:
        super().setup(space, seed)
        self.root = _Node()
        self.scores: list[float] = []  # sorted ok scores, for ranks
        # per decision: [visits per value index, reward total per value index] (RAVE/AMAF)
        self.moves: dict[str, list[list[float]]] = {}
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

    def _move(self, decision: S.Decision) -> list[list[float]]:
        stats = self.moves.get(decision.name)
        if stats is None:
            k = self._arity(decision)
            stats = self.moves[decision.name] = [[0] * k, [0.0] * k]
        return stats

    # ---- proposing

    def _pick(self, node: _Node, decision: S.Decision) -> int:
        """UCT with RAVE among the children of `node` that are not done; -1 if none."""
        kids = node.children
        assert kids is not None
        counts, totals = self._move(decision)
        log_n = math.log(node.n + 1)
        k, a = self.rave, self.prior
        best, best_i = -math.inf, -1
        for i, kid in enumerate(kids):
            if kid.done:
                continue
            move = (totals[i] + a / 2) / (counts[i] + a) if counts[i] else 0.5
            if kid.n == 0:
                mean = move if k else 0.5
            else:
                beta = math.sqrt(k / (3 * kid.n + k)) if k else 0.0
                mean = beta * move + (1 - beta) * (kid.total + a / 2) / (kid.n + a)
            # a random tie-break far below any real difference
            score = mean + self.c * math.sqrt(log_n / (kid.n + 1)) + 1e-9 * self.rng.random()
            if score > best:
                best, best_i = score, i
        return best_i

    def _roll(self, decision: S.Decision) -> int:
        """A rollout's value index: softmax of the move means (uniform without RAVE)."""
        if not self.rave:
            return int(self.rng.random() * self._arity(decision))
        counts, totals = self._move(decision)
        t, a = self.temperature, self.prior
        weights = [math.exp((totals[i] + a / 2) / (counts[i] + a) / t) if counts[i] else
                   math.exp(0.5 / t) for i in range(len(counts))]
        x = self.rng.random() * sum(weights)
        for i, w in enumerate(weights):
            x -= w
            if x < 0:
                return i
        return len(weights) - 1

    def _propose(self) -> Assignment:
        values: Assignment = {}
        node: _Node | None = self.root
        path: list[_Node] = [self.root]
        continuous = False
        for decision in active_iter(self.space, values):
            continuous |= isinstance(decision.domain, S.FloatRange)
            i = -1
            if node is not None and node.children is not None and not node.done:
                i = self._pick(node, decision)
                if i >= 0:
                    node = node.children[i]
                    path.append(node)
            if i < 0:  # below the tree, or everything below is done: a rollout
                node = None
                i = self._roll(decision)
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

    def _reward(self, result: Result) -> float:
        """The score's percentile among the ok scores so far (its own included); 0 if not ok."""
        if not result.ok:
            return 0.0
        score = float(result.score)
        bisect.insort(self.scores, score)
        m = len(self.scores)
        if m == 1:
            return 0.5
        below = bisect.bisect_left(self.scores, score)
        ties = bisect.bisect_right(self.scores, score) - below
        return (below + (ties - 1) / 2) / (m - 1)

    def _learn(self, assignment: Assignment, result: Result) -> None:
        reward = self._reward(result)
        node: _Node | None = self.root
        self.root.n += 1
        self.root.total += reward
        path = [self.root]
        values: Assignment = {}
        continuous = False
        grown = 0
        for decision in active_iter(self.space, values):
            value = assignment[decision.name]
            values[decision.name] = value
            continuous |= isinstance(decision.domain, S.FloatRange)
            i = self._index(decision, value)
            counts, totals = self._move(decision)
            counts[i] += 1
            totals[i] += reward
            if node is None:
                continue
            if node.children is None:  # expand along the rollout
                if self.expand and grown >= self.expand:
                    node = None
                    continue
                node.children = [_Node() for _ in range(self._arity(decision))]
                grown += 1
            node = node.children[i]
            node.n += 1
            node.total += reward
            path.append(node)
        if node is not None and not continuous and not node.done:
            node.done = True
            self._mark_done(path)

    def _state(self) -> dict[str, Any]:
        return {"history": self.history}

    def _restore(self, own: Mapping[str, Any]) -> None:
        self.root, self.scores, self.moves = _Node(), [], {}
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
