"""Text -> syntax tree. The only module that touches lark.

Reading a file is guarded as well as parsing it: a spec that is too large or not UTF-8 is a user
error with a position, like any other.
"""

from __future__ import annotations

import re
from dataclasses import fields, replace
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

from lark import (
    Lark,
    Token,
    Transformer,
    UnexpectedCharacters,
    UnexpectedInput,
    UnexpectedToken,
    v_args,
)
from lark.exceptions import UnexpectedEOF

from archlang.errors import ArchError, Source, Span
from archlang.lang import ast as A

MAX_SPEC_BYTES = 1 << 20  # 1 MiB: ten times the largest spec we have seen, far below a problem

_SI = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}

# How lark's terminal names read in an error message.
_TERMINAL_TEXT = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "COMPARE": "a comparison",
    "MUL_OP": "'*'", "$END": "end of file",
}


@cache
def _parser() -> Lark:
    text = resources.files("archlang.grammar").joinpath("archlang.lark").read_text("utf-8")
    return Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=True,
                start=["start", "expr"])


def read_source(path: str | Path, display: str | None = None) -> Source:
    """Read a spec file, rejecting what is too large or not UTF-8 with a positioned error."""
    path = Path(path)
    shown = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise ArchError(
                f"spec is {size / 2**20:.1f} MiB; specs are limited to "
                f"{MAX_SPEC_BYTES // 2**20} MiB", Span(Source(shown, ""), 1, 1, 1, 2))
        data = path.read_bytes()
    except OSError as exc:
        raise ArchError(f"cannot read '{shown}': {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8")
        line = good.count("\n") + 1
        column = len(good) - (good.rfind("\n") + 1) + 1
        lines = data.decode("utf-8", errors="replace")
        raise ArchError(
            f"spec is not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}",
            Span(Source(shown, lines), line, column, line, column + 1)) from None
    return Source(shown, text)


def parse(source: Source) -> A.Module:
    """Parse a spec. Results are cached by (path, text): the AST is immutable, and the standard
    library would otherwise be parsed again by every spec that imports it."""
    return _parse_cached(source)


@lru_cache(maxsize=64)
def _parse_cached(source: Source) -> A.Module:
    if len(source.text.encode("utf-8")) > MAX_SPEC_BYTES:
        raise ArchError(f"spec is larger than {MAX_SPEC_BYTES // 2**20} MiB",
                        Span(source, 1, 1, 1, 2))
    try:
        tree = _parser().parse(source.text, start="start")
    except UnexpectedInput as exc:
        raise _syntax_error(exc, source) from None
    return _ToAst(source).transform(tree)


def _syntax_error(exc: UnexpectedInput, source: Source) -> ArchError:
    line, column = max(exc.line, 1), max(exc.column, 1)
    width = 1
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        what = f"unexpected {exc.token.value!r}"
        width = max(1, len(exc.token.value))
    elif isinstance(exc, UnexpectedCharacters):
        what = f"unexpected character {source.text[exc.pos_in_stream]!r}"
    elif isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken)):
        what = "unexpected end of file"
        lines = source.text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
    else:  # pragma: no cover - lark has no other kinds
        what = "syntax error"
    expected = sorted({_terminal_text(t) for t in getattr(exc, "expected", ()) or ()})
    notes = (f"expected {', '.join(expected[:8])}{', ...' if len(expected) > 8 else ''}",) \
        if expected else ()
    return ArchError(f"syntax error: {what}", Span(source, line, column, line, column + width),
                     notes)


def _terminal_text(name: str) -> str:
    if name in _TERMINAL_TEXT:
        return _TERMINAL_TEXT[name]
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return name
    return repr(pattern.value) if pattern.type == "str" else name.lower()


def number(text: str) -> int | float:
    """`50k` -> 50000, `3.5M` -> 3500000, `1e-3` -> 0.001; integral SI values become ints."""
    scale = 1
    if text[-1] in _SI:
        scale, text = _SI[text[-1]], text[:-1]
        value = float(text) * scale
        return int(round(value)) if abs(value - round(value)) < 1e-6 else value
    if re.fullmatch(r"\d+", text):
        return int(text)
    return float(text)


def _span(source: Source, meta_or_token) -> Span:
    m = meta_or_token
    if getattr(m, "empty", False):
        return Span(source, 1, 1, 1, 2)
    return Span(source, m.line, m.column, m.end_line, m.end_column)


@v_args(meta=True)
class _ToAst(Transformer):
    """lark Tree -> archlang.lang.ast, attaching spans."""

    def __init__(self, source: Source):
        super().__init__()
        self.src = source

    def _s(self, meta) -> Span:
        return _span(self.src, meta)

    # ------------------------------------------------------------ file level
    def start(self, meta, items):
        imports = tuple(i for i in items if isinstance(i, A.Import))
        blocks = tuple(i for i in items if isinstance(i, A.BlockDef))
        return A.Module(self.src.path, imports, blocks)

    def import_stmt(self, meta, c):
        return A.Import(c[0][1:-1], self._s(meta))

    def block_def(self, meta, c):
        return A.BlockDef(str(c[0]), c[1] or (), c[2], self._s(c[0]))

    def arch_def(self, meta, c):
        return A.BlockDef(str(c[0]), c[1] or (), c[2], self._s(c[0]), is_arch=True)

    def params(self, meta, c):
        return tuple(p for p in c if p is not None)

    def param(self, meta, c):
        return A.ParamDef(str(c[0]), str(c[1]) if c[1] else None, c[2], self._s(meta))

    def body(self, meta, c):
        return tuple(c)

    # ------------------------------------------------------------ statements
    def let_stmt(self, meta, c):
        return A.Let(str(c[0]), c[1], self._s(meta))

    def option_stmt(self, meta, c):
        return A.Option(".".join(str(t) for t in c[:-1]), c[-1], self._s(meta))

    def input_stmt(self, meta, c):
        return A.Input(str(c[0]), str(c[1]) if c[1] else "float", tuple(x for x in c[2:] if x is not None),
                       self._s(meta))

    def require_stmt(self, meta, c):
        return A.Require(c[0], self._s(meta))

    def objective_stmt(self, meta, c):
        return A.Objective(str(c[0]), str(c[1]), self._s(c[1]))

    def labeled(self, meta, c):
        label, stmt = c
        return _with_label(stmt, label)

    def label(self, meta, c):
        tok: Token = c[0]
        span = self._s(tok)
        if tok.type == "NAME":
            return A.Label((str(tok),), span)
        return A.Label(self._interpolate(tok[1:-1], span), span)

    def _interpolate(self, text: str, span: Span) -> tuple[str | A.Expr, ...]:
        parts: list[str | A.Expr] = []
        pos = 0
        for m in re.finditer(r"\{([^{}]*)\}", text):
            if m.start() > pos:
                parts.append(text[pos : m.start()])
            try:
                tree = _parser().parse(m.group(1), start="expr")
            except UnexpectedInput:
                raise ArchError(f"cannot parse '{{{m.group(1)}}}' in a label", span) from None
            parts.append(_ToAst(Source(self.src.path, m.group(1))).transform(tree))
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        return tuple(_relocate(p, span) for p in parts)

    def residual_stmt(self, meta, c):
        return A.Residual(None, c[0] or (), c[1], self._s(meta))

    def repeat_stmt(self, meta, c):
        return A.Repeat(None, c[0], str(c[1]) if c[1] else None, c[2], self._s(meta))

    def for_stmt(self, meta, c):
        return A.For(None, c[0], c[1], c[2], self._s(meta))

    def loop_target(self, meta, c):
        return tuple(str(t) for t in c)

    def one_of_stmt(self, meta, c):
        return A.OneOf(None, tuple(c), self._s(meta))

    def optional_stmt(self, meta, c):
        return A.Optional(None, c[0], self._s(meta))

    def parallel_stmt(self, meta, c):
        return A.Parallel(None, str(c[0]), tuple(c[1:]), self._s(meta))

    def if_stmt(self, meta, c):
        orelse = c[2]
        if isinstance(orelse, A.If):
            orelse = (orelse,)
        return A.If(None, c[0], c[1], orelse or (), self._s(meta))

    def scope_stmt(self, meta, c):
        return A.Scope(None, c[0], self._s(meta))

    def call_el(self, meta, c):
        label, name, args = c
        return A.OpCall(label, str(name), args or (), self._s(name))

    def source_el(self, meta, c):
        return A.Source(c[0], self._s(meta))

    def bind_el(self, meta, c):
        return A.Bind(str(c[0]), self._s(c[0]))

    def tensor_name(self, meta, c):
        return A.TensorName(str(c[0]), self._s(meta))

    def tensor_choice(self, meta, c):
        return A.TensorChoice(tuple(str(t) for t in c if t is not None), self._s(meta))

    def args(self, meta, c):
        return tuple(a if isinstance(a, A.Arg) else A.Arg(None, a, a.span) for a in c
                     if a is not None)

    def kwarg(self, meta, c):
        return A.Arg(str(c[0]), c[1], self._s(meta))

    # ------------------------------------------------------------ expressions
    def number(self, meta, c):
        return A.Num(number(str(c[0])), self._s(meta))

    def string(self, meta, c):
        return A.Str(str(c[0])[1:-1], self._s(meta))

    def true(self, meta, c):
        return A.Bool(True, self._s(meta))

    def false(self, meta, c):
        return A.Bool(False, self._s(meta))

    def name(self, meta, c):
        return A.Name(str(c[0]), self._s(meta))

    def call(self, meta, c):
        return A.Call(str(c[0]), c[1] or (), self._s(meta))

    def list(self, meta, c):
        return A.ListLit(tuple(x for x in c if x is not None), False, self._s(meta))

    def tuple(self, meta, c):
        return A.ListLit(tuple(x for x in c if x is not None), True, self._s(meta))

    def binop(self, meta, c):
        return A.BinOp(str(c[1]), c[0], c[2], self._s(meta))

    compare = binop

    def and_(self, meta, c):
        return A.BinOp("and", c[0], c[1], self._s(meta))

    def or_(self, meta, c):
        return A.BinOp("or", c[0], c[1], self._s(meta))

    def not_(self, meta, c):
        return A.Unary("not", c[0], self._s(meta))

    def neg(self, meta, c):
        return A.Unary("-", c[1], self._s(meta))

    def cond(self, meta, c):
        return A.Cond(c[0], c[1], c[2], self._s(meta))


def _with_label(stmt, label: A.Label):
    return replace(stmt, label=label)


def _relocate(part, span: Span):
    """Give the expressions inside a label the label's position (their own is label-relative)."""
    if isinstance(part, str):
        return part
    changes = {}
    for f in fields(part):
        value = getattr(part, f.name)
        if f.name == "span":
            changes["span"] = span
        elif isinstance(value, tuple):
            changes[f.name] = tuple(_relocate(v, span) if not isinstance(v, (str, int, float))
                                    else v for v in value)
        elif hasattr(value, "span"):
            changes[f.name] = _relocate(value, span)
    return replace(part, **changes)
