"""Where evaluations run: in this process, in local worker processes, or on a Ray cluster.

All three take `Job`s and hand back `Outcome`s made by the same `run_job`, so a trial's
content does not depend on the executor; only the order in which outcomes arrive does, and
the runner feeds results to the strategy in proposal order to make that irrelevant too.

    executor.submit(job)             # returns at once (in-process: after evaluating)
    outcomes = executor.wait(5.0)    # whatever finished, possibly []
    executor.close()
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

from archlang.errors import ArchError
from archlang.search.evaluate import Job, Outcome, run_job


class Executor(Protocol):
    workers: int

    def submit(self, job: Job) -> None: ...
    def wait(self, timeout: float | None = None) -> list[Outcome]: ...
    def close(self) -> None: ...


class InProcessExecutor:
    """Evaluates each job when it is submitted; for debugging and for `--workers 1`."""

    def __init__(self, space, evaluator, workers: int = 1):
        self.space, self.evaluator, self.workers = space, evaluator, workers
        self.done: list[Outcome] = []

    def submit(self, job: Job) -> None:
        self.done.append(run_job(self.space, self.evaluator, job))

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        out, self.done = self.done, []
        return out

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- local processes

_WORKER: dict[str, Any] = {}


def _init_worker(space, evaluator) -> None:
    # One thread per worker: N workers on N cores, not N x cores threads fighting.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    _WORKER["space"], _WORKER["evaluator"] = space, evaluator


def _worker_job(job: Job) -> Outcome:
    return run_job(_WORKER["space"], _WORKER["evaluator"], job)


class ProcessExecutor:
    """A pool of `workers` spawned processes (spawn, not fork: torch and fork do not mix)."""

    def __init__(self, space, evaluator, workers: int):
        self.space, self.evaluator, self.workers = space, evaluator, workers
        self.pool = self._pool()
        self.futures: dict[Any, Job] = {}

    def _pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=self.workers,
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker,
                                   initargs=(self.space, self.evaluator))

    def submit(self, job: Job) -> None:
        self.futures[self.pool.submit(_worker_job, job)] = job

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        from concurrent.futures import FIRST_COMPLETED
        from concurrent.futures import wait as wait_futures
        from concurrent.futures.process import BrokenProcessPool

        if not self.futures:
            return []
        done, _ = wait_futures(list(self.futures), timeout=timeout,
                               return_when=FIRST_COMPLETED)
        out, broken = [], False
        for future in done:
            job = self.futures.pop(future)
            try:
                out.append(future.result())
            except BrokenProcessPool:  # a worker died (killed, out of memory): fail its trials
                broken = True
                out.append(_lost(job, "a worker process died"))
        if broken:
            for job in self.futures.values():
                out.append(_lost(job, "a worker process died"))
            self.futures.clear()
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._pool()
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _lost(job: Job, why: str) -> Outcome:
    now = time.time()
    return Outcome(job.number, "failed", {}, why, now, now, "")


# ---------------------------------------------------------------- Ray


class RayExecutor:
    """Ray tasks, one CPU each. Joins `address` (or RAY_ADDRESS) or starts a local Ray."""

    def __init__(self, space, evaluator, workers: int, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise ArchError("--executor ray needs Ray (pip install 'archlang[ray]')") from None
        self.ray, self.workers = ray, workers
        self.started = False
        if not ray.is_initialized():
            if address or os.environ.get("RAY_ADDRESS"):  # join a running cluster
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            self.started = True
        self.space_ref, self.evaluator_ref = ray.put(space), ray.put(evaluator)
        self.task = ray.remote(num_cpus=1, max_retries=0)(run_job)
        self.refs: dict[Any, Job] = {}

    def submit(self, job: Job) -> None:
        self.refs[self.task.remote(self.space_ref, self.evaluator_ref, job)] = job

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        if not self.refs:
            return []
        ready, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        # collect everything else already finished too, without waiting
        rest = [r for r in self.refs if r not in ready]
        more = self.ray.wait(rest, num_returns=len(rest), timeout=0)[0] if rest else []
        out = []
        for ref in [*ready, *more]:
            job = self.refs.pop(ref)
            try:
                out.append(self.ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - a lost node or worker fails the trial
                out.append(_lost(job, f"ray: {type(exc).__name__}: {exc}"[:2000]))
        return out

    def close(self) -> None:
        for ref in self.refs:
            self.ray.cancel(ref, force=True)
        self.refs.clear()
        if self.started:
            self.ray.shutdown()


def make_executor(kind: str, space, evaluator, workers: int = 1,
                  address: str | None = None) -> Executor:
    """"local" (in-process for one worker, processes for more), "inprocess", or "ray"."""
    if workers < 1:
        raise ArchError("--workers must be at least 1")
    if kind == "ray":
        return RayExecutor(space, evaluator, workers, address)
    if kind == "inprocess" or (kind == "local" and workers == 1):
        return InProcessExecutor(space, evaluator, workers)
    if kind == "local":
        return ProcessExecutor(space, evaluator, workers)
    raise ArchError(f"unknown executor '{kind}' (local, inprocess, ray)")
