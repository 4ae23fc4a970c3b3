"""Imports and the table of blocks a spec can call.

`import "std"` brings in the standard library shipped inside the package; `import "x.arch"`
reads a file relative to the importing one, and never from outside the folder tree of the spec
being compiled. Cycles are errors, as are two blocks with one name.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from archlang.errors import ArchError, ErrorSink, Source
from archlang.ir.ops import OPS
from archlang.lang import ast as A
from archlang.lang.parse import parse, read_source

STDLIB = {"std": "std.arch"}


@dataclass(frozen=True, slots=True)
class Program:
    """A parsed spec with every block it can see, and its arch definitions."""

    main: A.Module
    blocks: dict[str, A.BlockDef]
    archs: tuple[A.BlockDef, ...]


def load_program(source: Source, root: Path | None) -> Program:
    """Parse `source` and everything it imports. `root` confines file imports (None: no files)."""
    module = parse(source)
    blocks: dict[str, A.BlockDef] = {}
    sink = ErrorSink()
    _collect(module, source, root, blocks, sink, stack=(_key(source),), seen=set())
    sink.raise_if_any()
    return Program(module, blocks, tuple(b for b in module.blocks if b.is_arch))


def _key(source: Source) -> str:
    return str(Path(source.path).resolve()) if not source.path.startswith("<") else source.path


def _collect(module: A.Module, source: Source, root: Path | None, blocks: dict[str, A.BlockDef],
             sink: ErrorSink, stack: tuple[str, ...], seen: set[str]) -> None:
    for block in module.blocks:
        if block.is_arch:
            continue
        if block.name in OPS:
            sink.add(ArchError(f"block '{block.name}' has the name of a built-in op", block.span))
        elif block.name in blocks:
            other = blocks[block.name].span
            where = f" (first defined at {other.path}:{other.line})" if other else ""
            sink.add(ArchError(f"block '{block.name}' is defined twice{where}", block.span))
        else:
            blocks[block.name] = block
    for imp in module.imports:
        try:
            imported = _read_import(imp, source, root)
        except ArchError as exc:
            sink.add(exc)
            continue
        key = _key(imported)
        if key in stack:
            chain = " -> ".join(Path(k).name for k in (*stack, key))
            sink.add(ArchError(f"cyclic import: {chain}", imp.span))
            continue
        if key in seen:  # imported already along another path: its blocks are in the table
            continue
        seen.add(key)
        try:
            sub = parse(imported)
        except ArchError as exc:
            sink.add(exc)
            continue
        _collect(sub, imported, root, blocks, sink, (*stack, key), seen)


def _read_import(imp: A.Import, source: Source, root: Path | None) -> Source:
    if imp.path in STDLIB:
        text = resources.files("archlang.stdlib").joinpath(STDLIB[imp.path]).read_text("utf-8")
        return Source(f"<{imp.path}>", text)
    if root is None or source.path.startswith("<"):
        raise ArchError(f"cannot import '{imp.path}' from a spec that is not a file; "
                        f"the standard library is {', '.join(repr(k) for k in STDLIB)}", imp.span)
    target = (Path(source.path).parent / imp.path).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ArchError(f"import '{imp.path}' leaves the spec's folder ({root})", imp.span,
                        ("imports are confined to the folder of the spec being compiled",))
    if not target.is_file():
        raise ArchError(f"cannot find '{imp.path}' (looked for {target})", imp.span)
    return read_source(target, display=str(Path(source.path).parent / imp.path))
