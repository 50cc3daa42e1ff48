"""The rule table: every primitive, its NumPy implementation and its derivatives.

Vocabulary in every rule: ``g`` is the incoming cotangent, ``ans`` the primitive's
output, ``x``/``y`` the arguments, ``x_dot`` a tangent. Arrays are positional,
parameters keyword-only. Rules call primitives (never raw ``.data``), so each rule is
itself differentiable and higher-order derivatives come for free.

``defprimitive`` derives what can be derived:

* ``derivatives=(dx, dy, ...)`` for elementwise primitives: each ``d(ans, *args)`` is the
  local partial derivative; the VJP is ``g * d`` (un-broadcast by the engine) and the JVP
  is ``sum(x_dot * d)``.
* ``linear=True``: the JVP is the primitive itself applied to the tangents.
* ``nondifferentiable=True``: the result is a plain array that carries no derivative.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _backend as backend
from ._primitive import Examples, Primitive, Traced, register

Rule = Callable[..., Any]


def defprimitive(
    name: str,
    impl: Callable[..., Any],
    *,
    vjp: Sequence[Rule | None] | None = None,
    jvp: Rule | None = None,
    derivatives: Sequence[Rule | None] | None = None,
    linear: bool = False,
    nondifferentiable: bool = False,
    test: Examples | None = None,
    traced_params: tuple[str, ...] = (),
) -> Primitive:
    """Declare a primitive once, with its implementation and rules side by side.

    Example (a user-defined primitive)::

        >>> import numpy as np, glassgrad as gg
        >>> cube = gg.extend.defprimitive(
        ...     "my_cube", lambda x: x ** 3, derivatives=[lambda ans, x: 3 * x ** 2])
        >>> float(gg.grad(cube)(2.0))
        12.0
    """
    if derivatives is not None:
        vjp = vjp or [_elementwise_vjp(d) if d is not None else None for d in derivatives]
        jvp = jvp or _elementwise_jvp(derivatives)
    if linear and jvp is None:
        jvp = _linear_jvp(name)
    vjps = tuple(vjp) if isinstance(vjp, list | tuple) else (vjp or ())
    prim = Primitive(name, impl, vjps, jvp, nondifferentiable, test, traced_params)
    return register(prim)


def _elementwise_vjp(d: Rule) -> Rule:
    def vjp(g, ans, *args, **params):
        return g * d(ans, *args, **params)

    return vjp


def _elementwise_jvp(derivatives: Sequence[Rule | None]) -> Rule:
    def jvp(tangents, ans, *args, **params):
        out = None
        for x_dot, d in zip(tangents, derivatives, strict=False):
            if x_dot is None or d is None:
                continue
            term = x_dot * d(ans, *args, **params)
            out = term if out is None else out + term
        return out

    return jvp


def _linear_jvp(name: str) -> Rule:
    def jvp(tangents, ans, *args, **params):
        from ._primitive import PRIMITIVES

        filled = [zeros_like(a) if t is None else t for t, a in zip(tangents, args, strict=True)]
        return PRIMITIVES[name](*filled, **params)

    return jvp


# --- helpers used by rules (built from primitives, so still differentiable) -------------


def shape_of(x: Any) -> tuple[int, ...]:
    shape = getattr(x, "shape", None)
    return np.shape(x) if shape is None else shape


def ndim_of(x: Any) -> int:
    return len(shape_of(x))


def dtype_of(x: Any) -> np.dtype:
    dtype = getattr(x, "dtype", None)
    return np.result_type(x) if dtype is None else dtype


def zeros_like(x: Any) -> Any:
    """A constant zero array with the shape and float dtype of ``x``."""
    return backend.zeros(shape_of(x), _float_dtype(dtype_of(x)), like=raw(x))


def _float_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if dtype.kind in "fc" else np.dtype(np.float64)


def raw(x: Any) -> Any:
    """The value behind the derivative tracers (for masks and shapes only).

    Under ``jit`` that value is itself a recording tracer, so masks end up in the program.
    """
    while isinstance(x, Traced) and x._differentiating:
        x = x._raw()
    return x


def normalize_axis(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple | list) else (axis,)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of bounds for an array of dimension {ndim}")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def keepdims_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    axes = normalize_axis(axis, len(shape))
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _restore_reduced(g: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    """Reshape a reduction's cotangent so that it broadcasts against ``x``."""
    if keepdims:
        return g
    return reshape(g, shape=keepdims_shape(shape_of(x), axis))


# --- test-data helpers -------------------------------------------------------------------

_SHAPES = [(), (3,), (2, 3)]


def _uniform(rng, shape, low=-2.0, high=2.0):
    return rng.uniform(low, high, size=shape)


def _unary(low=-2.0, high=2.0, **params):
    def make(rng):
        return [((_uniform(rng, s, low, high),), dict(params)) for s in _SHAPES]

    return Examples(make)


def _binary(low=-2.0, high=2.0, low_y=None, high_y=None):
    low_y = low if low_y is None else low_y
    high_y = high if high_y is None else high_y
    pairs = [((), ()), ((3,), (3,)), ((3, 1), (1, 4)), ((), (2, 3)), ((2, 3), (3,))]

    def make(rng):
        return [
            ((_uniform(rng, sx, low, high), _uniform(rng, sy, low_y, high_y)), {})
            for sx, sy in pairs
        ]

    return Examples(make)


def _away_from_zero(rng, shape, low=0.3, high=2.0):
    return rng.uniform(low, high, size=shape) * rng.choice([-1.0, 1.0], size=shape)


# --- elementwise, one argument -----------------------------------------------------------

neg = defprimitive("neg", np.negative, vjp=[lambda g, ans, x: neg(g)], linear=True,
                   test=_unary())
exp = defprimitive("exp", np.exp, derivatives=[lambda ans, x: ans], test=_unary())
log = defprimitive("log", np.log, vjp=[lambda g, ans, x: g / x],
                   derivatives=[lambda ans, x: 1.0 / x], test=_unary(0.2, 3.0))
log1p = defprimitive("log1p", np.log1p, derivatives=[lambda ans, x: 1.0 / (1.0 + x)],
                     test=_unary(-0.7, 3.0))
expm1 = defprimitive("expm1", np.expm1, derivatives=[lambda ans, x: ans + 1.0],
                     test=_unary())
# d sqrt = 1 / (2 sqrt x): infinite at 0, as in PyTorch and JAX (docs/conventions.md).
sqrt = defprimitive("sqrt", np.sqrt, derivatives=[lambda ans, x: 0.5 / ans],
                    test=_unary(0.2, 3.0))
sin = defprimitive("sin", np.sin, derivatives=[lambda ans, x: cos(x)], test=_unary())
cos = defprimitive("cos", np.cos, derivatives=[lambda ans, x: neg(sin(x))], test=_unary())
tan = defprimitive("tan", np.tan, derivatives=[lambda ans, x: 1.0 + ans * ans],
                   test=_unary(-1.2, 1.2))
arctan = defprimitive("arctan", np.arctan, derivatives=[lambda ans, x: 1.0 / (1.0 + x * x)],
                      test=_unary(-3.0, 3.0))
tanh = defprimitive("tanh", np.tanh, derivatives=[lambda ans, x: 1.0 - ans * ans],
                    test=_unary())


def _sigmoid_impl(x, *, a=1.0):
    # 1/(1+exp(-s)) written as exp(-log(1+exp(-s))): logaddexp never overflows, so this is
    # stable for any |a*x|, in four ufunc calls.
    s = x if a == 1.0 else np.multiply(x, a)
    return np.exp(-np.logaddexp(0.0, -s))


sigmoid = defprimitive(
    "sigmoid", _sigmoid_impl,
    derivatives=[lambda ans, x, *, a=1.0: ans * (1.0 - ans) if a == 1.0
                 else a * (ans * (1.0 - ans))],
    test=Examples(lambda rng: [((_uniform(rng, s, -3, 3),), {"a": a})
                               for s in _SHAPES for a in (1.0, 2.5)]),
)

sign = defprimitive("sign", np.sign, nondifferentiable=True)


def _relu_impl(x):
    return np.maximum(x, 0)


# relu and abs have a kink at 0; glassgrad takes the derivative there to be 0.
relu = defprimitive("relu", _relu_impl, derivatives=[lambda ans, x: raw(x) > 0],
                    test=Examples(lambda rng: [((_away_from_zero(rng, s),), {})
                                               for s in _SHAPES]))
abs_ = defprimitive("abs", np.abs, derivatives=[lambda ans, x: sign(x)],
                    test=Examples(lambda rng: [((_away_from_zero(rng, s),), {})
                                               for s in _SHAPES]))

# --- elementwise, two arguments ------------------------------------------------------------

add = defprimitive("add", np.add, vjp=[lambda g, ans, x, y: g, lambda g, ans, x, y: g],
                   linear=True, test=_binary())
sub = defprimitive("sub", np.subtract,
                   vjp=[lambda g, ans, x, y: g, lambda g, ans, x, y: neg(g)],
                   linear=True, test=_binary())
mul = defprimitive("mul", np.multiply,
                   derivatives=[lambda ans, x, y: y, lambda ans, x, y: x], test=_binary())
div = defprimitive(
    "div", np.true_divide,
    vjp=[lambda g, ans, x, y: g / y, lambda g, ans, x, y: neg(g) * ans / y],
    derivatives=[lambda ans, x, y: 1.0 / y, lambda ans, x, y: neg(ans) / y],
    test=Examples(lambda rng: [((_uniform(rng, sx), _away_from_zero(rng, sy)), {})
                               for sx, sy in [((), ()), ((3, 1), (1, 4)), ((2, 3), ())]]),
)


def _pow_dx(ans, x, y):
    # d/dx x**y = y x**(y-1), taken to be 0 where y == 0 (x**0 is the constant 1).
    if isinstance(y, int | float):
        if y == 0:
            return zeros_like(x)
        return y * x if y == 2 else y * power(x, y - 1)
    return where(raw(y) == 0, 0.0, y * power(x, y - 1))


def _pow_dy(ans, x, y):
    # d/dy x**y = log(x) x**y; 0 at x == 0 (0**y is flat for y > 0), NaN for x < 0.
    x_raw = raw(x)
    safe_x = where(x_raw > 0, x, 1.0)
    at_or_below_zero = where(x_raw == 0, 0.0, np.asarray(np.nan, dtype=dtype_of(ans)))
    return where(x_raw > 0, log(safe_x) * ans, at_or_below_zero)


power = defprimitive(
    "pow", np.power, derivatives=[_pow_dx, _pow_dy],
    test=_binary(0.3, 2.0, -2.0, 2.0),
)


def _share_ties(first_wins, tie, wrt):
    def d(ans, x, y):
        x_raw, y_raw = raw(x), raw(y)
        # A 0-d weight of the argument's own dtype keeps float32 float32.
        half = np.asarray(0.5, dtype=_float_dtype(dtype_of((x_raw, y_raw)[wrt])))
        return first_wins(x_raw, y_raw) + tie(x_raw, y_raw) * half

    return d


# Ties share the gradient equally (0.5 each), as in PyTorch and JAX.
maximum = defprimitive(
    "maximum", np.maximum,
    derivatives=[_share_ties(np.greater, np.equal, 0), _share_ties(np.less, np.equal, 1)],
    test=_binary(),
)
minimum = defprimitive(
    "minimum", np.minimum,
    derivatives=[_share_ties(np.less, np.equal, 0), _share_ties(np.greater, np.equal, 1)],
    test=_binary(),
)


def _where_test(rng):
    out = []
    for s in [(), (3,), (2, 3)]:
        cond = rng.uniform(size=s) > 0.5
        out.append(((cond, _uniform(rng, s), _uniform(rng, s)), {}))
    out.append(((rng.uniform(size=(3, 1)) > 0.5, _uniform(rng, (1, 4)), _uniform(rng, ())), {}))
    return out


# The unused branch gets an exact zero cotangent (not g * 0), so a NaN cotangent in the
# unused branch can only come from that branch's own local derivative.
where = defprimitive(
    "where", np.where,
    vjp=[None,
         lambda g, ans, c, x, y: where(raw(c), g, 0.0),
         lambda g, ans, c, x, y: where(raw(c), 0.0, g)],
    jvp=lambda t, ans, c, x, y: where(raw(c), 0.0 if t[1] is None else t[1],
                                      0.0 if t[2] is None else t[2]),
    test=Examples(_where_test),
)


def _clip_impl(x, *, lo=None, hi=None):
    return np.clip(x, lo, hi)


def _clip_mask(ans, x, *, lo=None, hi=None):
    # Gradient 1 on the closed interval [lo, hi], including its bounds (as PyTorch).
    x = raw(x)
    inside = None if lo is None else x >= lo
    if hi is not None:
        below = x <= hi
        inside = below if inside is None else inside & below
    return 1.0 if inside is None else inside


clip = defprimitive(
    "clip", _clip_impl, derivatives=[_clip_mask],
    test=Examples(lambda rng: [((np.array([-1.7, -0.6, 0.2, 0.9, 1.5]),),
                                {"lo": -1.0, "hi": 1.0}),
                               ((_uniform(rng, (2, 3)),), {"lo": -0.4, "hi": None})]),
)

# --- reductions ----------------------------------------------------------------------------


def _reduce_test(rng):
    x = _uniform(rng, (2, 3, 4))
    return [((x,), {"axis": None, "keepdims": False}), ((x,), {"axis": 1, "keepdims": False}),
            ((x,), {"axis": (0, 2), "keepdims": True}), ((_uniform(rng, ()),), {})]


def _sum_impl(x, *, axis=None, keepdims=False):
    return np.sum(x, axis=axis, keepdims=keepdims)


sum_ = defprimitive(
    "sum", _sum_impl,
    vjp=[lambda g, ans, x, *, axis=None, keepdims=False:
         broadcast_to(_restore_reduced(g, x, axis, keepdims), shape=shape_of(x))],
    linear=True, test=Examples(_reduce_test),
)


def _mean_impl(x, *, axis=None, keepdims=False):
    return np.mean(x, axis=axis, keepdims=keepdims)


def _count(x, axis) -> int:
    shape = shape_of(x)
    return int(np.prod([shape[a] for a in normalize_axis(axis, len(shape))]))


mean = defprimitive(
    "mean", _mean_impl,
    vjp=[lambda g, ans, x, *, axis=None, keepdims=False:
         broadcast_to(_restore_reduced(g, x, axis, keepdims), shape=shape_of(x))
         / _count(x, axis)],
    linear=True, test=Examples(_reduce_test),
)


def _extremum_weights(ans, x, axis, keepdims):
    # Ties share the gradient equally: each maximal entry gets 1/count.
    x_raw = raw(x)
    ans_k = np.reshape(raw(ans), keepdims_shape(np.shape(x_raw), axis))
    mask = x_raw == ans_k
    return mask / np.sum(mask, axis=axis, keepdims=True, dtype=dtype_of(x_raw))


def _extremum(name, impl):
    def vjp(g, ans, x, *, axis=None, keepdims=False):
        return _restore_reduced(g, x, axis, keepdims) * _extremum_weights(ans, x, axis, keepdims)

    def jvp(tangents, ans, x, *, axis=None, keepdims=False):
        w = _extremum_weights(ans, x, axis, keepdims)
        return sum_(tangents[0] * w, axis=axis, keepdims=keepdims)

    def run(x, *, axis=None, keepdims=False):
        return impl(x, axis=axis, keepdims=keepdims)

    return defprimitive(name, run, vjp=[vjp], jvp=jvp, test=Examples(_reduce_test))


max_ = _extremum("max", np.max)
min_ = _extremum("min", np.min)

# --- shapes and indexing -------------------------------------------------------------------


def _reshape_impl(x, *, shape):
    return np.reshape(x, shape)


reshape = defprimitive(
    "reshape", _reshape_impl,
    vjp=[lambda g, ans, x, *, shape: reshape(g, shape=shape_of(x))], linear=True,
    test=Examples(lambda rng: [((_uniform(rng, (2, 3)),), {"shape": (3, 2)}),
                               ((_uniform(rng, (6,)),), {"shape": (2, -1)})]),
)


def _transpose_impl(x, *, axes=None):
    return np.transpose(x, axes)


def _inverse_axes(axes, ndim):
    return None if axes is None else tuple(int(i) for i in np.argsort(axes))


transpose = defprimitive(
    "transpose", _transpose_impl,
    vjp=[lambda g, ans, x, *, axes=None:
         transpose(g, axes=_inverse_axes(axes, ndim_of(x)))], linear=True,
    test=Examples(lambda rng: [((_uniform(rng, (2, 3)),), {}),
                               ((_uniform(rng, (2, 3, 4)),), {"axes": (1, 2, 0)})]),
)


def _broadcast_to_impl(x, *, shape):
    return np.broadcast_to(x, shape)


def sum_to_impl(x, *, shape):
    """Sum ``x`` down to ``shape``: the transpose of NumPy broadcasting."""
    x_shape = np.shape(x)
    if x_shape == tuple(shape):
        return x
    lead = len(x_shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x_shape[lead + i] != 1)
    out = np.sum(x, axis=axes, keepdims=True)
    return np.reshape(out, shape)


broadcast_to = defprimitive(
    "broadcast_to", _broadcast_to_impl,
    vjp=[lambda g, ans, x, *, shape: sum_to(g, shape=shape_of(x))], linear=True,
    test=Examples(lambda rng: [((_uniform(rng, (3, 1)),), {"shape": (2, 3, 4)}),
                               ((_uniform(rng, ()),), {"shape": (2,)})]),
)
sum_to = defprimitive(
    "sum_to", sum_to_impl,
    vjp=[lambda g, ans, x, *, shape: broadcast_to(g, shape=shape_of(x))], linear=True,
    test=Examples(lambda rng: [((_uniform(rng, (2, 3, 4)),), {"shape": (3, 1)}),
                               ((_uniform(rng, (2, 3)),), {"shape": ()})]),
)


def _astype_impl(x, *, dtype):
    return np.asarray(x).astype(dtype, copy=False)


astype = defprimitive(
    "astype", _astype_impl,
    vjp=[lambda g, ans, x, *, dtype: astype(g, dtype=dtype_of(x))], linear=True,
    test=Examples(lambda rng: [((_uniform(rng, (3,)),), {"dtype": np.float64})]),
)


def _getitem_impl(x, *, index):
    return x[index]


def is_basic_index(index: Any) -> bool:
    """True for ints, slices, None and Ellipsis: such an index never repeats an entry."""
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, int | slice | np.integer) or i is None or i is Ellipsis
               for i in items)


def _scatter_add_impl(g, *, shape, index):
    out = backend.zeros(shape, np.result_type(g, np.float32), like=g)
    if is_basic_index(index):
        out[index] = g
    else:
        np.add.at(out, index, g)  # repeated indices accumulate
    return out


def _getitem_test(rng):
    x = _uniform(rng, (4, 3))
    return [((x,), {"index": 1}), ((x,), {"index": (slice(1, 3), slice(None, None, 2))}),
            ((x,), {"index": (np.array([0, 2, 0, 0]),)}),
            ((x,), {"index": x > 0}), ((x,), {"index": (Ellipsis, None, 1)})]


getitem = defprimitive(
    "getitem", _getitem_impl,
    vjp=[lambda g, ans, x, *, index: scatter_add(g, shape=shape_of(x), index=index)],
    linear=True, test=Examples(_getitem_test), traced_params=("index",),
)
scatter_add = defprimitive(
    "scatter_add", _scatter_add_impl,
    vjp=[lambda g, ans, x, *, shape, index: getitem(g, index=index)], linear=True,
    traced_params=("index",),
    test=Examples(lambda rng: [((_uniform(rng, (5, 3)),),
                                {"shape": (4, 3), "index": (np.array([0, 2, 0, 3, 2]),)}),
                               ((_uniform(rng, (2,)),), {"shape": (4,), "index": slice(1, 3)})]),
)


def _concatenate_impl(*xs, axis=0):
    return np.concatenate(xs, axis=axis)


def _concat_vjp(i):
    def vjp(g, ans, *xs, axis=0):
        start = sum(shape_of(x)[axis] for x in xs[:i])
        index = (slice(None),) * (axis % ndim_of(ans)) + (
            slice(start, start + shape_of(xs[i])[axis]),)
        return getitem(g, index=index)

    return vjp


class _ConcatVJPs:
    """One VJP per argument, for any number of arguments."""

    def __getitem__(self, i):
        return _concat_vjp(i)

    def __len__(self):  # pragma: no cover - variadic
        return 1 << 30


concatenate = defprimitive(
    "concatenate", _concatenate_impl, vjp=_ConcatVJPs(), linear=True,
    test=Examples(lambda rng: [((_uniform(rng, (2, 3)), _uniform(rng, (1, 3))), {"axis": 0}),
                               ((_uniform(rng, (2, 1)), _uniform(rng, (2, 3)),
                                 _uniform(rng, (2, 2))), {"axis": -1})]),
)

# --- linear algebra ------------------------------------------------------------------------


def _swap_last(x):
    axes = tuple(range(ndim_of(x) - 2)) + (ndim_of(x) - 1, ndim_of(x) - 2)
    return transpose(x, axes=axes)


def _matmul_vjp_x(g, ans, x, y):
    x_nd, y_nd = ndim_of(x), ndim_of(y)
    if x_nd == 2 and y_nd == 2:  # the common case, with nothing to un-broadcast
        return matmul(g, y.T)
    if x_nd == 1 and y_nd == 1:
        return g * y
    if y_nd == 1:  # (..., n, k) @ (k,) -> (..., n)
        return sum_to(reshape(g, shape=shape_of(g) + (1,)) * y, shape=shape_of(x))
    if x_nd == 1:  # (k,) @ (..., k, m) -> (..., m)
        gx = matmul(reshape(g, shape=shape_of(g)[:-1] + (1, shape_of(g)[-1])), _swap_last(y))
        return sum_to(reshape(gx, shape=shape_of(gx)[:-2] + shape_of(x)), shape=shape_of(x))
    return sum_to(matmul(g, _swap_last(y)), shape=shape_of(x))


def _matmul_vjp_y(g, ans, x, y):
    x_nd, y_nd = ndim_of(x), ndim_of(y)
    if x_nd == 2 and y_nd == 2:
        return matmul(x.T, g)
    if x_nd == 1 and y_nd == 1:
        return g * x
    if x_nd == 1:  # (k,) @ (..., k, m): dy = outer(x, g)
        return sum_to(reshape(x, shape=shape_of(x) + (1,))
                      * reshape(g, shape=shape_of(g)[:-1] + (1, shape_of(g)[-1])),
                      shape=shape_of(y))
    if y_nd == 1:  # (..., n, k) @ (k,): dy = x^T g
        gy = matmul(_swap_last(x), reshape(g, shape=shape_of(g) + (1,)))
        return sum_to(reshape(gy, shape=shape_of(gy)[:-1]), shape=shape_of(y))
    return sum_to(matmul(_swap_last(x), g), shape=shape_of(y))


def _matmul_jvp(tangents, ans, x, y):
    x_dot, y_dot = tangents
    out = None if x_dot is None else matmul(x_dot, y)
    if y_dot is not None:
        term = matmul(x, y_dot)
        out = term if out is None else out + term
    return out


def _matmul_test(rng):
    pairs = [((3,), (3,)), ((2, 3), (3, 4)), ((2, 3), (3,)), ((3,), (3, 4)),
             ((2, 2, 3), (3, 4)), ((5, 1, 2, 3), (4, 3, 2)), ((3,), (2, 3, 4))]
    return [((_uniform(rng, sx), _uniform(rng, sy)), {}) for sx, sy in pairs]


matmul = defprimitive("matmul", np.matmul, vjp=[_matmul_vjp_x, _matmul_vjp_y],
                      jvp=_matmul_jvp, test=Examples(_matmul_test))
