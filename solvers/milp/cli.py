"""`archlang solve FILE`: the exact optimum of a spec's design problem, with a certificate.

pyomo and highspy are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "solve", help="solve a spec's maximize/minimize + require problem exactly (MILP, HiGHS)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--time-limit", type=float, default=60.0, metavar="S",
                   help="seconds for the whole solve (default 60)")
    p.add_argument("--gap", type=float, default=1e-4, metavar="G",
                   help="relative optimality gap to stop at (default 1e-4)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="cores to use (default 2, or 1 on a one-core machine): HiGHS "
                        "threads; for the box search of large staged problems, a second "
                        "process runs the incumbent phases while this one bounds")
    p.add_argument("--formulation", default="auto",
                   choices=("auto", "generic", "staged", "staged-milp", "staged-boxes"),
                   help="generic (small spaces), staged (DeepMAD-like stages of bottleneck "
                        "blocks: the HiGHS model when small, else box branch and bound), "
                        "staged-milp or staged-boxes (one of the two), or auto: generic when "
                        "it can encode the space, else staged")
    p.add_argument("--fallback", metavar="STRATEGY",
                   help="when no exact formulation encodes the problem, search it with this "
                        "strategy (random, evolution, mcts, smbo) for the time limit, scoring "
                        "each candidate by the cost pass: the best found, without a bound")
    p.add_argument("--json", action="store_true", help="the certificate and costs as JSON")
    p.add_argument("-o", "--output", metavar="OUT.py", help="write the solution's source here")
    p.add_argument("--backend", default="torch", help="backend for -o (default torch)")
    p.add_argument("--verbose", action="store_true", help="show HiGHS's log")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="override a parameter of the arch")
    p.add_argument("--arch", help="which arch, when a file defines several")
    p.set_defaults(run=cmd_solve)


def _cores() -> int:
    """The cores this process may run on."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _status_line(text: str) -> None:
    print(f"[solve] {text}", file=sys.stderr, flush=True)


def cmd_solve(args: argparse.Namespace) -> int:
    from archlang import api
    from archlang.cli import _load, _si, write_output
    from archlang.solvers.milp import solve

    space = _load(args, args.file)
    if args.output:  # a misspelt or missing backend is an error before the solve, not after
        from archlang.backends import get_backend

        get_backend(args.backend)
    threads = args.threads if args.threads is not None else min(2, _cores())
    solution = solve(space, time_limit=args.time_limit, gap=args.gap, threads=threads,
                     verbose=args.verbose, formulation=args.formulation,
                     fallback=args.fallback,
                     progress=_status_line if not args.json else lambda text: None)
    # Ctrl-C stops the search, not the command: the best architecture so far is shown (and
    # written with -o), and the exit status says it was interrupted.
    done = 130 if solution.status == "interrupted" else 0
    if solution.assignment is None:
        if args.json:
            print(json.dumps(solution.as_json(), indent=2))
        if done:
            print(f"{args.file}: interrupted before any architecture was found",
                  file=sys.stderr)
            return done
        print(f"{args.file}: error: no solution ({solution.status}) for '{space.name}'",
              file=sys.stderr)
        if solution.conflicts:
            print("note: conflicting requirements, and the least relaxation of each that "
                  "makes the problem feasible:", file=sys.stderr)
            for r in solution.conflicts:
                print(f"  require {r.constraint}   ->   {r.least}", file=sys.stderr)
        elif solution.status == "infeasible":
            print("note: no single requirement, relaxed or dropped, makes the problem "
                  "feasible", file=sys.stderr)
        return 1

    def write() -> None:  # after the answer is shown: a bad path or backend loses nothing
        if args.output:
            write_output(args.output,
                         api.fix(space, solution.assignment).emit(args.backend))

    if args.json:
        print(json.dumps(solution.as_json(), indent=2, default=str))
        write()
        return done
    gap = "n/a" if solution.gap is None else f"{100 * solution.gap:.4f}%"
    print(f"{space.name}: {solution.status}  objective {solution.objective:.6g}  "
          f"bound {solution.bound if solution.bound is None else f'{solution.bound:.6g}'}  "
          f"gap {gap}  {solution.seconds:.2f} s")
    size = ", ".join(f"{v:,} {k}" for k, v in solution.size.items())
    print(f"formulation: {solution.formulation} ({size})")
    print("assignment: " + json.dumps(solution.assignment))
    m = solution.metrics
    costs = [f"params {m['params']:,}", f"MACs {_si(m['macs'])}"]
    costs += [f"{k} {v:.6g}" for k, v in m.items()
              if k not in ("params", "macs", "flops") and isinstance(v, float)]
    print("costs: " + ", ".join(costs))
    for note in solution.notes:
        print(f"warning: {note}", file=sys.stderr)
    if args.output:
        write()
        print(f"wrote {args.output} ({args.backend})")
    if done:
        proven = "no bound yet" if solution.bound is None else "the bound proven so far"
        print(f"note: interrupted: the best architecture found so far ({proven})",
              file=sys.stderr)
    return done
