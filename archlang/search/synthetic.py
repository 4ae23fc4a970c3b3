"""A synthetic evaluator: instant, deterministic metrics, for tests, demos and benchmarks.

    archlang search net.arch --evaluator archlang.search.synthetic:SyntheticEvaluator

"accuracy" is a fixed pseudo-random function of the assignment (plus a small bonus for
capacity, so strategies have something to find), identical in every process. With `log`, each
evaluation appends the assignment's hash to that file, so a test can count evaluations made
in other processes; `delay` makes trials take time; `fail_every` fails trials whose hash is
divisible by it.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass


class TrialFailed(Exception):
    pass


@dataclass(frozen=True)
class SyntheticEvaluator:
    name: str = "synthetic"
    delay: float = 0.0
    log: str | None = None
    fail_every: int = 0

    def evaluate(self, arch, seed: int) -> dict[str, float]:
        key = arch.hash
        if self.log:
            # O_APPEND writes of one short line are atomic: safe from several processes.
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{key}\n".encode())
            finally:
                os.close(fd)
        if self.delay:
            time.sleep(self.delay)
        h = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16)
        if self.fail_every and h % self.fail_every == 0:
            raise TrialFailed("synthetic failure")
        noise = (h % 10_000) / 10_000
        capacity = math.log10(1 + arch.cost.params) / 10
        accuracy = 0.5 * noise + 0.5 * min(capacity, 1.0)
        return {"accuracy": accuracy, "val_accuracy": accuracy,
                "test_accuracy": accuracy - 0.01 * ((h >> 20) % 5), "loss": 1.0 - accuracy,
                "train_time": self.delay}
