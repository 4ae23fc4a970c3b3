"""Recognise DeepMAD-like spaces -- a stem conv, then stages of repeated bottleneck blocks --
and score their points in closed form.

The structured formulation (`deepmad.py`) needs, per stage, which decisions are its width
``w``, bottleneck ``b``, kernel ``k`` and depth ``d``, the stage's stride and resolution, and the
space's conventions (TinyNAS's entropy options). `recognise` reads them from the Space IR (a
top-level ``conv`` whose width is a decision, then ``repeat`` nodes whose repetitions are a
``residual`` of three convs 1x1 -> kxk -> 1x1, then optionally a head: layers without
decisions, no conv, whose parameters and MACs are affine in the last stage's width -- a
classifier ``gap linear(classes)``) and then *checks* the reading: the closed form
below must equal archlang's cost pass (params, MACs, entropy, effectiveness, depth penalty) on
the published-like corner points and on random points of the space. Anything else -- another
block shape, a continuous decision, conventions the closed form does not follow, a mismatch --
raises `Unsupported` with the reason, and the generic formulation is left to handle the space.
Pure Python: no pyomo/highspy here.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

from archlang.errors import ArchError
from archlang.ir import expr as E
from archlang.ir import space as S
from archlang.passes.elaborate import elaborate
from archlang.passes.metrics import compute as compute_metrics
from archlang.passes.metrics import option_defaults
from archlang.solvers.milp.terms import Unsupported

SCORES = ("params", "macs", "entropy", "effectiveness", "depth_penalty", "entropy_score")


@dataclass(frozen=True)
class Stage:
    width: str  # decision names
    bottleneck: str
    kernel: str
    depth: str
    stride: int
    res_in: int  # resolution of the stage's input
    widths: tuple[int, ...]  # domains
    bottlenecks: tuple[int, ...]
    kernels: tuple[int, ...]
    depths: tuple[int, ...]

    @property
    def res_out(self) -> int:
        return self.res_in // self.stride


@dataclass(frozen=True)
class Head:
    """Parameters and MACs of the layers after the last stage (a classifier), affine in the
    last stage's width w; measured by the cost pass at two widths, checked with the rest."""

    # integers where the measurement is (it is, for layers of integer widths), so that the
    # closed form's counts stay integers, as the cost pass's are
    params_per_width: int | float = 0
    params_fixed: int | float = 0
    macs_per_width: int | float = 0
    macs_fixed: int | float = 0

    def params(self, w):
        return self.params_per_width * w + self.params_fixed

    def macs(self, w):
        return self.macs_per_width * w + self.macs_fixed


@dataclass(frozen=True)
class Staged:
    """A recognised space: stem conv, then `stages`; conventions from the spec's options."""

    stem: str  # the stem width decision
    stems: tuple[int, ...]
    in_channels: int
    stem_kernel: int
    stem_res: int  # resolution after the stem
    stages: tuple[Stage, ...]
    alpha: tuple[float, ...]
    half: float  # the factor on the log-width sum (1/2 or 1)
    beta: float
    penalty_stages: int
    head: Head = Head()

    def head_after(self, t: int) -> Head:
        """The head's costs where stage t is the last (they follow its width), else none."""
        return self.head if t == len(self.stages) - 1 else Head()

    def scale_ends(self) -> list[tuple[int, int]]:
        """(number of stages before the cut, resolution of the feature map) for each scale.

        A scale ends before each stage whose first block downsamples and after the last one;
        0 stages means the stem output (its width is the stem's)."""
        out = [(i, st.res_in) for i, st in enumerate(self.stages) if st.stride > 1]
        out.append((len(self.stages), self.stages[-1].res_out))
        return out

    def alphas(self) -> list[float]:
        n = len(self.scale_ends())
        a = list(self.alpha)
        return a[-n:] if len(a) >= n else [1.0] * (n - len(a)) + a


Point = tuple[int, tuple[tuple[int, int, int, int], ...]]  # stem, per stage (d, w, b, k)


def scores(p: Staged, point: Point) -> dict[str, float]:
    """params, MACs, entropy, effectiveness, depth penalty and entropy_score of one point,
    in closed form (equal to the cost pass on recognised spaces: `recognise` checks it)."""
    stem, stages = point
    r = p.stem_res
    k0 = p.stem_kernel
    params = p.in_channels * k0 * k0 * stem + 2 * stem
    macs = r * r * p.in_channels * k0 * k0 * stem
    logs = [math.log(p.in_channels * k0 * k0)]
    ends: list[tuple[int, int, int]] = []  # (counted layers so far, channels, resolution)
    c = stem
    for (d, w, b, k), st in zip(stages, p.stages):
        if st.stride > 1:
            ends.append((len(logs), c, st.res_in))
        ri, ro = st.res_in, st.res_out
        params += c * b + 2 * b + b * b * k * k + 2 * b + b * w + 2 * w + c * w + 2 * w
        macs += ri * ri * c * b + ro * ro * (b * b * k * k + b * w + c * w)
        params += (d - 1) * (2 * w * b + b * b * k * k + 4 * b + 2 * w)
        macs += (d - 1) * ro * ro * (2 * w * b + b * b * k * k)
        logs += [math.log(c), math.log(b * k * k), math.log(b)]
        logs += [math.log(w), math.log(b * k * k), math.log(b)] * (d - 1)
        c = w
    params += p.head.params(c)
    macs += p.head.macs(c)
    ends.append((len(logs), c, p.stages[-1].res_out))
    prefix = [0.0]
    for x in logs:
        prefix.append(prefix[-1] + x)
    ends = [e for e in ends if e[0] > 0]
    h = sum(a * math.log(rr * rr * cc) * p.half * prefix[n]
            for a, (n, cc, rr) in zip(p.alphas(), ends))
    rho = max(math.exp(math.log(n) - prefix[n] / n) for n, _, _ in ends)
    depths = [d for d, *_ in stages]
    if p.penalty_stages:
        depths = depths[-p.penalty_stages:]
    q = math.exp(statistics.pstdev(depths))
    return {"params": params, "macs": macs, "entropy": h, "effectiveness": rho,
            "depth_penalty": q, "entropy_score": h - p.beta * q}


def assignment(p: Staged, point: Point) -> dict[str, int]:
    stem, stages = point
    out = {p.stem: stem}
    for st, (d, w, b, k) in zip(p.stages, stages):
        out.update({st.width: w, st.bottleneck: b, st.kernel: k, st.depth: d})
    return out


def point_of(p: Staged, values: dict) -> Point:
    return values[p.stem], tuple((values[st.depth], values[st.width], values[st.bottleneck],
                                  values[st.kernel]) for st in p.stages)


# ---------------------------------------------------------------- recognition


def _ref(args: dict[str, E.Expr], key: str) -> str | None:
    v = args.get(key)
    return v.name if isinstance(v, E.Ref) else None


def _const(args: dict[str, E.Expr], key: str, default: int | None = None) -> int | None:
    v = args.get(key)
    if v is None:
        return default
    return v.value if isinstance(v, E.Const) and isinstance(v.value, int) else None


def _items(seq: S.Seq) -> list[S.Node]:
    """Items of a sequence with nested plain sequences flattened."""
    out: list[S.Node] = []
    for item in seq.items:
        out.extend(_items(item) if isinstance(item, S.Seq) else [item])
    return out


_SKIP = (S.LetNode, S.BindNode, S.CaptureNode)


def _block(rep: S.Seq) -> tuple[str, str, str]:
    """(bottleneck, kernel, width) decisions of one repetition: residual{1x1, kxk, 1x1}."""
    ops = [n for n in _items(rep) if not isinstance(n, _SKIP)]
    body = [n for n in ops if isinstance(n, S.ResidualNode)]
    if len(body) != 1:
        raise Unsupported("a stage repetition is not one residual block")
    convs = [n for n in _items(body[0].body) if isinstance(n, S.OpNode) and n.op == "conv"]
    others = [n for n in _items(body[0].body) if isinstance(n, S.OpNode)
              and n.op not in ("conv", "bn", "relu")]
    if len(convs) != 3 or others:
        raise Unsupported("a stage block is not a bottleneck (three convs with bn/relu)")
    a = [dict(c.args) for c in convs]
    b, k, w = _ref(a[0], "out"), _ref(a[1], "kernel"), _ref(a[2], "out")
    if None in (b, k, w) or _ref(a[1], "out") != b or _const(a[0], "kernel") != 1 or \
            _const(a[2], "kernel") != 1 or any(_const(x, "groups", 1) != 1 for x in a):
        raise Unsupported("a stage block is not conv(b, 1) -> conv(b, k) -> conv(w, 1) with "
                          "width, bottleneck and kernel decisions")
    return b, k, w


def recognise(space: S.Space, checks: int = 24, seed: int = 0) -> Staged:
    """The staged reading of `space`, checked against the cost pass; `Unsupported` if none."""
    opts = {**option_defaults(), **dict(space.options)}
    if opts["entropy.boundary"] != "block" or not opts["entropy.skip_projection"] or \
            not opts["effectiveness.prefix_max"]:
        raise Unsupported("the staged formulation follows TinyNAS's conventions "
                          "(entropy.boundary = block, skip_projection, prefix_max)")
    decisions = {d.name: d for d in space.decisions}
    for d in space.decisions:
        if d.condition or d.kind not in ("value", "repeat") or not d.domain.discrete:
            raise Unsupported(f"decision '{d.name}' is conditional, continuous or a branch")
    items = [n for n in _items(space.root) if not isinstance(n, _SKIP)]
    convs = [n for n in items if isinstance(n, S.OpNode) and n.op == "conv"]
    repeats = [n for n in items if isinstance(n, S.RepeatNode)]
    if not convs or not repeats or items.index(convs[0]) > items.index(repeats[0]):
        raise Unsupported("no stem conv followed by repeated stages")
    tail = items[items.index(repeats[-1]) + 1:]
    if any(not isinstance(n, (S.InputNode, S.OpNode, S.RepeatNode))
           for n in items[:len(items) - len(tail)]):
        raise Unsupported("layers other than the stem and the stages, or branches")
    for n in tail:
        if not isinstance(n, S.OpNode) or n.op == "conv" or n.decisions or \
                any(E.refs(v) & set(decisions) for _, v in n.args):
            raise Unsupported("after the last stage only a head without decisions or convs "
                              f"(say `gap linear(classes)`), not '{getattr(n, 'path', n)}'")
    stem = _ref(dict(convs[0].args), "out")
    if stem is None or len(convs) != 1:
        raise Unsupported("the stem is not one conv whose width is a decision")
    stage_names = []
    for rep in repeats:
        if not isinstance(rep.count, E.Ref) or rep.count.name not in decisions:
            raise Unsupported("a stage's depth is not a decision")
        roles = {_block(r) for r in rep.reps}
        if len(roles) != 1:
            raise Unsupported("the blocks of a stage read different decisions")
        stage_names.append((*roles.pop(), rep.count.name))
    used = {stem} | {n for names in stage_names for n in names}
    if len(used) != 1 + 4 * len(stage_names) or used != set(decisions):
        raise Unsupported("stages share decisions, or other decisions exist")
    # Shapes, strides and resolutions from one elaborated point.
    probe = {d.name: d.domain.enumerate()[-1] for d in space.decisions}
    try:
        graph = elaborate(space, probe)
    except ArchError as exc:
        raise Unsupported(f"the probe point does not elaborate: {exc.message}") from None
    layers = {layer.path: layer for layer in graph.layers}
    first = graph.layers[next(i for i, la in enumerate(graph.layers) if la.op == "conv")]
    in_shape = graph.layers[first.inputs[0]].shape
    stages = []
    res = first.shape[1]
    for (b, k, w, depth), rep in zip(stage_names, repeats):
        conv2 = [n for n in _items(next(x for x in _items(rep.reps[0])
                                        if isinstance(x, S.ResidualNode)).body)
                 if isinstance(n, S.OpNode) and n.op == "conv"][1]
        layer = layers.get(conv2.path)
        if layer is None:
            raise Unsupported("cannot locate a stage's first block in the elaborated graph")
        stride = layer.attrs["stride"]
        stages.append(Stage(w, b, k, depth, stride, res,
                            *(tuple(decisions[n].domain.enumerate()) for n in (w, b, k, depth))))
        res //= stride
    staged = Staged(stem, tuple(decisions[stem].domain.enumerate()), in_shape[0],
                    first.attrs["kernel"], first.shape[1], tuple(stages),
                    tuple(float(a) for a in opts["entropy.alpha"]),
                    0.5 if opts["entropy.half"] else 1.0, float(opts["depth_penalty.beta"]),
                    int(opts["depth_penalty.stages"]))
    if tail:
        staged = replace(staged, head=_measure_head(space, staged, probe, dict(space.options)))
    _check(space, staged, checks, seed, dict(space.options))
    return staged


def _measure_head(space: S.Space, p: Staged, probe: dict, options: dict) -> Head:
    """The head's costs at the last stage's widest and narrowest widths: the cost pass minus
    the closed form of the rest; `_check` then confirms they are affine (and that the head
    changes no other score)."""
    last = p.stages[-1]
    measured = []
    for w in (last.widths[-1], last.widths[0]):
        values = {**probe, last.width: w}
        want = compute_metrics(elaborate(space, values), ["params", "macs"], options)
        got = scores(p, point_of(p, values))
        measured.append((w, want["params"] - got["params"], want["macs"] - got["macs"]))
    (w1, p1, m1), (w0, p0, m0) = measured
    slope_p = (p1 - p0) / (w1 - w0) if w1 != w0 else 0.0
    slope_m = (m1 - m0) / (w1 - w0) if w1 != w0 else 0.0
    def exact(x: float) -> int | float:
        return int(x) if float(x).is_integer() else x

    return Head(*(exact(x) for x in (slope_p, p1 - slope_p * w1, slope_m, m1 - slope_m * w1)))


def _check(space: S.Space, p: Staged, n: int, seed: int, options: dict) -> None:
    rng = random.Random(seed)
    points: list[Point] = []
    for pick in (lambda v: v[0], lambda v: v[-1]):
        points.append((pick(p.stems), tuple((pick(st.depths), pick(st.widths),
                                             pick(st.bottlenecks), pick(st.kernels))
                                            for st in p.stages)))
    for _ in range(n):
        points.append((rng.choice(p.stems), tuple(
            (rng.choice(st.depths), rng.choice(st.widths), rng.choice(st.bottlenecks),
             rng.choice(st.kernels)) for st in p.stages)))
    for point in points:
        graph = elaborate(space, assignment(p, point))
        want = compute_metrics(graph, list(SCORES), options)
        got = scores(p, point)
        for name in SCORES:
            if not math.isclose(want[name], got[name], rel_tol=1e-9, abs_tol=1e-9):
                raise Unsupported(f"the staged reading of '{space.name}' gives {name} = "
                                  f"{got[name]} at {point}, the cost pass {want[name]}")


def metric_bound(c: S.Constraint) -> tuple[str, float]:
    """`metric <= constant` (or `constant >= metric`) -> (metric, constant)."""
    return _metric_against_constant(c, ("<=", "<"), ">=")


def metric_floor(c: S.Constraint) -> tuple[str, float]:
    """`metric >= constant` (or `constant <= metric`) -> (metric, constant)."""
    return _metric_against_constant(c, (">=", ">"), "<=")


def _metric_against_constant(c: S.Constraint, ops: tuple[str, str],
                             mirror: str) -> tuple[str, float]:
    from archlang.solvers.milp.program import comparison

    op, a, b = comparison(c)
    if op in (mirror, mirror[0]):  # `constant op metric`: read it the other way round
        a, b = b, a
    elif op not in ops:
        raise Unsupported(f"`require {c.text}` is not `metric {ops[0]} constant`")
    if isinstance(a, E.Ref) and a.name.startswith("$") and not E.refs(b):
        value = E.evaluate(b, {})
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return a.name[1:], float(value)
    raise Unsupported(f"`require {c.text}` is not `metric {ops[0]} constant`")


def feasible_pairs(space: S.Space, a: str, b: str, va: tuple, vb: tuple) -> set[tuple] | None:
    """Joint values of decisions a, b allowed by the requirements reading only a and b (None if
    no requirement reads exactly them)."""
    import numpy as np

    cons = [c for c in space.constraints if not c.metrics and E.refs(c.expr) <= {a, b}
            and E.refs(c.expr)]
    if not cons:
        return None
    # Elementwise over the whole grid at once (arithmetic and comparisons broadcast); any
    # expression that does not is evaluated pair by pair.
    grid_a, grid_b = np.meshgrid(np.array(va), np.array(vb), indexing="ij")
    ok = np.ones(grid_a.shape, dtype=bool)
    for c in cons:
        try:
            value = E.evaluate(c.expr, {a: grid_a, b: grid_b})
        except Exception:  # not vectorisable: the exact loop below
            value = None
        if isinstance(value, np.ndarray) and value.shape == ok.shape and value.dtype == bool:
            ok &= value
        else:
            ok &= np.array([[bool(E.evaluate(c.expr, {a: x, b: y})) for y in vb] for x in va],
                           dtype=bool).reshape(ok.shape)
    return {(va[i], vb[j]) for i, j in zip(*np.nonzero(ok))}


@dataclass(frozen=True)
class Tables:
    """Per stage: the allowed (width index, bottleneck index) pairs, and the allowed
    (previous width, width) table as a boolean array (None: no requirement links them)."""

    pairs: tuple[tuple[tuple[int, int], ...], ...]
    chains: tuple


def spans(p: Staged, t: Tables) -> list[dict[int, tuple[int, int]]]:
    """Per stage: width -> (least, greatest) bottleneck the requirements allow (how the
    heuristic clamps its children)."""
    out = []
    for st, pairs in zip(p.stages, t.pairs):
        span: dict[int, tuple[int, int]] = {}
        for a, b in pairs:
            w, v = st.widths[a], st.bottlenecks[b]
            lo, hi = span.get(w, (v, v))
            span[w] = (min(lo, v), max(hi, v))
        out.append(span)
    return out


def tables(space: S.Space, p: Staged) -> Tables:
    """The requirements over decisions, read as per-stage pair tables and width chains;
    `Unsupported` if some requirement over decisions is neither."""
    import numpy as np

    covered = set()
    pairs, chains = [], []
    prev_name, prev_vals = p.stem, p.stems
    for st in p.stages:
        fp = feasible_pairs(space, st.width, st.bottleneck, st.widths, st.bottlenecks)
        pairs.append(tuple((a, b) for a, w in enumerate(st.widths)
                           for b, v in enumerate(st.bottlenecks) if fp is None or (w, v) in fp))
        ch = feasible_pairs(space, prev_name, st.width, prev_vals, st.widths)
        chains.append(None if ch is None else
                      np.array([[(c, w) in ch for w in st.widths] for c in prev_vals]))
        covered |= {frozenset((st.width, st.bottleneck)), frozenset((prev_name, st.width))}
        prev_name, prev_vals = st.width, st.widths
    for c in space.constraints:
        refs = E.refs(c.expr)
        if not c.metrics and refs and not any(refs <= pair for pair in covered):
            raise Unsupported(f"`require {c.text}` links decisions other than a stage's width "
                              "and bottleneck or consecutive widths")
    return Tables(tuple(pairs), tuple(chains))


def depth_pattern_penalty(p: Staged, depths: Sequence[int]) -> float:
    d = list(depths)[-p.penalty_stages:] if p.penalty_stages else list(depths)
    return math.exp(statistics.pstdev(d))


def scores_batch(p: Staged, stem, stages) -> dict:
    """`scores` for many points at once: `stem` and each stage's (d, w, b, k) may be numpy
    arrays (broadcast together). Used to evaluate every option of a stage in one step."""
    import numpy as np

    r = p.stem_res
    k0 = p.stem_kernel
    stem = np.asarray(stem, dtype=np.float64)
    params = (p.in_channels * k0 * k0 + 2) * stem
    macs = r * r * p.in_channels * k0 * k0 * stem
    logsum = math.log(p.in_channels * k0 * k0) + 0.0 * stem
    ends = []  # (log-sum so far, layers so far, channels, resolution)
    c = stem
    depth_total = 0.0
    for (d, w, b, k), st in zip(stages, p.stages):
        d, w, b, k = (np.asarray(x, dtype=np.float64) for x in (d, w, b, k))
        if st.stride > 1:
            ends.append((logsum, 1 + 3 * depth_total, c, st.res_in))
        ri, ro = st.res_in, st.res_out
        bbkk = b * b * k * k
        params = params + c * b + 2 * b + bbkk + 2 * b + b * w + 2 * w + c * w + 2 * w \
            + (d - 1) * (2 * w * b + bbkk + 4 * b + 2 * w)
        macs = macs + ri * ri * c * b + ro * ro * (bbkk + b * w + c * w) \
            + (d - 1) * ro * ro * (2 * w * b + bbkk)
        lb = np.log(b * k * k) + np.log(b)
        logsum = logsum + np.log(c) + lb + (d - 1) * (np.log(w) + lb)
        depth_total = depth_total + d
        c = w
    params = params + p.head.params(c)
    macs = macs + p.head.macs(c)
    ends.append((logsum, 1 + 3 * depth_total, c, p.stages[-1].res_out))
    h = sum(a * np.log(rr * rr * cc) * p.half * ls
            for a, (ls, _, cc, rr) in zip(p.alphas(), ends))
    rho = None
    for ls, n, _, _ in ends:
        value = np.exp(np.log(n) - ls / n)
        rho = value if rho is None else np.maximum(rho, value)
    depths = [np.asarray(st_d, dtype=np.float64) for st_d, *_ in stages]
    if p.penalty_stages:
        depths = depths[-p.penalty_stages:]
    mean = sum(depths) / len(depths)
    q = np.exp(np.sqrt(sum((x - mean) ** 2 for x in depths) / len(depths)))
    return {"params": params, "macs": macs, "entropy": h, "effectiveness": rho,
            "depth_penalty": q, "entropy_score": h - p.beta * q}
