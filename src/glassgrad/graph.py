"""See the computation: ``trace`` records a function's graph of primitives, with the
value at every node and, for a scalar output, the gradient the backward pass sends
along every edge.

>>> import numpy as np, glassgrad as gg
>>> g = gg.trace(lambda x, y: x * y + np.sin(x))(2.0, 3.0)
>>> print(g)
%0 = input x      shape () float64  value 2  grad 2.584
%1 = input y      shape () float64  value 3  grad 2
%2 = mul(%0, %1)  shape () float64  value 6  grad 1
%3 = sin(%0)      shape () float64  value 0.9093  grad 1
%4 = add(%2, %3)  shape () float64  value 6.909  grad 1
return %4

The same record draws as Graphviz DOT text (``to_dot``), as SVG or PNG (``render``,
with the optional ``graphviz`` package and the system ``dot`` program) and inline in
Jupyter (without Graphviz, as an HTML listing). ``Graph.nodes`` keeps every operation.
Large graphs stay readable: a run of operations repeated back to back (the layers of a
deep chain, the steps of a loop) is drawn once inside a box that says how many times it
ran, and listed once with a note; ``gg.nn`` modules are drawn as clusters named after
them (``trace(model)`` or ``trace(fun, modules=model)``); what is still larger than
``max_nodes`` keeps the inputs and the operations nearest the output, and a note says
how many were left out. ``to_text(max_nodes=None)`` lists every node. Constants are
written inline in listings and drawn at each use, so a shared one adds no tangle of edges.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _backend as backend
from ._backend import concrete as raw
from ._primitive import Traced, new_level
from ._pytree import flatten, leaf_paths, unflatten
from ._rules import sum_to
from ._tensor import Tensor, backprop, toposort

__all__ = ["Graph", "GraphEdge", "GraphNode", "Repeat", "trace"]

MAX_NODES = 200  # default cap on drawn and listed nodes (after collapsing repeats)
MIN_REPEATS = 3  # a block of operations repeated this often is drawn once
MAX_PERIOD = 40  # longest block looked for
_SMALL = 6  # arrays up to this many elements show their values
_SIZE = "15,15"  # Graphviz scales a larger drawing down to 15 x 15 in (1,080 pt, 1,440 px)

_INSTALL = ('drawing a graph needs the graphviz Python package and the Graphviz "dot" '
            'program: pip install "glassgrad[viz]" and install Graphviz itself '
            "(apt-get install graphviz, brew install graphviz, or https://graphviz.org). "
            "Graph.to_dot() gives the DOT text without either.")


@dataclass(frozen=True, eq=False)
class GraphNode:
    """One value of the computation: an input, a constant, or a primitive's result.

    ``id`` is the node's index in ``Graph.nodes``; ``inputs`` are the ids of the
    argument nodes, in argument order (constants included). ``value`` and ``grad``
    (d output / d node, after a backward pass) are the concrete arrays.
    """

    id: int
    op: str  # "input", "const" or a primitive name
    inputs: tuple[int, ...]
    shape: tuple[int, ...]
    dtype: str
    value: Any = field(repr=False)
    grad: Any = field(default=None, repr=False)
    name: str = ""  # an input's argument name, or a module parameter's name
    params: dict[str, Any] = field(default_factory=dict, repr=False)
    module: str = ""  # the gg.nn module whose parameters the operation uses


@dataclass(frozen=True, eq=False)
class GraphEdge:
    """Argument ``argnum`` of node ``dst`` is node ``src``.

    ``grad`` is the cotangent the backward pass sends from ``dst`` to ``src`` along this
    edge (reduced to ``src``'s shape); ``local`` is d dst / d src, recorded where both
    ends are scalars, so that ``grad == dst.grad * local`` shows the chain rule at work.
    Edges from constants carry neither.
    """

    src: int
    dst: int
    argnum: int
    grad: Any = field(default=None, repr=False)
    local: Any = field(default=None, repr=False)


class Graph:
    """A recorded computation: ``nodes`` in topological order, ``edges``, ``inputs``
    and ``output``. Built by :func:`trace`."""

    def __init__(self, nodes: list[GraphNode], edges: list[GraphEdge], output: int,
                 tape: tuple[Any, dict[int, int]] = (None, {}),
                 modules: dict[str, str] | None = None):
        self.nodes = nodes
        self.modules = modules or {}  # module path -> class name
        self._repeats: list[Repeat] | None = None
        self._svg: str | None = None
        # The engine's own record behind the drawing: the output tensor and, for each
        # tensor, its node id. ``formula`` runs the engine's backward loop over it.
        self.tape = tape
        self.edges = edges
        self.inputs = [n for n in nodes if n.op == "input"]
        self.output = nodes[output]

    def __repr__(self) -> str:
        ops = sum(n.op not in ("input", "const") for n in self.nodes)
        return (f"<Graph: {len(self.inputs)} inputs, {ops} operations, output "
                f"%{self.output.id} shape {self.output.shape}>")

    def __str__(self) -> str:
        return self.to_text()

    # --- the flat listing ------------------------------------------------------------------
    def to_text(self, max_nodes: int | None = MAX_NODES) -> str:
        """One line per node, like a flat IR; scalar constants are written inline.

        A block of operations repeated back to back is listed once, with a note saying
        how often it ran. ``max_nodes=None`` lists every node.
        """
        hidden, _, ends = self._collapse(max_nodes is not None)
        if hidden:  # constants only the hidden repetitions use
            used = {i for n in self.nodes if n.id not in hidden for i in n.inputs}
            hidden |= {n.id for n in self.nodes if n.op == "const" and n.id not in used}
        kept, omitted = self._keep(max_nodes, hidden)
        rows = []
        for node in self.nodes:
            if node.id in hidden:
                continue
            if node.id not in kept or _inline(node):
                if node.id not in kept and node.op != "const" and omitted:
                    rows.append((f"; ... {omitted} operations omitted "
                                 "(to_text(max_nodes=None) lists all)", ""))
                    omitted = 0
                continue
            rows.append((f"%{node.id} = {self._call_text(node)}", _facts(node)))
            if node.id in ends:
                rows.append((f"; ... {ends[node.id].describe()}", ""))
        width = min(max((len(head) for head, facts in rows if facts), default=0), 40)
        lines = [f"{head:<{width}}  {facts}" if facts else head for head, facts in rows]
        return "\n".join(lines + [f"return %{self.output.id}"])

    # --- repeats -----------------------------------------------------------------------------
    def repeats(self) -> list[Repeat]:
        """Runs of operations repeated back to back (at least ``MIN_REPEATS`` times), as
        drawings and listings collapse them."""
        if self._repeats is None:
            self._repeats = _find_repeats(self.nodes, self.output.id)
        return self._repeats

    def _collapse(self, on: bool) -> tuple[set[int], dict[int, int], dict[int, Repeat]]:
        """Hidden ids (repetitions after the first), each hidden id's representative in
        the first repetition, and the last id of each first repetition -> its Repeat."""
        hidden: set[int] = set()
        rep_of: dict[int, int] = {}
        ends: dict[int, Repeat] = {}
        if on:
            for r in self.repeats():
                ends[r.blocks[0][-1]] = r
                for block in r.blocks[1:]:
                    for first, other in zip(r.blocks[0], block, strict=True):
                        hidden.add(other)
                        rep_of[other] = first
        return hidden, rep_of, ends

    def _call_text(self, node: GraphNode) -> str:
        if node.op == "input":
            return f"input {node.name}"
        if node.op == "const":
            return f"param {node.name}" if node.name else "const"
        args = [_format(self.nodes[i].value) if _inline(self.nodes[i]) else f"%{i}"
                for i in node.inputs]
        args += _param_texts(node)
        return f"{node.op}({', '.join(args)})"

    def _keep(self, max_nodes: int | None,
              hidden: set[int] = frozenset()) -> tuple[set[int], int]:  # type: ignore[assignment]
        """Ids to show: the inputs, the ``max_nodes`` operations nearest the output and
        the constants they use; and how many operations are left out. Operations in
        ``hidden`` (collapsed repeats) do not count."""
        ops = [n.id for n in self.nodes if n.op not in ("input", "const") and n.id not in hidden]
        if max_nodes is None or len(ops) + len(self.inputs) <= max_nodes:
            return {n.id for n in self.nodes}, 0
        room = max(max_nodes - len(self.inputs), 1)
        kept = {n.id for n in self.inputs} | set(ops[-room:]) | {self.output.id}
        kept |= {i for k in list(kept) for i in self.nodes[k].inputs
                 if self.nodes[i].op == "const"}
        return kept, len(ops) - room

    # --- drawing ---------------------------------------------------------------------------
    def to_dot(self, max_nodes: int | None = MAX_NODES, collapse: bool = True) -> str:
        """Graphviz DOT text: one box per node (op, shape, value, grad), edges labelled
        with the gradient sent along them. Needs no extra package.

        With ``collapse`` (the default), a block of operations repeated back to back is
        drawn once, in a dashed box saying how often it ran (its values and gradients are
        the first repetition's); ``gg.nn`` modules are clusters. Drawings larger than 15
        by 15 inches (1,440 pixels) are scaled down to fit.
        """
        hidden, rep_of, _ = self._collapse(collapse)
        kept, omitted = self._keep(max_nodes, hidden)
        kept -= hidden
        lines = ["digraph glassgrad {", "  rankdir=LR;", f'  size="{_SIZE}";',
                 '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", '
                 'fontname="Helvetica", fontsize=10];',
                 '  edge [fontname="Helvetica", fontsize=9];']
        if omitted:
            lines.append(f'  omitted [label="... {omitted} operations omitted ...", shape=note, '
                         'fillcolor="#eeeeee"];')
        drawn = [n for n in self.nodes if n.id in kept and (n.op != "const" or n is self.output)]
        lines += self._dot_clusters(drawn, collapse)
        lines += _dot_edges(self.edges, self.nodes, kept, rep_of, self._block_of(collapse))
        lines.append("}")
        return "\n".join(lines)

    def _block_of(self, collapse: bool) -> dict[int, tuple[int, int]]:
        """id -> (repeat number, repetition number) for the nodes of collapsed repeats."""
        out: dict[int, tuple[int, int]] = {}
        if collapse:
            for k, r in enumerate(self.repeats()):
                for b, block in enumerate(r.blocks):
                    out.update((i, (k, b)) for i in block)
        return out

    def _dot_clusters(self, drawn: list[GraphNode], collapse: bool) -> list[str]:
        """The node lines, nested in a cluster per collapsed repeat and per module."""
        repeat_of = {}
        if collapse:
            for k, r in enumerate(self.repeats()):
                repeat_of.update((i, k) for i in r.blocks[0])
        groups: dict[tuple[int | None, str], list[str]] = {}
        for n in drawn:
            line = f"n{n.id} [{_dot_attrs(n, n is self.output)}];"
            groups.setdefault((repeat_of.get(n.id), n.module if collapse else ""), []).append(line)
        lines: list[str] = []
        number = iter(range(len(groups)))
        for k in dict.fromkeys(key[0] for key in groups):
            inner: list[str] = []
            for (rk, module), body in groups.items():
                if rk != k:
                    continue
                if module:
                    kind = self.modules.get(module, "")
                    title = f"{module} ({kind})" if kind else module
                    inner += [f"subgraph cluster_m{next(number)} {{",
                              f'  label="{_escape(title)}"; style="rounded"; color="#3a7bd5"; '
                              'fontname="Helvetica"; fontsize=10;']
                    inner += ["  " + b for b in body] + ["}"]
                else:
                    inner += body
            if k is None:
                lines += ["  " + x for x in inner]
            else:
                r = self.repeats()[k]
                label = _escape(f"× {r.count}: {r.describe(short=True)}")
                lines += [f"  subgraph cluster_r{k} {{",
                          f'    label="{label}"; style="dashed,rounded"; color="#888888"; '
                          'fontname="Helvetica"; fontsize=11;']
                lines += ["    " + x for x in inner] + ["  }"]
        return lines

    def render(self, path: str | Path, format: str | None = None,
               max_nodes: int | None = MAX_NODES) -> Path:
        """Draw the graph to ``path`` in ``format`` (by default the path's suffix, or SVG).

        Needs ``pip install "glassgrad[viz]"`` and Graphviz's ``dot`` program; raises
        ``ImportError`` or ``RuntimeError`` saying so when either is missing.
        """
        path = Path(path)
        fmt = format or path.suffix.lstrip(".") or "svg"
        path.write_bytes(_pipe(self.to_dot(max_nodes), fmt))
        return path

    def _repr_svg_(self) -> str | None:
        # Jupyter falls back to the text repr when this returns None.
        if self._svg is None:
            try:
                self._svg = _pipe(self.to_dot(), "svg").decode("utf-8")
            except (ImportError, RuntimeError, OSError):
                return None
        return self._svg

    def _repr_html_(self) -> str:
        """In a notebook: the drawing when Graphviz is there, else the listing as HTML
        (repeats collapsed) with a line saying how to get the drawing."""
        svg = self._repr_svg_()
        if svg is not None:
            return svg
        head = html.escape(repr(self))
        body = html.escape(self.to_text())
        return (f"<div><b>{head}</b><pre style=\"font-size:12px\">{body}</pre>"
                "<small>Install Graphviz (pip install \"glassgrad[viz]\" and the dot program) "
                "to draw it; Graph.to_text(max_nodes=None) lists every node.</small></div>")


@dataclass(frozen=True)
class Repeat:
    """A block of operations run ``count`` times back to back: ``blocks[r]`` holds the
    node ids of repetition ``r``, in order; the drawing shows ``blocks[0]``."""

    blocks: tuple[tuple[int, ...], ...]

    @property
    def count(self) -> int:
        return len(self.blocks)

    @property
    def period(self) -> int:
        return len(self.blocks[0])

    def describe(self, short: bool = False) -> str:
        ops = "operation" if self.period == 1 else f"{self.period} operations"
        span = f"%{self.blocks[0][0]}-%{self.blocks[-1][-1]}"
        if short:
            return f"{ops} repeated ({span}); values of the first"
        return (f"the {ops} above repeat {self.count} times in all ({span}; "
                "to_text(max_nodes=None) lists every one)")


def _module_start(ops: list[GraphNode], s: int, period: int) -> int:
    """The shift within a block at which its first module's operations begin (0: none)."""
    for d in range(period):
        k = s + d
        if ops[k].module and (k == 0 or ops[k - 1].module != ops[k].module):
            return d
    return 0


def _find_repeats(nodes: list[GraphNode], output: int) -> list[Repeat]:
    """Greedy, left to right: at each operation, the block of at most ``MAX_PERIOD``
    operations that repeats back to back over the most operations (``MIN_REPEATS`` times
    at least). Two operations match when they have the same op, parameters, shape and
    dtype and take the same inputs, counted relative to themselves (so the link from one
    repetition to the next matches too); the output never repeats."""
    ops = [n for n in nodes if n.op not in ("input", "const")]
    pos = {n.id: k for k, n in enumerate(ops)}
    codes: dict[Any, int] = {}
    sigs = []
    for k, n in enumerate(ops):
        ins = []
        for i in n.inputs:
            m = nodes[i]
            if m.op == "const":
                ins.append(("c", _format(m.value) if _inline(m) else (m.shape, m.dtype)))
            elif m.op == "input":
                ins.append(("i", i))
            else:
                ins.append(("o", k - pos[i]))
        key = (n.op, tuple(_param_texts(n)), n.shape, n.dtype, tuple(ins))
        sigs.append(codes.setdefault(key, len(codes)) if n.id != output else -1 - k)
    found, s, count = [], 0, len(sigs)
    while s < count:
        best = None
        for period in range(1, min(MAX_PERIOD, (count - s) // MIN_REPEATS) + 1):
            block = sigs[s:s + period]
            reps = 1
            while sigs[s + reps * period:s + (reps + 1) * period] == block:
                reps += 1
            if reps >= MIN_REPEATS and (best is None or reps * period > best[0] * best[1]):
                best = (period, reps)
        if best is None:
            s += 1
            continue
        period, reps = best
        shift = _module_start(ops, s, period)
        if shift:  # start the block where a module starts, if it still repeats from there
            moved = 1
            block = sigs[s + shift:s + shift + period]
            while sigs[s + shift + moved * period:s + shift + (moved + 1) * period] == block:
                moved += 1
            if moved >= MIN_REPEATS:
                s, reps = s + shift, moved
        found.append(Repeat(tuple(tuple(ops[s + r * period + j].id for j in range(period))
                                  for r in range(reps))))
        s += period * reps
    return found


def _pipe(dot: str, fmt: str) -> bytes:
    try:
        import graphviz
    except ImportError as err:
        raise ImportError(_INSTALL) from err
    try:
        return graphviz.Source(dot).pipe(format=fmt)
    except graphviz.ExecutableNotFound as err:
        raise RuntimeError(_INSTALL) from err


def _dot_attrs(node: GraphNode, is_output: bool) -> str:
    if node.op == "const":
        text = _format(node.value) if _small(node.value) else f"{node.shape} {node.dtype}"
        text = f"{node.name}\\n{_escape(text)}" if node.name else _escape(text)
        return f'label="{text}", shape=plaintext, style=""'
    head = [node.name, "input"] if node.op == "input" else [node.op]
    head += _param_texts(node)
    lines = head + [f"{node.shape} {node.dtype}"]
    if _small(node.value):
        lines.append(f"value {_format(node.value)}")
    if _small(node.grad):
        lines.append(f"grad {_format(node.grad)}")
    label = "\\n".join(_escape(s) for s in lines)
    color = "#dff0d8" if node.op == "input" else "#fcf8e3" if is_output else "#ffffff"
    bold = ", penwidth=2" if is_output else ""
    return f'label="{label}", fillcolor="{color}"{bold}'


def _dot_edges(edges: list[GraphEdge], nodes: list[GraphNode], kept: set[int],
               rep_of: dict[int, int], block_of: dict[int, tuple[int, int]]) -> list[str]:
    lines, seen, dashed = [], set(), set()
    for e in edges:
        src, dst = rep_of.get(e.src, e.src), rep_of.get(e.dst, e.dst)
        if nodes[e.src].op == "const":  # drawn at each use, so a shared constant adds no mesh
            if e.dst in kept:
                lines.append(f"  c{e.dst}_{e.argnum} [{_dot_attrs(nodes[e.src], False)}];")
                lines.append(f"  c{e.dst}_{e.argnum} -> n{e.dst};")
            continue
        a, b = block_of.get(e.src), block_of.get(e.dst)
        if a is not None and b is not None and a[0] == b[0]:
            if a[1] != b[1] and (src, dst, "next") not in seen:  # one repetition to the next
                seen.add((src, dst, "next"))
                lines.append(f'  n{src} -> n{dst} [style=dashed, color="#888888", '
                             'label="next", constraint=false];')
            elif a[1] == b[1] == 0 and src in kept and dst in kept:
                lines.append(f"  n{src} -> n{dst}{_edge_label(e)};")
            continue
        if src in kept and dst in kept:
            if (src, dst) == (e.src, e.dst):
                lines.append(f"  n{src} -> n{dst}{_edge_label(e)};")
            elif (src, dst) not in seen:  # an edge into or out of a collapsed repetition
                seen.add((src, dst))
                lines.append(f"  n{src} -> n{dst};")
            continue
        # One dashed edge stands for all edges into or out of the omitted part.
        src = f"n{src}" if src in kept else "omitted"
        dst = f"n{dst}" if dst in kept else "omitted"
        if src != dst and (src, dst) not in dashed:
            dashed.add((src, dst))
            lines.append(f"  {src} -> {dst} [style=dashed];")
    return lines


def _edge_label(e: GraphEdge) -> str:
    label = []
    if e.local is not None:
        label.append(f"local {_format(e.local)}")
    if _small(e.grad):
        label.append(f"grad {_format(e.grad)}")
    text = "\\n".join(_escape(s) for s in label)  # DOT's line break: backslash, n
    return f' [label="{text}"]' if label else ""


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _inline(node: GraphNode) -> bool:
    return node.op == "const" and np.size(node.value) == 1


def _small(value: Any) -> bool:
    return value is not None and np.size(value) <= _SMALL


def _format(value: Any) -> str:
    arr = backend.to_numpy(value)  # for display only
    if arr.size == 1:
        item = arr.reshape(()).item()
        return f"{item:.4g}" if isinstance(item, float) else str(item)
    return np.array2string(arr, precision=4, separator=", ").replace("\n", "")


def _param_texts(node: GraphNode) -> list[str]:
    # None and False are the engine's "not set" values (axis=None, keepdims=False).
    return [f"{k}={_short(v)}" for k, v in node.params.items()
            if v is not None and v is not False]


def _short(value: Any, limit: int = 30) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _facts(node: GraphNode) -> str:
    parts = [f"shape {node.shape} {node.dtype}"]
    if _small(node.value):
        parts.append(f"value {_format(node.value)}")
    if _small(node.grad):
        parts.append(f"grad {_format(node.grad)}")
    return "  ".join(parts)


# --- recording ------------------------------------------------------------------------------


def trace(fun: Callable, *, backward: bool = True,
          modules: Any = None) -> Callable[..., Graph]:
    """Record ``fun``'s graph of primitives at the given arguments.

    Float arguments (and the float leaves of tuples, lists and dicts; Python ints count
    as floats) become inputs named after ``fun``'s parameters (``xs[1]`` for a leaf of a
    container); other arguments are passed through unchanged. When ``fun`` returns a
    float scalar and ``backward`` is true, the backward pass runs too and every node
    and edge records its gradient. Python control flow takes the branches of these
    argument values.

    ``modules`` (a ``gg.nn.Module``; by default ``fun`` itself when it is one) names the
    operations: an operation that uses a module's parameters belongs to that module
    (``GraphNode.module``, its dotted name), and so does a parameter-free operation
    between two operations of the same module; parameters are named constants.

    >>> import numpy as np, glassgrad as gg
    >>> g = gg.trace(lambda x: np.sum(x * x))(np.array([1.0, 2.0]))
    >>> [n.op for n in g.nodes], g.inputs[0].grad
    (['input', 'mul', 'sum'], array([2., 4.]))
    """

    @functools.wraps(fun)
    def traced(*args: Any, **kwargs: Any) -> Graph:
        level = new_level()
        boxes: list[tuple[str, Tensor]] = []
        names = _argument_names(fun, len(args))
        args = tuple(_box_tree(a, n, level, boxes) for a, n in zip(args, names, strict=True))
        kwargs = {k: _box_tree(v, k, level, boxes) for k, v in kwargs.items()}
        out = fun(*args, **kwargs)
        if isinstance(out, tuple | list | dict):
            raise TypeError("trace records a function with one array output, got a "
                            f"{type(out).__name__}; trace each output separately")
        return _Recorder(level, boxes, out, _module_map(modules or fun)).graph(backward)

    return traced


def _module_map(model: Any) -> tuple[dict[int, tuple[str, str, Any]], dict[str, str]]:
    """For a ``gg.nn.Module``: parameter id -> (module path, parameter name, tensor) and
    module path -> class name; empty for anything else."""
    named = getattr(model, "named_modules", None)
    if named is None or not callable(getattr(model, "named_parameters", None)):
        return {}, {}
    kinds = {path: type(m).__name__ for path, m in named()}
    params = {}
    for name, tensor in model.named_parameters():
        path, _, attr = name.rpartition(".")
        params[id(tensor)] = (path, name, tensor)
    return params, kinds


def _argument_names(fun: Callable, count: int) -> list[str]:
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):  # builtins and ufuncs may have no signature
        params = []
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    star = next((p.name for p in params if p.kind == p.VAR_POSITIONAL), None)
    names = []
    for i in range(count):
        if i < len(positional):
            names.append(positional[i])
        else:
            names.append(f"{star}[{i - len(positional)}]" if star else f"arg{i}")
    return names


def _box_tree(value: Any, name: str, level: int, boxes: list) -> Any:
    leaves, treedef = flatten(value)
    new = []
    for path, leaf in zip(leaf_paths(value), leaves, strict=True):
        x = _float_value(leaf)
        if x is None:
            new.append(leaf)
            continue
        box = Tensor._wrap(x, level, None)
        box.requires_grad = True
        boxes.append((name + path, box))
        new.append(box)
    return unflatten(treedef, new)


def _float_value(x: Any) -> Any:
    """The float array an argument leaf stands for, or None to pass it through."""
    if isinstance(x, Tensor) and x._level == 0:
        x = x._value
    if isinstance(x, bool | np.bool_) or isinstance(x, Traced):
        return None
    backend.refuse_unkept(x, "an argument of trace")
    if isinstance(x, int | np.integer):
        return np.float64(x)
    if isinstance(x, float | np.floating) or (
            backend.is_numpy_array(x) and x.dtype.kind == "f"):
        return x if backend.is_numpy_array(x) else np.float64(x)
    if backend.is_foreign_array(x) and backend.dtype_of(x).kind == "f":
        return x  # a Dask or CuPy array is an input too, never a constant
    return None


class _Recorder:
    """Turns the tensors reachable from ``out`` into ``GraphNode``s and ``GraphEdge``s."""

    def __init__(self, level: int, boxes: list[tuple[str, Tensor]], out: Any,
                 modules: tuple[dict, dict] = ({}, {})):
        self.level = level
        self.boxes = boxes
        self.out = out
        self.params, self.kinds = modules
        self.ids: dict[int, int] = {}
        self.nodes: list[GraphNode] = []
        self.edges: list[GraphEdge] = []

    def graph(self, backward: bool) -> Graph:
        out = self.out
        ours = isinstance(out, Tensor) and out._level == self.level and out.requires_grad
        order = toposort([out]) if ours else []
        grads, edge_grads = self._backward(order) if ours and backward and _scalar(out) \
            else ({}, {})
        for name, box in self.boxes:
            self._add(box, "input", (), name=name, grad=self._input_grad(box, grads, backward))
        for t in order:
            if t._node is not None:
                self._add_op(t, grads, edge_grads)
        output = self.ids[id(out)] if ours else self._const(out)
        if self.params:
            self._fill_modules()
        return Graph(self.nodes, self.edges, output, (out if ours else None, dict(self.ids)),
                     self.kinds if self.params else None)

    def _fill_modules(self) -> None:
        """A parameter-free operation whose operation inputs and users all belong to one
        module belongs to it too (a scaling, a reshape between a module's matmuls)."""
        users: dict[int, list[int]] = {}
        for e in self.edges:
            users.setdefault(e.src, []).append(e.dst)
        for k, n in enumerate(self.nodes):
            if n.module or n.op in ("input", "const"):
                continue
            around = [self.nodes[i].module for i in n.inputs
                      if self.nodes[i].op not in ("input", "const")]
            around += [self.nodes[j].module for j in users.get(n.id, ())]
            if around and around[0] and all(m == around[0] for m in around):
                self.nodes[k] = dataclasses.replace(n, module=around[0])

    def _input_grad(self, box: Tensor, grads: dict, backward: bool) -> Any:
        if id(box) in grads:
            return grads[id(box)]
        if backward and _scalar(self.out):  # an input the output does not depend on
            return np.zeros_like(box._value)
        return None

    def _add(self, t: Any, op: str, inputs: tuple[int, ...], **extra: Any) -> int:
        value = raw(t)
        nid = len(self.nodes)
        self.nodes.append(GraphNode(nid, op, inputs, tuple(np.shape(value)),
                                    str(backend.dtype_of(value)), value, **extra))
        self.ids[id(t)] = nid
        return nid

    def _const(self, value: Any) -> int:
        nid = self.ids.get(id(value))
        if nid is None or self.nodes[nid].op != "const":
            param = self.params.get(id(value))
            nid = self._add(value, "const", (), **({"name": param[1], "module": param[0]}
                                                    if param else {}))
        return nid

    def _add_op(self, t: Tensor, grads: dict, edge_grads: dict) -> None:
        prim, args, params, _, parents = t._node[:5]
        parent_of = {i: p for i, p in parents}
        inputs = tuple(self.ids[id(parent_of[i])] if i in parent_of else self._const(a)
                       for i, a in enumerate(args))
        module = next((self.params[id(a)][0] for a in args if id(a) in self.params), "")
        nid = self._add(t, prim.name, inputs, grad=grads.get(id(t)), params=dict(params),
                        module=module)
        for i, src in enumerate(inputs):
            grad, local = edge_grads.get((id(t), i), (None, None))
            self.edges.append(GraphEdge(src, nid, i, grad, local))

    def _backward(self, order: list[Tensor]) -> tuple[dict, dict]:
        """The engine's own backward pass, keeping the gradient at every node and edge."""
        out = self.out
        grads: dict[int, Any] = {id(out): np.ones_like(raw(out))}
        edge_grads: dict[tuple[int, int], tuple[Any, Any]] = {}

        def keep(t: Tensor, i: int, parent: Tensor, contrib: Any) -> None:
            local = None
            if _scalar(t) and _scalar(parent):  # d t / d parent: pull back a unit cotangent
                prim, args, params, ans = t._node[:4]
                unit = np.ones_like(raw(ans))
                local = raw(_reduce(prim.vjps[i](unit, ans, *args, **params), parent))
            edge_grads[(id(t), i)] = (raw(contrib), local)
            prev = grads.get(id(parent))
            grads[id(parent)] = contrib if prev is None else prev + contrib

        backprop([(out, grads[id(out)])], on_edge=keep)
        return {k: raw(v) for k, v in grads.items()}, edge_grads


def _reduce(contrib: Any, parent: Tensor) -> Any:
    shape = np.shape(raw(parent._value))
    return contrib if np.shape(raw(contrib)) == shape else sum_to(contrib, shape=shape)


def _scalar(x: Any) -> bool:
    value = raw(x)
    return backend.size_of(value) == 1 and backend.dtype_of(value).kind == "f"

