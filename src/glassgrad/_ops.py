"""User-level operations composed from primitives, and NumPy's dispatch tables.

Everything here is differentiable because it only calls primitives. ``UFUNCS`` and
``FUNCTIONS`` say which NumPy calls a traced value understands; any other NumPy call on a
traced value raises ``TypeError`` naming the function.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _rules as R
from ._rules import ndim_of, normalize_axis, raw, shape_of


def _no_out(name: str, kwargs: dict) -> None:
    bad = {k: v for k, v in kwargs.items() if v is not None and k != "keepdims"}
    if bad:
        raise TypeError(f"np.{name} on a traced value does not support the arguments "
                        f"{sorted(bad)} (in-place output and dtype changes cut the graph)")


def _axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


def sum(x, axis=None, keepdims=False, **kwargs):  # noqa: A001 - mirrors np.sum
    _no_out("sum", kwargs)
    return R.sum_(x, axis=_axis(axis), keepdims=bool(keepdims))


def mean(x, axis=None, keepdims=False, **kwargs):
    _no_out("mean", kwargs)
    return R.mean(x, axis=_axis(axis), keepdims=bool(keepdims))


def max(x, axis=None, keepdims=False, **kwargs):  # noqa: A001
    _no_out("max", kwargs)
    return R.max_(x, axis=_axis(axis), keepdims=bool(keepdims))


def min(x, axis=None, keepdims=False, **kwargs):  # noqa: A001
    _no_out("min", kwargs)
    return R.min_(x, axis=_axis(axis), keepdims=bool(keepdims))


def reshape(x, shape, *more: int, order="C"):
    if order != "C":
        raise TypeError("reshape of a traced value supports only order='C'")
    if more or isinstance(shape, int | np.integer):
        shape = (shape, *more)
    return R.reshape(x, shape=tuple(int(s) for s in shape))


def transpose(x, axes=None):
    if axes is not None:
        axes = tuple(int(a) % ndim_of(x) for a in axes)
    return R.transpose(x, axes=axes)


def swapaxes(x, axis1, axis2):
    axes = list(range(ndim_of(x)))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return R.transpose(x, axes=tuple(axes))


def expand_dims(x, axis):
    shape = list(shape_of(x))
    for a in sorted(a % (len(shape) + 1) for a in (axis if isinstance(axis, tuple) else (axis,))):
        shape.insert(a, 1)
    return R.reshape(x, shape=tuple(shape))


def squeeze(x, axis=None):
    shape = shape_of(x)
    axes = normalize_axis(axis, len(shape)) if axis is not None else tuple(
        i for i, n in enumerate(shape) if n == 1)
    if any(shape[a] != 1 for a in axes):
        raise ValueError(f"cannot squeeze axis {axis} of shape {shape}: its size is not 1")
    return R.reshape(x, shape=tuple(n for i, n in enumerate(shape) if i not in axes))


def ravel(x, order="C"):
    return reshape(x, (-1,), order=order)


def broadcast_to(x, shape):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return x if shape_of(x) == shape else R.broadcast_to(x, shape=shape)


def concatenate(arrays, axis=0, **kwargs):
    _no_out("concatenate", kwargs)
    arrays = list(arrays)
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    return R.concatenate(*arrays, axis=int(axis))


def stack(arrays, axis=0, **kwargs):
    _no_out("stack", kwargs)
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to stack")
    shapes = {shape_of(a) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"all input arrays must have the same shape, got {sorted(shapes)}")
    return R.concatenate(*[expand_dims(a, axis) for a in arrays], axis=int(axis))


def hstack(arrays):
    arrays = list(arrays)
    return concatenate(arrays, axis=0 if ndim_of(arrays[0]) == 1 else 1)


def vstack(arrays):
    return concatenate([a if ndim_of(a) >= 2 else reshape(a, (1, -1)) for a in arrays], axis=0)


def where(cond, x=None, y=None):
    if x is None or y is None:
        raise TypeError("np.where with one argument is not differentiable; use it on "
                        "plain arrays (it gives indices)")
    return R.where(raw(cond), x, y)


def clip(x, a_min=None, a_max=None, **kwargs):
    _no_out("clip", kwargs)
    if isinstance(raw(a_min), np.ndarray) or isinstance(raw(a_max), np.ndarray):
        lo = x if a_min is None else R.maximum(x, a_min)
        return lo if a_max is None else R.minimum(lo, a_max)
    return R.clip(x, lo=a_min, hi=a_max)


def matmul(x, y, **kwargs):
    _no_out("matmul", kwargs)
    if ndim_of(x) == 0 or ndim_of(y) == 0:
        raise ValueError("matmul: input operand does not have enough dimensions "
                         f"(shapes {shape_of(x)} and {shape_of(y)}); use * for scalars")
    xs, ys = shape_of(x), shape_of(y)
    inner_y = ys[-2] if len(ys) > 1 else ys[0]
    if xs[-1] != inner_y:
        raise ValueError(f"matmul: shapes {xs} and {ys} do not align: the last axis of the "
                         f"first ({xs[-1]}) must equal the "
                         f"{'second-to-last' if len(ys) > 1 else 'only'} axis of the second "
                         f"({inner_y})")
    return R.matmul(x, y)


def dot(x, y, out=None):
    _no_out("dot", {"out": out})
    if ndim_of(x) == 0 or ndim_of(y) == 0:
        return R.mul(x, y)
    if ndim_of(x) <= 2 and ndim_of(y) <= 2:
        return R.matmul(x, y)
    raise TypeError("np.dot of arrays with more than 2 dimensions is not supported on "
                    "traced values; use np.matmul or np.einsum-free reshapes")


def outer(x, y, out=None):
    _no_out("outer", {"out": out})
    return R.mul(reshape(x, (-1, 1)), reshape(y, (1, -1)))


def square(x, **kwargs):
    _no_out("square", kwargs)
    return R.mul(x, x)


def reciprocal(x, **kwargs):
    _no_out("reciprocal", kwargs)
    return R.div(1.0, x)


def positive(x, **kwargs):
    return x


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """log(sum(exp(x))) without overflow: the maximum is shifted out first.

    >>> import numpy as np, glassgrad as gg
    >>> float(gg.logsumexp(np.array([1000.0, 1000.0])))
    1000.6931471805599
    """
    shift = np.max(raw(x), axis=axis, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    out = R.log(R.sum_(R.exp(x - shift), axis=axis, keepdims=True)) + shift
    return out if keepdims else squeeze(out, axis=axis) if axis is not None else reshape(out, ())


def softmax(x: Any, axis: int = -1) -> Any:
    """exp(x) / sum(exp(x)) along ``axis``, stable for large inputs.

    >>> import numpy as np, glassgrad as gg
    >>> gg.softmax(np.array([0.0, 0.0]))
    array([0.5, 0.5])
    """
    z = R.exp(x - np.max(raw(x), axis=axis, keepdims=True))
    return z / R.sum_(z, axis=axis, keepdims=True)


def log_softmax(x: Any, axis: int = -1) -> Any:
    """log(softmax(x)), computed as x - logsumexp(x) so it stays finite.

    >>> import numpy as np, glassgrad as gg
    >>> gg.log_softmax(np.array([1e4, 0.0]))
    array([     0., -10000.])
    """
    return x - logsumexp(x, axis=axis, keepdims=True)


def _shape(x):
    return shape_of(x)


def _ndim(x):
    return ndim_of(x)


def _size(x, axis=None):
    shape = shape_of(x)
    return int(np.prod(shape)) if axis is None else shape[axis]


def _like(fill):
    def like(x, dtype=None, **kwargs):
        return fill(shape_of(x), dtype=dtype or R.dtype_of(x))

    return like


# NumPy ufuncs a traced value understands, mapped to differentiable operations.
UFUNCS = {
    np.add: R.add, np.subtract: R.sub, np.multiply: R.mul, np.true_divide: R.div,
    np.divide: R.div, np.power: R.power, np.negative: R.neg, np.positive: positive,
    np.exp: R.exp, np.log: R.log, np.log1p: R.log1p, np.expm1: R.expm1, np.sqrt: R.sqrt,
    np.sin: R.sin, np.cos: R.cos, np.tan: R.tan, np.arctan: R.arctan, np.tanh: R.tanh,
    np.absolute: R.abs_, np.maximum: R.maximum, np.minimum: R.minimum, np.square: square,
    np.reciprocal: reciprocal, np.matmul: matmul,
}
# Ufuncs whose result carries no derivative: computed on the concrete values.
NONDIFFERENTIABLE_UFUNCS = {
    np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal,
    np.sign, np.isfinite, np.isnan, np.isinf, np.floor, np.ceil, np.rint, np.trunc,
    np.logical_and, np.logical_or, np.logical_not, np.logical_xor, np.signbit,
}
# NumPy functions (``__array_function__``) a traced value understands.
FUNCTIONS = {
    np.sum: sum, np.mean: mean, np.max: max, np.amax: max, np.min: min, np.amin: min,
    np.reshape: reshape, np.transpose: transpose, np.swapaxes: swapaxes,
    np.expand_dims: expand_dims, np.squeeze: squeeze, np.ravel: ravel,
    np.broadcast_to: broadcast_to, np.concatenate: concatenate, np.stack: stack,
    np.hstack: hstack, np.vstack: vstack, np.where: where, np.clip: clip, np.dot: dot,
    np.outer: outer, np.shape: _shape, np.ndim: _ndim, np.size: _size,
    np.zeros_like: _like(np.zeros), np.ones_like: _like(np.ones), np.matmul: matmul,
}
# Functions that only look at concrete values (indices, shapes, tests).
NONDIFFERENTIABLE_FUNCTIONS = {
    np.argmax, np.argmin, np.argsort, np.allclose, np.isclose, np.array_equal,
    np.count_nonzero, np.nonzero, np.any, np.all, np.result_type, np.iscomplexobj,
    np.isrealobj,
}
