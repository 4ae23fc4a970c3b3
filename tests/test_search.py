"""The search loop, the trial store, resume after kill -9, executors, Pareto front, report."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import archlang
from archlang.search import SearchConfig, TrialStore, assignment_from_db, run_search
from archlang.search.objectives import dominates, oriented
from archlang.search.synthetic import SyntheticEvaluator
from tests.conftest import ROOT

SYNTHETIC = "archlang.search.synthetic:SyntheticEvaluator"

# Conditional, with a continuous decision, a cost constraint that some points break, and two
# objectives.
TOY = """
import "std"
arch toy {
    input image[1, 8, 8]
    let width = choice(4, 8, 16)
    conv(width, 3) relu
    repeat choice(1, 2) { conv(width, choice(1, 3)) relu }
    one_of { conv(2 * width, 3) relu } or { maxpool(2) }
    optional { dropout(uniform(0.0, 0.5)) }
    gap linear(10)
    require params <= 1500
    maximize accuracy
    minimize macs
}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "toy.arch"
    path.write_text(TOY)
    return path


def config(spec: Path, db: Path, **kw) -> SearchConfig:
    options = {"strategy": "evolution", "budget": 30, "evaluator": SYNTHETIC, **kw}
    if options["strategy"] == "evolution":
        options.setdefault("strategy_options", {"population": 8, "tournament": 3})
    return SearchConfig(spec=str(spec), db=str(db), **options)


def content(trials) -> list[tuple]:
    return [(t.number, json.dumps(t.assignment, sort_keys=True), t.status, t.score,
             json.dumps(t.metrics, sort_keys=True), t.seed) for t in trials]


def logged(path: Path) -> Counter:
    return Counter(path.read_text().split()) if path.exists() else Counter()


def test_search_records_every_trial(spec, tmp_path):
    log = tmp_path / "evals.log"
    result = run_search(config(spec, tmp_path / "r.sqlite", budget=25),
                        evaluator=SyntheticEvaluator(log=str(log)))
    trials = result.trials
    evaluated = [t for t in trials if t.status != "infeasible"]
    infeasible = [t for t in trials if t.status == "infeasible"]
    assert len(evaluated) == 25  # the budget counts evaluated trials
    assert infeasible, "the toy spec's constraint should reject some points"
    assert [t.number for t in trials] == list(range(len(trials)))
    assert len({t.hash for t in trials}) == len(trials)  # distinct architectures
    space = archlang.load(spec)
    for t in trials:
        arch = archlang.fix(space, t.assignment)
        assert t.metrics["params"] == arch.cost.params  # exact costs recorded
        assert (t.status == "infeasible") == bool(arch.violations())
    # infeasible points are never evaluated; every feasible one exactly once
    assert logged(log) == Counter(t.hash for t in evaluated)
    assert result.best == max((t for t in trials if t.status == "ok"), key=lambda t: t.score)


def test_same_seed_same_trials(spec, tmp_path):
    a = run_search(config(spec, tmp_path / "a.sqlite", strategy="mcts", seed=5))
    b = run_search(config(spec, tmp_path / "b.sqlite", strategy="mcts", seed=5))
    c = run_search(config(spec, tmp_path / "c.sqlite", strategy="mcts", seed=6))
    assert content(a.trials) == content(b.trials)
    assert content(a.trials) != content(c.trials)


def test_failed_trials_do_not_stop_the_search(spec, tmp_path):
    result = run_search(config(spec, tmp_path / "r.sqlite", budget=20),
                        evaluator=SyntheticEvaluator(fail_every=3))
    failed = [t for t in result.trials if t.status == "failed"]
    assert failed and all(t.error == "synthetic failure" and t.score is None for t in failed)
    assert sum(t.status != "infeasible" for t in result.trials) == 20


def test_search_stops_when_the_space_is_exhausted(tmp_path):
    spec = tmp_path / "small.arch"
    spec.write_text("""
import "std"
arch small {
    input image[1, 8, 8]
    conv(choice(4, 8, 16), 3) relu
    optional { conv(8, choice(1, 3)) relu }
    gap linear(10)
}
""")
    assert archlang.load(spec).size == 9
    for strategy in ("random", "evolution", "mcts", "smbo"):
        result = run_search(SearchConfig(spec=str(spec), db=str(tmp_path / f"{strategy}.db"),
                                         strategy=strategy, budget=20, evaluator=SYNTHETIC))
        assert result.stopped == "exhausted"
        assert len({t.hash for t in result.trials}) == len(result.trials) == 9


def test_pareto_front(spec, tmp_path):
    result = run_search(config(spec, tmp_path / "r.sqlite", strategy="random", budget=30))
    objectives = result.run.objectives
    assert objectives == (("maximize", "accuracy"), ("minimize", "macs"))
    ok = [t for t in result.trials if t.status == "ok"]
    points = {t.number: oriented(t.metrics, objectives) for t in ok}
    expected = {n for n, p in points.items()
                if not any(dominates(q, p) for q in points.values())}
    assert {t.number for t in result.front} == expected
    assert 1 < len(expected) < len(ok)


def test_resume_after_clean_stop_continues_exactly(spec, tmp_path):
    whole = run_search(config(spec, tmp_path / "whole.sqlite", strategy="smbo", budget=24))
    db = tmp_path / "parts.sqlite"
    run_search(config(spec, db, strategy="smbo", budget=10))
    resumed = run_search(config(spec, db, strategy="smbo", budget=24, resume=True))
    assert content(resumed.trials) == content(whole.trials)
    with TrialStore(db, readonly=True) as store:
        assert len(store.runs()) == 1


def test_resume_needs_a_run_and_keeps_its_options(spec, tmp_path):
    db = tmp_path / "r.sqlite"
    with pytest.raises(archlang.ArchError, match="nothing to resume"):
        run_search(config(spec, db, resume=True))
    run_search(config(spec, db, budget=5, evaluator_options={"fail_every": 2}))
    with pytest.raises(archlang.ArchError, match="resume with the same options"):
        run_search(config(spec, db, budget=8, resume=True, evaluator_options={"fail_every": 3}))
    resumed = run_search(config(spec, db, budget=8, resume=True))  # the stored options apply
    assert resumed.run.evaluator_options == {"fail_every": 2}
    assert any(t.status == "failed" for t in resumed.trials if t.number >= 5)


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_then_resume(spec, tmp_path, workers):
    """kill -9 mid-search; --resume loses no finished trial and evaluates none twice."""
    db, log = tmp_path / "r.sqlite", tmp_path / "evals.log"
    budget = 40
    argv = [sys.executable, "-m", "archlang.cli", "search", str(spec), "--strategy", "mcts",
            "--budget", str(budget), "--db", str(db), "--evaluator", SYNTHETIC,
            "--evaluator-option", "delay=0.05", "--evaluator-option", f"log={log}", "--quiet",
            "--workers", str(workers)]
    # its own process group, so that the kill takes the worker processes down too
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        finished = _wait_for_trials(db, proc, 8, timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = _rows(db)
    assert len(before) >= finished and sum(r[2] == "ok" for r in before) < budget

    result = run_search(SearchConfig(spec=str(spec), db=str(db), strategy="mcts", budget=budget,
                                     evaluator=SYNTHETIC, resume=True, workers=workers,
                                     executor="inprocess"),
                        evaluator=SyntheticEvaluator(log=str(log)))
    after = {(r[0], r[1]): r for r in _rows(db)}
    for row in before:  # nothing finished before the kill is lost or changed
        assert after[(row[0], row[1])] == row
    evaluated = [t for t in result.trials if t.status != "infeasible"]
    assert len(evaluated) == budget
    assert len({t.hash for t in result.trials}) == len(result.trials)
    counts = logged(log)
    for row in before:
        if row[2] != "infeasible":
            assert counts[row[3]] == 1, "a finished trial was evaluated again"
    assert not any(counts[r[3]] for r in before if r[2] == "infeasible")
    # trials in flight at the kill (never committed) may run again; nothing else does
    assert sum(c - 1 for c in counts.values()) <= workers
    # and the resumed search is the search that would have run without the kill
    clean = run_search(SearchConfig(spec=str(spec), db=str(tmp_path / "clean.sqlite"),
                                    strategy="mcts", budget=budget, evaluator=SYNTHETIC,
                                    workers=workers, executor="inprocess"))
    assert [(t.number, t.hash, t.status) for t in result.trials] == \
        [(t.number, t.hash, t.status) for t in clean.trials]


class _Crash(BaseException):
    pass


@pytest.mark.parametrize("crash_at, workers", [(1, 1), (7, 1), (4, 3)])
def test_crash_between_commit_and_checkpoint(spec, tmp_path, monkeypatch, crash_at, workers):
    """A trial committed after the last checkpoint is reused on resume, not re-evaluated."""
    db, log = tmp_path / "r.sqlite", tmp_path / "evals.log"
    calls = []
    real = TrialStore.save_checkpoint

    def crashing(self, *args, **kw):
        calls.append(1)
        if len(calls) == crash_at:
            raise _Crash  # the process dies after the commit, before the checkpoint
        return real(self, *args, **kw)

    monkeypatch.setattr(TrialStore, "save_checkpoint", crashing)
    monkeypatch.setattr("archlang.search.runner._CHECKPOINT_SHARE", 1e9)  # after every trial
    kw = {"strategy": "smbo", "budget": 15, "workers": workers, "executor": "inprocess"}
    with pytest.raises(_Crash):
        run_search(config(spec, db, **kw), evaluator=SyntheticEvaluator(log=str(log)))
    monkeypatch.setattr(TrialStore, "save_checkpoint", real)
    resumed = run_search(config(spec, db, resume=True, **kw),
                         evaluator=SyntheticEvaluator(log=str(log)))
    assert max(logged(log).values()) == 1  # nothing evaluated twice
    clean = run_search(config(spec, tmp_path / "clean.sqlite", **kw))
    assert content(resumed.trials) == content(clean.trials)


@pytest.mark.parametrize("strategy, workers", [("mcts", 1), ("smbo", 3)])
def test_resume_without_a_checkpoint(spec, tmp_path, strategy, workers):
    """Checkpoints skipped to save time lose nothing: the replayed trials come from the DB."""
    db, log = tmp_path / "r.sqlite", tmp_path / "evals.log"
    kw = {"strategy": strategy, "workers": workers, "executor": "inprocess"}
    run_search(config(spec, db, budget=20, **kw), evaluator=SyntheticEvaluator(log=str(log)))
    with TrialStore(db) as store:  # as if killed before the first checkpoint
        store.db.execute("UPDATE trials SET state = NULL")
    resumed = run_search(config(spec, db, budget=30, resume=True, **kw),
                         evaluator=SyntheticEvaluator(log=str(log)))
    assert max(logged(log).values()) == 1
    clean = run_search(config(spec, tmp_path / "clean.sqlite", budget=30, **kw))
    assert content(resumed.trials) == content(clean.trials)


def test_resume_keeps_trials_the_strategy_no_longer_proposes(spec, tmp_path):
    """If a restored strategy diverged, the trials it does not re-propose are still kept."""
    db, log = tmp_path / "r.sqlite", tmp_path / "evals.log"
    kw = {"strategy": "random", "evaluator": SYNTHETIC}
    first = run_search(config(spec, db, budget=10, **kw), evaluator=SyntheticEvaluator(log=str(log)))
    space = archlang.load(spec)
    foreign = next(a for a in (archlang.sample(space, 1000 + i) for i in range(100))
                   if not archlang.fix(space, a).violations()
                   and archlang.assignment_hash(a) not in {t.hash for t in first.trials})
    with TrialStore(db) as store:  # no checkpoint, and trial 4 is not what seed 0 proposes
        store.db.execute("UPDATE trials SET state = NULL")
        store.db.execute("UPDATE trials SET assignment = ?, hash = ? WHERE number = 4",
                         (json.dumps(foreign), archlang.assignment_hash(foreign)))
    with TrialStore(db, readonly=True) as store:
        stored = {t.hash for t in store.trials()}
    before = logged(log)
    resumed = run_search(config(spec, db, budget=16, resume=True, **kw),
                         evaluator=SyntheticEvaluator(log=str(log)))
    numbers = [t.number for t in resumed.trials]
    assert len(numbers) == len(set(numbers))
    assert sum(t.status != "infeasible" for t in resumed.trials) == 16
    assert stored <= {t.hash for t in resumed.trials}  # the foreign trial is kept
    again = logged(log) - before
    assert not stored & set(again), "a stored trial was evaluated again"


def _rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT run_id, number, status, hash, assignment, metrics, score"
                            " FROM trials ORDER BY number").fetchall()


def _wait_for_trials(db: Path, proc: subprocess.Popen, n: int, timeout: float) -> int:
    """Poll the database (no blind sleep) until it holds n finished trials."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"search exited early: {proc.stderr.read().decode()}")
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as conn:
                    count = conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
            except sqlite3.OperationalError:  # the schema is being created
                count = 0
            if count >= n:
                return count
        time.sleep(0.02)
    raise AssertionError(f"no {n} trials within {timeout} s")


def test_worker_processes_match_in_process(spec, tmp_path):
    inproc = run_search(config(spec, tmp_path / "a.sqlite", budget=12, workers=2,
                               executor="inprocess"))
    procs = run_search(config(spec, tmp_path / "b.sqlite", budget=12, workers=2,
                              executor="local"))
    assert sorted(content(inproc.trials)) == sorted(content(procs.trials))
    here = f"{socket.gethostname()}:{os.getpid()}"  # evaluated in workers, not here
    assert all(t.worker and t.worker != here for t in procs.trials if t.status == "ok")
    assert all(t.worker == here for t in inproc.trials if t.status == "ok")


def test_ray_matches_in_process(spec, tmp_path):
    ray = pytest.importorskip("ray")
    inproc = run_search(config(spec, tmp_path / "a.sqlite", budget=12, workers=2,
                               executor="inprocess"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_search(config(spec, tmp_path / "b.sqlite", budget=12, workers=2,
                                   executor="ray"))
    finally:
        ray.shutdown()
    assert sorted(content(inproc.trials)) == sorted(content(on_ray.trials))


def test_assignment_from_db(spec, tmp_path):
    db = tmp_path / "r.sqlite"
    result = run_search(config(spec, db, budget=10))
    path, values = assignment_from_db(db)
    assert path == str(spec.resolve()) and values == result.best.assignment
    some = result.trials[3]
    assert assignment_from_db(db, trial=some.id) == (path, some.assignment)
    archlang.fix(archlang.load(path), values)


def test_cli_search_and_report(spec, tmp_path, run_cli):
    db = tmp_path / "r.sqlite"
    for strategy in ("random", "smbo"):
        code, out, err = run_cli("search", str(spec), "--strategy", strategy, "--budget", "12",
                                 "--evaluator", SYNTHETIC, "--db", str(db), "--quiet")
        assert code == 0, err
        assert "top trials" in out and "best: trial" in out
    code, out, err = run_cli("report", str(db), "--out", str(tmp_path / "rep"))
    assert code == 0, err
    assert "run 1: random" in out and "run 2: smbo" in out
    for name in ("best_so_far.png", "pareto.png"):
        data = (tmp_path / "rep" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    code, out, err = run_cli("search", str(spec), "--strategy", "mcts", "--evaluator",
                             SYNTHETIC, "--db", str(db), "--resume")
    assert code == 1 and "nothing to resume" in err
