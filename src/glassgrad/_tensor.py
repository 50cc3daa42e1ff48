"""Reverse mode: ``Tensor``, the recorded graph, and the backward pass.

A ``Tensor`` of level 0 is an eager, PyTorch-style tensor. Transforms (``grad``, ``vjp``,
...) wrap their inputs in tensors of a fresh, higher level; the primitives route each
operation to the highest level involved (see ``_primitive``).

Every recorded result keeps a ``Node``: the primitive, the argument values one level
down, its parameters, its output value and the parent tensors it must send cotangents
to. Nodes point only to their parents, never back to their children, so a graph holds
no reference cycles and is freed as soon as the last tensor of it is unreachable.
"""

from __future__ import annotations

import dis
import heapq
import inspect
import itertools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import numpy as np

from . import _backend as backend
from . import _rules as _R
from ._array_methods import ArrayMethods
from ._backend import concrete as raw
from ._mode import MODE
from ._primitive import Primitive, Traced
from ._record import Node
from ._rules import add, sum_to

# Creation order: a tensor is always created after its parents, so visiting tensors by
# decreasing sequence number is a topological order (children before parents).
_sequence = itertools.count()


class WatchedArray(np.ndarray):
    """The array behind an eager tensor, as ``tensor.data`` hands it out.

    It is the tensor's own memory (no copy), and every in-place write through it
    (``t.data[...] = v``, ``t.data -= g``, ``np.copyto(t.data, v)``, ``t.data.fill(0)``)
    counts in the tensor's version, as PyTorch's version counter does. A backward pass
    that would read a value changed since it was saved then raises instead of computing
    a gradient at the new values. Arithmetic on it gives plain arrays.
    """

    _cell: list | None = None

    def __array_finalize__(self, obj: Any) -> None:
        self._cell = getattr(obj, "_cell", None)

    def _bump(self) -> None:
        if self._cell is not None:
            self._cell[0] += 1

    def __setitem__(self, key: Any, value: Any) -> None:
        self._bump()
        np.ndarray.__setitem__(self, key, value)

    def fill(self, value: Any) -> None:
        self._bump()
        np.ndarray.fill(self.view(np.ndarray), value)

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self._bump()
        np.ndarray.sort(self.view(np.ndarray), *args, **kwargs)

    def partition(self, *args: Any, **kwargs: Any) -> None:
        self._bump()
        np.ndarray.partition(self.view(np.ndarray), *args, **kwargs)

    def put(self, *args: Any, **kwargs: Any) -> None:
        self._bump()
        np.ndarray.put(self.view(np.ndarray), *args, **kwargs)

    def copy(self, order: str = "C") -> np.ndarray:
        return np.array(self.view(np.ndarray), order=order, copy=True)

    def astype(self, *args: Any, **kwargs: Any) -> np.ndarray:
        return self.view(np.ndarray).astype(*args, **kwargs)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if method == "at" and isinstance(inputs[0], WatchedArray):  # np.add.at(a, i, v)
            inputs[0]._bump()
        inputs = tuple(_plain(x) for x in inputs)
        if out is not None:
            for o in out:
                if isinstance(o, WatchedArray):
                    o._bump()
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*inputs, **kwargs)
        if out is not None:  # `a += b` rebinds `a` to what this returns: keep it watched
            return out[0] if len(out) == 1 else out
        return result

    def __array_function__(self, func, types, args, kwargs):
        if func in _WRITES_FIRST_ARGUMENT and args and isinstance(args[0], WatchedArray):
            args[0]._bump()
        return func(*_plain_tree(args), **_plain_tree(kwargs))

    def __repr__(self) -> str:
        return repr(self.view(np.ndarray))

    def __str__(self) -> str:
        return str(self.view(np.ndarray))

    def __reduce__(self):
        return self.view(np.ndarray).__reduce__()


_WRITES_FIRST_ARGUMENT = {np.copyto, np.put, np.place, np.putmask, np.fill_diagonal,
                          np.put_along_axis}


def _plain(x: Any) -> Any:
    return x.view(np.ndarray) if isinstance(x, WatchedArray) else x


def _plain_tree(x: Any) -> Any:
    if isinstance(x, tuple | list):
        return type(x)(_plain_tree(i) for i in x)
    if isinstance(x, dict):
        return {k: _plain_tree(v) for k, v in x.items()}
    return _plain(x)


_new_node = tuple.__new__
_new_object = object.__new__


class Tensor(ArrayMethods):
    """An array that records the operations applied to it, for reverse mode.

    >>> import glassgrad as gg
    >>> x = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    array([2., 4., 6.])
    """

    __slots__ = ("_value", "grad", "requires_grad", "_node", "_seq", "_cell", "_hollow",
                 "__weakref__")

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None):
        if isinstance(data, Traced) and not (isinstance(data, Tensor) and data._level == 0):
            raise TypeError("Tensor(...) of a traced value would cut the graph; use "
                            "gg.tensor(x), which keeps the trace")
        data = backend.as_array(data._value if isinstance(data, Tensor) else data, dtype)
        if requires_grad and backend.dtype_of(data).kind not in "fc":
            raise TypeError(f"only floating-point tensors can require gradients, got "
                            f"dtype {data.dtype}; pass dtype=float or float data")
        self._value = data
        self.grad: Any = None
        self.requires_grad = bool(requires_grad)
        self._node: Node | None = None
        self._level = 0
        self._seq = next(_sequence)
        self._cell = [0]
        self._hollow = None

    # --- construction on the hot path ------------------------------------------------------
    @staticmethod
    def _wrap(data: Any, level: int, node: Node | None, cell: list | None = None) -> Tensor:
        t = object.__new__(Tensor)
        t._value = data
        t.grad = None
        t.requires_grad = node is not None
        t._node = node
        t._level = level
        t._seq = next(_sequence)
        t._cell = [0] if cell is None else cell
        t._hollow = None
        return t

    def _raw(self) -> Any:
        return self._value

    @property
    def data(self) -> Any:
        """The backing array (the tensor's own memory). In-place writes through it are
        counted, so a backward pass that needed the old values raises."""
        value = self._value
        if self._level or type(value) is not np.ndarray:
            return value
        view = value.view(WatchedArray)
        view._cell = self._cell
        return view

    @data.setter
    def data(self, value: Any) -> None:
        value = value._value if isinstance(value, Tensor) else value
        self._value = backend.as_array(value)

    def _written(self) -> Any:
        """The tensor's own array, for the caller to change in place (optimizers,
        ``load_state_dict``): the change is counted first, as a write through ``.data``
        would be, without the cost of a watched view on a hot path."""
        self._cell[0] += 1
        return self._value

    @property
    def shape(self) -> tuple[int, ...]:
        return getattr(self._value, "shape", ())

    @property
    def dtype(self) -> np.dtype:
        data = self._value
        return data.dtype if hasattr(data, "dtype") else np.result_type(data)

    def _process(self, prim: Primitive, args: tuple, params: dict) -> Any:
        level = self._level
        mode = MODE.get()
        if not level and mode.jit is not None:  # eager tensors inside gg.jit
            return mode.jit.record_primitive(prim, args, params)
        # Parents are held through their hollow stand-in where they have one (large eager
        # arrays): the tape then keeps alive only the values the rules read.
        if len(args) == 1:  # self is the argument: the common unary case, unrolled
            vals: Any = (self._value,)
            parents: Any = (((0, self if self._hollow is None else self._hollow),)
                            if self.requires_grad else ())
        elif len(args) == 2:  # binary, unrolled
            x, y = args
            own_x = type(x) is Tensor and x._level == level
            own_y = type(y) is Tensor and y._level == level
            vals = (x._value if own_x else x, y._value if own_y else y)
            parents = []
            if own_x and x.requires_grad:
                parents.append((0, x if x._hollow is None else x._hollow))
            if own_y and y.requires_grad:
                parents.append((1, y if y._hollow is None else y._hollow))
        else:
            vals = list(args)
            parents = []
            for i, a in enumerate(args):
                if type(a) is Tensor and a._level == level:
                    vals[i] = a._value
                    if a.requires_grad:
                        parents.append((i, a if a._hollow is None else a._hollow))
        if prim.nondifferentiable:  # no derivative: the value one level down is the result
            return prim.impl(*vals, **params) if level == 0 else prim(*vals, **params)
        # At level 0 every value is concrete, so the implementation runs directly.
        if level:
            ans = prim(*vals, **params)
        else:
            ans = prim.impl(*vals, **params) if params else prim.impl(*vals)
        if mode.anomaly:
            _check_finite(ans, prim.name, "forward")
        t = _new_object(Tensor)
        t._value = ans
        t.grad = None
        t._level = level
        t._seq = next(_sequence)
        t._hollow = None
        cell = t._cell = [0]
        if parents and (level or mode.grad_enabled):
            t.requires_grad = True
            if level:
                t._node = _new_node(Node, (prim, vals, params, ans, parents, ()))
            else:
                t._node = _eager_node(prim, args, vals, params, ans, parents, cell)
                if getattr(ans, "nbytes", 0) >= _HOLLOW_BYTES:
                    t._hollow = _hollow_of(t)
        else:
            t.requires_grad = False
            t._node = None
        return t

    # --- the PyTorch-style surface ---------------------------------------------------------
    @property
    def is_leaf(self) -> bool:
        return self._node is None

    def backward(self, gradient: Any = None) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires grad.

        A non-scalar tensor needs ``gradient`` (the cotangent, shaped like it).
        """
        if self._level != 0:
            raise TypeError("backward() belongs to eager tensors; inside a transform, "
                            "return the value and let grad/vjp differentiate it")
        if not self.requires_grad:
            raise RuntimeError("this tensor does not require grad and has no graph: "
                               "create its inputs with requires_grad=True")
        value = self._value
        if gradient is None and self.dtype.kind == "c":
            raise RuntimeError("backward() of a complex tensor needs `gradient` (as in "
                               "PyTorch, a gradient is implicitly created only for real "
                               "scalar outputs); reduce to a real number first, e.g. "
                               "abs(z) ** 2")
        if gradient is None:
            if backend.size_of(value) != 1:
                raise ValueError(f"backward() of a non-scalar tensor of shape {self.shape} "
                                 "needs `gradient` (shaped like the tensor); or reduce it "
                                 "first, e.g. y.sum().backward()")
            gradient = backend.ones(self.shape, self.dtype, like=value)
        else:
            gradient = gradient._value if isinstance(gradient, Tensor) else gradient
            if backend.shape_of(gradient) != self.shape:
                raise ValueError(f"gradient has shape {backend.shape_of(gradient)}, but the "
                                 f"tensor has shape {self.shape}")
            gradient = backend.as_array(gradient).astype(self.dtype, copy=False)
        # Complex values follow PyTorch here: .grad is df/dx + i df/dy, the conjugate of
        # the engine's cotangents (JAX's convention, docs/conventions.md). So the seed and
        # the gradients of complex leaves are conjugated; a real leaf keeps the real part.
        if self.dtype.kind == "c":
            gradient = np.conjugate(gradient)
        seen: set[int] = set()
        for leaf, g in backprop([(self, gradient)]):
            if backend.dtype_of(g).kind == "c":
                g = np.conjugate(g) if leaf.dtype.kind == "c" else np.real(g)
            g = _owned(g, seen)
            leaf.grad = g if leaf.grad is None else leaf.grad + g

    def zero_grad(self) -> None:
        self.grad = None

    def detach(self) -> Tensor:
        """The same memory, without a graph; in-place changes count for both (as PyTorch)."""
        return Tensor._wrap(self._value, self._level, None, self._cell)

    def numpy(self) -> np.ndarray:
        if self._level != 0:
            raise self._concretize_error(".numpy()")
        if self.requires_grad:
            raise TypeError("can't call .numpy() on a tensor that requires grad: the array "
                            "would leave the graph; use tensor.detach().numpy()")
        return self.data

    def item(self) -> float:
        if self._level != 0:
            raise self._concretize_error(".item()")
        if backend.size_of(self._value) != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self._value.item()

    def __float__(self) -> float:
        if self._level != 0:
            raise self._concretize_error("float()")
        return float(self.item())

    def __int__(self) -> int:
        if self._level != 0:
            raise self._concretize_error("int()")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        if self._level != 0:
            raise self._concretize_error("np.asarray()")
        if self.requires_grad:
            raise TypeError("can't convert a tensor that requires grad to a NumPy array: "
                            "it would leave the graph; use tensor.detach() first")
        value = np.asarray(self._value)
        return value if dtype is None else value.astype(dtype)

    # --- in place, as in PyTorch -----------------------------------------------------------
    def _inplace(self, prim: Primitive, other: Any, symbol: str) -> Tensor:
        if self._level != 0:  # traced values are immutable: rebind, as JAX does
            return prim(self, other)
        if self.requires_grad and MODE.get().grad_enabled:
            if self._node is None:
                raise RuntimeError(
                    f"a leaf tensor that requires grad cannot be changed in place "
                    f"(`{symbol}`): the change would not be recorded. Update parameters "
                    "inside `with gg.no_grad():`, or write `x = x " + symbol[0] + " ...` "
                    "for a new tensor")
            # A recorded intermediate: the result is a new tensor that the name rebinds to
            # (`h *= x` assigns what this returns). The old value, which the graph and
            # other names may still use, is left untouched.
            return prim(self, other)
        other = other._value if isinstance(other, Tensor) else other
        self._cell[0] += 1
        if type(self._value) is np.ndarray:  # the same memory, as optimizers expect
            prim.impl(self._value, other, out=self._value)
        else:  # NumPy scalars and immutable foreign arrays: a new value
            self._value = prim.impl(self._value, other)
        return self

    def __iadd__(self, other): return self._inplace(_R.add, other, "+=")
    def __isub__(self, other): return self._inplace(_R.sub, other, "-=")
    def __imul__(self, other): return self._inplace(_R.mul, other, "*=")
    def __itruediv__(self, other): return self._inplace(_R.div, other, "/=")
    def __ipow__(self, other): return self._inplace(_R.power, other, "**=")

    def __setitem__(self, index: Any, value: Any) -> None:
        if self._level != 0:
            raise TypeError("traced values are immutable: build the new array with "
                            "np.where, or x.at-style scatter (gg does not mutate traces)")
        if self.requires_grad and MODE.get().grad_enabled:
            raise RuntimeError("item assignment to a tensor that requires grad is not "
                               "recorded; do it inside `with gg.no_grad():` or build a new "
                               "tensor with np.where / np.concatenate")
        self.data[index] = value._value if isinstance(value, Tensor) else value

    def _concretize_error(self, what: str) -> TypeError:
        return TypeError(
            f"{what} of a traced value inside a transform would cut the graph: the result "
            "would carry no derivative. Build arrays from traced values with np.stack or "
            "np.concatenate (not np.array([...])), keep computing with NumPy functions, and "
            "take the number you need from jvp/grad outside the function.")

    def __repr__(self) -> str:
        if self._level != 0:
            return f"Traced(level={self._level}, shape={self.shape}, dtype={self.dtype})"
        body = np.array2string(backend.to_numpy(self._value), separator=", ",
                               prefix="tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({body}{extra})"


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Any:
    """Make an eager tensor from a number, nested lists or an array (float64 by default).

    Inside a transform, ``gg.tensor`` of a traced value keeps the trace (it returns the
    value itself, cast to ``dtype`` if one is given), so code written for eager tensors
    can be differentiated.

    >>> import glassgrad as gg
    >>> gg.tensor([1, 2]).dtype, gg.tensor([1.0, 2.0]).dtype
    (dtype('int64'), dtype('float64'))
    """
    if isinstance(data, Traced) and not (isinstance(data, Tensor) and data._level == 0):
        if requires_grad:
            raise TypeError("requires_grad=True on a traced value: inside a transform the "
                            "transform decides what is differentiated")
        return data if dtype is None else data.astype(dtype)
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def _owned(g: Any, seen: set[int]) -> Any:
    """A gradient array that no other leaf shares and that may be written to."""
    if type(g) is not np.ndarray:
        return g if not backend.is_array(g) else np.array(g)
    if id(g) in seen or not g.flags.writeable or g.base is not None:
        g = g.copy()
    seen.add(id(g))
    return g


# --- what the eager tape keeps ------------------------------------------------------------

# An eager result at least this large is held by the tape through a hollow stand-in (its
# node, creation number and version cell, its shape and dtype, but not its values), so
# that the array is freed as soon as the user's code and the rules no longer need it.
_HOLLOW_BYTES = 1 << 16


class _Shape:
    """What the backward pass reads of a parent's value: its shape (to un-broadcast)."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: tuple[int, ...], dtype: Any):
        self.shape = shape
        self.dtype = dtype


def _hollow_of(t: Tensor) -> Tensor:
    h = _new_object(Tensor)
    h._value = _Shape(t._value.shape, t._value.dtype)
    h.grad = None
    h.requires_grad = True
    h._node = t._node
    h._level = 0
    h._seq = t._seq
    h._cell = t._cell
    h._hollow = None
    return h


def _eager_node(prim: Primitive, args: tuple, vals: Any, params: dict, ans: Any,
                parents: Any, cell: list) -> Node:
    """The tape's record of one eager operation, keeping only the arguments and output its
    VJP rules read (``residuals``), and the versions of the eager arrays kept."""
    entry = _RESIDUALS.get(prim)
    if entry is None or entry[0] is not prim.vjps:
        entry = _residual_plan(prim)
    _, reads_ans, keep, keep_x, keep_y = entry
    n = len(args)
    if n == 1:  # unrolled: the hot path
        if keep_x:
            x = args[0]
            saved: Any = (((x._cell, x._cell[0]), (cell, 0)) if reads_ans
                          else ((x._cell, x._cell[0]),))
        else:
            vals = _NOTHING
            saved = ((cell, 0),) if reads_ans else ()
    elif n == 2:
        x, y = args
        saved = ()
        if keep_x and type(x) is Tensor and not x._level:
            saved = ((x._cell, x._cell[0]),)
        if keep_y and type(y) is Tensor and not y._level:
            saved += ((y._cell, y._cell[0]),)
        if not (keep_x and keep_y):
            vals = (vals[0] if keep_x else None, vals[1] if keep_y else None)
        if reads_ans:
            saved += ((cell, 0),)
    else:
        saved = ()
        if keep is not None:
            vals = tuple([v if i in keep else None for i, v in enumerate(vals)])
        for i, a in enumerate(args):
            if type(a) is Tensor and not a._level and (keep is None or i in keep):
                saved += ((a._cell, a._cell[0]),)
        if reads_ans:
            saved += ((cell, 0),)
    return _new_node(Node, (prim, vals, params, ans if reads_ans else None, parents, saved))


_NOTHING = (None,)


def _residual_plan(prim: Primitive) -> tuple:
    reads_ans, keep = residuals(prim)
    entry = _RESIDUALS[prim] = (prim.vjps, reads_ans, keep,
                                keep is None or 0 in keep, keep is None or 1 in keep)
    return entry


_RESIDUALS: dict[Primitive, tuple] = {}
_READS = frozenset({"LOAD_FAST", "LOAD_DEREF", "LOAD_CLOSURE", "LOAD_FAST_CHECK",
                    "LOAD_FAST_AND_CLEAR", "LOAD_FAST_LOAD_FAST", "DELETE_FAST"})
_DYNAMIC = frozenset({"locals", "vars", "eval", "exec"})
_ELEMENTWISE_VJP = _R._elementwise_vjp(None).__code__  # g * d(ans, *args, **params)


def residuals(prim: Primitive) -> tuple[bool, frozenset[int] | None]:
    """What a primitive's VJP rules read, from the rules themselves: whether they read
    ``ans``, and which arguments (None: all of them, when it cannot be told).

    A rule is ``rule(g, ans, *args, **params)``; a parameter its code never loads is not
    read. Rules derived from ``derivatives=`` read what each ``d(ans, *args)`` reads. An
    explicit ``saves`` attribute on the row, ``(reads_ans, argument positions)``, wins.
    """
    explicit = getattr(prim, "saves", None)
    if explicit is not None:
        return explicit[0], frozenset(explicit[1])
    vjps = prim.vjps
    if not isinstance(vjps, tuple | list):  # EveryArgument: rules made on demand
        return True, None
    read: set[int] = set()
    for rule in vjps:
        if rule is None:
            continue
        positions = _reads(rule)
        if positions is None:
            return True, None
        read |= positions
    return 1 in read, frozenset(p - 2 for p in read if p >= 2)


def _reads(fn: Any) -> set[int] | None:
    """Positions of ``fn(g, ans, *args)``'s call that its code reads; None if unknown."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    if code is _ELEMENTWISE_VJP:  # reads g, and what d(ans, *args) reads
        d = fn.__closure__[code.co_freevars.index("d")].cell_contents
        inner = _reads(d)
        return None if inner is None else {0} | {p + 1 for p in inner}
    if _DYNAMIC & set(code.co_names):
        return None
    loaded = set(code.co_cellvars)
    for ins in dis.get_instructions(code):
        if ins.opname in _READS:
            loaded.update(ins.argval if isinstance(ins.argval, tuple) else (ins.argval,))
    names = code.co_varnames[:code.co_argcount]
    if code.co_flags & inspect.CO_VARARGS:
        if code.co_varnames[code.co_argcount + code.co_kwonlyargcount] in loaded:
            return None  # reads *args: every argument from there on
    return {i for i, name in enumerate(names) if name in loaded}


# --- the backward pass --------------------------------------------------------------------


def toposort(roots: list[Tensor]) -> list[Tensor]:
    """Tensors reachable from ``roots``, every parent before its children."""
    seen = {id(r): r for r in roots}
    stack = list(seen.values())
    while stack:
        node = stack.pop()._node
        if node is not None:
            for _, p in node.parents:
                if id(p) not in seen:
                    seen[id(p)] = p
                    stack.append(p)
    return sorted(seen.values(), key=_by_sequence)


def _by_sequence(t: Tensor) -> int:
    return t._seq


def backprop(roots: list[tuple[Tensor, Any]], pull: Callable | None = None,
             on_edge: Callable | None = None) -> list[tuple[Tensor, Any]]:
    """Send cotangents from ``roots`` back to the leaves; returns ``(leaf, gradient)``.

    Tensors are visited newest first (a max-heap on creation order), so each node's rule
    runs once, after every child has contributed; cotangents of a tensor used several
    times are summed. No recursion: chains of any length work.

    This is the one backward loop of the package. ``pull(t, i, g)`` replaces the VJP
    rule of argument ``i`` (``formula`` pulls SymPy expressions through the same loop);
    ``on_edge(t, i, parent, contrib)`` sees every cotangent sent (``trace`` and ``why``
    keep them).
    """
    grads: dict[int, Any] = {}
    heap: list[tuple[int, Tensor]] = []
    for t, g in roots:
        if t._hollow is not None:  # the tape knows a large eager result by its stand-in
            t = t._hollow
        if id(t) in grads:
            grads[id(t)] = add(grads[id(t)], g)
        else:
            grads[id(t)] = g
            heap.append((-t._seq, t))
    heapq.heapify(heap)
    anomaly = MODE.get().anomaly
    leaves = []
    pop, push, pop_grad = heapq.heappop, heapq.heappush, grads.pop  # locals: a hot loop
    while heap:
        t = pop(heap)[1]
        g = pop_grad(id(t))
        node = t._node
        if node is None:
            leaves.append((t, g))
            continue
        prim, args, params, ans, parents, saved = node
        for cell, version in saved:
            if cell[0] != version:
                raise _changed_in_place(prim)
        vjps = prim.vjps
        unbroadcast = len(args) > 1 and pull is None
        for i, parent in parents:
            if pull is None:
                try:
                    rule = vjps[i]
                except IndexError:
                    rule = None
                if rule is None:
                    raise _no_vjp(prim, i)
                if anomaly:
                    contrib = _anomaly_rule(rule, prim, g, ans, args, params)
                elif params:
                    contrib = rule(g, ans, *args, **params)
                else:  # no keywords: a cheaper call
                    contrib = rule(g, ans, *args)
            else:
                contrib = pull(t, i, g)
            # Only operations of several arguments broadcast; un-broadcast them here,
            # in one place, instead of in every rule.
            if unbroadcast:
                parent_shape = getattr(parent._value, "shape", ())
                if getattr(contrib, "shape", ()) != parent_shape:
                    contrib = sum_to(contrib, shape=parent_shape)
            if on_edge is not None:
                on_edge(t, i, parent, contrib)
            key = id(parent)
            if key in grads:
                grads[key] = add(grads[key], contrib) if pull is None else grads[key] + contrib
            else:
                grads[key] = contrib
                push(heap, (-parent._seq, parent))
    return leaves


def _no_vjp(prim: Primitive, i: int) -> NotImplementedError:
    return NotImplementedError(
        f"primitive '{prim.name}' has no VJP rule for its argument {i}, so reverse mode "
        "cannot differentiate it with respect to that argument; give defprimitive a "
        "`vjp=` (or `derivatives=`) entry for it")


def _changed_in_place(prim: Primitive) -> RuntimeError:
    return RuntimeError(
        f"an array that the backward pass of '{prim.name}' needs was changed in place after "
        "the forward pass recorded it (by an in-place operator, an optimizer step, "
        "load_state_dict or a write to .data): the gradient would be computed at the new "
        "values. Run the forward pass again after the change, or change the array after "
        "backward().")


# The user-level primitive whose backward rule is running, while anomaly mode is on: an
# operation inside that rule that goes non-finite is reported under the user's name.
_RULE_OF: ContextVar[str | None] = ContextVar("glassgrad_rule_of", default=None)


def _checkable(value: Any) -> Any:
    """The concrete array behind ``value``, or None under an interpreter without values
    (jit checks the example it traces with, through its tracer's value)."""
    arr = raw(value)
    arr = getattr(arr, "value", arr)  # a jit tracer carries the value it was traced with
    return arr if backend.is_array(arr) or isinstance(arr, float) else None


def _check_finite(value: Any, op: str, direction: str) -> None:
    arr = _checkable(value)
    if arr is None or np.all(np.isfinite(arr)):
        return
    kind = "NaN" if np.any(np.isnan(arr)) else "Inf"
    rule_of = _RULE_OF.get()
    if rule_of is not None and direction == "forward":
        raise FloatingPointError(f"the backward pass of '{rule_of}' produced {kind} "
                                 f"(in its '{op}', output shape {np.shape(arr)})")
    raise FloatingPointError(f"the {direction} pass of '{op}' produced {kind} "
                             f"(output shape {np.shape(arr)})")


def _anomaly_rule(rule: Callable, prim: Primitive, g: Any, ans: Any, args: Any,
                  params: dict) -> Any:
    """Run a VJP rule under anomaly mode, naming ``prim`` for whatever it computes."""
    token = _RULE_OF.set(_RULE_OF.get() or prim.name)
    try:
        contrib = rule(g, ans, *args, **params)
    finally:
        _RULE_OF.reset(token)
    _check_backward(contrib, g, prim.name)
    return contrib


def _check_backward(contrib: Any, g: Any, op: str) -> None:
    c, g = _checkable(contrib), _checkable(g)
    if c is None or g is None or np.all(np.isfinite(c)):
        return
    kind = "NaN" if np.any(np.isnan(c)) else "Inf"
    hint = ""
    try:
        zero_g = np.broadcast_to(np.asarray(g), np.shape(c)) == 0
        from_zero = np.any(zero_g & ~np.isfinite(c))
    except ValueError:
        from_zero = np.any(np.asarray(g) == 0)
    if from_zero:
        hint = (" The incoming gradient is 0 there, so an infinite local derivative was "
                "multiplied by 0: this is typically the unused branch of a where(). Make "
                "the unused branch safe too, e.g. where(x > 0, sqrt(where(x > 0, x, 1)), 0).")
    raise FloatingPointError(f"the backward pass of '{op}' produced {kind}.{hint}")
