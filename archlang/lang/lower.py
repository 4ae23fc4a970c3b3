"""Syntax tree -> Space IR.

Lowering inlines block calls, unrolls `for` loops, evaluates what is constant, turns every
`choice(...)`/`intrange(...)`/`uniform(...)` into a named :class:`Decision`, and gives every op
a dotted path (`layer1.0.conv1`). Errors are collected, not raised one at a time, so a user sees
every mistake of a spec in one run.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass, field
from typing import Any

from archlang.errors import ArchError, ErrorSink, Span
from archlang.ir import expr as E
from archlang.ir import space as S
from archlang.ir.ops import OPS, OpSpec, Param
from archlang.lang import ast as A
from archlang.lang.resolve import Program
from archlang.passes.metrics import MEASURED, metric_names, option_defaults

DECISION_FUNCTIONS = ("choice", "intrange", "uniform", "loguniform")
PROJECTIONS = ("auto", "conv", "conv_bn", "linear", "none")
MERGES = ("add", "concat", "multiply")
MAX_REPEAT = 4096


@dataclass
class _Scope:
    """Names taken by the ops and blocks of one path prefix, and their auto-numbering."""

    path: str
    taken: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)

    def child(self, segment: str) -> str:
        return f"{self.path}.{segment}" if self.path else segment

    def auto(self, base: str, bare_first: bool = False) -> str:
        if bare_first and base not in self.taken and base not in self.counts:
            self.counts[base] = 1
            self.taken.add(base)
            return base
        while True:
            n = self.counts.get(base, 0) + 1
            self.counts[base] = n
            name = f"{base}_{n}" if base[-1].isdigit() else f"{base}{n}"  # relu6_1, not relu61
            if name not in self.taken:
                self.taken.add(name)
                return name


@dataclass
class _Ctx:
    env: dict[str, E.Expr]  # values in scope: parameters, lets, loop variables
    tensors: dict[str, str]  # tensor names in scope -> binding ids
    scope: _Scope
    cond: tuple[E.Expr, ...]  # when the code being lowered runs
    blocks: tuple[str, ...]  # the block calls we are inside, to catch recursion
    let_suffix: str = ""  # lets in a `for` body are named per iteration
    top: bool = False  # the arch's own body (objectives live here)

    def nested(self, **changes: Any) -> _Ctx:
        values = {"env": dict(self.env), "tensors": self.tensors, "scope": self.scope,
                  "cond": self.cond, "blocks": self.blocks, "let_suffix": self.let_suffix,
                  "top": False}
        values.update(changes)
        return _Ctx(**values)


def _suggest(name: str, options) -> tuple[str, ...]:
    close = difflib.get_close_matches(name, list(options), n=1)
    return (f"did you mean '{close[0]}'?",) if close else ()


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


def check_value(owner: str, param: Param, value: Any, span: Span | None) -> Any:
    """Check one argument value against a parameter; returns it converted (int -> float)."""
    if value is None and param.default is None:
        return None
    kind = _kind(value)
    ok = kind == param.type or (param.type == "float" and kind == "int")
    if not ok:
        notes = ("`/` divides to a float; `//` keeps integers",) \
            if param.type == "int" and kind == "float" and float(value).is_integer() else ()
        raise ArchError(f"{owner} expects {_article(param.type)} {_PARAM_TEXT.get(param.name, param.name)}, "
                        f"got {value!r}", span, notes)
    if param.type == "float":
        value = float(value)
    if param.minimum is not None and value < param.minimum:
        what = "positive" if param.minimum == 1 and param.type == "int" else f">= {param.minimum}"
        raise ArchError(f"{owner} {_PARAM_TEXT.get(param.name, param.name)} must be {what}, "
                        f"got {value}", span)
    if param.options and value not in param.options:
        raise ArchError(f"{owner} {param.name} must be one of "
                        f"{', '.join(repr(o) for o in param.options)}, got {value!r}", span)
    return value


_PARAM_TEXT = {"out": "out-channels", "p": "probability"}


def _article(type_: str) -> str:
    return {"int": "an integer", "float": "a number", "bool": "a boolean",
            "str": "a string"}.get(type_, type_)


class Lowerer:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.sink = ErrorSink()
        self.decisions: list[S.Decision] = []
        self.decision_names: set[str] = set()
        self.constraints: list[S.Constraint] = []
        self.objectives: list[S.Objective] = []
        self.options: dict[str, Any] = {}
        self.bind_count = 0

    # ------------------------------------------------------------ entry
    def lower_arch(self, arch: A.BlockDef, overrides: dict[str, Any]) -> S.Space:
        env: dict[str, E.Expr] = {}
        bound: list[tuple[str, Any]] = []
        unknown = set(overrides) - {p.name for p in arch.params}
        for name in sorted(unknown):
            self.sink.add(ArchError(f"arch '{arch.name}' has no parameter '{name}'", arch.span,
                                    _suggest(name, [p.name for p in arch.params])))
        for p in arch.params:
            if p.name in overrides:
                value = E.Const(overrides[p.name], p.span)
            elif p.default is not None:
                value = self._expr(p.default, env)
            else:
                self.sink.add(ArchError(f"arch parameter '{p.name}' needs a default value", p.span))
                continue
            if isinstance(value, E.Const):
                self._check_param_type(p, value.value, p.span)
                bound.append((p.name, value.value))
            env[p.name] = value
        ctx = _Ctx(env, {}, _Scope(""), (), (arch.name,), top=True)
        root = self.body(arch.body, ctx)
        if not self.sink.errors and not any(isinstance(n, S.InputNode) for n in S.walk(root)):
            self.sink.add(ArchError(f"arch '{arch.name}' has no input; declare one with "
                                    "`input x[C, H, W]`", arch.span))
        self.sink.raise_if_any()
        return S.Space(arch.name, root, tuple(self.decisions), tuple(self.constraints),
                       tuple(self.objectives), tuple(bound), tuple(self.options.items()),
                       arch.span)

    # ------------------------------------------------------------ statements
    def body(self, stmts: tuple[A.Stmt, ...], ctx: _Ctx) -> S.Seq:
        items: list[S.Node] = []
        for stmt in stmts:
            try:
                items.extend(self.stmt(stmt, ctx, single=len(stmts) == 1))
            except ArchError as exc:
                self.sink.add(exc)
        return S.Seq(tuple(items))

    def stmt(self, stmt: A.Stmt, ctx: _Ctx, single: bool = False) -> list[S.Node]:
        match stmt:
            case A.Let():
                return self.let(stmt, ctx)
            case A.Input(name, dtype, dims, span):
                return self.input(name, dtype, dims, span, ctx)
            case A.Option(name, value, span):
                self.option(name, value, span, ctx)
                return []
            case A.Require(test, span):
                self.require(test, span, ctx)
                return []
            case A.Objective(sense, metric, span):
                if not ctx.top:
                    raise ArchError(f"`{sense}` belongs in the arch body, not in a block", span)
                known = [*metric_names(), *MEASURED]
                if metric not in known:
                    raise ArchError(f"unknown metric '{metric}'", span,
                                    _suggest(metric, known) or
                                    (f"metrics are {', '.join(known)}",))
                self.objectives.append(S.Objective(sense, metric, span))
                return []
            case A.OpCall():
                return self.call(stmt, ctx, single)
            case A.Source(ref, span):
                return [S.SourceNode(self.tensor_sel(ref, ctx), span)]
            case A.Bind(name, span):
                ident = f"{ctx.scope.path}/{name}#{self.bind_count}"
                self.bind_count += 1
                ctx.tensors[name] = ident
                return [S.BindNode(ident, span)]
        label = self.label(stmt.label, ctx) if stmt.label else None
        match stmt:
            case A.Residual(_, args, body, span):
                return [self.residual(label, args, body, span, ctx)]
            case A.Repeat():
                return [self.repeat(stmt, label, ctx)]
            case A.For():
                return self.for_(stmt, label, ctx)
            case A.OneOf(_, branches, span):
                return [self.one_of(label, branches, span, ctx)]
            case A.Optional(_, body, span):
                return [self.optional(label, body, span, ctx)]
            case A.Parallel(_, merge, branches, span):
                return [self.parallel(label, merge, branches, span, ctx)]
            case A.If():
                return self.if_(stmt, label, ctx)
            case A.Scope(_, body, span):
                if label is None:
                    return [self.body(body, ctx.nested(env=ctx.env))]
                scope = _Scope(ctx.scope.child(label))
                return [self.body(body, ctx.nested(scope=scope, let_suffix=""))]
        raise AssertionError(stmt)  # pragma: no cover

    def label(self, label: A.Label, ctx: _Ctx) -> str:
        parts = []
        for part in label.parts:
            if isinstance(part, str):
                parts.append(part)
                continue
            value = self._expr(part, ctx.env)
            if not isinstance(value, E.Const):
                raise ArchError("a label can only interpolate constants", label.span)
            parts.append(str(value.value))
        text = "".join(parts)
        if not text.replace("_", "a").isalnum() or not text:
            raise ArchError(f"label '{text}' must be letters, digits and '_'", label.span)
        if text in ctx.scope.taken:
            where = f"'{ctx.scope.path}'" if ctx.scope.path else "the arch body"
            raise ArchError(f"label '{text}' is used twice in {where}", label.span)
        ctx.scope.taken.add(text)
        return text

    def let(self, stmt: A.Let, ctx: _Ctx) -> list[S.Node]:
        if stmt.name in E.SHAPE_NAMES:
            raise ArchError(f"'{stmt.name}' is a built-in name", stmt.span)
        base = ctx.scope.child(stmt.name) + ctx.let_suffix
        before = len(self.decisions)
        value = self.value(stmt.value, ctx, base, kind="value")
        nodes: list[S.Node] = [S.LetNode(d.name, stmt.span) for d in self.decisions[before:]]
        value = self._capture(value, nodes, stmt.span)
        ctx.env[stmt.name] = value
        return nodes

    def _capture(self, value: E.Expr, nodes: list[S.Node], span: Span) -> E.Expr:
        """Pin a shape-dependent value to the tensor where it is written (see CaptureNode)."""
        if not E.uses_shape(value) or isinstance(value, E.Ref):
            return value
        name = f"%{self.bind_count}"
        self.bind_count += 1
        nodes.append(S.CaptureNode(name, value, span))
        return E.Ref(name, span)

    def input(self, name: str, dtype: str, dims: tuple[A.Expr, ...], span: Span,
              ctx: _Ctx) -> list[S.Node]:
        if dtype not in ("float", "int"):
            raise ArchError(f"input type must be 'float' or 'int', got '{dtype}'", span)
        values = []
        for d in dims:
            v = self._expr(d, ctx.env)
            if not isinstance(v, E.Const) or _kind(v.value) != "int" or v.value < 1:
                shown = E.show(v)
                raise ArchError(f"input dimensions must be positive integer constants, "
                                f"got {shown}", d.span)
            values.append(v)
        if dtype == "int" and len(values) != 1:
            raise ArchError("an int input is a sequence of token ids: give one dimension", span)
        if len(values) not in (1, 2, 3):
            raise ArchError(f"input must be an image [C, H, W], tokens [N, D] or a vector [D], "
                            f"got {len(values)} dimensions", span)
        ident = f"{ctx.scope.path}/{name}#{self.bind_count}"
        self.bind_count += 1
        ctx.tensors[name] = ident
        return [S.InputNode(name, ident, tuple(values), dtype, span), S.BindNode(ident, span)]

    def option(self, name: str, value: A.Expr, span: Span, ctx: _Ctx) -> None:
        known = option_defaults()
        if not ctx.top:
            raise ArchError("`option` belongs in the arch body, not in a block", span)
        if name not in known:
            raise ArchError(f"unknown option '{name}'", span, _suggest(name, known) or (
                (f"options are {', '.join(sorted(known))}",) if known else ()))
        lowered = self._expr(value, ctx.env)
        if not isinstance(lowered, E.Const):
            raise ArchError("an option's value must be a constant", value.span)
        if name in self.options:
            raise ArchError(f"option '{name}' is set twice", span)
        self.options[name] = lowered.value

    def require(self, test: A.Expr, span: Span, ctx: _Ctx) -> None:
        env = dict(ctx.env)
        metrics = []
        for name in _names(test):
            if name not in env and name in metric_names():
                env[name] = E.Ref("$" + name)
                metrics.append(name)
            elif name not in env and name in MEASURED:
                raise ArchError(f"'{name}' is only known after training; use it in "
                                "`maximize`/`minimize`, not in `require`", span)
        expr = self._expr(test, env)
        if isinstance(expr, E.Const):
            if not expr.value:
                raise ArchError("this requirement is always false", span)
            return
        text = span.source.text[_offset(span):_offset(span, end=True)] if span.source else ""
        self.constraints.append(S.Constraint(expr, text.removeprefix("require").strip(),
                                             tuple(sorted(metrics)), span))

    # ------------------------------------------------------------ calls
    def call(self, call: A.OpCall, ctx: _Ctx, single: bool) -> list[S.Node]:
        if call.name in OPS:
            return [self.op(call, OPS[call.name], ctx)]
        block = self.program.blocks.get(call.name)
        if block is None:
            if call.name in ("maximize", "minimize", "require", "let", "input"):
                raise ArchError(f"'{call.name}' needs an argument", call.span)
            raise ArchError(f"unknown op or block '{call.name}'", call.span,
                            _suggest(call.name, [*OPS, *self.program.blocks]))
        return [self.block(call, block, ctx, single)]

    def op(self, call: A.OpCall, spec: OpSpec, ctx: _Ctx) -> S.OpNode:
        label = self.label(call.label, ctx) if call.label else ctx.scope.auto(spec.name)
        path = ctx.scope.child(label)
        sources: list[S.TensorSel] = []
        positional: list[A.Arg] = []
        keyword: dict[str, A.Arg] = {}
        for arg in call.args:
            if isinstance(arg.value, (A.TensorName, A.TensorChoice)):
                if arg.name is not None or spec.inputs != 0:
                    raise ArchError(f"{spec.name} takes no tensor arguments; it applies to the "
                                    "current tensor (switch it with `@name`)", arg.span)
                sources.append(self.tensor_sel(arg.value, ctx, f"{path}.input{len(sources)}"))
            elif arg.name is None:
                if keyword:
                    raise ArchError("positional argument after a keyword argument", arg.span)
                positional.append(arg)
            elif arg.name in keyword:
                raise ArchError(f"argument '{arg.name}' given twice", arg.span)
            else:
                keyword[arg.name] = arg
        if spec.inputs == 0 and len(sources) < 2:
            raise ArchError(f"{spec.name} merges two or more named tensors: "
                            f"`{spec.name}(@a, @b)`", call.span)
        bound = self._bind(spec.name, spec.params, positional, keyword, call.span)
        before = len(self.decisions)
        args: list[tuple[str, E.Expr]] = []
        sink = ErrorSink()
        for param in spec.params:
            arg = bound.get(param.name)
            if arg is None:
                continue
            try:
                value = self.value(arg.value, ctx, f"{path}.{param.name}", kind="value")
                self._check_static(spec.name, param, value, arg.span)
                args.append((param.name, value))
            except ArchError as exc:
                sink.add(exc)
        sink.raise_if_any()
        return S.OpNode(path, spec.name, tuple(args), tuple(sources),
                        tuple(d.name for d in self.decisions[before:]), call.span)

    def _bind(self, owner: str, params, positional: list[A.Arg], keyword: dict[str, A.Arg],
              span: Span) -> dict[str, A.Arg]:
        names = [p.name for p in params]
        if len(positional) > len(names):
            most = f"at most {len(names)} argument{'s' if len(names) != 1 else ''}" \
                if names else "no arguments"
            raise ArchError(f"{owner} takes {most}, got {len(positional)}",
                            positional[len(names)].span)
        bound = dict(zip(names, positional))
        for name, arg in keyword.items():
            if name not in names:
                raise ArchError(f"{owner} has no parameter '{name}'", arg.span,
                                _suggest(name, names) or
                                ((f"its parameters are {', '.join(names)}",) if names else ()))
            if name in bound:
                raise ArchError(f"{owner} got '{name}' twice", arg.span)
            bound[name] = arg
        for p in params:
            required = p.required if isinstance(p, Param) else p.default is None
            if required and p.name not in bound:
                raise ArchError(f"{owner} needs argument '{p.name}'", span,
                                (f"{owner}({', '.join(names)})",))
        return bound

    def _check_static(self, owner: str, param: Param, value: E.Expr, span: Span) -> None:
        """Check what can be checked before an assignment: constants and decision domains."""
        if isinstance(value, E.Const):
            check_value(owner, param, value.value, span)
        elif isinstance(value, E.Ref) and value.name in self.decision_names:
            domain = self._decision(value.name).domain
            if domain.discrete:
                for v in domain.enumerate():
                    check_value(owner, param, v, span)
            elif param.type != "float":
                raise ArchError(f"{owner} expects {_article(param.type)} {param.name}, "
                                f"got the continuous {domain.show()}", span)

    def block(self, call: A.OpCall, block: A.BlockDef, ctx: _Ctx, single: bool) -> S.Seq:
        if block.name in ctx.blocks:
            raise ArchError(f"block '{block.name}' calls itself "
                            f"({' -> '.join((*ctx.blocks, block.name))})", call.span)
        positional, keyword = [], {}
        for arg in call.args:
            if isinstance(arg.value, (A.TensorName, A.TensorChoice)):
                raise ArchError(f"block {block.name} takes values, not tensors; it applies "
                                "to the current tensor", arg.span)
            if arg.name is None:
                if keyword:
                    raise ArchError("positional argument after a keyword argument", arg.span)
                positional.append(arg)
            else:
                keyword[arg.name] = arg
        bound = self._bind(block.name, block.params, positional, keyword, call.span)
        if call.label:
            segment = self.label(call.label, ctx)
        elif single and ctx.scope.path and not ctx.scope.taken:
            segment = None  # the only statement of a scope (a repeat body): no extra level
        else:
            segment = ctx.scope.auto(block.name)
        path = ctx.scope.child(segment) if segment else ctx.scope.path
        env: dict[str, E.Expr] = {}
        captures: list[S.Node] = []
        for p in block.params:
            arg = bound.get(p.name)
            if arg is not None:
                value = self.value(arg.value, ctx, f"{path}.{p.name}", kind="value")
            else:
                value = self._expr(p.default, env)
            if isinstance(value, E.Const):
                self._check_param_type(p, value.value, arg.span if arg else p.span, block.name)
            env[p.name] = self._capture(value, captures, arg.span if arg else p.span)
        scope = _Scope(path) if segment else ctx.scope
        inner = _Ctx(env, {}, scope, ctx.cond, (*ctx.blocks, block.name))
        body = self.body(block.body, inner)
        return S.Seq((*captures, *body.items)) if captures else body

    def _check_param_type(self, p: A.ParamDef, value: Any, span: Span, owner: str = "arch") -> None:
        if p.type is None:
            return
        if p.type not in ("int", "float", "bool", "str"):
            raise ArchError(f"unknown type '{p.type}' (types are int, float, bool, str)", p.span)
        kind = _kind(value)
        if kind != p.type and not (p.type == "float" and kind == "int"):
            raise ArchError(f"{owner} parameter '{p.name}' expects {_article(p.type)}, "
                            f"got {value!r}", span)

    def tensor_sel(self, ref, ctx: _Ctx, base: str | None = None) -> S.TensorSel:
        names = (ref.name,) if isinstance(ref, A.TensorName) else ref.names
        ids = []
        for name in names:
            if name not in ctx.tensors:
                raise ArchError(f"unknown tensor '{name}'", ref.span,
                                _suggest(name, ctx.tensors) or
                                ("name a tensor with `-> name` before using it",))
            ids.append(ctx.tensors[name])
        decision = None
        if isinstance(ref, A.TensorChoice):
            if len(set(names)) != len(names):
                raise ArchError("@one_of lists a tensor twice", ref.span)
            decision = self._declare(base or ctx.scope.child(ctx.scope.auto("choose")),
                                     S.Choice(tuple(names)), ctx, "input", ref.span)
        return S.TensorSel(tuple(ids), tuple(names), decision, ref.span)

    # ------------------------------------------------------------ structure
    def residual(self, label: str | None, args, body, span: Span, ctx: _Ctx) -> S.ResidualNode:
        bound = self._bind("residual", (Param("proj", "str", "auto", options=PROJECTIONS),
                                        Param("when", "bool", True)),
                           [a for a in args if a.name is None],
                           {a.name: a for a in args if a.name is not None}, span)
        when = self._expr(bound["when"].value, ctx.env) if "when" in bound else E.Const(True)
        proj = "auto"
        if "proj" in bound:
            value = self._expr(bound["proj"].value, ctx.env)
            if not isinstance(value, E.Const):
                raise ArchError("residual proj must be a constant", bound["proj"].span)
            proj = check_value("residual", Param("proj", "str", options=PROJECTIONS),
                               value.value, bound["proj"].span)
        scope = _Scope(ctx.scope.child(label)) if label else ctx.scope
        inner = ctx.nested(scope=scope) if label else ctx.nested()
        seq = self.body(body, inner)
        # torchvision's names: the first shortcut projection of a scope is `downsample`
        return S.ResidualNode(scope.child(scope.auto("downsample", bare_first=True)),
                              scope.child(scope.auto("add", bare_first=True)),
                              proj, when, seq, span)

    def repeat(self, stmt: A.Repeat, label: str | None, ctx: _Ctx) -> S.RepeatNode:
        segment = label or ctx.scope.auto("repeat")
        path = ctx.scope.child(segment)
        before = len(self.decisions)
        count = self.value(stmt.count, ctx, f"{path}.depth", kind="repeat")
        own = self.decisions[before].name if len(self.decisions) > before else None
        counts = self._possible(count, stmt.count.span)
        bad = [c for c in counts if _kind(c) != "int" or c < 0]
        if bad:
            raise ArchError(f"repeat count must be a non-negative integer, got {bad[0]!r}",
                            stmt.count.span)
        top = max(counts, default=0)
        if top > MAX_REPEAT:
            raise ArchError(f"repeat count {top} is above the limit of {MAX_REPEAT}",
                            stmt.count.span)
        reps = []
        for i in range(top):
            cond = ctx.cond if isinstance(count, E.Const) else \
                (*ctx.cond, E.build(">", (count, E.Const(i)), stmt.span))
            env = dict(ctx.env)
            if stmt.var:
                env[stmt.var] = E.Const(i)
            inner = ctx.nested(env=env, scope=_Scope(f"{path}.{i}"), cond=cond, let_suffix="")
            reps.append(self.body(stmt.body, inner))
        return S.RepeatNode(count, tuple(reps), own, stmt.span)

    def _possible(self, value: E.Expr, span: Span) -> list[Any]:
        """Every value an expression over discrete decisions can take (for repeat bounds)."""
        if isinstance(value, E.Const):
            return [value.value]
        names = sorted(E.refs(value))
        if E.uses_shape(value):
            raise ArchError("a repeat count cannot depend on tensor shapes", span)
        domains = []
        total = 1
        for name in names:
            domain = self._decision(name).domain
            if not domain.discrete:
                raise ArchError(f"repeat count depends on the continuous decision '{name}'",
                                span)
            domains.append(domain.enumerate())
            total *= len(domains[-1])
        if total > 100_000:
            raise ArchError("repeat count depends on too many decisions to bound", span)
        out: set[Any] = set()

        for combo in itertools.product(*domains):
            out.add(E.evaluate(value, dict(zip(names, combo))))
        return sorted(out)

    def for_(self, stmt: A.For, label: str | None, ctx: _Ctx) -> list[S.Node]:
        iterable = self._expr(stmt.iterable, ctx.env)
        if not isinstance(iterable, E.Const) or not isinstance(iterable.value, tuple):
            raise ArchError("`for` iterates over a constant list, e.g. [(64, 2), (128, 2)] "
                            "or range(4)", stmt.iterable.span)
        scope = _Scope(ctx.scope.child(label)) if label else ctx.scope
        nodes: list[S.Node] = []
        for i, item in enumerate(iterable.value):
            env = dict(ctx.env)
            if len(stmt.targets) == 1:
                env[stmt.targets[0]] = E.Const(item, stmt.span)
            else:
                if not isinstance(item, tuple) or len(item) != len(stmt.targets):
                    raise ArchError(f"cannot unpack {item!r} into "
                                    f"({', '.join(stmt.targets)})", stmt.iterable.span)
                env.update({t: E.Const(v, stmt.span) for t, v in zip(stmt.targets, item)})
            suffix = f"{ctx.let_suffix}[{i}]"
            nodes.append(self.body(stmt.body, ctx.nested(env=env, scope=scope, let_suffix=suffix)))
        return nodes

    def one_of(self, label: str | None, branches, span: Span, ctx: _Ctx) -> S.OneOfNode:
        name = ctx.scope.child(label or ctx.scope.auto("one_of"))
        decision = self._declare(name, S.Choice(tuple(range(len(branches)))), ctx, "one_of", span)
        seqs = []
        for i, branch in enumerate(branches):
            cond = (*ctx.cond, E.build("==", (E.Ref(decision), E.Const(i)), span))
            seqs.append(self.body(branch, ctx.nested(cond=cond)))
        return S.OneOfNode(decision, tuple(seqs), span)

    def optional(self, label: str | None, body, span: Span, ctx: _Ctx) -> S.OptionalNode:
        name = ctx.scope.child(label or ctx.scope.auto("optional"))
        decision = self._declare(name, S.Choice((False, True)), ctx, "optional", span)
        cond = (*ctx.cond, E.build("==", (E.Ref(decision), E.Const(True)), span))
        return S.OptionalNode(decision, self.body(body, ctx.nested(cond=cond)), span)

    def parallel(self, label: str | None, merge: str, branches, span: Span,
                 ctx: _Ctx) -> S.ParallelNode:
        if merge not in MERGES:
            raise ArchError(f"parallel branches merge by {', '.join(MERGES)}; got '{merge}'",
                            span, _suggest(merge, MERGES))
        path = ctx.scope.child(label or ctx.scope.auto(merge))
        seqs = tuple(self.body(b, ctx.nested()) for b in branches)
        return S.ParallelNode(path, merge, seqs, span)

    def if_(self, stmt: A.If, label: str | None, ctx: _Ctx) -> list[S.Node]:
        test = self._expr(stmt.test, ctx.env)
        if isinstance(test, E.Const):
            chosen = stmt.then if test.value else stmt.orelse
            return [self.body(chosen, ctx.nested())]
        before = len(self.decisions)
        then = self.body(stmt.then, ctx.nested(cond=(*ctx.cond, test)))
        negated = E.build("not", (test,), stmt.span)
        orelse = self.body(stmt.orelse, ctx.nested(cond=(*ctx.cond, negated)))
        if E.uses_shape(test) and len(self.decisions) > before:
            raise ArchError("an `if` on tensor shapes cannot contain decisions (which of them "
                            "exist would depend on shapes); use `one_of` or move them out",
                            stmt.span)
        return [S.IfNode(test, then, orelse, stmt.span)]

    # ------------------------------------------------------------ values and decisions
    def value(self, node: A.Expr, ctx: _Ctx, base: str, kind: str) -> E.Expr:
        """Lower an expression that may create decisions; they are named after `base`."""
        constructors = _count_constructors(node)
        counter = iter(range(constructors))

        def make(call: A.Call) -> E.Expr:
            name = base if constructors == 1 else f"{base}.{next(counter)}"
            domain = self.domain(call, ctx)
            if kind == "repeat" and domain.discrete and any(
                    _kind(v) != "int" or v < 0 for v in domain.enumerate()):
                raise ArchError("repeat count must be a non-negative integer", call.span)
            return E.Ref(self._declare(name, domain, ctx, kind, call.span), call.span)

        return self._expr(node, ctx.env, make)

    def domain(self, call: A.Call, ctx: _Ctx) -> S.Domain:
        if any(a.name is not None and a.name != "step" for a in call.args):
            bad = next(a for a in call.args if a.name is not None and a.name != "step")
            raise ArchError(f"{call.fn} has no parameter '{bad.name}'", bad.span)
        values = []
        for a in call.args:
            v = self._expr(a.value, ctx.env)
            if not isinstance(v, E.Const):
                raise ArchError(f"the values of {call.fn}(...) must be constants, not "
                                "other decisions", a.span)
            values.append((a.name, v.value, a.span))
        positional = [(v, s) for n, v, s in values if n is None]
        if call.fn == "choice":
            if not positional:
                raise ArchError("empty domain: choice() needs at least one value", call.span)
            kinds = {_kind(v) for v, _ in positional}
            if len(kinds) > 1:
                first = _kind(positional[0][0])
                odd = next(s for v, s in positional if _kind(v) != first)
                raise ArchError(f"choice mixes value types ({', '.join(sorted(kinds))}); "
                                "all values must have one type", odd)
            seen = []
            for v, s in positional:
                if v in seen:
                    raise ArchError(f"choice lists {v!r} twice", s)
                seen.append(v)
            return S.Choice(tuple(v for v, _ in positional))
        if call.fn == "intrange":
            step = next((v for n, v, _ in values if n == "step"), None)
            if len(positional) == 3 and step is None:
                step = positional.pop()[0]
            if len(positional) != 2:
                raise ArchError("intrange takes (lo, hi, step = 1)", call.span)
            (lo, _), (hi, _) = positional
            step = 1 if step is None else step
            if any(_kind(v) != "int" for v in (lo, hi, step)):
                raise ArchError("intrange bounds and step must be integers", call.span)
            if step < 1:
                raise ArchError(f"intrange step must be positive, got {step}", call.span)
            if hi < lo:
                raise ArchError(f"empty domain: intrange({lo}, {hi}) has no values", call.span)
            return S.IntRange(lo, hi - (hi - lo) % step, step)
        if len(positional) != 2 or len(values) != 2:
            raise ArchError(f"{call.fn} takes (lo, hi)", call.span)
        (lo, _), (hi, _) = positional
        if any(_kind(v) not in ("int", "float") for v in (lo, hi)):
            raise ArchError(f"{call.fn} bounds must be numbers", call.span)
        if not lo < hi:
            raise ArchError(f"empty domain: {call.fn}({lo}, {hi}) needs lo < hi", call.span)
        if call.fn == "loguniform" and lo <= 0:
            raise ArchError("loguniform needs a positive lower bound", call.span)
        return S.FloatRange(float(lo), float(hi), call.fn == "loguniform")

    def _declare(self, name: str, domain: S.Domain, ctx: _Ctx, kind: str, span: Span) -> str:
        if name in self.decision_names:
            raise ArchError(f"two decisions would both be named '{name}'; add a label", span)
        self.decision_names.add(name)
        self.decisions.append(S.Decision(name, domain, ctx.cond, kind, span))
        return name

    def _decision(self, name: str) -> S.Decision:
        return next(d for d in self.decisions if d.name == name)

    def _expr(self, node: A.Expr, env: dict[str, E.Expr], make=None) -> E.Expr:
        """AST expression -> IR expression, folding constants; `make` builds decisions."""
        match node:
            case A.Num(value) | A.Str(value) | A.Bool(value):
                return E.Const(value, node.span)
            case A.Name(ident):
                if ident in env:
                    return env[ident]
                if ident in E.SHAPE_NAMES:
                    return E.ShapeOf(ident, node.span)
                raise ArchError(f"unknown name '{ident}'", node.span, _suggest(ident, env))
            case A.BinOp(op, left, right):
                return E.build(op, (self._expr(left, env, make), self._expr(right, env, make)),
                               node.span)
            case A.Unary(op, operand):
                return E.build("neg" if op == "-" else "not", (self._expr(operand, env, make),),
                               node.span)
            case A.Cond(test, then, orelse):
                return E.build("if", (self._expr(test, env, make), self._expr(then, env, make),
                                      self._expr(orelse, env, make)), node.span)
            case A.ListLit(items):
                values = [self._expr(i, env, make) for i in items]
                if not all(isinstance(v, E.Const) for v in values):
                    raise ArchError("list and tuple values must be constants", node.span)
                return E.Const(tuple(v.value for v in values), node.span)
            case A.Call(fn, args):
                if fn in DECISION_FUNCTIONS:
                    if make is None:
                        raise ArchError(f"{fn}(...) makes a decision, which is not allowed "
                                        "here", node.span)
                    return make(node)
                if fn == "range":
                    return self._range(node, env)
                if fn not in E.FUNCTIONS:
                    raise ArchError(f"unknown function '{fn}'", node.span,
                                    _suggest(fn, [*E.FUNCTIONS, *DECISION_FUNCTIONS, "range"]))
                lo, hi, _ = E.FUNCTIONS[fn]
                if any(a.name is not None for a in args):
                    raise ArchError(f"{fn} takes positional arguments only", node.span)
                if any(isinstance(a.value, (A.TensorName, A.TensorChoice)) for a in args):
                    raise ArchError(f"{fn} takes values, not tensors", node.span)
                if not lo <= len(args) <= hi:
                    raise ArchError(f"{fn} takes {lo}{'' if lo == hi else f' to {hi}'} "
                                    f"argument{'s' if hi > 1 else ''}, got {len(args)}", node.span)
                return E.build(fn, tuple(self._expr(a.value, env, make) for a in args),
                               node.span)
        raise AssertionError(node)  # pragma: no cover

    def _range(self, node: A.Call, env) -> E.Expr:
        values = [self._expr(a.value, env) for a in node.args]
        if not 1 <= len(values) <= 3 or not all(
                isinstance(v, E.Const) and _kind(v.value) == "int" for v in values):
            raise ArchError("range takes one to three integer constants", node.span)
        return E.Const(tuple(range(*(v.value for v in values))), node.span)


def _count_constructors(node) -> int:
    match node:
        case A.Call(fn, args):
            inner = sum(_count_constructors(a.value) for a in args)
            return inner + (1 if fn in DECISION_FUNCTIONS else 0)
        case A.BinOp(_, left, right):
            return _count_constructors(left) + _count_constructors(right)
        case A.Unary(_, operand):
            return _count_constructors(operand)
        case A.Cond(test, then, orelse):
            return sum(_count_constructors(x) for x in (test, then, orelse))
        case A.ListLit(items):
            return sum(_count_constructors(x) for x in items)
    return 0


def _names(node) -> set[str]:
    match node:
        case A.Name(ident):
            return {ident}
        case A.Call(_, args):
            out: set[str] = set()
            for a in args:
                out |= _names(a.value)
            return out
        case A.BinOp(_, left, right):
            return _names(left) | _names(right)
        case A.Unary(_, operand):
            return _names(operand)
        case A.Cond(test, then, orelse):
            return _names(test) | _names(then) | _names(orelse)
        case A.ListLit(items):
            out = set()
            for x in items:
                out |= _names(x)
            return out
    return set()


def _offset(span: Span, end: bool = False) -> int:
    lines = span.source.text.split("\n")
    line, col = (span.end_line, span.end_column) if end else (span.line, span.column)
    return sum(len(x) + 1 for x in lines[: line - 1]) + col - 1
