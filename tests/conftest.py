from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from archlang.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def workers(monkeypatch):
    """Every incumbent worker process a `solve` starts (`solvers/milp/boxsolve.py`), kept so
    that a test can look at its process after."""
    from archlang.solvers.milp import boxsolve

    started = []
    init = boxsolve._Worker.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(boxsolve._Worker, "__init__", recording)
    return started
