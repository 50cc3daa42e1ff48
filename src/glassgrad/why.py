"""Why is a gradient zero, NaN or infinite? ``gg.why`` answers from the engine's own record.

``why(fun)(*args)`` runs ``fun`` once on the tape and once backwards through the engine's
one backward loop (``_tensor.backprop`` with ``on_edge``), keeping the cotangent sent
along every edge. When some element of the gradient is exactly 0, NaN or infinite, it
walks the record again from the output towards the inputs and labels, edge by edge, the
elements that stop receiving an ordinary gradient:

* an edge whose cotangent is 0 where the operation's output still had a gradient *kills*
  it there; the operation says why (an inactive ReLU, the branch of ``where`` not taken, a
  clip bound, the max chosen elsewhere, a piecewise-constant function, a derivative that
  rounds to 0 or a product of derivatives that underflows);
* an edge whose cotangent is NaN or infinite where the incoming one was finite is where
  a NaN or an infinity *starts* (the operation and its input values are named);
* elements that inherit a zero or a NaN are given the label of the elements they came
  from, found by pulling an indicator of those elements back through the same VJP rule.

Elements that no edge reaches are unused, unless the recorded forward pass sent them
into ``stop_gradient``, ``.detach()``, an integer cast or a comparison, which is then
named. The user's source line of every operation is recorded during ``why``'s own run
only; nothing is added to the eager hot path.

>>> import numpy as np, glassgrad as gg
>>> d = gg.why(lambda x: np.sum(np.maximum(x, 0.0)))(np.array([1.0, -2.0]))
>>> [(c.index, c.kind) for c in d.causes]
[((1,), 'relu')]
"""

from __future__ import annotations

import functools
import html
import inspect
import linecache
import os
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, NamedTuple

import numpy as np

from ._backend import concrete as raw
from ._primitive import new_level
from ._pytree import leaf_paths
from ._rules import sum_to
from ._tensor import Tensor, backprop, toposort
from ._transforms import _box_args, _check_scalar_output, _normalize_argnums, _seed

__all__ = ["Cause", "Diagnosis", "why"]

TINY = 1e-300  # "too small to represent" for the underflow report


class Cause(NamedTuple):
    """Why the gradient of the elements at ``index`` is zero, NaN or infinite.

    ``index`` is a NumPy index into the argument (ints, and slices for runs); for an
    argument with several array leaves (a dict of parameters), ``(leaf, index)`` with the
    leaf's name. ``kind`` is one of ``KINDS``; ``op`` the operation and its source line;
    ``detail`` what happened there; ``fix`` what to do about it.
    """

    index: Any
    kind: str
    op: str
    detail: str
    fix: str


KINDS = ("unused", "relu", "where", "clip", "select", "detached", "flat", "underflow",
         "nan", "inf")

FIXES = {
    "unused": "the output does not depend on this element: check that it is used (a wrong "
              "variable, an index that skips it, a branch that ignores it); if that is "
              "intended, its zero gradient is correct.",
    "relu": "a dead ReLU passes no gradient: initialise so that units start active (He "
            "initialisation, a small positive bias), lower the learning rate, normalise "
            "the inputs, or use a leaky ReLU or GELU.",
    "where": "np.where sends the gradient only to the branch it takes; if this element "
             "should matter, check the condition, otherwise the zero is correct.",
    "clip": "the value sits at a bound of clip, where the derivative is 0: widen the "
            "bounds, clip less, or squash smoothly (tanh) instead.",
    "select": "max and min send the gradient only to the element they choose: use a "
              "smooth version (logsumexp, softmax weights) if every element must learn.",
    "detached": "this value was cut from the graph on purpose or by accident: remove the "
                "stop_gradient/.detach(), or cast to a float dtype instead of an integer "
                "one, if it should be trained.",
    "flat": "the operation is flat here (derivative 0): use a smooth surrogate (a sigmoid "
            "for a comparison, the straight-through estimator x + "
            "gg.stop_gradient(np.round(x) - x) for rounding), or move away from the "
            "stationary point.",
    "underflow": "the derivatives multiply to less than floating point can hold: the "
                 "function is saturated. Scale or normalise its inputs, initialise "
                 "smaller, work on logits (binary_cross_entropy_with_logits, "
                 "log_softmax), or compute in float64.",
    "nan": "keep every operation inside its domain on both branches: guard the input "
           "(np.where(x > 0, x, 1.0) before sqrt/log, np.maximum(x, eps)), then select.",
    "inf": "the derivative is infinite here (sqrt or log at 0, a division by 0): add a "
           "small epsilon (np.sqrt(x + 1e-12)) or keep the input away from the pole.",
}

_WHERE_TRAP = ("the branch np.where did not take still gets a zero gradient, and 0 times "
               "an infinite or NaN derivative is NaN: make the untaken branch safe, e.g. "
               "np.where(x > 0, np.sqrt(np.where(x > 0, x, 1.0)), 0.0).")


# --- the report ------------------------------------------------------------------------------


class Diagnosis:
    """What ``gg.why`` found: ``causes`` (a list of ``Cause``), the ``value`` of the
    function and the ``gradient`` it has. True when something was found."""

    def __init__(self, causes: list[Cause], value: Any, gradient: Any, counts: tuple):
        self.causes = causes
        self.value = value
        self.gradient = gradient
        self._counts = counts  # (zero, nan, inf, total) elements

    def __bool__(self) -> bool:
        return bool(self.causes)

    def __len__(self) -> int:
        return len(self.causes)

    def __iter__(self):
        return iter(self.causes)

    def __repr__(self) -> str:
        return f"<Diagnosis: {len(self.causes)} causes>"

    def _summary(self) -> str:
        zero, nan, inf, total = self._counts
        if not self.causes:
            return (f"gg.why: every one of the {total} gradient elements is finite and "
                    "nonzero; nothing to explain.")
        parts = [f"{n} {what}" for n, what in ((zero, "zero"), (nan, "NaN"), (inf, "infinite"))
                 if n]
        return (f"gg.why: {' + '.join(parts)} of {total} gradient elements, "
                f"{len(self.causes)} cause{'s' if len(self.causes) != 1 else ''}:")

    def __str__(self) -> str:
        lines = [self._summary()]
        for c in self.causes:
            lines += [f"{_index_text(c.index)}  {c.kind}: {c.op}",
                      f"    {c.detail}", f"    fix: {c.fix}"]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = f"<p>{html.escape(self._summary())}</p>"
        if not self.causes:
            return head
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(s)}</td>" for s in
                             (_index_text(c.index), c.kind, c.op, c.detail, c.fix)) + "</tr>"
            for c in self.causes)
        return (head + "<table><thead><tr><th>elements</th><th>kind</th><th>operation</th>"
                "<th>what happened</th><th>fix</th></tr></thead><tbody>" + rows
                + "</tbody></table>")


def _index_text(index: Any) -> str:
    if isinstance(index, tuple) and len(index) == 2 and isinstance(index[0], str):
        return index[0] + _index_text(index[1])
    if index == ():
        return "(the scalar)"

    def one(i: Any) -> str:
        if isinstance(i, slice):
            return ":" if i.start is None else f"{i.start}:{i.stop}"
        return str(i)

    return "[" + ", ".join(one(i) for i in index) + "]"


# --- recording source lines and cuts while why runs ------------------------------------------

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))
_INSIDE: dict[str, bool] = {}  # filename -> inside glassgrad or NumPy


def _user_frame(depth: int) -> tuple[str, int] | None:
    """``(filename, line)`` of the innermost frame outside glassgrad and NumPy: cheap, the
    line's text is looked up only when a report names it."""
    frame = sys._getframe(depth)
    while frame is not None:
        name = frame.f_code.co_filename
        inside = _INSIDE.get(name)
        if inside is None:
            path = os.path.abspath(name)
            inside = _INSIDE[name] = path.startswith((_PACKAGE_DIR, _NUMPY_DIR))
        if not inside:
            return name, frame.f_lineno
        frame = frame.f_back
    return None


class _Record:
    """What why's own forward run saw: each recorded tensor's source line, and the calls
    that cut a traced value off the graph (nondifferentiable primitives, ``.detach()``)."""

    def __init__(self, level: int):
        self.level = level
        self.where: dict[int, tuple[str, int] | None] = {}  # tensor _seq -> location
        self.cuts: list[tuple[str, Tensor, tuple[str, int] | None]] = []

    def note(self, prim: Any, args: tuple, out: Any) -> None:
        if type(out) is Tensor and out._level == self.level:
            self.where[out._seq] = _user_frame(3)
        elif prim.nondifferentiable:
            loc = _user_frame(3)
            for a in args:
                if type(a) is Tensor and a._level == self.level and a.requires_grad:
                    self.cuts.append((prim.name, a, loc))

    def note_detach(self, source: Tensor) -> None:
        if source._level == self.level and source.requires_grad:
            self.cuts.append(("detach", source, _user_frame(3)))


_ACTIVE: ContextVar[_Record | None] = ContextVar("glassgrad_why", default=None)
_LOCK = threading.Lock()
_USERS = [0]
_ORIGINAL = {"_process": Tensor._process, "detach": Tensor.detach}


def _process(self: Tensor, prim: Any, args: tuple, params: dict) -> Any:
    out = _ORIGINAL["_process"](self, prim, args, params)
    rec = _ACTIVE.get()
    if rec is not None and self._level == rec.level:
        rec.note(prim, args, out)
    return out


def _detach(self: Tensor) -> Tensor:
    rec = _ACTIVE.get()
    if rec is not None:
        rec.note_detach(self)
    return _ORIGINAL["detach"](self)


class _Watching:
    """Route ``Tensor._process`` and ``Tensor.detach`` through the recorders above while
    at least one ``why`` runs; the originals are back as soon as none does."""

    def __init__(self, rec: _Record):
        self.rec = rec

    def __enter__(self) -> _Record:
        with _LOCK:
            if _USERS[0] == 0:
                Tensor._process = _process
                Tensor.detach = _detach
            _USERS[0] += 1
        self.token = _ACTIVE.set(self.rec)
        return self.rec

    def __exit__(self, *exc: Any) -> None:
        _ACTIVE.reset(self.token)
        with _LOCK:
            _USERS[0] -= 1
            if _USERS[0] == 0:
                Tensor._process = _ORIGINAL["_process"]
                Tensor.detach = _ORIGINAL["detach"]


def _place(loc: tuple[str, int] | None) -> str:
    if loc is None:
        return ""
    name, line = loc
    code = linecache.getline(name, line).strip()
    short = name if name.startswith("<") else os.path.basename(name)
    return f" at {short}:{line}" + (f": {code}" if code else "")


# --- why -------------------------------------------------------------------------------------


def why(fun: Callable, argnums: int | tuple[int, ...] = 0) -> Callable[..., Diagnosis]:
    """Explain every element of ``fun``'s gradient that is exactly 0, NaN or infinite.

    ``fun`` returns a scalar, as for ``gg.grad``. The result is a ``Diagnosis``: its
    ``causes`` name, for each such element (or run of elements), the kind of cause, the
    operation and its source line, what happened there and the fix; ``str()`` is a
    report, notebooks show a table, and it is False when every element is ordinary.

    >>> import numpy as np, glassgrad as gg
    >>> d = gg.why(lambda x: np.sum(np.sqrt(x)))(np.array([4.0, 0.0]))
    >>> [(c.index, c.kind) for c in d.causes]
    [((1,), 'inf')]
    """

    @functools.wraps(fun)
    def diagnose(*args: Any, **kwargs: Any) -> Diagnosis:
        nums = _normalize_argnums(argnums, len(args))
        level = new_level()
        boxed_args, boxed = _box_args(args, nums, level)
        rec = _Record(level)
        edges: list[tuple[Tensor, int, Tensor, Any]] = []
        with np.errstate(all="ignore"):
            with _Watching(rec):
                out = fun(*boxed_args, **kwargs)
            _check_scalar_output(out, "why")
            found: dict[int, Any] = {}
            ours = isinstance(out, Tensor) and out._level == level
            if ours:
                leaves = backprop([(out, _seed(out._raw()))],
                                  on_edge=lambda t, i, p, c: edges.append((t, i, p, c)))
                found = {id(leaf): np.asarray(raw(g)) for leaf, g in leaves}
            names = _leaf_names(fun, args, nums)
            boxes = [b for bs, _, _ in boxed for b in bs]
            grads = [found.get(id(b), np.zeros(np.shape(raw(b)))) for b in boxes]
            counts = _counts(grads)
            causes: list[Cause] = []
            if counts[0] + counts[1] + counts[2]:
                walk = _Walk(out if ours else None, edges, rec)
                causes = walk.explain(boxes, grads, names)
        gradient = [np.asarray(g) for g in grads]
        if isinstance(argnums, int) and len(boxes) == 1:
            gradient = gradient[0]
        return Diagnosis(causes, np.asarray(raw(out)), gradient, counts)

    return diagnose


def _leaf_names(fun: Callable, args: tuple, nums: tuple[int, ...]) -> list[str] | None:
    """Names of the differentiated leaves (``params['W1']``), or None for one array."""
    paths = [(i, p) for i in nums for p in leaf_paths(args[i])]
    if len(paths) == 1:
        return None
    try:
        params = list(inspect.signature(fun).parameters)
    except (TypeError, ValueError):
        params = []
    return [(params[i] if i < len(params) else f"arg{i}") + p for i, p in paths]


def _counts(grads: list[np.ndarray]) -> tuple[int, int, int, int]:
    zero = sum(int(np.count_nonzero(g == 0)) for g in grads)
    nan = sum(int(np.count_nonzero(np.isnan(g))) for g in grads)
    inf = sum(int(np.count_nonzero(np.isinf(g))) for g in grads)
    return zero, nan, inf, sum(int(g.size) for g in grads)


class _Event:
    """One place where gradients stop being ordinary: a ``Cause`` without its index."""

    __slots__ = ("kind", "op", "detail", "fix")

    def __init__(self, kind: str, op: str, detail: str, fix: str | None = None):
        self.kind, self.op, self.detail = kind, op, detail
        self.fix = FIXES[kind] if fix is None else fix

    @property
    def zero(self) -> bool:
        return self.kind in _ZERO_KINDS

    def get(self) -> _Event:
        return self


class _Lazy:
    """An event whose words are written only if a report needs them: most places where
    some cotangent is 0 do not end up explaining any element of the argument."""

    __slots__ = ("zero", "thunk", "event")

    def __init__(self, zero: bool, thunk: Callable[[], _Event]):
        self.zero, self.thunk, self.event = zero, thunk, None

    def get(self) -> _Event:
        if self.event is None:
            self.event = self.thunk()
        return self.event


_ZERO_KINDS = frozenset(KINDS) - {"nan", "inf"}
# sqrt of the smallest normal number: a cotangent above it times an ordinary derivative
# cannot underflow.
_SMALL = {np.dtype(t): float(np.sqrt(np.finfo(t).tiny)) for t in (np.float16, np.float32,
                                                                   np.float64)}


class _Walk:
    """The labelling walk over the recorded edges, from the output to the inputs."""

    def __init__(self, out: Tensor | None, edges: list, rec: _Record):
        self.out = out
        self.rec = rec
        self.events: list[_Event | _Lazy | None] = [None]  # label 0: an ordinary gradient
        self.rng = np.random.default_rng(0)
        self.children: dict[int, list] = {}  # parent id -> [(child, argnum, cotangent)]
        for t, i, p, c in edges:
            self.children.setdefault(id(p), []).append((t, i, c))
        self._grads: dict[int, np.ndarray] = {}
        self._clean: dict[int, bool] = {}

    def grad(self, t: Tensor) -> np.ndarray:
        """d output / d t: the sum of the cotangents ``t`` received (kept on demand)."""
        g = self._grads.get(id(t))
        if g is None:
            if t is self.out:
                g = np.ones(np.shape(raw(t._value)))
            else:
                g = None
                for _, _, c in self.children.get(id(t), ()):
                    c = np.asarray(raw(c))
                    g = c if g is None else g + c
                g = np.zeros(np.shape(raw(t._value))) if g is None else g
            self._grads[id(t)] = g
        return g

    def ordinary(self, a: np.ndarray) -> bool:
        key = id(a)
        ok = self._clean.get(key)
        if ok is None:
            a = np.asarray(raw(a))
            ok = self._clean[key] = bool(a.all() and np.isfinite(a).all())
        return ok

    # --- labels -----------------------------------------------------------------------------
    def new(self, event: _Event | _Lazy) -> int:
        self.events.append(event)
        return len(self.events) - 1

    def _is_zero_kind(self) -> np.ndarray:
        return np.array([e is not None and e.zero for e in self.events])

    def needed(self, bad: list[Tensor]) -> list[Tensor]:
        """The tensors whose labels are needed: from the arguments with something to
        explain, towards the output, along edges whose cotangent is not ordinary and into
        tensors whose own gradient is not ordinary. Newest first (children first)."""
        found = {id(b): b for b in bad}
        stack = list(bad)
        while stack:
            p = stack.pop()
            for t, _, c in self.children.get(id(p), ()):
                if id(t) in found or t is self.out or self.ordinary(c):
                    continue
                if not self.ordinary(self.grad(t)):
                    found[id(t)] = t
                    stack.append(t)
        return sorted(found.values(), key=lambda t: -t._seq)

    def settle(self, t: Tensor, labels_of: dict[int, np.ndarray | None]) -> np.ndarray | None:
        """The labels of ``t``'s elements, from the edges into it (None: all ordinary)."""
        shape = np.shape(raw(t._value))
        if id(t) not in self.children:
            return np.full(shape, self.new(self._unused()), dtype=np.int64)
        g = self.grad(t)
        if self.ordinary(g):
            return None
        if g.shape != shape:
            g = np.broadcast_to(g, shape)
        zero, bad = g == 0, ~np.isfinite(g)
        labels = np.zeros(shape, dtype=np.int64)
        for child, i, c in self.children[id(t)]:
            if self.ordinary(c):
                continue
            c = np.asarray(raw(c))
            cand = self.edge(child, i, t, c, self.grad(child), labels_of.get(id(child)),
                             zero, bad)
            if cand is None:
                continue
            zero_kind = self._is_zero_kind()
            fits = (cand > 0) & np.where(zero_kind[cand], zero, bad) & (labels == 0)
            labels[fits] = cand[fits]
        left = zero & (labels == 0)
        if left.any():  # the contributions of several uses cancel exactly
            n = len(self.children.get(id(t), ()))
            labels[left] = self.new(_Event(
                "flat", self._op(t), f"the gradients from its {n} uses cancel: they sum to "
                "exactly 0 here", "contributions that cancel give a true zero derivative "
                "(as for x - x); check the formula if it should not be constant."))
        left = bad & (labels == 0)
        if left.any():  # finite contributions whose sum overflows
            kind = "nan" if np.isnan(g[left]).any() else "inf"
            labels[left] = self.new(_Event(kind, self._op(t), "the gradients from its uses "
                                           f"add up to {kind}"))
        return labels

    def explain(self, boxes: list[Tensor], grads: list[np.ndarray],
                names: list[str] | None) -> list[Cause]:
        bad = [b for b, g in zip(boxes, grads, strict=True)
               if not (g.all() and np.isfinite(g).all())]
        labels_of: dict[int, np.ndarray | None] = {}
        for t in self.needed(bad):
            labels_of[id(t)] = self.settle(t, labels_of)
        causes = []
        for k, (box, g) in enumerate(zip(boxes, grads, strict=True)):
            labels = labels_of.get(id(box))
            if labels is None:
                continue
            labels = self.refine_unused(box, labels)
            bad = (g == 0) | ~np.isfinite(g)
            for label in np.unique(labels[bad & (labels > 0)]):
                event = self.events[label].get()
                for index in _runs(bad & (labels == label)):
                    where = index if names is None else (names[k], index)
                    causes.append((_first(index), k, Cause(where, event.kind, event.op,
                                                          event.detail, event.fix)))
        causes.sort(key=lambda item: (item[1], item[0]))
        return [c for _, _, c in causes]

    # --- one edge ---------------------------------------------------------------------------
    def edge(self, t: Tensor, i: int, p: Tensor, c: np.ndarray, g: np.ndarray,
             labels: np.ndarray | None, zero_p: np.ndarray,
             bad_p: np.ndarray) -> np.ndarray | None:
        """Labels for the elements of ``p`` that are zero (``zero_p``) or not finite
        (``bad_p``) in its total gradient, as far as the edge from ``t`` explains them."""
        zero, bad = (c == 0) & zero_p, ~np.isfinite(c) & bad_p
        if not (zero.any() or bad.any()):
            return None
        shape = np.shape(raw(p._value))
        if g.shape != np.shape(raw(t._value)):
            g = np.broadcast_to(g, np.shape(raw(t._value)))
        cand = np.zeros(shape, dtype=np.int64)
        if zero.any():
            alive = (g != 0) & np.isfinite(g)
            # A product g * d underflows only if g is tiny (or d is, which classify tells
            # from the local derivative): skip the pull when every cotangent is ordinary.
            small = np.abs(g[alive]).min(initial=np.inf) < _SMALL.get(g.dtype, 1e-154)
            reach_alive = self.reach(t, i, p, alive) if small else np.zeros(shape, bool)
            under = zero & reach_alive
            if under.any():
                cand[under] = self.new(_Lazy(True, lambda: self._underflow(t, i, p, g, under)))
            if labels is not None:
                dead = labels * (g == 0)
                for k in np.unique(dead[dead > 0]):
                    sel = zero & self.reach(t, i, p, dead == k) & (cand == 0)
                    cand[sel] = k
            orphan = zero & (cand == 0) & ~reach_alive
            if orphan.any():
                cand[orphan] = self.new(_Lazy(True, lambda: self.classify(t, i, p, orphan, g)))
        if bad.any():
            g_bad = ~np.isfinite(g)
            origin = bad
            if labels is not None and g_bad.any():
                c_fin = self.pull(t, i, p, np.where(g_bad, 0.0, g))
                origin = bad & ~np.isfinite(c_fin)
                inherited = bad & ~origin
                ks = np.unique(labels[g_bad & (labels > 0)])
                for k in ks:
                    sel = inherited & self.reach(t, i, p, g_bad & (labels == k)) & (cand == 0)
                    cand[sel] = k
                if len(ks):
                    cand[inherited & (cand == 0)] = ks[0]
            for kind, mask in (("nan", origin & np.isnan(c)), ("inf", origin & np.isinf(c))):
                if mask.any():
                    cand[mask] = self.new(_Lazy(False, functools.partial(
                        self._nonfinite, kind, t, i, p, g, c, mask)))
        return cand

    def pull(self, t: Tensor, i: int, p: Tensor, g: np.ndarray) -> np.ndarray:
        """Argument ``i``'s cotangent for the cotangent ``g`` of ``t``, by ``t``'s own rule."""
        prim, args, params, ans = t._node[:4]
        g = np.asarray(g, dtype=np.result_type(raw(ans), np.float32))
        c = np.asarray(raw(prim.vjps[i](g, ans, *args, **params)))
        shape = np.shape(raw(p._value))
        if c.shape != shape:
            c = np.asarray(sum_to(c, shape=shape))
        return c

    def reach(self, t: Tensor, i: int, p: Tensor, mask: np.ndarray) -> np.ndarray:
        """Elements of ``p`` that the elements ``mask`` of ``t`` send a gradient to (random
        positive weights, so that exact cancellation is not mistaken for no path)."""
        weights = mask * self.rng.uniform(1.0, 2.0, size=np.shape(mask))
        return self.pull(t, i, p, weights) != 0

    # --- what happened at an edge -----------------------------------------------------------
    def _op(self, t: Tensor) -> str:
        node = t._node
        name = node.prim.name if node is not None else "input"
        return name + _place(self.rec.where.get(t._seq))

    def _unused(self) -> _Event:
        return _Event("unused", "no operation", "the output does not depend on it: no "
                      "operation on the way to the output uses it")

    def classify(self, t: Tensor, i: int, p: Tensor, mask: np.ndarray,
                 g: np.ndarray) -> _Event:
        prim, args, params, ans = t._node[:4]
        name, op = prim.name, self._op(t)
        x = np.asarray(raw(p._value))
        xs = _values(x[mask])
        same = np.shape(raw(ans)) == x.shape
        parents = {j for j, _ in t._node.parents}
        if name == "relu":
            return _Event("relu", op, f"inactive: its input is {xs}, not above 0")
        if name in ("maximum", "minimum") and len(args) == 2:
            other = np.asarray(raw(args[1 - i]))
            if 1 - i not in parents and other.size == 1:  # a constant bound
                if name == "maximum" and not np.any(other):
                    return _Event("relu", op, f"inactive: its input is {xs}, not above 0")
                return _Event("clip", op, f"saturated: its input is {xs}, past the bound "
                                          f"{_values(other)}")
            return _Event("select", op, f"not the one chosen: {xs} lost to the other "
                                        "argument of " + name)
        if name == "where":
            branch = "x (taken where the condition is True)" if i == 1 else \
                "y (taken where the condition is False)"
            return _Event("where", op, f"the branch not taken: this is argument {branch}, "
                                       f"and the condition chose the other one here")
        if name == "clip":
            what = ("outside the bounds" if i == 0 else "a bound that was not hit")
            return _Event("clip", op, f"saturated: {xs}, {what}")
        if name in ("max", "min"):
            return _Event("select", op, f"not the {name} chosen: {xs}, while the {name} "
                                        f"is {_values(raw(ans))}")
        if name == "getitem":
            return _Event("unused", op, f"not selected by the indexing "
                                        f"[{_index_repr(params.get('index'))}]")
        if name == "matmul" and len(args) == 2:
            return self._matmul(t, op, args, i)
        if prim.elementwise and prim.jvp is not None and _zero_jvp(prim, args, params, ans):
            return _Event("flat", op, f"{name} is piecewise constant: its derivative is 0 "
                                      f"(input {xs})")
        if name == "mul" and len(args) == 2:
            other = np.broadcast_to(np.asarray(raw(args[1 - i])), np.shape(raw(ans)))
            if same and np.all(other[mask] == 0):
                return _Event("flat", op, "multiplied by 0: the other factor is 0 here")
        if prim.elementwise and same:
            local = np.asarray(raw(prim.vjps[i](np.ones_like(raw(ans)), ans, *args, **params)))
            local = np.broadcast_to(local, x.shape)
            if np.all(local[mask] != 0):
                return _Event("underflow", op, f"its derivative {_values(local[mask])} at "
                              f"input {xs} times the gradient arriving here "
                              f"{_values(np.broadcast_to(g, local.shape)[mask])} rounds to 0")
            if _saturated(prim, args, params, i, mask):
                return _Event("underflow", op, f"saturated: at input {xs} its value does "
                              f"not change in {x.dtype}, so its derivative rounds to 0 "
                              f"(below {TINY:g}) here")
            return _Event("flat", op, f"its derivative is {_values(local[mask])} at input "
                                      f"{xs}: a stationary point")
        return _Event("flat", op, f"the derivative of {name} with respect to its argument "
                                  f"{i} is 0 here (the entries it is multiplied by are 0)")

    def _matmul(self, t: Tensor, op: str, args: tuple, i: int) -> _Event:
        """``x @ y``: x[..., k] meets y[..., k, :]; name the k whose partners are all 0."""
        other = np.asarray(raw(args[1 - i]))
        if i == 1:  # y's row k meets column k of x
            lines = other.reshape(-1, other.shape[-1]).T
        else:  # x's column k meets row k of y
            rows = np.moveaxis(other, -2, 0) if other.ndim >= 2 else other
            lines = rows.reshape(rows.shape[0], -1)
        dead = np.flatnonzero(~lines.any(axis=1))
        source = next((p for j, p in t._node.parents if j == 1 - i), None)
        if source is None:
            made = " (a constant: data, not a differentiated argument)"
        elif source._node is not None:
            made = f" (the result of {self._op(source)})"
        else:
            made = ""
        fix = ("a weight that only ever multiplies zeros gets no gradient: if the zeros are "
               "data (a feature that is always 0, blank pixels) that is correct; if they come "
               "from the layer before (a dead ReLU), fix that layer.")
        if dead.size:
            which = "column" if i == 1 else "row"
            ks = ", ".join(str(k) for k in dead[:8]) + (", ..." if dead.size > 8 else "")
            return _Event("flat", op, f"multiplied by 0: {which} {ks} of the other operand "
                          f"of @{made} is 0 throughout", fix)
        return _Event("flat", op, f"the derivative of @ with respect to its argument {i} is 0 "
                                  f"here: the entries of the other operand{made} it meets "
                                  "are 0", fix)

    def _underflow(self, t: Tensor, i: int, p: Tensor, g: np.ndarray,
                   mask: np.ndarray) -> _Event:
        """The incoming gradient times the local derivative rounded to 0 at this edge."""
        incoming = np.abs(g[np.isfinite(g) & (g != 0)])
        small = float(incoming.min()) if incoming.size else 0.0
        below = self._below(t)
        where = (f"it fell below {TINY:g} at {below}" if below else
                 f"it fell below {TINY:g} here")
        return _Event("underflow", self._op(t),
                      f"the gradient arriving here is as small as {small:.3g}; times this "
                      f"operation's derivative it rounds to 0 ({where})")

    def _below(self, t: Tensor) -> str | None:
        """The operation whose backward step took the gradient below TINY on the way
        from the output to ``t`` (None: it was still above TINY when it reached ``t``)."""
        if _largest(self.grad(t)) >= TINY:
            return None
        cur, seen = t, set()
        while cur is not self.out and id(cur) not in seen:
            seen.add(id(cur))
            kids = self.children.get(id(cur))
            if not kids:
                return None
            cur = max(kids, key=lambda k: _largest(k[2]))[0]
            if _largest(self.grad(cur)) >= TINY:
                return (f"the backward step through {self._op(cur)}, "
                        f"{self._steps(cur)} operations from the output")
        return None

    def _steps(self, t: Tensor) -> int:
        """How many operations lie between ``t`` and the output (along the largest
        cotangents)."""
        n, seen = 0, set()
        while t is not self.out and id(t) not in seen and self.children.get(id(t)):
            seen.add(id(t))
            t = max(self.children[id(t)], key=lambda k: _largest(k[2]))[0]
            n += 1
        return n

    def _nonfinite(self, kind: str, t: Tensor, i: int, p: Tensor, g: np.ndarray,
                   c: np.ndarray, mask: np.ndarray) -> _Event:
        prim, args, params, ans = t._node[:4]
        x = np.asarray(raw(p._value))
        out = np.asarray(raw(ans))
        facts = f"at input {_values(x[mask])}"
        if out.shape == x.shape:
            facts += f" (value {_values(out[mask])})"
        gm = np.broadcast_to(g, out.shape)
        incoming_zero = out.shape == x.shape and np.all(gm[mask] == 0)
        if incoming_zero:
            detail = (f"the derivative of {prim.name} {facts} is not finite, and the "
                      f"gradient arriving here is 0 (a branch not taken): 0 times it is "
                      f"{'NaN' if kind == 'nan' else 'inf'}")
            return _Event(kind, self._op(t), detail, _WHERE_TRAP)
        detail = f"the derivative of {prim.name} {facts} is {kind}"
        return _Event(kind, self._op(t), detail)

    # --- unused elements that went into a cut -------------------------------------------------
    def refine_unused(self, box: Tensor, labels: np.ndarray) -> np.ndarray:
        unused = np.zeros(labels.shape, dtype=bool)
        for k in np.unique(labels[labels > 0]):
            if self.events[k].get().kind == "unused":
                unused |= labels == k
        if not unused.any() or not self.rec.cuts:
            return labels
        done: set[int] = set()
        for name, a, loc in self.rec.cuts[:64]:
            if id(a) in done:
                continue
            done.add(id(a))
            hit = self._reaches(a, box) & unused
            if not hit.any():
                continue
            labels = labels.copy()
            labels[hit] = self.new(_cut_event(name, loc))
            unused &= ~hit
            if not unused.any():
                break
        return labels

    def _reaches(self, a: Tensor, box: Tensor) -> np.ndarray:
        shape = np.shape(raw(box._value))
        if a is box:
            return np.ones(shape, dtype=bool)
        if a._node is None:
            return np.zeros(shape, dtype=bool)
        value = np.asarray(raw(a._value))
        seed = self.rng.uniform(1.0, 2.0, size=value.shape).astype(
            np.result_type(value, np.float32))
        for leaf, g in backprop([(a, seed)]):
            if leaf is box and np.any(np.asarray(raw(g)) != 0):
                return np.asarray(raw(g)) != 0
        # No cotangent gets through (a flat operation such as round lies between): say
        # so for the whole argument if it is an ancestor of the cut value at all.
        if any(u is box for u in toposort([a])):
            return np.ones(shape, dtype=bool)
        return np.zeros(shape, dtype=bool)


def _largest(a: Any) -> float:
    return float(np.nanmax(np.abs(np.asarray(raw(a))), initial=0.0))


def _cut_event(name: str, loc: tuple[str, int] | None) -> _Event:
    op = (".detach()" if name == "detach" else name) + _place(loc)
    if name in ("stop_gradient", "detach"):
        return _Event("detached", op, f"it reaches the output only through {op.split(' at')[0]}"
                      ", which passes no gradient")
    if name == "cast":
        return _Event("detached", op, "it reaches the output only through a cast to an "
                                      "integer or boolean dtype, which carries no derivative")
    return _Event("flat", op, f"it reaches the output only through {name}, a comparison "
                              "or mask with derivative 0")


def _zero_jvp(prim: Any, args: tuple, params: dict, ans: Any) -> bool:
    """True for rows declared ``zero_derivative`` (their JVP gives no tangent)."""
    try:
        tangents = tuple(np.ones_like(raw(a), dtype=float) if np.ndim(raw(a)) >= 0 else None
                         for a in args)
        return prim.jvp(tangents, ans, *args, **params) is None
    except Exception:  # noqa: BLE001 - a probe only
        return False


def _saturated(prim: Any, args: tuple, params: dict, i: int, mask: np.ndarray) -> bool:
    """Does the output stay the same when argument ``i`` moves by 0.1% at ``mask``?"""
    x = np.asarray(raw(args[i]))
    if x.shape != mask.shape or not np.issubdtype(x.dtype, np.floating):
        return False
    base = np.asarray(prim.impl(*[raw(a) for a in args], **params))
    step = 1e-3 * np.maximum(np.abs(x), 1.0)
    for sign in (1.0, -1.0):
        moved = [raw(a) for a in args]
        moved[i] = (x + sign * step).astype(x.dtype)
        new = np.asarray(prim.impl(*moved, **params))
        if np.shape(new) != base.shape or not np.all(new[mask] == base[mask]):
            return False
    return True


def _values(values: Any) -> str:
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        return "(none)"
    if v.size == 1:
        return f"{v[0]:.4g}"
    if v.size <= 4:
        return "[" + ", ".join(f"{a:.4g}" for a in v) + "]"
    finite = v[np.isfinite(v)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (np.nan, np.nan)
    return f"{lo:.4g} to {hi:.4g} ({v.size} elements)"


def _index_repr(index: Any) -> str:
    parts = index if isinstance(index, tuple) else (index,)

    def one(i: Any) -> str:
        if isinstance(i, slice):
            text = ":".join("" if v is None else str(v) for v in (i.start, i.stop, i.step))
            return text.rstrip(":") or ":"
        if hasattr(i, "shape") and np.ndim(i):
            return f"<index array {tuple(np.shape(i))}>"
        return repr(i)

    return ", ".join(one(i) for i in parts)


# --- compact indices -----------------------------------------------------------------------


def _runs(mask: np.ndarray) -> list[tuple]:
    """NumPy indices covering ``mask``: consecutive rows with the same pattern share a
    slice, and so do runs along the last axis. Full-length runs print as ``:``."""
    if mask.ndim == 0:
        return [()] if mask else []
    n = mask.shape[0]
    if mask.all():
        return [(slice(None),) * mask.ndim]
    if mask.ndim == 1:
        idx = np.flatnonzero(mask)
        if not idx.size:
            return []
        breaks = np.flatnonzero(np.diff(idx) != 1)
        starts = np.concatenate([idx[:1], idx[breaks + 1]])
        ends = np.concatenate([idx[breaks], idx[-1:]])
        return [(_span(int(a), int(b), n),) for a, b in zip(starts, ends, strict=True)]
    flat = mask.reshape(n, -1)
    used = flat.any(axis=1)
    same = np.concatenate([[False], np.all(flat[1:] == flat[:-1], axis=1) & used[1:]])
    out: list[tuple] = []
    start = None
    for i in range(n + 1):
        if start is not None and (i == n or not same[i]):
            head = _span(start, i - 1, n)
            out += [(head, *tail) for tail in _runs(mask[start])]
            start = None
        if i < n and used[i] and start is None:
            start = i
    return out


def _span(a: int, b: int, n: int) -> Any:
    if a == b:
        return a
    return slice(None) if (a, b) == (0, n - 1) else slice(a, b + 1)


def _first(index: tuple) -> tuple:
    return tuple(i if isinstance(i, int) else (i.start or 0) for i in index)

