"""The `archlang` command line: argparse subcommands that call the API and print.

Exit codes: 0 ok, 1 user error (a compiler-style message on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archlang import api
from archlang.errors import ArchError
from archlang.ir import expr as E
from archlang.lang.parse import number


def _si(value: float, unit: str = "") -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3f} {suffix}{unit}"
    return f"{value:g} {unit}".rstrip()


def _size_text(space: api.Space) -> str:
    total = api.size(space)
    if total == math.inf:
        from archlang.ir.decisions import size

        n = sum(1 for d in space.decisions if not d.domain.discrete)
        return (f"infinite ({n} continuous decision{'s' if n > 1 else ''}; "
                f"discrete part {size(space, continuous_as_one=True):,} points)")
    return f"{total:,} point{'s' if total != 1 else ''}"


def _parse_value(text: str) -> Any:
    """A --set value: a number (SI suffixes allowed), true/false, or a string."""
    if text in ("true", "false"):
        return text == "true"
    try:
        return number(text)
    except ValueError:
        return text.strip('"')


def _pairs(items: Sequence[str], flag: str) -> dict[str, Any]:
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise ArchError(f"{flag} expects NAME=VALUE, got '{item}'")
        out[name.strip()] = _parse_value(value.strip())
    return out


def _load(args: argparse.Namespace, path: str) -> api.Space:
    return api.load(path, params=_pairs(getattr(args, "param", []) or [], "--param"),
                    arch=getattr(args, "arch", None))


def write_output(path: str, text: str) -> None:
    """Write a generated file, making its folder; a path that cannot be written is the user's
    error, said in one line."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, "utf-8")
    except OSError as exc:
        raise ArchError(f"cannot write '{path}': {exc.strerror or exc}") from None


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- commands


def cmd_check(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.files:
        try:
            space = _load(args, path)
            if space.decisions:
                point = api.fix(space, api.default_assignment(space))
                what = f"{len(space.decisions)} decisions, {_size_text(space)}"
            else:
                point = api.fix(space, {})
                what = "fixed network"
            point.check_size(args.max_params)
            c = point.cost
            print(f"{path}: ok ({space.name}: {what}; "
                  f"{'default point ' if space.decisions else ''}{c.params:,} params, "
                  f"{_si(c.macs, 'MACs')})")
        except ArchError as exc:
            failed += 1
            _report(exc, path)
    return 1 if failed else 0


def cmd_show(args: argparse.Namespace) -> int:
    space = _load(args, args.file)
    if args.ir:
        from archlang.ir.printer import print_space

        print(print_space(space), end="")
        return 0
    if args.json:
        print(json.dumps({
            "name": space.name,
            "size": api.size(space) if api.size(space) != math.inf else "inf",
            "decisions": [{"name": d.name, "kind": d.kind, "domain": d.domain.show(),
                           "values": list(d.domain.enumerate()) if d.domain.discrete else None,
                           "condition": [E.show(c) for c in d.condition]}
                          for d in space.decisions],
            "constraints": [c.text for c in space.constraints],
            "objectives": [{"sense": o.sense, "metric": o.metric} for o in space.objectives],
        }, indent=2))
        return 0
    from rich.table import Table

    console = _console()
    console.print(f"arch {space.name}: {len(space.decisions)} decisions, {_size_text(space)}")
    if space.decisions:
        table = Table("decision", "kind", "domain", "active when")
        for d in space.decisions:
            table.add_row(d.name, d.kind, d.domain.show(),
                          " and ".join(E.show(c) for c in d.condition) or "always")
        console.print(table)
    for c in space.constraints:
        console.print(f"require {c.text}")
    for o in space.objectives:
        console.print(f"{o.sense} {o.metric}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:

    space = _load(args, args.file)
    rng = random.Random(args.seed)
    rows = []
    for _ in range(args.n):
        values = api.sample(space, rng, feasible=args.feasible)
        arch = api.fix(space, values)
        arch.check_size(args.max_params)
        rows.append({"hash": arch.hash, "assignment": values, **arch.metrics()})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['hash']}  params {row['params']:>12,}  MACs {_si(row['macs']):>10}  "
              f"{json.dumps(row['assignment'])}")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    values: dict[str, Any] = {}
    if args.from_db:
        from archlang.search.store import assignment_from_db

        spec_path, stored = assignment_from_db(args.from_db, args.trial)
        args.file = args.file or spec_path
        values.update(stored)
    space = _load(args, args.file)
    if args.assignment:
        try:
            values.update(api.assignment_from_json(Path(args.assignment).read_text("utf-8")))
        except (OSError, ValueError) as exc:
            raise ArchError(f"cannot read assignment '{args.assignment}': {exc}") from None
    values.update(_pairs(args.set or [], "--set"))
    arch = api.fix(space, values)
    arch.check_size(args.max_params)  # before any tensor is allocated
    broken = arch.violations()
    if args.json:
        print(json.dumps({**arch.metrics(), "hash": arch.hash, "assignment": dict(values),
                          "violations": broken}, indent=2))
    elif args.summary:
        _print_summary(arch)
    if args.output:
        source = arch.emit(args.backend)
        write_output(args.output, source)
        if not args.json:
            print(f"wrote {args.output} ({args.backend}, {len(source.splitlines())} lines)")
    elif not args.json and not args.summary:
        c = arch.cost
        print(f"{space.name}: {c.params:,} params, {_si(c.macs, 'MACs')}, "
              f"{_si(c.flops, 'FLOPs')}, depth {c.depth}")
    for text in broken:
        print(f"warning: violates `require {text}`", file=sys.stderr)
    return 0


def _print_summary(arch: api.Architecture) -> None:
    from rich.table import Table

    table = Table("layer", "op", "output", "params", "MACs", show_footer=True)
    for layer in arch.graph.layers:
        table.add_row(layer.path, layer.op, "[" + ", ".join(map(str, layer.shape)) + "]",
                      f"{layer.params:,}", f"{layer.macs:,}")
    c = arch.cost
    table.columns[0].footer = "total"
    table.columns[3].footer = f"{c.params:,}"
    table.columns[4].footer = f"{c.macs:,}"
    console = _console()
    console.print(table)
    console.print(f"params {c.params:,}  MACs {c.macs:,} ({_si(c.macs)})  FLOPs {c.flops:,}  "
                  f"activations {c.activations:,}  depth {c.depth}")


# ---------------------------------------------------------------- plumbing


def _report(exc: ArchError, path: str | None = None) -> None:
    text = exc.render()
    if exc.span is None and path and not text.startswith(path):
        text = f"{path}: {text}"
    print(text, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archlang", description="Compile neural-network architectures and search spaces.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, spec_params: bool = True) -> None:
        p.add_argument("--max-params", type=int, default=api.DEFAULT_MAX_PARAMS,
                       help="refuse models with more parameters (default 10^10)")
        if spec_params:
            p.add_argument("--param", action="append", metavar="NAME=VALUE",
                           help="override a parameter of the arch")
            p.add_argument("--arch", help="which arch, when a file defines several")

    p = sub.add_parser("check", help="parse and check specs; print each one's size and cost")
    p.add_argument("files", nargs="+", metavar="FILE")
    common(p)
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("show", help="list a space's decisions, domains, conditions and size")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.add_argument("--ir", action="store_true", help="print the lowered Space IR")
    common(p)
    p.set_defaults(run=cmd_show)

    p = sub.add_parser("sample", help="draw random points of a space")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-n", type=int, default=1, help="how many (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--feasible", action="store_true", help="only points meeting `require`s")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(run=cmd_sample)

    p = sub.add_parser("compile", help="fix a point and emit model source / print its cost")
    p.add_argument("file", metavar="FILE", nargs="?",
                   help="the spec (optional with --from-db: the searched spec is used)")
    p.add_argument("--from-db", metavar="DB", help="take the point from a search's trial store")
    picked = p.add_mutually_exclusive_group()
    picked.add_argument("--best", action="store_true",
                        help="with --from-db: the best trial (the default)")
    picked.add_argument("--trial", type=int, metavar="ID", help="with --from-db: this trial")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="a decision's value")
    p.add_argument("--assignment", metavar="FILE", help="a JSON file of decision values")
    p.add_argument("--backend", default="torch", help="torch (default) or flax")
    p.add_argument("-o", "--output", metavar="OUT.py", help="write the emitted source here")
    p.add_argument("--summary", action="store_true", help="per-layer table and totals")
    p.add_argument("--json", action="store_true", help="costs as JSON")
    common(p)
    p.set_defaults(run=cmd_compile)
    for name in EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


# Subcommands contributed by other parts of archlang (`search`, `report`, `solve`). Each module
# has `register(subparsers)`; it must import heavy libraries only when its command runs.
EXTENSIONS = ("archlang.search.cli", "archlang.solvers.milp.cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "n", 1) < 0:
        parser.error("-n must be non-negative")
    if args.command == "compile" and not args.from_db:
        if args.file is None:
            parser.error("compile needs a spec FILE (or --from-db DB)")
        if args.best or args.trial is not None:
            parser.error("--best and --trial pick a trial of --from-db DB")
    try:
        return args.run(args)
    except ArchError as exc:
        _report(exc, getattr(args, "file", None))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `archlang show x.arch | head`: the reader left, which is fine
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
