"""The search loop: propose, check constraints from exact costs, evaluate, record, learn.

The order of strategy calls depends only on (spec, strategy, seed, workers), never on timing:
`workers` trials are kept in flight, and results are fed back to the strategy in proposal
order (a result that arrives early is committed to the store at once, but waits for its turn
to be fed back). So a search gives the same trials on any executor, and a resumed search
continues exactly as an uninterrupted one would.

Crash safety: every finished trial is committed when it finishes. After each feedback the
runner checkpoints the strategy's state, the next trial number and the trials in flight. On
`--resume` it restores the checkpoint; in-flight trials that finished meanwhile are taken from
the store, the others are evaluated again (they never finished); trials committed after the
checkpoint are matched by number when the restored strategy proposes them again. So no
finished trial is lost and none is evaluated twice.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archlang import api
from archlang.errors import ArchError
from archlang.ir import decisions as D
from archlang.search.evaluate import Job, Outcome, resolve_evaluator, trial_seed
from archlang.search.objectives import Objectives, objectives_of, oriented, pareto_front
from archlang.search.store import RunInfo, TrialRecord, TrialStore, best_trial, text_hash
from archlang.solvers import get_strategy
from archlang.solvers.base import Result, from_json, jsonable

# Stop when proposals keep repeating recorded points (an exhausted discrete space).
_DUPLICATE_STREAK = 64
# The most of a search's time that saving strategy checkpoints may take.
_CHECKPOINT_SHARE = 0.05


@dataclass(frozen=True)
class SearchConfig:
    spec: str
    strategy: str = "random"
    budget: int = 20  # evaluated trials (ok or failed); infeasible points do not count
    evaluator: str = "train"
    seed: int = 0
    db: str = "runs.sqlite"
    resume: bool = False
    workers: int = 1
    executor: str = "local"  # "local" | "inprocess" | "ray"
    address: str | None = None
    strategy_options: Mapping[str, Any] = field(default_factory=dict)
    evaluator_options: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)  # --param overrides
    arch: str | None = None
    max_infeasible: int | None = None  # default 20 x budget + 1000


@dataclass(frozen=True)
class Progress:
    record: TrialRecord
    evaluated: int
    budget: int
    best: TrialRecord | None
    started: float


@dataclass(frozen=True)
class SearchResult:
    run: RunInfo
    trials: list[TrialRecord]
    best: TrialRecord | None
    front: list[TrialRecord]  # the Pareto front (ok trials) when there are two objectives
    stopped: str  # "budget" | "exhausted" | "infeasible"
    db: Path


@dataclass
class _Slot:
    number: int
    assignment: dict[str, Any]
    hash: str
    proposed: float
    record: TrialRecord | None = None
    costs: dict[str, float] | None = None  # exact costs, computed before evaluation


def result_of(record: TrialRecord) -> Result:
    return Result(record.status, record.score if record.status == "ok" else None,
                  record.metrics)


def pareto_records(records: list[TrialRecord], objectives: Objectives) -> list[TrialRecord]:
    ok = [r for r in records if r.status == "ok"]
    points = [oriented(r.metrics, objectives) for r in ok]
    return [ok[i] for i in pareto_front(points)]


class Search:
    """One search run; `run()` drives it to its budget (or resumes it)."""

    def __init__(self, config: SearchConfig, evaluator: Any = None):
        if config.budget < 0:
            raise ArchError("--budget must be non-negative")
        self.config = config
        path = Path(config.spec)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ArchError(f"cannot read '{config.spec}': {exc.strerror}") from None
        self.space = api.load(path, params=dict(config.params), arch=config.arch)
        self.spec_path = str(path.resolve())
        # --param and --arch change the space, so they are part of its identity
        extra = json.dumps({"params": dict(config.params), "arch": config.arch}, sort_keys=True)
        self.spec_hash = text_hash(text + "\0" + extra)
        self.objectives = objectives_of(self.space)
        self.evaluator = evaluator  # resolved in run(): a resumed run keeps its options

    # ---------------------------------------------------------------- the loop

    def run(self, on_trial: Callable[[Progress], None] | None = None) -> SearchResult:
        from archlang.search.executors import make_executor

        c = self.config
        self.store = TrialStore(c.db)
        try:
            self.run_info = self._open_run()
            if self.evaluator is None:
                self.evaluator = resolve_evaluator(self.run_info.evaluator,
                                                   self.run_info.evaluator_options)
            self._restore()
            self.on_trial = on_trial
            self.started = time.time()
            self.checkpoint_seconds = 0.0
            self.last_fed: TrialRecord | None = None
            executor = make_executor(c.executor, self.space, self.evaluator, c.workers,
                                     c.address)
            try:
                stopped = self._loop(executor)
            finally:
                executor.close()
            trials = self.store.trials(self.run_info.id)
        finally:
            self.store.close()
        front = pareto_records(trials, self.objectives) if len(self.objectives) > 1 else []
        return SearchResult(self.run_info, trials, best_trial(trials), front, stopped,
                            Path(c.db))

    def _open_run(self) -> RunInfo:
        c = self.config
        found = self.store.find_run(spec_hash=self.spec_hash, strategy=c.strategy,
                                    seed=c.seed, evaluator=c.evaluator)
        if c.resume:
            if found is None:
                raise ArchError(f"nothing to resume in '{c.db}': no run of this spec with "
                                f"strategy {c.strategy}, seed {c.seed}, evaluator {c.evaluator}")
            # a resumed run keeps its options; giving different ones is a mistake
            for what, given, stored in (
                    ("strategy", c.strategy_options, found.strategy_options),
                    ("evaluator", c.evaluator_options, found.evaluator_options)):
                if given and json.loads(json.dumps(dict(given))) != stored:
                    raise ArchError(f"run {found.id} used {what} options "
                                    f"{json.dumps(stored)}; resume with the same options "
                                    f"or none")
            if found.budget != c.budget:
                self.store.set_budget(found.id, c.budget)
            return self.store.run(found.id)
        return self.store.create_run(
            spec_path=self.spec_path, spec_hash=self.spec_hash,
            params={"params": dict(c.params), "arch": c.arch}, strategy=c.strategy,
            strategy_options=dict(c.strategy_options), evaluator=c.evaluator,
            evaluator_options=dict(c.evaluator_options), seed=c.seed, budget=c.budget,
            workers=c.workers, objectives=self.objectives)

    def _restore(self) -> None:
        run = self.run_info
        try:
            self.strategy = get_strategy(run.strategy, **run.strategy_options)
        except (TypeError, ValueError) as exc:
            raise ArchError(str(exc)) from None
        self.strategy.setup(self.space, run.seed)
        records = {r.number: r for r in self.store.trials(run.id)}
        checkpoint = self.store.checkpoint(run.id)
        pending: list[tuple[int, dict[str, Any]]] = []
        self.next_number = 0
        if checkpoint is not None:
            self.strategy.restore(checkpoint["strategy"])
            self.next_number = checkpoint["next"]
            pending = [(n, from_json(a)) for n, a in checkpoint["pending"]]
        in_flight = {n for n, _ in pending}
        fed = [r for n, r in records.items() if n < self.next_number and n not in in_flight]
        self.evaluated = sum(r.status != "infeasible" for r in fed)
        self.infeasible = sum(r.status == "infeasible" for r in fed)
        self.known = {r.hash: r for r in fed}
        self.best = best_trial(fed)
        # committed after the checkpoint: the restored strategy proposes them again
        self.orphans = {n: r for n, r in records.items() if n >= self.next_number}
        self.queue: deque[_Slot] = deque(
            _Slot(n, a, D.assignment_hash(a), time.time(), records.get(n)) for n, a in pending)
        self.to_submit = [s for s in self.queue if s.record is None]

    def _loop(self, executor) -> str:
        for slot in self.to_submit:  # in flight when the last run stopped: never finished
            executor.submit(Job(slot.number, slot.assignment, self._seed(slot.hash)))
        stopped = self._fill(executor)
        while self.queue:
            head = self.queue[0]
            if head.record is None:
                for outcome in executor.wait(timeout=1.0):
                    self._finish(outcome)
                continue
            self.queue.popleft()
            self._feed(head.assignment, head.record, store_row=False)
            stopped = self._fill(executor) or stopped
        self._final_checkpoint()
        return stopped or "budget"

    def _fill(self, executor) -> str | None:
        """Propose until `workers` trials are in flight or the budget is spoken for."""
        c = self.config
        limit = c.max_infeasible if c.max_infeasible is not None else 20 * c.budget + 1000
        duplicates = 0
        while len(self.queue) < c.workers and self.evaluated + len(self.queue) < c.budget:
            if self.infeasible >= limit:
                return "infeasible"
            if getattr(self.strategy, "exhausted", False) or duplicates >= _DUPLICATE_STREAK:
                return "exhausted"
            values = self.strategy.propose()
            key = D.assignment_hash(values)
            orphan = None
            if not self._duplicate(key):
                orphan = self.orphans.pop(self.next_number, None)
                if orphan is not None and orphan.hash != key:
                    self._adopt_orphans(orphan)  # may make this proposal a duplicate
                    orphan = None
            if self._duplicate(key):
                duplicates += 1  # only when the space is (nearly) exhausted
                if key in self.known:
                    self.strategy.feedback(values, result_of(self.known[key]))
                continue
            duplicates = 0
            number, self.next_number = self.next_number, self.next_number + 1
            if orphan is not None:  # finished before the crash, after the checkpoint
                if self._precheck(values)[0] is not None:
                    # recorded at proposal and fed back at once, as it was the first time
                    self._feed(values, orphan, store_row=False)
                else:
                    self.queue.append(_Slot(number, values, key, time.time(), orphan))
                continue
            status, costs, error = self._precheck(values)
            if status is not None:  # infeasible or broken: recorded, never evaluated
                now = time.time()
                record = self._record(number, values, key, status, costs, error, now, now, now)
                self._feed(values, record, store_row=True)
                continue
            self.queue.append(_Slot(number, values, key, time.time(), costs=costs))
            executor.submit(Job(number, values, self._seed(key)))
        return None

    def _duplicate(self, key: str) -> bool:
        return key in self.known or any(s.hash == key for s in self.queue)

    def _adopt_orphans(self, first: TrialRecord) -> None:
        # The restored strategy diverged from the run that crashed (it should not): keep the
        # orphaned trials anyway, fed back in order, and number new trials after them.
        for record in sorted([first, *self.orphans.values()], key=lambda r: r.number):
            self.strategy.feedback(record.assignment, result_of(record))
            self._count(record)
        self.next_number = max(first.number, *self.orphans) + 1
        self.orphans.clear()

    def _precheck(self, values: dict[str, Any]) -> tuple[str | None, dict[str, float], str | None]:
        try:
            arch = api.fix(self.space, values)
            costs = {k: float(v) for k, v in arch.metrics().items()
                     if isinstance(v, (int, float)) and not isinstance(v, bool)}
            broken = arch.violations()
        except ArchError as exc:
            return "failed", {}, exc.render()
        if broken:
            return "infeasible", costs, "; ".join(f"violates `require {b}`" for b in broken)
        return None, costs, None

    def _finish(self, outcome: Outcome) -> None:
        """An evaluation came back: commit it now, feed it back when its turn comes."""
        if outcome.status == "error":
            raise ArchError(outcome.error or "the evaluator failed")
        slot = next((s for s in self.queue if s.number == outcome.number), None)
        if slot is None:
            return  # a straggler from a worker pool that was replaced
        costs = slot.costs
        if costs is None:  # resubmitted after a resume: costs were not computed here
            costs = self._precheck(slot.assignment)[1]
        metrics = {**costs, **outcome.metrics}
        status, error = outcome.status, outcome.error
        if status == "ok" and oriented(metrics, self.objectives[:1]) is None:
            status = "failed"
            error = f"the evaluator returned no finite '{self.objectives[0][1]}'"
        slot.record = self._record(slot.number, slot.assignment, slot.hash, status, metrics,
                                   error, slot.proposed, outcome.started, outcome.finished,
                                   outcome.worker)
        self.store.add_trial(slot.record)

    def _record(self, number: int, values: dict[str, Any], key: str, status: str,
                metrics: dict[str, float], error: str | None, proposed: float, started: float,
                finished: float, worker: str | None = None) -> TrialRecord:
        score = None
        if status == "ok":
            score = oriented(metrics, self.objectives[:1])[0]  # type: ignore[index]
        return TrialRecord(
            run_id=self.run_info.id, number=number, assignment=jsonable(values), hash=key,
            status=status, score=score, metrics=metrics, error=error, seed=self._seed(key),
            strategy=self.run_info.strategy, spec_path=self.spec_path, spec_hash=self.spec_hash,
            proposed=proposed, started=started, finished=finished,
            duration=finished - started if status != "infeasible" else 0.0, worker=worker)

    def _feed(self, values: dict[str, Any], record: TrialRecord, store_row: bool) -> None:
        self.strategy.feedback(values, result_of(record))
        self._count(record)
        state = self._checkpoint() if self._checkpoint_due() else None
        if store_row:
            self.store.add_trial(record, state)
        elif state is not None:
            self.store.save_checkpoint(record.run_id, record.number, state)
        self.last_fed = None if state is not None else record
        if self.on_trial is not None:
            self.on_trial(Progress(record, self.evaluated, self.config.budget, self.best,
                                   self.started))

    def _checkpoint(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        state = {"strategy": self.strategy.state(), "next": self.next_number,
                 "pending": [[s.number, jsonable(s.assignment)] for s in self.queue]}
        self.checkpoint_seconds += time.perf_counter() - t0
        return state

    def _checkpoint_due(self) -> bool:
        # A state grows with the trials (MCTS and SMBO keep their history), so saving it after
        # every trial of a fast evaluator would cost O(trials^2). Save when checkpoints have
        # taken at most 5% of the time so far; with real training that is after every trial.
        # Skipped checkpoints lose nothing: trials committed after the last one are matched
        # when the restored strategy proposes them again (see _fill).
        return self.checkpoint_seconds <= _CHECKPOINT_SHARE * (time.time() - self.started)

    def _final_checkpoint(self) -> None:
        if self.last_fed is not None:
            self.store.save_checkpoint(self.last_fed.run_id, self.last_fed.number,
                                       self._checkpoint())
            self.last_fed = None

    def _count(self, record: TrialRecord) -> None:
        self.known[record.hash] = record
        if record.status == "infeasible":
            self.infeasible += 1
        else:
            self.evaluated += 1
        if record.status == "ok" and record.score is not None and math.isfinite(record.score) \
                and (self.best is None or record.score > self.best.score):
            self.best = record

    def _seed(self, key: str) -> int:
        return trial_seed(self.run_info.seed, key)


def run_search(config: SearchConfig, evaluator: Any = None,
               on_trial: Callable[[Progress], None] | None = None) -> SearchResult:
    """Run (or with `config.resume`, continue) a search; see `Search`."""
    return Search(config, evaluator).run(on_trial)
