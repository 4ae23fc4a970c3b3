"""The Python API: what the CLI calls and what other NAS tools embed.

    import archlang
    space = archlang.load("examples/digits_space.arch")
    print(space.size, [d.name for d in space.decisions])
    arch = archlang.fix(space, archlang.sample(space, seed=0))
    print(arch.cost.params, arch.cost.macs)
    model = arch.build("torch")          # torch is imported only here

`import archlang` imports no framework: backends are loaded when `build`/`emit` ask for them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from archlang.errors import ArchError, Source
from archlang.ir import decisions as D
from archlang.ir import expr as E
from archlang.ir.graph import Graph
from archlang.ir.serialize import space_from_json, space_to_json
from archlang.ir.space import Decision, Space
from archlang.lang.lower import Lowerer
from archlang.lang.parse import read_source
from archlang.lang.resolve import load_program
from archlang.passes.cost import Cost, cost
from archlang.passes.elaborate import elaborate
from archlang.passes.metrics import compute as compute_metrics

DEFAULT_MAX_PARAMS = 10**10
CHECK_PROBES = 16  # random points elaborated by `check`, beyond the default one

__all__ = [
    "Architecture", "ArchError", "Space", "Decision", "load", "loads", "check", "sample",
    "fix", "size", "default_assignment", "space_to_json", "space_from_json", "assignment_to_json",
    "assignment_from_json", "assignment_hash",
]


# ---------------------------------------------------------------- loading


def load(path: str | Path, params: Mapping[str, Any] | None = None, arch: str | None = None,
         checked: bool = True) -> Space:
    """Read, parse, lower and (by default) check a spec file. Imports stay in its folder."""
    source = read_source(path)
    return _lower(source, Path(path).resolve().parent, params, arch, checked)


def loads(text: str, name: str = "<spec>", params: Mapping[str, Any] | None = None,
          arch: str | None = None, checked: bool = True) -> Space:
    """Like `load`, from a string (only the standard library can be imported)."""
    return _lower(Source(name, text), None, params, arch, checked)


def _lower(source: Source, root: Path | None, params, arch: str | None, checked: bool) -> Space:
    program = load_program(source, root)
    if not program.archs:
        raise ArchError(f"'{source.path}' defines no arch (only blocks)")
    if arch is None:
        if len(program.archs) > 1:
            names = ", ".join(a.name for a in program.archs)
            raise ArchError(f"'{source.path}' defines several archs ({names}); pick one with "
                            "--arch NAME")
        definition = program.archs[0]
    else:
        definition = next((a for a in program.archs if a.name == arch), None)
        if definition is None:
            raise ArchError(f"'{source.path}' has no arch named '{arch}'")
    space = Lowerer(program).lower_arch(definition, dict(params or {}))
    if checked:
        check(space)
    return space


def check(space: Space, probes: int = CHECK_PROBES, seed: int = 0) -> None:
    """Elaborate the first and last points and a few random ones, so shape errors surface now.

    A fixed network has one point and is checked completely. In a space, an error that
    appears only at some points is reported with the assignment that shows it.
    """
    points = [D.default_assignment(space)]
    if space.decisions:
        rng = random.Random(seed)
        points.append(D.default_assignment(space, last=True))
        points += [D.sample(space, rng) for _ in range(probes)]
    for values in points:
        try:
            elaborate(space, values)
        except ArchError as exc:
            if not space.decisions:
                raise
            shown = json.dumps(values)
            raise ArchError(exc.message, exc.span,
                            (*exc.notes, f"with the assignment {shown[:400]}")) from None


# ---------------------------------------------------------------- decisions


def size(space: Space) -> int | float:
    """The exact number of points (math.inf with continuous decisions); no enumeration."""
    return D.size(space)


def sample(space: Space, seed: int | random.Random | None = None,
           feasible: bool = False, tries: int = 1000) -> dict[str, Any]:
    """A random assignment. With `feasible`, redraw until the spec's `require`s hold."""
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    for _ in range(tries if feasible else 1):
        values = D.sample(space, rng)
        if not feasible or not fix(space, values).violations():
            return values
    raise ArchError(f"no feasible point of '{space.name}' in {tries} random draws")


def default_assignment(space: Space) -> dict[str, Any]:
    """The first value of every active decision: a deterministic point."""
    return D.default_assignment(space)


def assignment_hash(assignment: Mapping[str, Any]) -> str:
    return D.assignment_hash(assignment)


def assignment_to_json(assignment: Mapping[str, Any]) -> str:
    return json.dumps(dict(assignment), indent=2)


def assignment_from_json(text: str) -> dict[str, Any]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ArchError("an assignment is a JSON object mapping decision names to values")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


# ---------------------------------------------------------------- architectures


@dataclass(frozen=True)
class Architecture:
    """One point of a space: the assignment is validated; the graph is built on first use."""

    space: Space
    assignment: Mapping[str, Any] = field(hash=False)

    @cached_property
    def graph(self) -> Graph:
        return elaborate(self.space, self.assignment)

    @cached_property
    def cost(self) -> Cost:
        return cost(self.graph)

    @property
    def hash(self) -> str:
        return D.assignment_hash(self.assignment)

    def metrics(self) -> dict[str, Any]:
        """Every registered metric (costs, zero-cost scores) under the spec's options."""
        return dict(self._metrics)

    @cached_property
    def _metrics(self) -> dict[str, Any]:
        return compute_metrics(self.graph, options=dict(self.space.options))

    def violations(self, measured: Mapping[str, Any] | None = None) -> list[str]:
        """The spec's `require` constraints that this architecture breaks (as written)."""
        out = []
        values: dict[str, Any] | None = None
        for c in self.space.constraints:
            if c.metrics and values is None:
                values = {**self.assignment, **{f"${k}": v for k, v in self.metrics().items()}}
            env = values if c.metrics else self.assignment
            try:
                ok = E.evaluate(c.expr, {**env, **(measured or {})})
            except E.NotConstant:
                continue  # reads a decision that is inactive here: vacuous
            if not ok:
                out.append(c.text)
        return out

    def check_size(self, max_params: int = DEFAULT_MAX_PARAMS) -> None:
        """Refuse, before any tensor exists, a model with more than `max_params` parameters."""
        if self.cost.params > max_params:
            raise ArchError(f"'{self.space.name}' has {self.cost.params:,} parameters, above "
                            f"the limit of {max_params:,} (raise it with --max-params)",
                            self.space.span)

    def build(self, backend: str = "torch", max_params: int = DEFAULT_MAX_PARAMS):
        from archlang.backends import get_backend

        self.check_size(max_params)
        return get_backend(backend).build(self.graph)

    def emit(self, backend: str = "torch") -> str:
        from archlang.backends import get_backend

        return get_backend(backend).emit(self.graph)


def fix(space: Space, assignment: Mapping[str, Any] | None = None) -> Architecture:
    """Validate an assignment and return its Architecture (errors name each bad decision)."""
    return Architecture(space, D.validate(space, assignment or {}))
