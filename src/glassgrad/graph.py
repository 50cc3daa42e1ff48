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
Jupyter. Large graphs stay readable: drawings and listings keep the inputs and the
``max_nodes`` operations nearest the output, and a note says how many were left out.
(Runs of repeated operations are not collapsed: the part next to the output shows the
loss and the last layers, usually what one wants to look at.) Constants are written
inline in listings and drawn at each use, so a shared one adds no tangle of edges.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _backend as backend
from ._primitive import Traced, new_level
from ._pytree import flatten, leaf_paths, unflatten
from ._rules import raw, sum_to
from ._tensor import Tensor, backprop, toposort

__all__ = ["Graph", "GraphEdge", "GraphNode", "trace"]

MAX_NODES = 200  # default cap on drawn and listed nodes
_SMALL = 6  # arrays up to this many elements show their values

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
    name: str = ""  # an input's argument name
    params: dict[str, Any] = field(default_factory=dict, repr=False)


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
                 tape: tuple[Any, dict[int, int]] = (None, {})):
        self.nodes = nodes
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

        ``max_nodes=None`` lists every node.
        """
        kept, omitted = self._keep(max_nodes)
        rows = []
        for node in self.nodes:
            if node.id not in kept or _inline(node):
                if node.id not in kept and node.op != "const" and omitted:
                    rows.append((f"; ... {omitted} operations omitted "
                                 "(to_text(max_nodes=None) lists all)", ""))
                    omitted = 0
                continue
            rows.append((f"%{node.id} = {self._call_text(node)}", _facts(node)))
        width = min(max((len(head) for head, facts in rows if facts), default=0), 40)
        lines = [f"{head:<{width}}  {facts}" if facts else head for head, facts in rows]
        return "\n".join(lines + [f"return %{self.output.id}"])

    def _call_text(self, node: GraphNode) -> str:
        if node.op == "input":
            return f"input {node.name}"
        if node.op == "const":
            return "const"
        args = [_format(self.nodes[i].value) if _inline(self.nodes[i]) else f"%{i}"
                for i in node.inputs]
        args += _param_texts(node)
        return f"{node.op}({', '.join(args)})"

    def _keep(self, max_nodes: int | None) -> tuple[set[int], int]:
        """Ids to show: the inputs, the ``max_nodes`` operations nearest the output and
        the constants they use; and how many operations are left out."""
        ops = [n.id for n in self.nodes if n.op not in ("input", "const")]
        if max_nodes is None or len(ops) + len(self.inputs) <= max_nodes:
            return {n.id for n in self.nodes}, 0
        room = max(max_nodes - len(self.inputs), 1)
        kept = {n.id for n in self.inputs} | set(ops[-room:]) | {self.output.id}
        kept |= {i for k in list(kept) for i in self.nodes[k].inputs
                 if self.nodes[i].op == "const"}
        return kept, len(ops) - room

    # --- drawing ---------------------------------------------------------------------------
    def to_dot(self, max_nodes: int | None = MAX_NODES) -> str:
        """Graphviz DOT text: one box per node (op, shape, value, grad), edges labelled
        with the gradient sent along them. Needs no extra package."""
        kept, omitted = self._keep(max_nodes)
        lines = ["digraph glassgrad {", "  rankdir=LR;",
                 '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", '
                 'fontname="Helvetica", fontsize=10];',
                 '  edge [fontname="Helvetica", fontsize=9];']
        if omitted:
            lines.append(f'  omitted [label="... {omitted} operations omitted ...", shape=note, '
                         'fillcolor="#eeeeee"];')
        lines += [f"  n{n.id} [{_dot_attrs(n, n is self.output)}];"
                  for n in self.nodes if n.id in kept and (n.op != "const" or n is self.output)]
        lines += _dot_edges(self.edges, self.nodes, kept)
        lines.append("}")
        return "\n".join(lines)

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
        try:
            return _pipe(self.to_dot(), "svg").decode("utf-8")
        except (ImportError, RuntimeError, OSError):
            return None


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
        return f'label="{_escape(text)}", shape=plaintext, style=""'
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


def _dot_edges(edges: list[GraphEdge], nodes: list[GraphNode], kept: set[int]) -> list[str]:
    lines, dashed = [], set()
    for e in edges:
        if nodes[e.src].op == "const":  # drawn at each use, so a shared constant adds no mesh
            if e.dst in kept:
                lines.append(f"  c{e.dst}_{e.argnum} [{_dot_attrs(nodes[e.src], False)}];")
                lines.append(f"  c{e.dst}_{e.argnum} -> n{e.dst};")
            continue
        if e.src in kept and e.dst in kept:
            lines.append(f"  n{e.src} -> n{e.dst}{_edge_label(e)};")
            continue
        # One dashed edge stands for all edges into or out of the omitted part.
        src = f"n{e.src}" if e.src in kept else "omitted"
        dst = f"n{e.dst}" if e.dst in kept else "omitted"
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


def trace(fun: Callable, *, backward: bool = True) -> Callable[..., Graph]:
    """Record ``fun``'s graph of primitives at the given arguments.

    Float arguments (and the float leaves of tuples, lists and dicts; Python ints count
    as floats) become inputs named after ``fun``'s parameters (``xs[1]`` for a leaf of a
    container); other arguments are passed through unchanged. When ``fun`` returns a
    float scalar and ``backward`` is true, the backward pass runs too and every node
    and edge records its gradient. Python control flow takes the branches of these
    argument values.

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
        return _Recorder(level, boxes, out).graph(backward)

    return traced


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

    def __init__(self, level: int, boxes: list[tuple[str, Tensor]], out: Any):
        self.level = level
        self.boxes = boxes
        self.out = out
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
        return Graph(self.nodes, self.edges, output, (out if ours else None, dict(self.ids)))

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
            nid = self._add(value, "const", ())
        return nid

    def _add_op(self, t: Tensor, grads: dict, edge_grads: dict) -> None:
        prim, args, params, _, parents = t._node[:5]
        parent_of = {i: p for i, p in parents}
        inputs = tuple(self.ids[id(parent_of[i])] if i in parent_of else self._const(a)
                       for i, a in enumerate(args))
        nid = self._add(t, prim.name, inputs, grad=grads.get(id(t)), params=dict(params))
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

