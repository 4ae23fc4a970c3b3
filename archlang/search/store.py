"""The trial store: one SQLite file, one row per trial, committed as each trial finishes.

A file can hold several runs (one strategy, seed and spec each), so `archlang report` can
compare strategies. WAL mode: a reader (the report, a test polling progress) never blocks the
search, and a killed process loses nothing that was committed.

The strategy's checkpoint (`trials.state`) is written when a trial is fed back to the
strategy; only the latest row of a run keeps it (older ones are cleared in the same
transaction), so the file grows with the number of trials, not with its square.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archlang.errors import ArchError

STATUSES = ("ok", "failed", "infeasible")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    spec_path TEXT NOT NULL,
    spec_hash TEXT NOT NULL,          -- sha256 of the spec's text, first 16 hex digits
    params TEXT NOT NULL,             -- JSON: --param overrides and --arch
    strategy TEXT NOT NULL,
    strategy_options TEXT NOT NULL,   -- JSON
    evaluator TEXT NOT NULL,
    evaluator_options TEXT NOT NULL,  -- JSON
    seed INTEGER NOT NULL,
    budget INTEGER NOT NULL,
    workers INTEGER NOT NULL,
    objectives TEXT NOT NULL,         -- JSON [[sense, metric], ...]; the first guides search
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    number INTEGER NOT NULL,          -- proposal order within the run
    assignment TEXT NOT NULL,         -- JSON: decision name -> value (active decisions only)
    hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'infeasible')),
    score REAL,                       -- the first objective, oriented so higher is better
    metrics TEXT NOT NULL,            -- JSON: exact costs and the evaluator's metrics
    error TEXT,
    seed INTEGER NOT NULL,            -- the seed the evaluator was given
    strategy TEXT NOT NULL,
    spec_path TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    proposed REAL,
    started REAL,
    finished REAL NOT NULL,
    duration REAL,                    -- seconds inside the evaluator
    worker TEXT,
    state TEXT,                       -- strategy checkpoint after this trial's feedback
    UNIQUE (run_id, number)
);
CREATE INDEX IF NOT EXISTS trials_run ON trials (run_id, number);
"""


@dataclass(frozen=True)
class RunInfo:
    id: int
    spec_path: str
    spec_hash: str
    params: dict[str, Any]
    strategy: str
    strategy_options: dict[str, Any]
    evaluator: str
    evaluator_options: dict[str, Any]
    seed: int
    budget: int
    workers: int
    objectives: tuple[tuple[str, str], ...]
    created: float


@dataclass(frozen=True)
class TrialRecord:
    run_id: int
    number: int
    assignment: dict[str, Any]
    hash: str
    status: str
    score: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    seed: int = 0
    strategy: str = ""
    spec_path: str = ""
    spec_hash: str = ""
    proposed: float | None = None
    started: float | None = None
    finished: float = 0.0
    duration: float | None = None
    worker: str | None = None
    id: int | None = None  # the row id, once stored


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _json(value: Any) -> str:
    # NaN/inf are not JSON; a metric that is not finite is stored as null.
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), sort_keys=False, allow_nan=False)


def _assignment(text: str) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(text).items()}


class TrialStore:
    """A SQLite trial store; one writer (the search loop), any number of readers."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise ArchError(f"no trial database '{path}'")
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL survives a killed process (kill -9); only an OS crash can lose the tail.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> TrialStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ---------------------------------------------------------------- runs

    def create_run(self, *, spec_path: str, spec_hash: str, params: Mapping[str, Any],
                   strategy: str, strategy_options: Mapping[str, Any], evaluator: str,
                   evaluator_options: Mapping[str, Any], seed: int, budget: int, workers: int,
                   objectives: tuple[tuple[str, str], ...]) -> RunInfo:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs (spec_path, spec_hash, params, strategy, strategy_options,"
                " evaluator, evaluator_options, seed, budget, workers, objectives, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (spec_path, spec_hash, _json(dict(params)), strategy, _json(dict(strategy_options)),
                 evaluator, _json(dict(evaluator_options)), seed, budget, workers,
                 _json([list(o) for o in objectives]), time.time()))
            run_id = cur.lastrowid
        return self.run(run_id)

    def set_budget(self, run_id: int, budget: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET budget = ? WHERE id = ?", (budget, run_id))

    def run(self, run_id: int) -> RunInfo:
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise ArchError(f"'{self.path}' has no run {run_id}")
        return _run(row)

    def runs(self) -> list[RunInfo]:
        return [_run(r) for r in self.db.execute("SELECT * FROM runs ORDER BY id")]

    def find_run(self, *, spec_hash: str, strategy: str, seed: int,
                 evaluator: str) -> RunInfo | None:
        """The latest run of this spec text, strategy, seed and evaluator (for --resume)."""
        row = self.db.execute(
            "SELECT * FROM runs WHERE spec_hash = ? AND strategy = ? AND seed = ? AND"
            " evaluator = ? ORDER BY id DESC LIMIT 1",
            (spec_hash, strategy, seed, evaluator)).fetchone()
        return None if row is None else _run(row)

    # ---------------------------------------------------------------- trials

    def add_trial(self, record: TrialRecord, state: Mapping[str, Any] | None = None) -> None:
        """Commit one finished trial (and, optionally, the checkpoint taken after it)."""
        if record.status not in STATUSES:
            raise ValueError(f"bad trial status {record.status!r}")
        with self._tx() as db:
            db.execute(
                "INSERT INTO trials (run_id, number, assignment, hash, status, score, metrics,"
                " error, seed, strategy, spec_path, spec_hash, proposed, started, finished,"
                " duration, worker) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.run_id, record.number, _json(record.assignment), record.hash,
                 record.status, record.score, _json(record.metrics), record.error, record.seed,
                 record.strategy, record.spec_path, record.spec_hash, record.proposed,
                 record.started, record.finished, record.duration, record.worker))
            if state is not None:
                self._checkpoint(db, record.run_id, record.number, state)

    def save_checkpoint(self, run_id: int, number: int, state: Mapping[str, Any]) -> None:
        with self._tx() as db:
            self._checkpoint(db, run_id, number, state)

    @staticmethod
    def _checkpoint(db: sqlite3.Connection, run_id: int, number: int,
                    state: Mapping[str, Any]) -> None:
        db.execute("UPDATE trials SET state = NULL WHERE run_id = ? AND state IS NOT NULL"
                   " AND number != ?", (run_id, number))
        db.execute("UPDATE trials SET state = ? WHERE run_id = ? AND number = ?",
                   (_json(dict(state)), run_id, number))

    def checkpoint(self, run_id: int) -> dict[str, Any] | None:
        row = self.db.execute("SELECT state FROM trials WHERE run_id = ? AND state IS NOT NULL"
                              " ORDER BY number DESC LIMIT 1", (run_id,)).fetchone()
        return None if row is None else json.loads(row["state"])

    def trials(self, run_id: int | None = None, status: str | None = None) -> list[TrialRecord]:
        sql, args = "SELECT * FROM trials", []
        where = []
        if run_id is not None:
            where.append("run_id = ?")
            args.append(run_id)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_trial(r) for r in self.db.execute(sql + " ORDER BY run_id, number", args)]

    def trial(self, trial_id: int) -> TrialRecord:
        row = self.db.execute("SELECT * FROM trials WHERE id = ?", (trial_id,)).fetchone()
        if row is None:
            raise ArchError(f"'{self.path}' has no trial {trial_id}")
        return _trial(row)

    def count(self, run_id: int | None = None, finished_only: bool = True) -> int:
        """Trials recorded (all statuses), for progress polling."""
        if run_id is None:
            return self.db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM trials WHERE run_id = ?",
                               (run_id,)).fetchone()[0]


def _run(row: sqlite3.Row) -> RunInfo:
    return RunInfo(id=row["id"], spec_path=row["spec_path"], spec_hash=row["spec_hash"],
                   params=json.loads(row["params"]), strategy=row["strategy"],
                   strategy_options=json.loads(row["strategy_options"]),
                   evaluator=row["evaluator"],
                   evaluator_options=json.loads(row["evaluator_options"]), seed=row["seed"],
                   budget=row["budget"], workers=row["workers"],
                   objectives=tuple(tuple(o) for o in json.loads(row["objectives"])),
                   created=row["created"])


def _trial(row: sqlite3.Row) -> TrialRecord:
    metrics = {k: (math.nan if v is None else v) for k, v in json.loads(row["metrics"]).items()}
    return TrialRecord(run_id=row["run_id"], number=row["number"],
                       assignment=_assignment(row["assignment"]), hash=row["hash"],
                       status=row["status"], score=row["score"], metrics=metrics,
                       error=row["error"], seed=row["seed"], strategy=row["strategy"],
                       spec_path=row["spec_path"], spec_hash=row["spec_hash"],
                       proposed=row["proposed"], started=row["started"],
                       finished=row["finished"], duration=row["duration"], worker=row["worker"],
                       id=row["id"])


# ---------------------------------------------------------------- for `compile --from-db`


def best_trial(records: list[TrialRecord]) -> TrialRecord | None:
    """The ok trial with the highest oriented score (the first objective); ties: earliest."""
    best = None
    for r in records:
        if r.status == "ok" and r.score is not None and math.isfinite(r.score):
            if best is None or r.score > best.score:
                best = r
    return best


def assignment_from_db(db_path: str | Path, trial: int | None = None
                       ) -> tuple[str, dict[str, Any]]:
    """(spec path, assignment) of the best trial by the spec's objective, or of trial `trial`.

    The best is taken over every run in the file; all runs must come from one spec text
    (otherwise name the trial). The spec path is as it was given to `archlang search`.
    """
    with TrialStore(db_path, readonly=True) as store:
        if trial is not None:
            record = store.trial(trial)
            return record.spec_path, record.assignment
        records = store.trials()
        specs = {(r.spec_path, r.spec_hash) for r in records}
        if len({h for _, h in specs}) > 1:
            raise ArchError(f"'{db_path}' holds searches of {len(specs)} different specs; "
                            "name a trial id")
        best = best_trial(records)
        if best is None:
            raise ArchError(f"'{db_path}' has no successful trial")
        return best.spec_path, best.assignment
