"""``gg.vmap``: the batching interpreter, one more level on the same engine.

``vmap(f)`` wraps each batched argument in a ``BatchTracer``: the whole batch of values
plus the axis that indexes the examples (``bdim``). To ``f`` it looks like one example
(its ``shape`` leaves the batch axis out). Every operation reaches it as a primitive
(``_process``), which runs the primitive's batching rule once on the whole batch:
``elementwise`` rows broadcast, ``reduction`` rows shift their axes, and the structural
rows have hand-written rules (``_batch_rules``). A primitive without a rule runs in a
Python loop over the batch, with a warning naming it once.

Levels keep nested transforms apart as usual: ``vmap(grad(f))`` differentiates batched
values, ``grad(vmap(f))`` batches differentiable ones, ``vmap(vmap(f))`` batches batches,
and inside ``jit`` the batched values are program variables, so the batched program is
what gets recorded.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

from . import _backend as backend
from . import _batch_rules as rules
from . import _ops
from . import _rules as R
from ._array_methods import ArrayMethods
from ._backend import dtype_of, ndim_of, shape_of
from ._batch_rules import Batched
from ._jit_trace import _NUMPY_DIR, _PACKAGE_DIR, user_location
from ._primitive import Primitive, new_level
from ._pytree import flatten_up_to, tree_flatten, tree_unflatten

__all__ = ["BatchTracer", "vmap", "looping_primitives"]


class BatchTracer(ArrayMethods):
    """A batch of values that ``vmap``'s function sees as one example."""

    __slots__ = ("value", "bdim")
    _differentiating = False

    def __init__(self, value: Any, bdim: int, level: int):
        self.value = value
        self.bdim = bdim
        self._level = level

    def _raw(self) -> Any:
        return self.value

    @property
    def shape(self) -> tuple[int, ...]:
        s = shape_of(self.value)
        return s[:self.bdim] + s[self.bdim + 1:]

    @property
    def dtype(self) -> Any:
        return dtype_of(self.value)

    def _process(self, prim: Primitive, args: tuple, params: dict) -> Any:
        level = self._level
        vals, dims = [], []
        for a in args:
            if type(a) is BatchTracer and a._level == level:
                vals.append(a.value)
                dims.append(a.bdim)
            else:
                vals.append(a)
                dims.append(None)
        if prim.traced_params:
            params = {k: _mark_batched(v, level) if k in prim.traced_params else v
                      for k, v in params.items()}
        rule = batch_rule(prim)
        if rule is None:
            out, out_dim = _loop(prim, vals, dims, params)
        else:
            out, out_dim = rule(vals, dims, **params)
        return out if out_dim is None else BatchTracer(out, out_dim, level)

    def _concretize_error(self, what: str) -> TypeError:
        return TypeError(
            f"{what} needs one value, but inside vmap this array holds a whole batch of "
            f"them, at {user_location()}. Python control flow cannot branch per example: "
            "use np.where(cond, x, y) for value-dependent choices (both branches are "
            "computed), or move the decision out of the vmapped function.")

    def __bool__(self) -> bool:
        raise self._concretize_error("Python control flow (if/while/and/or/bool())")

    def backward(self, gradient: Any = None) -> None:
        raise TypeError("inside vmap, .backward() cannot run: take per-example derivatives "
                        "with gg.vmap(gg.grad(f)) instead")

    def __repr__(self) -> str:
        return (f"BatchTracer(level={self._level}, shape={self.shape}, batch axis "
                f"{self.bdim} of {shape_of(self.value)[self.bdim]}, dtype={self.dtype})")


def _mark_batched(x: Any, level: int) -> Any:
    """Batched values inside a parameter (an index) as ``Batched`` markers for the rule."""
    if type(x) is BatchTracer and x._level == level:
        return Batched(x.value, x.bdim)
    if isinstance(x, tuple) and not isinstance(x, Batched):
        return tuple(_mark_batched(i, level) for i in x)
    return x


# --- rules, derived or looped ----------------------------------------------------------------

_DERIVED: dict[Primitive, Callable[..., Any] | None] = {}


def batch_rule(prim: Primitive) -> Callable[..., Any] | None:
    """The batching rule of a row: its own ``batch=``, else its family's; None: loop."""
    if prim.batch is not None:
        return prim.batch
    try:
        return _DERIVED[prim]
    except KeyError:
        pass
    rule = None
    if prim.elementwise:
        rule = rules.elementwise(prim)
    elif prim.reduction:
        rule = rules.reduction(prim)
    _DERIVED[prim] = rule
    return rule


def looping_primitives() -> list[str]:
    """The rows of the table that ``vmap`` runs in a Python loop over the batch."""
    from ._primitive import PRIMITIVES

    return sorted(name for name, prim in PRIMITIVES.items() if batch_rule(prim) is None)


_WARNED: set[str] = set()


def _loop(prim: Primitive, vals: list, dims: list, params: dict) -> tuple[Any, int]:
    """Run ``prim`` once per example and stack the results (a row without a rule)."""
    size = _size_of(vals, dims, params)
    if prim.name not in _WARNED:
        _WARNED.add(prim.name)
        warnings.warn(f"vmap: primitive '{prim.name}' has no batching rule, so it runs in "
                      f"a Python loop over the batch ({size} calls); give its row a "
                      "`batch=` rule (or a family flag) to vectorise it",
                      stacklevel=_user_stacklevel())
    outs = []
    for b in range(size):
        args_b = [v if d is None else R.getitem(v, index=(slice(None),) * d + (b,))
                  for v, d in zip(vals, dims, strict=True)]
        out = prim(*args_b, **{k: _example(v, b) for k, v in params.items()})
        if isinstance(out, tuple | list):
            raise TypeError(f"vmap: np.{prim.name} gives a result whose shape depends on the "
                            f"values (at {user_location()}), so the examples cannot be "
                            "stacked; use a form of fixed shape (np.where(mask, x, 0))")
        outs.append(out)
    if not outs:
        raise ValueError(f"vmap of '{prim.name}' (no batching rule) over an empty batch")
    return _ops.stack(outs), 0


def _user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning name the user's line (the innermost frame
    outside glassgrad and NumPy), as ``user_location`` names it in errors."""
    frame, level = sys._getframe(1), 1
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith((_PACKAGE_DIR, _NUMPY_DIR)):
            return level
        frame, level = frame.f_back, level + 1
    return 1


def _size_of(vals: list, dims: list, params: Any) -> int:
    for v, d in zip(vals, dims, strict=True):
        if d is not None:
            return shape_of(v)[d]
    for p in params.values():
        for item in p if isinstance(p, tuple) and not isinstance(p, Batched) else (p,):
            if isinstance(item, Batched):
                return shape_of(item.value)[item.dim]
    raise ValueError("no batched argument")  # pragma: no cover - _process sees one


def _example(x: Any, b: int) -> Any:
    if isinstance(x, Batched):
        return R.getitem(x.value, index=(slice(None),) * x.dim + (b,))
    if isinstance(x, tuple):
        return tuple(_example(i, b) for i in x)
    return x


# --- the transform ---------------------------------------------------------------------------


def vmap(fun: Callable, in_axes: Any = 0, out_axes: Any = 0) -> Callable:
    """Vectorise ``fun`` over an axis of its arguments, as JAX's ``vmap``.

    ``in_axes`` is an int (the batch axis of every argument), ``None`` (not batched), or a
    tuple with one entry per positional argument, each an int, ``None`` or a container
    prefix of that argument. Keyword arguments are batched along axis 0. ``out_axes``
    says where the batch axis goes in each output (an int, ``None`` for outputs that are
    the same for every example, or a prefix of the output's structure).

    >>> import numpy as np, glassgrad as gg
    >>> loss = lambda w, x, y: (np.dot(x, w) - y) ** 2
    >>> w, xs, ys = np.array([1.0, 2.0]), np.eye(2), np.array([0.0, 1.0])
    >>> gg.vmap(gg.grad(loss), in_axes=(None, 0, 0))(w, xs, ys)  # per-example gradients
    array([[2., 0.],
           [0., 2.]])
    """

    @functools.wraps(fun)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        axes = (*_in_axes_of(in_axes, args), *[0] * len(kwargs))
        everything = (*args, *kwargs.values())
        flat: list[tuple[Any, Any]] = []
        for arg, ax in zip(everything, axes, strict=True):
            _map_prefix(ax, arg, lambda leaf, a: flat.append((leaf, a)), "in_axes")
        size = _batch_size(flat)
        level = new_level()
        boxed = [_map_prefix(ax, arg, lambda leaf, a: _box(leaf, a, level), "in_axes")
                 for arg, ax in zip(everything, axes, strict=True)]
        out = fun(*boxed[:len(args)], **dict(zip(kwargs, boxed[len(args):], strict=True)))
        return _map_prefix(out_axes, out, lambda x, a: _unbox(x, a, level, size), "out_axes")

    return wrapped


def _in_axes_of(in_axes: Any, args: tuple) -> list:
    if in_axes is None or isinstance(in_axes, int):
        return [in_axes] * len(args)
    if isinstance(in_axes, tuple | list):
        if len(in_axes) != len(args):
            raise ValueError(f"vmap: in_axes has {len(in_axes)} entries but the function "
                             f"was called with {len(args)} positional arguments; give one "
                             "entry per argument (an int, None, or a container prefix)")
        return list(in_axes)
    raise TypeError(f"vmap: in_axes must be an int, None, or a tuple with one entry per "
                    f"positional argument, got {type(in_axes).__name__}")


def _map_prefix(axes: Any, tree: Any, f: Callable[[Any, Any], Any], what: str) -> Any:
    """``tree`` with ``f(leaf, axis)`` applied to each leaf, where ``axes`` is a prefix of
    ``tree`` whose leaves are ints or None (None is a leaf here, not an empty container)."""
    ax_leaves, ax_def = tree_flatten(axes, is_leaf=lambda x: x is None)
    for a in ax_leaves:
        if a is not None and (not isinstance(a, int) or isinstance(a, bool)):
            raise TypeError(f"vmap: {what} entries must be ints or None, got {a!r}")
    try:
        subtrees = flatten_up_to(ax_def, tree)
    except ValueError as e:
        raise ValueError(f"vmap: {what} {axes!r} is not a prefix of the structure of the "
                         f"values: {e}") from None
    new = []
    for sub, a in zip(subtrees, ax_leaves, strict=True):
        leaves, treedef = tree_flatten(sub)
        new.append(tree_unflatten(treedef, [f(leaf, a) for leaf in leaves]))
    return tree_unflatten(ax_def, new)


def _batch_size(flat: list) -> int:
    sizes = {}
    for leaf, ax in flat:
        if ax is None:
            continue
        nd = ndim_of(leaf)
        if not -nd <= ax < nd:
            raise ValueError(f"vmap: in_axes {ax} is out of range for an argument of shape "
                             f"{shape_of(leaf)}; a batched argument needs that axis")
        sizes.setdefault(shape_of(leaf)[ax], shape_of(leaf))
    if not sizes:
        raise ValueError("vmap needs at least one batched argument (in_axes are all None)")
    if len(sizes) > 1:
        detail = ", ".join(f"{n} (shape {s})" for n, s in sizes.items())
        raise ValueError(f"vmap: the batched arguments have different batch sizes: {detail}")
    return next(iter(sizes))


def _box(leaf: Any, ax: Any, level: int) -> Any:
    if ax is None:
        return leaf
    return BatchTracer(leaf, ax % ndim_of(leaf), level)


def _unbox(x: Any, ax: Any, level: int, size: int) -> Any:
    batched = type(x) is BatchTracer and x._level == level
    if ax is None:
        if batched:
            raise ValueError("vmap: out_axes is None for an output that differs between "
                             "examples; give it an axis")
        return x
    if batched:
        out = rules.moveaxis(x.value, x.bdim, ax % (ndim_of(x.value)))
    else:  # the same for every example: repeated along the new axis
        if isinstance(x, int | float | complex | bool):
            x = backend.as_array(x)
        nd = ndim_of(x) + 1
        ax = ax % nd
        shape = shape_of(x)
        out = R.broadcast_to(R.reshape(x, shape=shape[:ax] + (1,) + shape[ax:]),
                             shape=shape[:ax] + (size,) + shape[ax:])
    if backend.is_numpy_array(out) and not out.flags.writeable:
        out = out.copy()  # a broadcast view: hand out an array of its own
    return out
