"""Running one trial's evaluation, the same way in every executor.

An executor ships a `Job` (trial number, assignment, seed) to wherever it runs and gets an
`Outcome` back; `run_job` is the one function that turns the first into the second, so results
do not depend on where they were computed. The evaluator's seed is derived from the search seed
and the assignment's hash, not from the trial's position: the same architecture gets the same
metrics whatever order the workers finish in.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from archlang.errors import ArchError


@dataclass(frozen=True)
class Job:
    number: int
    assignment: dict[str, Any]
    seed: int


@dataclass(frozen=True)
class Outcome:
    number: int
    status: str  # "ok" | "failed" | "error" (a configuration error: the search stops)
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    started: float = 0.0
    finished: float = 0.0
    worker: str = ""


def trial_seed(search_seed: int, assignment_hash: str) -> int:
    digest = hashlib.sha256(f"{search_seed}:{assignment_hash}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


def resolve_evaluator(name: str, options: Mapping[str, Any] | None = None):
    """An evaluator by registry name ("train", "lookup", "zero-cost") or "module:factory"."""
    options = dict(options or {})
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ArchError(f"cannot load evaluator '{name}': {exc}") from None
        return factory(**options)
    try:
        from archlang.search.evaluators import get_evaluator
    except ImportError as exc:
        raise ArchError(f"the evaluators are not available ({exc})") from None
    try:
        return get_evaluator(name, **options)
    except (KeyError, ValueError, TypeError) as exc:
        raise ArchError(f"evaluator '{name}': {exc}") from None


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(space, evaluator, job: Job) -> Outcome:
    """Evaluate one assignment; any exception fails this trial, never the search."""
    from archlang.api import fix

    started = time.time()
    try:
        raw = evaluator.evaluate(fix(space, job.assignment), job.seed)
        metrics = {str(k): float(v) for k, v in dict(raw).items()
                   if isinstance(v, (int, float))}
        bad = [k for k, v in metrics.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"non-finite {', '.join(bad)}")
        return Outcome(job.number, "ok", metrics, None, started, time.time(), _worker_name())
    except ArchError as exc:  # the evaluator cannot work with this spec at all
        return Outcome(job.number, "error", {}, exc.render(), started, time.time(),
                       _worker_name())
    except Exception as exc:  # noqa: BLE001 - one broken trial must not stop a search
        reason = str(exc) if type(exc).__name__ == "TrialFailed" else \
            f"{type(exc).__name__}: {exc}"
        return Outcome(job.number, "failed", {}, reason[:2000], started, time.time(),
                       _worker_name())
