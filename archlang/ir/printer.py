"""A readable dump of the Space IR, one node per line: for `archlang show --ir` and golden tests."""

from __future__ import annotations

from archlang.ir import expr as E
from archlang.ir import space as S


def print_space(space: S.Space) -> str:
    lines = [f"arch {space.name}"
             + (f"({', '.join(f'{k}={v!r}' for k, v in space.params)})" if space.params else "")]
    _node(space.root, 1, lines)
    for name, value in space.options:
        lines.append(f"  option {name} = {value!r}")
    for c in space.constraints:
        lines.append(f"  require {E.show(c.expr)}")
    for o in space.objectives:
        lines.append(f"  {o.sense} {o.metric}")
    return "\n".join(lines) + "\n"


def _sel(sel: S.TensorSel) -> str:
    if sel.decision:
        return f"@one_of[{sel.decision}]({', '.join(sel.names)})"
    return f"@{sel.names[0]}"


def _node(node: S.Node, depth: int, out: list[str]) -> None:
    pad = "  " * depth
    match node:
        case S.Seq(items):
            for item in items:
                _node(item, depth, out)
        case S.InputNode(name, _, dims, dtype):
            out.append(f"{pad}input {name}: {dtype}[{', '.join(E.show(d) for d in dims)}]")
        case S.OpNode(path, op, args, sources):
            shown = [_sel(s) for s in sources] + [f"{k}={E.show(v)}" for k, v in args]
            out.append(f"{pad}{op} {path}({', '.join(shown)})")
        case S.SourceNode(sel):
            out.append(f"{pad}from {_sel(sel)}")
        case S.BindNode(ident):
            out.append(f"{pad}-> {ident.split('/')[-1].split('#')[0]}")
        case S.LetNode(decision):
            out.append(f"{pad}let {decision}")
        case S.CaptureNode(name, value):
            out.append(f"{pad}capture {name} = {E.show(value)}")
        case S.ResidualNode(path, _, proj, when, body):
            cond = "" if when == E.Const(True) else f", when={E.show(when)}"
            out.append(f"{pad}residual(proj={proj}{cond}) -> {path}")
            _node(body, depth + 1, out)
        case S.ParallelNode(path, merge, branches):
            out.append(f"{pad}parallel {merge} -> {path}")
            for i, b in enumerate(branches):
                out.append(f"{pad}  branch {i}")
                _node(b, depth + 2, out)
        case S.RepeatNode(count, reps):
            out.append(f"{pad}repeat {E.show(count)} (at most {len(reps)})")
            for i, rep in enumerate(reps):
                out.append(f"{pad}  rep {i}")
                _node(rep, depth + 2, out)
        case S.OneOfNode(decision, branches):
            out.append(f"{pad}one_of {decision}")
            for i, b in enumerate(branches):
                out.append(f"{pad}  branch {i}")
                _node(b, depth + 2, out)
        case S.OptionalNode(decision, body):
            out.append(f"{pad}optional {decision}")
            _node(body, depth + 1, out)
        case S.IfNode(test, then, orelse):
            out.append(f"{pad}if {E.show(test)}")
            _node(then, depth + 1, out)
            if orelse.items:
                out.append(f"{pad}else")
                _node(orelse, depth + 1, out)
