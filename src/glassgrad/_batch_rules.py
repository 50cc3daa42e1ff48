"""Batching rules: how ``vmap`` runs one primitive on a whole batch at once.

A batching rule ``batch(args, dims, **params) -> (out, out_dim)`` gets the primitive's
arguments with their batch axes (``dims[i]`` is None for an argument that is the same for
every example) and returns the batched result and its batch axis. As in JAX's batching
interpreter, most rules are derived for whole families from flags on the row
(``elementwise``: move the batch axes to the front and let NumPy broadcast; ``reduction``:
shift the reduced axes past the batch axis); this module holds those families and the
hand-written rules of the few structural rows (shapes, indexing, concatenation, matmul).

Rules are written with primitives, like VJP rules, so a batched computation stays visible
to every interpreter below (a derivative level, ``jit``, an outer ``vmap``). This module
imports the rule table lazily (``R.reshape`` is looked up at call time): ``_rules`` names
these functions on its rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from . import _backend as backend
from . import _rules as R  # a partially initialised module while _rules imports this one
from ._backend import dtype_of, ndim_of, shape_of
from ._primitive import PRIMITIVES, Primitive, Traced

Rule = Callable[..., tuple[Any, Any]]


class Batched(NamedTuple):
    """A batched value inside a primitive's parameters (an index array under vmap)."""

    value: Any
    dim: int


# --- helpers -------------------------------------------------------------------------------


def moveaxis(x: Any, src: int, dst: int) -> Any:
    """``x`` with axis ``src`` moved to ``dst`` (one transpose, or nothing)."""
    nd = ndim_of(x)
    src, dst = src % nd, dst % nd
    if src == dst:
        return x
    perm = [i for i in range(nd) if i != src]
    perm.insert(dst, src)
    return R.transpose(x, axes=tuple(perm))


def to_front(x: Any, dim: int | None, size: int | None = None) -> Any:
    """``x`` with its batch axis first; an unbatched ``x`` is broadcast to ``size``."""
    if dim is None:
        shape = shape_of(x)
        return R.broadcast_to(R.reshape(x, shape=(1,) + shape), shape=(size,) + shape)
    return moveaxis(x, dim, 0)


def batch_size(args: Any, dims: Any) -> int:
    for a, d in zip(args, dims, strict=True):
        if d is not None:
            return shape_of(a)[d]
    raise ValueError("no batched argument")  # pragma: no cover - callers check


def _pad_rank(x: Any, rank: int) -> Any:
    """A batch-first ``x`` with 1s inserted after the batch axis up to logical ``rank``."""
    shape = shape_of(x)
    missing = rank - (len(shape) - 1)
    if missing <= 0:
        return x
    return R.reshape(x, shape=shape[:1] + (1,) * missing + shape[1:])


# --- families ------------------------------------------------------------------------------


def elementwise(prim: Primitive) -> Rule:
    """Elementwise and broadcasting rows: batch axes first, ranks aligned after them, and
    NumPy's broadcasting does the rest (unbatched arguments broadcast as they are)."""

    def rule(args, dims, **params):
        rank = max(ndim_of(a) - (d is not None) for a, d in zip(args, dims, strict=True))
        moved = [a if d is None else _pad_rank(moveaxis(a, d, 0), rank)
                 for a, d in zip(args, dims, strict=True)]
        return prim(*moved, **params), 0

    return rule


def reduction(prim: Primitive) -> Rule:
    """Reductions with ``axis``/``keepdims``: the reduced axes shift past the batch axis
    (``axis=None`` means every axis of one example)."""

    def rule(args, dims, *, axis=None, keepdims=False, **params):
        (x,), (d,) = args, dims
        x = moveaxis(x, d, 0)
        axes = tuple(a + 1 for a in R.normalize_axis(axis, ndim_of(x) - 1))
        return prim(x, axis=axes, keepdims=keepdims, **params), 0

    return rule


def flat_axis(name: str) -> Rule:
    """argmax/argmin/argsort: ``axis=None`` indexes the flattened example, so each example
    is flattened first."""

    def rule(args, dims, *, axis=None, **params):
        prim = PRIMITIVES[name]
        (x,), (d,) = args, dims
        x = moveaxis(x, d, 0)
        shape = shape_of(x)
        if axis is None:
            out = prim(R.reshape(x, shape=(shape[0], -1)), axis=1, **params)
            if params.get("keepdims"):
                out = R.reshape(out, shape=(shape[0],) + (1,) * (len(shape) - 1))
            return out, 0
        return prim(x, axis=R.normalize_axis(axis, len(shape) - 1)[0] + 1, **params), 0

    return rule


# --- shapes --------------------------------------------------------------------------------


def reshape(args, dims, *, shape):
    (x,), (d,) = args, dims
    x = moveaxis(x, d, 0)
    return R.reshape(x, shape=shape_of(x)[:1] + tuple(shape)), 0


def transpose(args, dims, *, axes=None):
    (x,), (d,) = args, dims
    nd = ndim_of(x) - 1
    logical = tuple(range(nd))[::-1] if axes is None else tuple(int(a) % nd for a in axes)
    physical = [a if a < d else a + 1 for a in logical]
    return R.transpose(x, axes=(d, *physical)), 0


def broadcast_to(args, dims, *, shape):
    (x,), (d,) = args, dims
    x = _pad_rank(moveaxis(x, d, 0), len(shape))
    return R.broadcast_to(x, shape=shape_of(x)[:1] + tuple(shape)), 0


def sum_to(args, dims, *, shape):
    (x,), (d,) = args, dims
    x = moveaxis(x, d, 0)
    lead = ndim_of(x) - 1 - len(shape)
    if lead > 0:  # leading axes of one example are summed away, never the batch axis
        x = R.sum_(x, axis=tuple(range(1, lead + 1)), keepdims=False)
    return R.sum_to(x, shape=shape_of(x)[:1] + tuple(shape)), 0


def concatenate(args, dims, *, axis=0):
    size = batch_size(args, dims)
    moved = [to_front(a, d, size) for a, d in zip(args, dims, strict=True)]
    axis = R.normalize_axis(axis, ndim_of(moved[0]) - 1)[0] + 1
    return R.concatenate(*moved, axis=axis), 0


# --- matmul --------------------------------------------------------------------------------


def matmul(args, dims):
    (x, y), (dx, dy) = args, dims
    if dy is None and ndim_of(y) in (1, 2):
        # A batch of vectors or matrices times one matrix (or vector): one product of a
        # (rows, k) matrix, however many batch and row axes sit in front.
        x = moveaxis(x, dx, 0)
        shape = shape_of(x)
        if len(shape) > 2:
            out = R.matmul(R.reshape(x, shape=(-1, shape[-1])), y)
            return R.reshape(out, shape=shape[:-1] + shape_of(y)[1:]), 0
        return R.matmul(x, y), 0
    if dx is None and ndim_of(x) == 2 and ndim_of(y) - 1 == 1:
        # One matrix times a batch of vectors: (B, k) @ x^T.
        return R.matmul(moveaxis(y, dy, 0), R.transpose(x, axes=(1, 0))), 0
    if dx is None and ndim_of(x) == 2 and ndim_of(y) - 1 == 2:
        # One matrix times a batch of matrices, as one product instead of B:
        # (x @ y_b)^T = y_b^T @ x^T, with the batch and m axes merged into rows (no copy
        # of a batch-first y when m is 1, as for a batch of column vectors).
        y = moveaxis(y, dy, 0)
        size, k, m = shape_of(y)
        rows = R.reshape(R.transpose(y, axes=(0, 2, 1)), shape=(size * m, k))
        out = R.matmul(rows, R.transpose(x, axes=(1, 0)))
        out = R.reshape(out, shape=(size, m, shape_of(x)[0]))
        return R.transpose(out, axes=(0, 2, 1)), 0
    # General case: vectors promoted to matrices, batch axes first, ranks aligned.
    x_vec = ndim_of(x) - (dx is not None) == 1
    y_vec = ndim_of(y) - (dy is not None) == 1
    if dx is not None:
        x = moveaxis(x, dx, 0)
    if dy is not None:
        y = moveaxis(y, dy, 0)
    if x_vec:  # (k,) -> (1, k)
        s = shape_of(x)
        x = R.reshape(x, shape=s[:-1] + (1, s[-1]))
    if y_vec:  # (k,) -> (k, 1)
        y = R.reshape(y, shape=shape_of(y) + (1,))
    rank = max(ndim_of(x) - (dx is not None), ndim_of(y) - (dy is not None))
    if dx is not None:
        x = _pad_rank(x, rank)
    if dy is not None:
        y = _pad_rank(y, rank)
    out = R.matmul(x, y)
    s = shape_of(out)
    if x_vec and y_vec:
        out = R.reshape(out, shape=s[:-2])
    elif x_vec:
        out = R.reshape(out, shape=s[:-2] + s[-1:])
    elif y_vec:
        out = R.reshape(out, shape=s[:-1])
    return out, 0


# --- indexing ------------------------------------------------------------------------------


def _items(index: Any) -> tuple:
    """The entries of an index (a lone entry, a ``Batched`` one included, is one)."""
    return index if isinstance(index, tuple) and not isinstance(index, Batched) else (index,)


def _is_array_index(i: Any) -> bool:
    return (isinstance(i, Batched | list | Traced)
            or (backend.is_array(i) and ndim_of(i) > 0) or backend.is_foreign_array(i))


def _consumed(i: Any) -> int:
    """How many axes of the indexed array an index entry uses up."""
    if i is None or i is Ellipsis:
        return 0
    if not isinstance(i, Batched) and _is_array_index(i) and dtype_of(i).kind == "b":
        return ndim_of(i)
    return 1


def _index_plan(index: Any, x_shape: tuple[int, ...], size: int) -> tuple[tuple, tuple | None]:
    """The index for a batch-first array, and the leading axes of the transpose that puts
    the result in the order of one example's result, batch axis first (None: it is).

    Without batched index arrays, a leading ``:`` does it (NumPy then keeps the batch
    axis first unless the advanced indices are apart, which puts them first). With
    batched index arrays, the batch becomes one more advanced index, ``arange(size)``,
    broadcast against them; the advanced block then comes first, and the transpose moves
    it to where one example's result has it.
    """
    items = _items(index)
    any_array = any(_is_array_index(i) for i in items)
    advanced = [k for k, i in enumerate(items)
                if _is_array_index(i) or (any_array and isinstance(i, int) and i is not True
                                          and i is not False)]
    apart = bool(advanced) and advanced[-1] - advanced[0] + 1 != len(advanced)
    batched = any(isinstance(i, Batched) for i in items)
    if not batched:
        if not apart:
            return (slice(None), *items), None
        # Advanced entries apart: their block comes first, the batch axis after it.
        rank = _advanced_rank(items)
        return (slice(None), *items), (rank, *range(rank))
    if any(not isinstance(i, Batched) and _is_array_index(i) and dtype_of(i).kind == "b"
           for i in items) or any(isinstance(i, Batched) and dtype_of(i.value).kind == "b"
                                  for i in items):
        raise TypeError("vmap: indexing with a boolean mask together with batched index "
                        "arrays gives a result whose shape depends on the values; use "
                        "np.where(mask, x, 0) instead")
    rank = _advanced_rank(items)
    arange = backend.namespace_of(backend.concrete(items[advanced[0]])).arange(size)
    if not backend.is_array(arange):  # pragma: no cover - foreign libraries
        arange = backend.as_array(arange)
    new = [R.reshape(arange, shape=(size,) + (1,) * rank)]
    for i in items:
        if isinstance(i, Batched):
            new.append(_pad_rank(moveaxis(i.value, i.dim, 0), rank))
        else:
            new.append(i)
    # One example's result has the advanced block at position p (0 when apart).
    p = 0
    if not apart:
        p = _axes_before(items[:advanced[0]], len(x_shape), items)
    if p == 0:
        return tuple(new), None
    # Physical: (B, *block, *rest); wanted: (B, *rest[:p], *block, *rest[p:]).
    return tuple(new), (0, *range(rank + 1, rank + 1 + p), *range(1, rank + 1))


def _advanced_rank(items: tuple) -> int:
    """The rank of the broadcast advanced indices of one example."""
    rank = 0
    for i in items:
        if isinstance(i, Batched):
            rank = max(rank, ndim_of(i.value) - 1)
        elif _is_array_index(i):
            rank = max(rank, 1 if dtype_of(i).kind == "b" else ndim_of(i))
    return rank


def _axes_before(prefix: tuple, ndim: int, items: tuple) -> int:
    """How many result axes the basic entries before the first advanced one make."""
    used = sum(_consumed(i) for i in items)
    count = 0
    for i in prefix:
        if i is Ellipsis:
            count += ndim - used
        elif i is None or isinstance(i, slice):
            count += 1
    return count


def _full_perm(head: tuple | None, nd: int) -> tuple[int, ...] | None:
    """A plan's transpose for a result of ``nd`` axes: ``head``, then the other axes in
    order."""
    if head is None:
        return None
    return head + tuple(k for k in range(nd) if k not in head)


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    out = [0] * len(perm)
    for k, p in enumerate(perm):
        out[p] = k
    return tuple(out)


def getitem(args, dims, *, index):
    (x,), (d,) = args, dims
    items = _items(index)
    size = shape_of(x)[d] if d is not None else next(
        shape_of(i.value)[i.dim] for i in items if isinstance(i, Batched))
    x = to_front(x, d, size)
    new, perm = _index_plan(index, shape_of(x)[1:], size)
    out = R.getitem(x, index=new)
    perm = _full_perm(perm, ndim_of(out))
    return (out if perm is None else R.transpose(out, axes=perm)), 0


def scatter_add(args, dims, *, shape, index):
    (g,), (d,) = args, dims
    items = _items(index)
    size = shape_of(g)[d] if d is not None else next(
        shape_of(i.value)[i.dim] for i in items if isinstance(i, Batched))
    g = to_front(g, d, size)
    new, perm = _index_plan(index, tuple(shape), size)
    perm = _full_perm(perm, ndim_of(g))
    if perm is not None:  # the layout getitem had before its transpose
        g = R.transpose(g, axes=_inverse(perm))
    return R.scatter_add(g, shape=(size, *shape), index=new), 0
