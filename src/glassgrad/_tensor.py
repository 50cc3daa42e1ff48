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

import heapq
import itertools
from operator import itemgetter
from typing import Any

import numpy as np

from . import _backend as backend
from ._array_methods import ArrayMethods
from ._mode import MODE
from ._primitive import Primitive
from ._rules import add, raw, sum_to

# Creation order: a tensor is always created after its parents, so visiting tensors by
# decreasing sequence number is a topological order (children before parents).
_sequence = itertools.count()


class Node(tuple):
    """What a recorded operation remembers: ``(prim, args, params, ans, parents)``.

    ``args`` are the argument values one level down (constants included), ``ans`` the
    output value, ``parents`` the ``(argnum, Tensor)`` pairs that receive cotangents. A
    tuple, because one is built for every recorded operation.
    """

    __slots__ = ()
    prim = property(itemgetter(0))
    args = property(itemgetter(1))
    params = property(itemgetter(2))
    ans = property(itemgetter(3))
    parents = property(itemgetter(4))


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

    __slots__ = ("data", "grad", "requires_grad", "_node", "_seq", "__weakref__")

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None):
        data = _as_array(data, dtype)
        if requires_grad and not np.issubdtype(data.dtype, np.inexact):
            raise TypeError(f"only floating-point tensors can require gradients, got "
                            f"dtype {data.dtype}; pass dtype=float or float data")
        self.data = data
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._node: Node | None = None
        self._level = 0
        self._seq = next(_sequence)

    # --- construction on the hot path ------------------------------------------------------
    @staticmethod
    def _wrap(data: Any, level: int, node: Node | None) -> Tensor:
        t = object.__new__(Tensor)
        t.data = data
        t.grad = None
        t.requires_grad = node is not None
        t._node = node
        t._level = level
        t._seq = next(_sequence)
        return t

    def _raw(self) -> Any:
        return self.data

    @property
    def shape(self) -> tuple[int, ...]:
        return getattr(self.data, "shape", ())

    @property
    def dtype(self) -> np.dtype:
        data = self.data
        return data.dtype if hasattr(data, "dtype") else np.result_type(data)

    def _process(self, prim: Primitive, args: tuple, params: dict) -> Tensor:
        level = self._level
        if len(args) == 1:  # self is the argument: the common unary case, unrolled
            vals: Any = (self.data,)
            parents: Any = ((0, self),) if self.requires_grad else ()
        elif len(args) == 2:  # binary, unrolled
            x, y = args
            own_x = type(x) is Tensor and x._level == level
            own_y = type(y) is Tensor and y._level == level
            vals = (x.data if own_x else x, y.data if own_y else y)
            parents = []
            if own_x and x.requires_grad:
                parents.append((0, x))
            if own_y and y.requires_grad:
                parents.append((1, y))
        else:
            vals = list(args)
            parents = []
            for i, a in enumerate(args):
                if type(a) is Tensor and a._level == level:
                    vals[i] = a.data
                    if a.requires_grad:
                        parents.append((i, a))
        mode = MODE.get()
        if level == 0 and mode.jit is not None:  # eager tensors inside gg.jit
            return mode.jit.record_primitive(prim, args, params)
        # At level 0 every value is concrete, so the implementation runs directly.
        ans = prim.impl(*vals, **params) if level == 0 else prim(*vals, **params)
        if mode.anomaly:
            _check_finite(ans, prim.name, "forward")
        t = _new_object(Tensor)
        t.data = ans
        t.grad = None
        t._level = level
        t._seq = next(_sequence)
        if parents and (level or mode.grad_enabled):
            t.requires_grad = True
            t._node = _new_node(Node, (prim, vals, params, ans, parents))
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
        if gradient is None:
            if self.data.size != 1:
                raise ValueError(f"backward() of a non-scalar tensor of shape {self.shape} "
                                 "needs `gradient` (shaped like the tensor); or reduce it "
                                 "first, e.g. y.sum().backward()")
            gradient = backend.ones(self.data.shape, self.data.dtype, like=self.data)
        else:
            gradient = np.asarray(raw(gradient), dtype=self.data.dtype)
            if gradient.shape != self.shape:
                raise ValueError(f"gradient has shape {gradient.shape}, but the tensor has "
                                 f"shape {self.shape}")
        seen: set[int] = set()
        for leaf, g in backprop([(self, gradient)]):
            g = _owned(np.asarray(g), seen)
            leaf.grad = g if leaf.grad is None else leaf.grad + g

    def zero_grad(self) -> None:
        self.grad = None

    def detach(self) -> Tensor:
        return Tensor._wrap(self.data, self._level, None)

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
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

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
        return self.data if dtype is None else self.data.astype(dtype)

    def _concretize_error(self, what: str) -> TypeError:
        return TypeError(
            f"{what} of a traced value inside a transform would cut the graph: the result "
            "would carry no derivative. Build arrays from traced values with np.stack or "
            "np.concatenate (not np.array([...])), keep computing with NumPy functions, and "
            "take the number you need from jvp/grad outside the function.")

    def __repr__(self) -> str:
        if self._level != 0:
            return f"Traced(level={self._level}, shape={self.shape}, dtype={self.dtype})"
        body = np.array2string(np.asarray(raw(self)), separator=", ", prefix="tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({body}{extra})"


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make an eager tensor from a number, nested lists or an array (float64 by default).

    >>> import glassgrad as gg
    >>> gg.tensor([1, 2]).dtype, gg.tensor([1.0, 2.0]).dtype
    (dtype('int64'), dtype('float64'))
    """
    if isinstance(data, Tensor):
        data = data.data
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def _as_array(data: Any, dtype: Any) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    arr = np.array(data, dtype=dtype)
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(f"cannot make a tensor from {type(data).__name__} data of dtype "
                        f"{arr.dtype}; use numbers, nested lists of numbers or arrays")
    return arr


def _owned(g: np.ndarray, seen: set[int]) -> np.ndarray:
    """A gradient array that no other leaf shares and that may be written to."""
    if id(g) in seen or not g.flags.writeable or g.base is not None:
        g = g.copy()
    seen.add(id(g))
    return g


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


def backprop(roots: list[tuple[Tensor, Any]]) -> list[tuple[Tensor, Any]]:
    """Send cotangents from ``roots`` back to the leaves; returns ``(leaf, gradient)``.

    Tensors are visited newest first (a max-heap on creation order), so each node's rule
    runs once, after every child has contributed; cotangents of a tensor used several
    times are summed. No recursion: chains of any length work.
    """
    grads: dict[int, Any] = {}
    heap: list[tuple[int, Tensor]] = []
    for t, g in roots:
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
        prim, args, params, ans, parents = node
        vjps = prim.vjps
        for i, parent in parents:
            contrib = vjps[i](g, ans, *args, **params)
            if anomaly:
                _check_backward(contrib, g, prim.name)
            # Only operations of several arguments broadcast; un-broadcast them here,
            # in one place, instead of in every rule.
            if len(args) > 1:
                parent_shape = getattr(parent.data, "shape", ())
                if getattr(contrib, "shape", ()) != parent_shape:
                    contrib = sum_to(contrib, shape=parent_shape)
            key = id(parent)
            if key in grads:
                grads[key] = add(grads[key], contrib)
            else:
                grads[key] = contrib
                push(heap, (-parent._seq, parent))
    return leaves


def _check_finite(value: Any, op: str, direction: str) -> None:
    arr = raw(value)
    if isinstance(arr, np.ndarray | np.generic | float) and not np.all(np.isfinite(arr)):
        kind = "NaN" if np.any(np.isnan(arr)) else "Inf"
        raise FloatingPointError(f"the {direction} pass of '{op}' produced {kind} "
                                 f"(output shape {np.shape(arr)})")


def _check_backward(contrib: Any, g: Any, op: str) -> None:
    c, g = raw(contrib), raw(g)
    if np.all(np.isfinite(c)):
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
