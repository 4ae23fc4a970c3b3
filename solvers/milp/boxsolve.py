"""The driver of the box branch and bound (`boxbb.py`) on full-size staged problems: incumbent
phases (a heuristic start, exact stage moves, a large neighbourhood, pair moves, new passes
from other starts, a depth-profile search), then the global box search whose bound is the
certificate.

With two or more threads the two halves run at once: a second process (`_incumbent_worker`)
runs the incumbent phases and sends the point each phase ends with to this one, which spends
the whole time limit bounding boxes and adopts the points that are better; the incumbents it
finds go the other way. The best-first search lowers its bound whether or not it knows a good
incumbent (the box it opens next is the one with the largest bound either way), so bounding
from the first second loses little and gains the 65 % of the limit that the incumbent phases
take on one core. After WORKER_BOUNDS_FROM of the limit (at most WORKER_PHASES_AT_MOST
seconds) the second process bounds too: the first deals it half of the open boxes (one of
each two in the order of their bounds), and the answer's bound is the larger of the two
searches' bounds.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from archlang.ir import space as S
from archlang.solvers.milp.staged import Point, Staged

# Shares of a pass's time by which the incumbent's phases stop: the large neighbourhood,
# pair moves, triple moves (`StageMoves.improve_triples`), and on one core the depth-profile
# search (a phase whose share is below the previous one's is skipped); the global box search
# has the rest of the limit. A pass lasts the time limit, at
# most PASS_SECONDS; a longer limit repeats the stage moves, neighbourhood and pair moves from
# new starts until PAIRS_UNTIL of the limit, keeping the best. One pass converges to one local
# optimum, and where it ends depends on its start far more than on its length: R50, passes of
# 20 s from eight evolutionary starts ended at 50,743-51,792, each as a pass of 60 s from the
# same start did. So passes are short and starts many: the relaxed points of the first box's
# total depths first (the Lagrangian's best point of each total, most promising total first:
# R50 51,833.2 from the total 54, above every evolutionary start), then evolutionary ones.
LNS_UNTIL = 0.35
PAIRS_UNTIL = 0.6
TRIPLES_UNTIL = 0.75
PROFILES_UNTIL = 0.65
PASS_SECONDS = 13.0
RELAXED_STARTS = 8  # totals whose relaxed points start passes
POLISH = 0.05  # share of a pass for pair moves from each incumbent the global search finds
TRIPLE_POLISH = 0.1  # and then for triple moves
PROFILE_STEPS = 16  # width steps either side of the incumbent's in a depth profile's box
PROFILE_ITERATIONS = 3  # bundle steps per box there
# With a second process the incumbent phases have WORKER_BOUNDS_FROM of the limit, at most
# WORKER_PHASES_AT_MOST seconds (on R50 with a 600-s limit, 300 s of phases found nothing
# after the first 25 s; the answer's last gain came from the box search): new passes
# until WORKER_PASSES_UNTIL of that, the depth-profile search until WORKER_UNTIL. Then the
# second process bounds half of the open boxes, handed over by the first, until the limit
# less WORKER_MARGIN seconds (for its bound to reach the first process).
WORKER_BOUNDS_FROM = 0.5
WORKER_PHASES_AT_MOST = 60.0
WORKER_PROFILES_FIRST = 0.6  # the depth-profile search after the first pass, until then
WORKER_PASSES_UNTIL = 0.85
WORKER_UNTIL = 0.95
WORKER_MARGIN = 0.3

BOXES_NAME = "staged boxes (DeepMAD-like: branch and bound over decision boxes, Lagrangian " \
    "bounds)"


class Incumbents:
    """The incumbent phases of one problem, timed from `start` within `limit` seconds.
    `found(when, point)` hears of every point a phase ends with (the progress line, and in
    the worker process the point sent on). `stretch` lengthens a pass's phases: in the worker
    they fill the limit, where on one core they end at PROFILES_UNTIL of it."""

    def __init__(self, space: S.Space, p: Staged, sense: str, boxes: Any, moves: Any,
                 limit: float, start: float, found: Callable[[str, Point], None],
                 stretch: float = 1.0,
                 inbox: Callable[[], list[Point]] = lambda: []) -> None:
        from archlang.solvers.milp.staged import spans

        self.space, self.p, self.boxes, self.moves = space, p, boxes, moves
        self.metric, self.sense = boxes.metric, sense
        self.budget = min(limit, PASS_SECONDS) * stretch  # one pass of the incumbent phases
        self.start = start
        self.found, self.inbox = found, inbox
        self.spans = spans(p, moves.tables)

    def start_point(self, seed: int) -> tuple[Point, tuple]:
        from archlang.solvers.milp.heuristic import search

        return search(self.space, self.p, self.metric, self.sense,
                      min(12.0, max(0.3, 0.2 * self.budget)), seed=seed, spans=self.spans)

    def _better_sent(self, point: Point) -> Point:
        """`point`, or a better one the bounding process has sent meanwhile."""
        for other in self.inbox():
            if self.boxes.feasible(other) and self.boxes.value(other) > self.boxes.value(point):
                point = other
        return point

    def improve(self, point: Point, begun: float, adopt: bool = True) -> Point:
        """One pass from `point`: exact stage moves; a large neighbourhood (depths,
        bottlenecks and kernels searched exactly by the box search with the widths held),
        polished by stage moves; then pair moves (two stages re-chosen at once). Each phase
        starts from the better of its predecessor's point and, with `adopt`, any the
        bounding process has sent."""
        budget, moves, boxes = self.budget, self.moves, self.boxes
        take = self._better_sent if adopt else (lambda point: point)
        point = moves.improve(take(point),
                              time.perf_counter() + max(0.2, 0.05 * budget))
        self.found("after the heuristic and stage moves", point)
        left = LNS_UNTIL * budget - (time.perf_counter() - begun)
        if left > 0:
            point = take(point)
            found = boxes.search(point, left, 0.0, iterations=6, within=boxes.around(point, 0))
            if found.point is not None:
                point = moves.improve(found.point,
                                      time.perf_counter() + max(0.2, 0.05 * budget))
            self.found("after the large neighbourhood with the widths held", point)
        point = moves.improve_pairs(take(point), begun + PAIRS_UNTIL * budget)
        self.found("after pair moves", point)
        point = moves.improve_triples(take(point), begun + TRIPLES_UNTIL * budget)
        self.found("after triple moves", point)
        return point

    def relaxed_starts(self) -> list[Point]:
        """The first box's relaxed point of each total depth, the totals with the largest
        bounds first, at most RELAXED_STARTS: the Lagrangian's choice of shape for each total,
        which often breaks a budget by a little (a pass first repairs it by stage moves)."""
        import numpy as np

        from archlang.solvers.milp.boxbb import ROOT_STEPS

        boxes = self.boxes
        root = boxes.propagate(boxes.root())
        if root is None:
            return []
        r, duals = boxes.bound(root, boxes.first_duals(), -math.inf, ROOT_STEPS)
        if r is None or not isinstance(duals, dict):
            return []
        ranked = []
        for total, pi in duals.items():
            found = boxes.relax_totals(root, pi) if total is not None and total >= 0 else None
            at = np.flatnonzero(found.totals == total) if found is not None else ()
            if len(at):
                ranked.append((float(found.values[at[0]]), found.at(int(at[0])).point))
        ranked.sort(key=lambda pair: -pair[0])
        return [point for _, point in ranked[:RELAXED_STARTS]]

    def best(self, first: Point, passes_until: float, profiles_until: float,
             progress: Callable[[str], None], profiles_first: float | None = None) -> Point:
        """A pass from `first`; new passes while one fits before `passes_until` and passes
        use their time (one that ends well inside it has converged: a small problem, which
        the box search then proves fast), from the relaxed starts and then from evolutionary
        ones; then the depth-profile search until `profiles_until`. `profiles_first`: a
        depth-profile search right after the first pass, until then."""
        value = self.boxes.value
        # The first pass keeps to its own start: adopting the box search's early incumbents
        # there led R18's into a poorer basin (60-s solves: 36,344.8-36,346.1 against
        # 36,397.2-36,453.8 without; R34 48,587.1, R50 52,013.6 either way).
        incumbent = self.improve(first, self.start, adopt=False)
        seed, ran = 1, time.perf_counter() - self.start
        if profiles_first is not None:
            incumbent = _profiles(self.boxes, self.moves, self._better_sent(incumbent),
                                  profiles_first, self.budget, progress, self.found)
        pass_time = TRIPLES_UNTIL * self.budget
        starts: list[Point] | None = None
        while ran >= 0.5 * pass_time and time.perf_counter() + pass_time <= passes_until:
            begun = time.perf_counter()
            if starts is None:
                starts = self.relaxed_starts()
            if starts:
                point = self.moves.improve(starts.pop(0), begun + max(0.2, 0.05 * self.budget))
                if not self.moves.meets(point):  # no stage move repairs it: the next start
                    continue
                label = "a relaxed start"
            else:
                point, rank = self.start_point(seed)
                label = f"evolutionary start {seed}"
                seed += 1
                if rank[0] != 0.0:  # this start found nothing feasible: try the next
                    continue
            point = self.improve(point, begun)
            ran = time.perf_counter() - begun
            if value(point) > value(incumbent):
                incumbent = point
            self.found(f"after a pass from {label} (the best of all passes)", incumbent)
        return _profiles(self.boxes, self.moves, self._better_sent(incumbent),
                         profiles_until, self.budget, progress, self.found)


def solve_boxes(space: S.Space, p: Staged, settings: Any, check: Any,
                progress: Any = lambda text: None, start: float | None = None) -> Any:
    """Box branch and bound from polished incumbents; `Unsupported` when the problem is
    outside what the box bound prices (then the HiGHS model of `deepmad.py` is used).
    `settings.threads >= 2`: the incumbent phases in a second process (module docstring)."""
    from archlang.solvers.milp.boxbb import BoxSearch, Outcome
    from archlang.solvers.milp.conflicts import beyond_budgets
    from archlang.solvers.milp.heuristic import StageMoves
    from archlang.solvers.milp.program import objective_of
    from archlang.solvers.milp.staged import scores, tables

    start = time.perf_counter() if start is None else start
    sense, metric = objective_of(space)
    t = tables(space, p)
    boxes = BoxSearch(space, p, metric, sense, t)  # refuses what it does not price
    limit = settings.time_limit

    def infeasible() -> Any:  # proven at once: some budget is below every cost
        out = Outcome("infeasible", None, None, -math.inf, 0, time.perf_counter() - start)
        return _answer(space, p, boxes, out, check, start, settings, progress)

    # A cost (`minimize`) is searched in the units of a first point's cost, so it needs that
    # point before the box search starts: it keeps to one process.
    if settings.threads >= 2 and sense == "maximize":
        # The quick proof of infeasibility (`beyond_budgets`, 2-3 s at DeepMAD's size) is
        # the second process's, and only once its heuristic finds no feasible start: here
        # it would hold the bounding back by 5 % of a 60-s limit on every feasible problem.
        worker = _Worker(space, p, limit, start, progress, settings.gap)
        out = None
        try:
            out = boxes.search(None, max(0.5, limit - (time.perf_counter() - start)),
                               settings.gap, progress, offers=worker.offers,
                               share=worker.send, interruptible=True,
                               polish=_polisher(StageMoves(space, p, metric, sense, t),
                                                start, limit),
                               hand_over=worker.receiver,
                               # not while the second process's phases run: the points
                               # sent to them then steer them (R34's answer fell, 48,587.1
                               # -> 48,579.5-48,583.0 in three 60-s solves)
                               near_after=min(WORKER_BOUNDS_FROM * limit,
                                              WORKER_PHASES_AT_MOST))
        except ProvenInfeasible:
            pass
        finally:
            # a search that handed boxes over waits for their bound (the worker ends its
            # search by the limit); one interrupted or failed does not
            waits = out is not None and out.handed > -math.inf and out.status != "interrupted"
            late, theirs = worker.stop(start + limit + 2.0 if waits else None)
        if out is None:  # the second process proved it infeasible
            return infeasible()
        out = _merged(boxes.adopt(out, late), theirs)
        return _answer(space, p, boxes, out, check, start, settings, progress)

    moves = StageMoves(space, p, metric, sense, t)
    latest: list[Point] = []  # the best point the phases have ended with

    def found(when: str, point: Point) -> None:
        if not latest or boxes.value(point) > boxes.value(latest[0]):
            latest[:] = [point]
        _report(progress, when, p, metric, point, start)

    incumbents = Incumbents(space, p, sense, boxes, moves, limit, start, found)
    incumbent, rank = incumbents.start_point(0)
    if sense == "minimize" and rank[0] == 0.0:  # a cost: the search works in its units
        boxes = incumbents.boxes = BoxSearch(space, p, metric, sense, t,
                                             scale=max(1.0, scores(p, incumbent)[metric]))
    if rank[0] != 0.0:
        incumbent = None
        if beyond_budgets(space, p, t):
            return infeasible()
    else:
        try:
            incumbent = incumbents.best(incumbent, start + PAIRS_UNTIL * limit,
                                        start + PROFILES_UNTIL * limit, progress)
        except KeyboardInterrupt:  # before any bound: the best point so far, unbounded
            best = max([incumbent, *latest], key=boxes.value)
            out = Outcome("interrupted", best, boxes.value(best), math.inf, 0,
                          time.perf_counter() - start)
            return _answer(space, p, boxes, out, check, start, settings, progress)
        progress(f"incumbent {metric} = {scores(p, incumbent)[metric]:.6g} "
                 f"({time.perf_counter() - start:.1f} s); bounding boxes")
    left = max(0.5, limit - (time.perf_counter() - start))
    out = boxes.search(incumbent, left, settings.gap, progress,
                       polish=_polisher(moves, start, limit), interruptible=True)
    return _answer(space, p, boxes, out, check, start, settings, progress)


def _merged(out: Any, theirs: Any) -> Any:
    """The outcome of a search that handed boxes to the worker, with the worker's bound over
    them; if the worker never reported it (it failed, or was interrupted), the handed boxes
    count at the bounds they were handed with. The answer is proven only where both searches
    closed every box."""
    if out.handed == -math.inf:
        return out
    closed = ("optimal", "infeasible")
    if theirs is None:
        bound, theirs_closed, nodes = out.handed, False, 0
    else:
        bound, status, nodes = theirs
        theirs_closed = status in closed
    status = out.status
    if status in closed:
        status = ("optimal" if out.point is not None else "infeasible") if theirs_closed \
            else "time_limit"
    # the search and `adopt` keep the bound at least the answer
    bound = -math.inf if status == "infeasible" else max(out.bound, bound)
    return dataclasses.replace(out, bound=bound, status=status, nodes=out.nodes + nodes)


def _polisher(moves: Any, start: float, limit: float) -> Callable[[Point], Point]:
    """Pair moves, then triple moves, from each incumbent the global search finds, each for
    a share of a pass."""
    pass_seconds = min(limit, PASS_SECONDS)

    def polish(point: Point) -> Point:
        point = moves.improve_pairs(
            point, min(time.perf_counter() + POLISH * pass_seconds, start + limit))
        return moves.improve_triples(
            point, min(time.perf_counter() + TRIPLE_POLISH * pass_seconds, start + limit))

    return polish


def _answer(space: S.Space, p: Staged, boxes: Any, out: Any, check: Any, start: float,
            settings: Any, progress: Any) -> Any:
    """The search's outcome as a `Solution`, its point re-scored by the cost pass."""
    from archlang.solvers.milp.deepmad import CHECKED, _conflicts
    from archlang.solvers.milp.program import Solution
    from archlang.solvers.milp.staged import assignment, scores

    seconds = time.perf_counter() - start
    size = {"boxes": out.nodes}
    if out.point is None:
        status = "infeasible" if out.status == "optimal" else out.status
        return Solution(status, None, None, None, seconds, None, formulation=BOXES_NAME,
                        size=size, conflicts=_conflicts(space, p, status, settings, progress))
    chosen = assignment(p, out.point)
    metrics, broken = check(chosen)
    closed = scores(p, out.point)
    objective = out.objective / boxes.sign
    if math.isfinite(out.bound):
        bound = float(out.bound) / boxes.sign
        gap = max(0.0, out.bound - out.objective) / max(abs(out.objective), 1e-9)
    else:  # interrupted before any box was bounded
        bound = gap = None
    notes = []
    for k in CHECKED:
        if not math.isclose(closed[k], metrics.get(k, math.nan), rel_tol=1e-9, abs_tol=1e-9):
            notes.append(f"the cost pass gives {k} = {metrics.get(k)}, the closed form "
                         f"{closed[k]}")
    if broken:
        notes.append("the cost pass finds broken requirements: " + "; ".join(broken))
    return Solution(out.status, objective, bound, gap, seconds, chosen, metrics, BOXES_NAME,
                    size, notes=tuple(notes))


def _report(progress: Any, when: str, p: Staged, metric: str, point: Point,
            start: float) -> None:
    from archlang.solvers.milp.staged import scores

    progress(f"incumbent {metric} = {scores(p, point)[metric]:.6g} {when} "
             f"({time.perf_counter() - start:.1f} s)")


def _profiles(boxes: Any, moves: Any, incumbent: Point, until: float, budget: float,
              progress: Any = lambda text: None,
              found: Callable[[str, Point], None] = lambda when, point: None) -> Point:
    """Depth-profile local search: the incumbent's depth profile, then those one block away
    in one stage, each searched exactly (the box search, whose bound is exact in the widths
    once the depths are fixed) over widths within PROFILE_STEPS of the incumbent's, any
    bottleneck and kernel. Moves to the first profile that improves (its point polished by
    stage and triple moves); stops when none does."""
    p, metric = boxes.p, boxes.metric
    tried: set[tuple[int, ...]] = set()
    each = max(0.5, 0.04 * budget)
    improved = True
    while improved and time.perf_counter() < until:
        improved = False
        depths = tuple(d for d, *_ in incumbent[1])
        n = len(depths)
        # one block more or less in stage u, or one moved from stage t to stage u
        changes = [((u, step),) for u in range(n) for step in (1, -1)] + \
            [((t, -1), (u, 1)) for t, u in itertools.product(range(n), range(n)) if t != u]
        near = [depths]
        for change in changes:
            profile = list(depths)
            for i, step in change:
                profile[i] += step
            if all(d in st.depths for d, st in zip(profile, p.stages)):
                near.append(tuple(profile))
        for profile in near:
            left = until - time.perf_counter()
            if left <= 0:
                break
            if profile in tried:
                continue
            tried.add(profile)
            result = boxes.search(incumbent, min(left, 2 * each if profile == depths else each),
                                  0.0, iterations=PROFILE_ITERATIONS, root_steps=12,
                                  within=boxes.around(incumbent, PROFILE_STEPS, profile))
            if result.nodes > 1:  # one box: closed at once by the incumbent (no news)
                progress(f"depth profile {profile}: best {metric} "
                         f"{result.objective / boxes.sign:.6g}, bound "
                         f"{result.bound / boxes.sign:.6g} ({result.nodes} boxes)")
            if result.point != incumbent:  # the search returns the incumbent or a better point
                incumbent = moves.improve(result.point,
                                          time.perf_counter() + max(0.2, 0.02 * budget))
                incumbent = moves.improve_triples(
                    incumbent, time.perf_counter() + max(0.2, TRIPLE_POLISH * budget))
                found(f"in depth profile {profile}", incumbent)
                improved = True
                break
    return incumbent


class _Worker:
    """The incumbent phases in a second Python process. Started as `python -c` rather than by
    multiprocessing: spawn would re-run the caller's main module (a script without a
    `__main__` guard would solve again), and fork would copy HiGHS's thread pool without its
    threads. Two pipes of its own (HiGHS writes to stdout): the problem and the bounding
    process's incumbents go in, progress lines and the worker's points come back."""

    def __init__(self, space: S.Space, p: Staged, limit: float, start: float,
                 progress: Callable[[str], None], gap: float = 1e-4) -> None:
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        self.progress, self.gap = progress, gap
        back_read, back_write = os.pipe()
        in_read, in_write = os.pipe()
        # The worker's clock: seconds since the solve began, carried over as wall time.
        began = time.time() - (time.perf_counter() - start)
        env = {**os.environ, **dict.fromkeys(_ONE_THREAD, "1")}  # its numpy on its own core
        # this process's import path, as multiprocessing gives its children: archlang may
        # have been found through sys.path set at run time, not through the environment
        env["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER_CODE.format(in_read, back_write)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            pass_fds=(in_read, back_write), env=env,
            start_new_session=True)  # Ctrl-C is the parent's to handle; it stops the worker
        os.close(in_read)
        os.close(back_write)
        self.inbox = Connection(back_read, writable=False)
        self.outbox = Connection(in_write, readable=False)
        self.sending = threading.Lock()  # one message at a time on the pipe
        self.free = False  # the worker's incumbent phases are done: it can bound boxes
        self.handed = False
        self.result: tuple[float, str, int] | None = None  # its bound, status, boxes
        self.infeasible = False  # the worker has proven the problem infeasible
        # The problem is tens of kB, more than a pipe holds: sent from a thread so that the
        # bounding starts while the worker imports.
        threading.Thread(target=self._send, args=((space, p, limit, began),),
                         daemon=True).start()

    def send(self, point: Any, kind: str = "point") -> None:
        """Tell the worker of an incumbent found here (it goes on from the better one), or
        (kind "boxes") hand it boxes to bound."""
        self._send((kind, point))

    def _send(self, message: Any) -> None:
        with self.sending:
            try:
                self.outbox.send(message)
            except OSError:  # the worker has ended (or stop has closed the pipe)
                pass

    def receiver(self) -> Callable[[list[Any], Point | None], None] | None:
        """Once the worker is free (and only once): where the box search hands it boxes."""
        if not self.free or self.handed:
            return None

        def receive(nodes: list[Any], incumbent: Point | None) -> None:
            self.handed = True
            self.send((nodes, incumbent, self.gap), "boxes")

        return receive

    def offers(self) -> list[Point]:
        """The points sent since the last call (their progress lines are shown here).
        `ProvenInfeasible` once the worker has proven that there are none."""
        points = self._drain()
        if self.infeasible:
            raise ProvenInfeasible
        return points

    def _drain(self) -> list[Point]:
        """Read every message waiting (points returned, the rest recorded or shown)."""
        points: list[Point] = []
        try:
            while self.inbox.poll():
                self._read(self.inbox.recv(), points)
        except (EOFError, OSError):  # the worker has ended
            pass
        return points

    def _read(self, message: tuple[str, Any], points: list[Point]) -> None:
        kind, value = message
        if kind == "point":
            points.append(value)
        elif kind == "free":
            self.free = True
        elif kind == "bound":
            self.result = value
        elif kind == "infeasible":
            self.infeasible = True
        else:
            self.progress(value)

    def stop(self, wait_until: float | None = None) -> tuple[list[Point], Any]:
        """End the worker and return its last points and, if it was handed boxes, their
        bound, status and count (None if it has not reported them by `wait_until`, on this
        process's clock). It is killed even when a second Ctrl-C interrupts this."""
        import subprocess

        points: list[Point] = []
        try:
            try:
                while wait_until is not None and self.result is None and \
                        self.inbox.poll(max(0.0, wait_until - time.perf_counter())):
                    self._read(self.inbox.recv(), points)
            except (EOFError, OSError):  # the worker has ended without reporting
                pass
            try:
                self.process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            return points + self._drain(), self.result
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.inbox.close()
            self.outbox.close()


class ProvenInfeasible(Exception):
    """Raised out of the box search by `_Worker.offers`: the second process has proven the
    problem infeasible (`beyond_budgets`), so bounding it is pointless."""


_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
WORKER_CODE = "from archlang.solvers.milp.boxsolve import _incumbent_worker; " \
    "_incumbent_worker({}, {})"


def _incumbent_worker(inbox_fd: int, outbox_fd: int) -> None:
    """The second process (`_Worker`): the incumbent phases until WORKER_UNTIL of
    WORKER_BOUNDS_FROM of the limit (at most WORKER_PHASES_AT_MOST s), every point they end
    with sent to the bounding process;
    then the box search over the boxes that process hands over, until the limit (less
    WORKER_MARGIN), its bound over them sent back."""
    from multiprocessing.connection import Connection

    conn = Connection(outbox_fd, readable=False)
    inbox = Connection(inbox_fd, writable=False)
    given: list[Any] = []  # the boxes handed over, and the incumbent then

    def sent() -> list[Point]:
        points = []
        try:
            while inbox.poll():
                kind, value = inbox.recv()
                (points if kind == "point" else given).append(value)
        except (EOFError, OSError):  # the bounding process has closed its end
            pass
        return points

    try:
        space, p, limit, began = inbox.recv()
        now = time.perf_counter()
        start = now - (time.time() - began)  # the solve's start, for the progress lines
        # from here, after start-up
        phases = min(WORKER_BOUNDS_FROM * limit, WORKER_PHASES_AT_MOST)
        window = max(0.5, start + WORKER_UNTIL * phases - now)
        from archlang.solvers.milp.boxbb import BoxSearch
        from archlang.solvers.milp.heuristic import StageMoves
        from archlang.solvers.milp.program import objective_of
        from archlang.solvers.milp.staged import scores, tables

        sense, metric = objective_of(space)
        t = tables(space, p)
        boxes = BoxSearch(space, p, metric, sense, t)
        moves = StageMoves(space, p, metric, sense, t)

        def progress(text: str) -> None:
            conn.send(("progress", text))

        def found(when: str, point: Point) -> None:
            conn.send(("point", point))
            _report(progress, when, p, metric, point, start)

        incumbents = Incumbents(space, p, sense, boxes, moves, window, now, found,
                                stretch=1 / PROFILES_UNTIL, inbox=sent)
        first, rank = incumbents.start_point(0)
        best: Point | None = None
        if rank[0] == 0.0:
            # the depth-profile search first: on R34 and R50 it, not the passes from new
            # starts, lifts the first pass's answer, and the phases now end at mid-limit
            best = incumbents.best(first, now + WORKER_PASSES_UNTIL / WORKER_UNTIL * window,
                                   now + window, progress,
                                   profiles_first=now + WORKER_PROFILES_FIRST * window)
            conn.send(("point", best))
            progress(f"incumbent {metric} = {scores(p, best)[metric]:.6g} "
                     f"({time.perf_counter() - start:.1f} s): the incumbent phases are done")
        else:
            progress("the heuristic found no feasible start")
            from archlang.solvers.milp.conflicts import beyond_budgets

            if beyond_budgets(space, p, t):
                conn.send(("infeasible", None))
                return
        _bound_handed(boxes, conn, inbox, sent, given, best, start + limit - WORKER_MARGIN,
                      progress, _polisher(moves, start, limit))
    except (EOFError, OSError):  # the bounding process has ended (its pipes are closed)
        pass
    except Exception as exc:  # noqa: BLE001 -- the bounding process goes on without us
        try:
            conn.send(("progress", f"the incumbent process failed ({type(exc).__name__}: "
                                   f"{exc}); the box search goes on alone"))
        except OSError:
            pass
    finally:
        conn.close()
        inbox.close()


def _bound_handed(boxes: Any, conn: Any, inbox: Any, sent: Callable[[], list[Point]],
                  given: list[Any], best: Point | None, end: float,
                  progress: Callable[[str], None],
                  polish: Callable[[Point], Point] | None = None) -> None:
    """The worker, free: says so, waits for the boxes the bounding process hands over, and
    bounds them with the same best-first search until `end` (polishing its incumbents as
    the first process does); sends back their bound, status and count (and, as the phases
    did, every incumbent it finds)."""
    conn.send(("free", None))
    points: list[Point] = []
    while not given and time.perf_counter() < end:
        if inbox.poll(min(0.05, max(0.0, end - time.perf_counter()))):
            points += sent()
    if not given:
        return
    nodes, theirs, gap = given[0]
    points += [point for point in (best, theirs) if point is not None]
    feasible = [point for point in points if boxes.feasible(point)]
    incumbent = max(feasible, key=boxes.value) if feasible else None
    out = boxes.search(incumbent, max(0.0, end - time.perf_counter()), gap,
                       lambda text: progress(f"second process: {text}"), offers=sent,
                       share=lambda point: conn.send(("point", point)), opened=nodes,
                       polish=polish)
    conn.send(("bound", (out.bound, out.status, out.nodes)))


__all__ = ["solve_boxes", "Incumbents", "BOXES_NAME"]
