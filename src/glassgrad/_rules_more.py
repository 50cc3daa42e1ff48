"""More rows of the rule table: the rest of NumPy's elementwise functions, reductions, and
the shape and selection functions composed from primitives.

Imported at the end of ``_ops`` so that both the table (``_rules``) and ``implements``
exist; each composite here is made of primitives only, so every interpreter sees it.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from . import _batch_rules as B
from . import _ops
from . import _rules as R
from ._backend import dtype_of, ndim_of, shape_of
from ._ops import implements, no_out
from ._primitive import PRIMITIVES, Examples
from ._rules import (
    _SHAPES,
    _away_from_zero,
    _binary,
    _mask_as,
    _restore_reduced,
    _unary,
    _uniform,
    defprimitive,
    keepdims_shape,
    normalize_axis,
)


def leading_batch(name: str, axis_params: tuple[str, ...] = ()):
    """vmap's rule for rows that already accept leading batch dimensions (linalg, fft):
    the batch axis goes first. ``axis_params`` name parameters holding axes of one
    example, shifted past the batch axis."""

    def rule(args, dims, **params):
        size = B.batch_size(args, dims)
        moved = [B.to_front(a, d, size) for a, d in zip(args, dims, strict=True)]
        for p in axis_params:
            if params.get(p) is not None:
                nd = ndim_of(moved[0]) - 1
                params[p] = int(params[p]) % nd + 1
        return PRIMITIVES[name](*moved, **params), 0

    return rule


_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_DEG = math.pi / 180.0

# --- elementwise, one argument -----------------------------------------------------------

arcsin = defprimitive("arcsin", np.arcsin,
                      derivatives=[lambda ans, x: 1.0 / R.sqrt(1.0 - x * x)],
                      test=_unary(-0.9, 0.9), sympy=lambda sp, x: sp.asin(x))
arccos = defprimitive("arccos", np.arccos,
                      derivatives=[lambda ans, x: -1.0 / R.sqrt(1.0 - x * x)],
                      test=_unary(-0.9, 0.9), sympy=lambda sp, x: sp.acos(x))
arcsinh = defprimitive("arcsinh", np.arcsinh,
                       derivatives=[lambda ans, x: 1.0 / R.sqrt(x * x + 1.0)],
                       test=_unary(), sympy=lambda sp, x: sp.asinh(x))
arccosh = defprimitive("arccosh", np.arccosh,
                       derivatives=[lambda ans, x: 1.0 / R.sqrt(x * x - 1.0)],
                       test=_unary(1.2, 3.0), sympy=lambda sp, x: sp.acosh(x))
arctanh = defprimitive("arctanh", np.arctanh,
                       derivatives=[lambda ans, x: 1.0 / (1.0 - x * x)],
                       test=_unary(-0.9, 0.9), sympy=lambda sp, x: sp.atanh(x))
sinh = defprimitive("sinh", np.sinh, derivatives=[lambda ans, x: cosh(x)], test=_unary(),
                    sympy=lambda sp, x: sp.sinh(x))
cosh = defprimitive("cosh", np.cosh, derivatives=[lambda ans, x: sinh(x)], test=_unary(),
                    sympy=lambda sp, x: sp.cosh(x))
exp2 = defprimitive("exp2", np.exp2, derivatives=[lambda ans, x: ans * _LN2], test=_unary(),
                    sympy=lambda sp, x: 2 ** x)
log2 = defprimitive("log2", np.log2, derivatives=[lambda ans, x: 1.0 / (x * _LN2)],
                    test=_unary(0.2, 3.0), sympy=lambda sp, x: sp.log(x, 2))
log10 = defprimitive("log10", np.log10, derivatives=[lambda ans, x: 1.0 / (x * _LN10)],
                     test=_unary(0.2, 3.0), sympy=lambda sp, x: sp.log(x, 10))
# d cbrt = 1 / (3 cbrt(x)^2): infinite at 0, as sqrt's.
cbrt = defprimitive("cbrt", np.cbrt, derivatives=[lambda ans, x: 1.0 / (3.0 * ans * ans)],
                    test=Examples(lambda rng: [((_away_from_zero(rng, s),), {})
                                               for s in _SHAPES]))
# fabs has abs's kink at 0, with the same convention (derivative 0 there).
fabs = defprimitive("fabs", np.fabs, derivatives=[lambda ans, x: R.sign(x)],
                    test=Examples(lambda rng: [((_away_from_zero(rng, s),), {})
                                               for s in _SHAPES]),
                    sympy=lambda sp, x: sp.Abs(x),
                    sympy_derivatives=[lambda sp, ans, x: sp.sign(x)])


def _sinc_dx(ans, x):
    # (cos(pi x) - sinc(x)) / x, and its limit 0 at x == 0 (sinc is even and smooth).
    zero = R.equal(x, 0)
    safe = R.where(zero, 1.0, x)
    return R.where(zero, 0.0, (R.cos(math.pi * safe) - ans) / safe)


sinc = defprimitive("sinc", np.sinc, derivatives=[_sinc_dx], test=_unary(),
                    sympy=lambda sp, x: sp.sin(sp.pi * x) / (sp.pi * x))
deg2rad = defprimitive("deg2rad", np.deg2rad, vjp=[lambda g, ans, x: g * _DEG], linear=True,
                       numpy=np.radians, test=_unary(-90.0, 90.0),
                       sympy=lambda sp, x: x * sp.pi / 180)
rad2deg = defprimitive("rad2deg", np.rad2deg, vjp=[lambda g, ans, x: g * (1.0 / _DEG)],
                       linear=True, numpy=np.degrees, test=_unary(),
                       sympy=lambda sp, x: x * 180 / sp.pi)


def _nan_to_num_impl(x, *, nan=0.0, posinf=None, neginf=None):
    return np.nan_to_num(x, copy=True, nan=nan, posinf=posinf, neginf=neginf)


# Derivative 1 where x is finite and 0 where a replacement constant was put in.
nan_to_num = defprimitive(
    "nan_to_num", _nan_to_num_impl, derivatives=[lambda ans, x, **p: _mask_as(R.isfinite(x), x)],
    test=Examples(lambda rng: [((_uniform(rng, s),), {"nan": 2.0}) for s in _SHAPES]),
)


@implements(np.nan_to_num)
def _nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    return nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


# --- elementwise, two arguments ------------------------------------------------------------


def _f_ties(wins, wrt):
    def d(ans, x, y):
        # fmax/fmin ignore a NaN: the other argument wins. Ties share the gradient.
        like, other = (x, y)[wrt], (y, x)[wrt]
        winner = R.logical_or(wins(x, y), R.isnan(other))
        return _mask_as(winner, like) + _mask_as(R.equal(x, y), like) * 0.5

    return d


fmax = defprimitive("fmax", np.fmax, derivatives=[_f_ties(R.greater, 0), _f_ties(R.less, 1)],
                    test=_binary(), sympy=lambda sp, x, y: sp.Max(x, y),
                    sympy_derivatives=[
                        lambda sp, ans, x, y: sp.Heaviside(x - y, sp.Rational(1, 2)),
                        lambda sp, ans, x, y: sp.Heaviside(y - x, sp.Rational(1, 2))])
fmin = defprimitive("fmin", np.fmin, derivatives=[_f_ties(R.less, 0), _f_ties(R.greater, 1)],
                    test=_binary(), sympy=lambda sp, x, y: sp.Min(x, y),
                    sympy_derivatives=[
                        lambda sp, ans, x, y: sp.Heaviside(y - x, sp.Rational(1, 2)),
                        lambda sp, ans, x, y: sp.Heaviside(x - y, sp.Rational(1, 2))])
# arctan2(y, x): the angle of the point (x, y); the origin is its one singular point.
arctan2 = defprimitive(
    "arctan2", np.arctan2,
    derivatives=[lambda ans, y, x: x / (x * x + y * y), lambda ans, y, x: -y / (x * x + y * y)],
    test=Examples(lambda rng: [((_away_from_zero(rng, sy), _away_from_zero(rng, sx)), {})
                               for sy, sx in [((), ()), ((3, 1), (1, 4)), ((2, 3), (3,))]]),
    sympy=lambda sp, y, x: sp.atan2(y, x),
)
hypot = defprimitive(
    "hypot", np.hypot, derivatives=[lambda ans, x, y: x / ans, lambda ans, x, y: y / ans],
    test=Examples(lambda rng: [((_away_from_zero(rng, sx), _away_from_zero(rng, sy)), {})
                               for sx, sy in [((), ()), ((3, 1), (1, 4)), ((2, 3), (3,))]]),
    sympy=lambda sp, x, y: sp.sqrt(x ** 2 + y ** 2),
)
logaddexp = defprimitive(
    "logaddexp", np.logaddexp,
    derivatives=[lambda ans, x, y: R.exp(x - ans), lambda ans, x, y: R.exp(y - ans)],
    test=_binary(), sympy=lambda sp, x, y: sp.log(sp.exp(x) + sp.exp(y)),
)
logaddexp2 = defprimitive(
    "logaddexp2", np.logaddexp2,
    derivatives=[lambda ans, x, y: exp2(x - ans), lambda ans, x, y: exp2(y - ans)],
    test=_binary(), sympy=lambda sp, x, y: sp.log(2 ** x + 2 ** y, 2),
)


def _away_from_jumps(rng):
    y = _away_from_zero(rng, (2, 3), 0.5, 2.0)
    x = y * (np.round(_uniform(rng, (2, 3), -3, 3)) + rng.uniform(0.2, 0.8, size=(2, 3)))
    return [((x, y), {}), ((x[0], 1.5), {})]


# fmod(x, y) = x - y trunc(x / y): slope 1 in x and -trunc(x / y) in y between the jumps.
fmod = defprimitive(
    "fmod", np.fmod,
    derivatives=[lambda ans, x, y: 1.0, lambda ans, x, y: -R.trunc(x / y)],
    test=Examples(_away_from_jumps),
)


@implements(np.float_power)
def _float_power(x, y, **kwargs):
    no_out("float_power", kwargs)
    # NumPy computes float_power in float64 (complex128): cast, then the ordinary power.
    def cast(a):
        if isinstance(a, int | float) and not isinstance(a, bool):
            return float(a)
        want = np.dtype(np.complex128 if _is_complex(a) else np.float64)
        return a if np.dtype(dtype_of(a)) == want else R.astype(a, dtype=want)

    return R.power(cast(x), cast(y))


def _is_complex(a: Any) -> bool:
    return np.dtype(dtype_of(a)).kind == "c"


# --- reductions ----------------------------------------------------------------------------


def _prod_impl(x, *, axis=None, keepdims=False):
    return np.prod(x, axis=axis, keepdims=keepdims)


def _prod_partials(ans, x, axis):
    """d prod / d x_i = the product of the other entries, exact when some x_i are 0, and
    written so that its own first derivatives are exact too (second order).

    Away from zeros it is prod(non-zero) / x_i times the product of the zero entries (1 if
    none, and a traced 0 otherwise, which keeps the right derivative); at a zero entry it
    is prod(non-zero) times the other zero entries: 1 if it is the only zero, the other
    one if there are two, and 0 for three or more.
    """
    zero = R.equal(x, 0)
    nonzero_x = R.where(zero, 1.0, x)
    p_nonzero = prod(nonzero_x, axis=axis, keepdims=True)
    zero_entries = R.where(zero, x, 1.0)
    elsewhere = p_nonzero / nonzero_x * prod(zero_entries, axis=axis, keepdims=True)
    zeros = R.sum_(_mask_as(zero, x), axis=axis, keepdims=True)
    other_zero = R.sum_(R.where(zero, x, 0.0), axis=axis, keepdims=True) - x
    at_zero = R.where(R.equal(zeros, 1.0), p_nonzero,
                      R.where(R.equal(zeros, 2.0), p_nonzero * other_zero, 0.0))
    return R.where(zero, at_zero, elsewhere)


def _reduce_test(rng):
    x = _uniform(rng, (2, 3, 4))
    y = x.copy()
    y[0, 1, 2] = 0.0  # one zero in a row
    y[1, :2, 0] = 0.0  # two zeros in a column
    y[1, :, 3] = 0.0  # three zeros
    return [((x,), {"axis": None, "keepdims": False}), ((x,), {"axis": 1, "keepdims": False}),
            ((x,), {"axis": (0, 2), "keepdims": True}), ((_uniform(rng, ()),), {}),
            ((y,), {"axis": 1, "keepdims": False})]


prod = defprimitive(
    "prod", _prod_impl,
    vjp=[lambda g, ans, x, *, axis=None, keepdims=False:
         _restore_reduced(g, x, axis, keepdims) * _prod_partials(ans, x, axis)],
    jvp=lambda t, ans, x, *, axis=None, keepdims=False:
        R.sum_(t[0] * _prod_partials(ans, x, axis), axis=axis, keepdims=keepdims),
    test=Examples(_reduce_test), sympy=R._scalar_identity, reduction=True,
)


@implements(np.prod)
def _np_prod(x, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    no_out("prod", {"dtype": dtype, "out": out, **kwargs})
    return prod(x, axis=_ops._axis(axis), keepdims=bool(keepdims))


def _flip_index(ndim: int, axis: int) -> tuple:
    return (slice(None),) * axis + (slice(None, None, -1),)


def _cumsum_impl(x, *, axis):
    return np.cumsum(x, axis=axis)


def _cumsum_vjp(g, ans, x, *, axis):
    index = _flip_index(ndim_of(g), axis % ndim_of(g))
    return R.getitem(cumsum(R.getitem(g, index=index), axis=axis), index=index)


cumsum = defprimitive(
    "cumsum", _cumsum_impl, vjp=[_cumsum_vjp], linear=True,
    batch=leading_batch("cumsum", ("axis",)),
    test=Examples(lambda rng: [((_uniform(rng, (5,)),), {"axis": 0}),
                               ((_uniform(rng, (2, 3, 4)),), {"axis": 1}),
                               ((_uniform(rng, (2, 3)),), {"axis": -1})]),
)


def _axis_or_flat(x, axis):
    if axis is None:
        return _ops.ravel(x), 0
    return x, int(axis) % builtins.max(ndim_of(x), 1)


@implements(np.cumsum)
def _np_cumsum(x, axis=None, dtype=None, out=None):
    no_out("cumsum", {"dtype": dtype, "out": out})
    x, axis = _axis_or_flat(x, axis)
    return cumsum(x, axis=axis)


@implements(np.cumprod)
def _np_cumprod(x, axis=None, dtype=None, out=None):
    # Exact at zeros: entry i is the product of x[..:i+1] (prod's rule), at the price of
    # an n-by-n intermediate along the axis.
    no_out("cumprod", {"dtype": dtype, "out": out})
    x, axis = _axis_or_flat(x, axis)
    x = _moveaxis(x, axis, -1)
    n = shape_of(x)[-1]
    lower = np.tril(np.ones((n, n), dtype=bool))
    spread = R.where(lower, R.reshape(x, shape=shape_of(x)[:-1] + (1, n)), 1.0)
    return _moveaxis(prod(spread, axis=-1), -1, axis)


def _moveaxis(x, source, destination):
    nd = ndim_of(x)
    source, destination = source % nd, destination % nd
    order = [i for i in range(nd) if i != source]
    order.insert(destination, source)
    return x if order == list(range(nd)) else R.transpose(x, axes=tuple(order))


@implements(np.var)
def _np_var(x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    no_out("var", {"dtype": dtype, "out": out, **{k: v for k, v in kwargs.items()
                                                  if k not in ("correction", "mean")}})
    ddof = kwargs.get("correction") or ddof
    axis = _ops._axis(axis)
    centred = x - R.mean(x, axis=axis, keepdims=True)
    n = R._count(x, axis)
    # |x - mean|^2: for complex values, the real x * conj(x), as NumPy.
    sq = real(centred * conj(centred)) if _is_complex(x) else centred * centred
    return R.sum_(sq, axis=axis, keepdims=bool(keepdims)) / (n - ddof)


@implements(np.std)
def _np_std(x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    # sqrt of the variance, with gradient 0 where every entry is equal (variance 0: the
    # minimal-norm subgradient, as for the norm at 0) instead of 0 * inf = NaN.
    var = _np_var(x, axis, dtype, out, ddof, keepdims, **kwargs)
    zero = R.equal(var, 0)
    return R.where(zero, 0.0, R.sqrt(R.where(zero, 1.0, var)))


@implements(np.ptp)
def _np_ptp(x, axis=None, out=None, keepdims=False):
    no_out("ptp", {"out": out})
    axis = _ops._axis(axis)
    return R.max_(x, axis=axis, keepdims=keepdims) - R.min_(x, axis=axis, keepdims=keepdims)


@implements(np.average)
def _np_average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    axis = _ops._axis(axis)
    if weights is None:
        avg = R.mean(a, axis=axis, keepdims=bool(keepdims))
        scale = np.full(shape_of(avg), float(R._count(a, axis)))
    else:
        w = weights
        if shape_of(w) != shape_of(a):
            if axis is None or ndim_of(w) != 1:
                raise TypeError("np.average: weights of a different shape need an int axis")
            ax = axis % ndim_of(a)
            w = R.reshape(w, shape=tuple(-1 if i == ax else 1 for i in range(ndim_of(a))))
        scale = R.sum_(R.broadcast_to(w, shape=shape_of(a)) if shape_of(w) != shape_of(a)
                       else w, axis=axis, keepdims=bool(keepdims))
        avg = R.sum_(a * w, axis=axis, keepdims=bool(keepdims)) / scale
    return (avg, scale) if returned else avg


def _take_along(x, idx, axis):
    """``np.take_along_axis`` as one fancy index: aranges on the other axes, ``idx`` on
    ``axis`` (``idx`` may be traced: jit records the index)."""
    nd = ndim_of(x)
    xs, ishape = shape_of(x), shape_of(idx)
    index = []
    for d in range(nd):
        if d == axis:
            index.append(idx)
        else:
            n = builtins.max(xs[d], ishape[d])
            shape = [1] * nd
            shape[d] = n
            index.append(np.arange(n).reshape(shape))
    return R.getitem(x, index=tuple(index))


@implements(np.take_along_axis)
def _np_take_along_axis(arr, indices, axis=-1):
    if axis is None:
        return _take_along(_ops.ravel(arr), indices, 0)
    return _take_along(arr, indices, int(axis) % ndim_of(arr))


# argpartition has no derivative (integer indices); partition and sort compose it.
argpartition = R._nondiff(
    "argpartition", lambda x, *, kth, axis=-1: np.argpartition(x, kth, axis=axis),
    batch=leading_batch("argpartition", ("axis",)))


@implements(np.sort)
def _np_sort(x, axis=-1, kind=None, order=None, *, stable=None):
    # Ties: the gradient of each output entry goes to the one input entry that NumPy's
    # (stable) argsort put there, as in JAX and PyTorch (docs/conventions.md).
    if order is not None:
        raise TypeError("np.sort(order=...) is for structured arrays")
    x, axis = _axis_or_flat(x, axis)
    return _take_along(x, R.argsort(x, axis=axis, kind="stable"), axis)


@implements(np.partition)
def _np_partition(x, kth, axis=-1, kind="introselect", order=None):
    x, axis = _axis_or_flat(x, axis)
    return _take_along(x, argpartition(x, kth=kth, axis=axis), axis)


@implements(np.median)
def _np_median(x, axis=None, out=None, overwrite_input=False, keepdims=False):
    no_out("median", {"out": out})
    if axis is None:
        xs, ax = _ops.ravel(x), 0
    elif isinstance(axis, tuple | list):
        raise TypeError("np.median over several axes is not supported on traced values")
    else:
        xs, ax = x, int(axis) % ndim_of(x)
    n = shape_of(xs)[ax]
    s = _np_sort(xs, axis=ax)
    lo, hi = (n - 1) // 2, n // 2
    pick = (slice(None),) * ax
    mid = R.getitem(s, index=pick + (slice(lo, hi + 1),))
    out = R.mean(mid, axis=ax, keepdims=True)
    if keepdims:
        return R.reshape(out, shape=keepdims_shape(shape_of(x), axis))
    return R.reshape(out, shape=tuple(m for i, m in enumerate(shape_of(xs)) if i != ax))


@implements(np.nansum)
def _np_nansum(x, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    no_out("nansum", {"dtype": dtype, "out": out, **kwargs})
    return R.sum_(R.where(R.isnan(x), 0.0, x), axis=_ops._axis(axis), keepdims=bool(keepdims))


@implements(np.nanmean)
def _np_nanmean(x, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    no_out("nanmean", {"dtype": dtype, "out": out, **kwargs})
    axis = _ops._axis(axis)
    kept = R.logical_not(R.isnan(x))
    total = R.sum_(R.where(kept, x, 0.0), axis=axis, keepdims=bool(keepdims))
    return total / R.sum_(_mask_as(kept, x), axis=axis, keepdims=bool(keepdims))


@implements(np.nanmax)
def _np_nanmax(x, axis=None, out=None, keepdims=False, **kwargs):
    no_out("nanmax", {"out": out, **kwargs})
    return R.max_(R.where(R.isnan(x), -np.inf, x), axis=_ops._axis(axis),
                  keepdims=bool(keepdims))


@implements(np.nanmin)
def _np_nanmin(x, axis=None, out=None, keepdims=False, **kwargs):
    no_out("nanmin", {"out": out, **kwargs})
    return R.min_(R.where(R.isnan(x), np.inf, x), axis=_ops._axis(axis),
                  keepdims=bool(keepdims))


@implements(np.diff)
def _np_diff(a, n=1, axis=-1, prepend=np._NoValue, append=np._NoValue):
    axis = int(axis) % ndim_of(a)
    parts = []
    for extra, where_ in ((prepend, 0), (None, 1), (append, 2)):
        if where_ == 1:
            parts.append(a)
        elif extra is not np._NoValue:
            shape = list(shape_of(a))
            shape[axis] = 1
            parts.append(R.broadcast_to(extra, shape=tuple(shape)) if ndim_of(extra) == 0
                         else extra)
    if len(parts) > 1:
        a = _ops.concatenate(parts, axis=axis)
    pick = (slice(None),) * axis
    for _ in range(n):
        a = R.getitem(a, index=pick + (slice(1, None),)) - R.getitem(
            a, index=pick + (slice(None, -1),))
    return a


# --- shapes and selection --------------------------------------------------------------------


@implements(np.atleast_1d)
def _np_atleast_1d(*arys):
    out = [_ops._atleast(a, 1) for a in arys]
    return out[0] if len(out) == 1 else tuple(out)


@implements(np.atleast_2d)
def _np_atleast_2d(*arys):
    out = [_ops._atleast(a, 2) for a in arys]
    return out[0] if len(out) == 1 else tuple(out)


@implements(np.atleast_3d)
def _np_atleast_3d(*arys):
    out = [_ops._atleast(a, 3) for a in arys]
    return out[0] if len(out) == 1 else tuple(out)


@implements(np.moveaxis)
def _np_moveaxis(x, source, destination):
    src = [int(s) % ndim_of(x) for s in np.atleast_1d(source)]
    dst = [int(d) % ndim_of(x) for d in np.atleast_1d(destination)]
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination need the same number of axes")
    order = [i for i in range(ndim_of(x)) if i not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return _ops.transpose(x, order)


@implements(np.rollaxis)
def _np_rollaxis(x, axis, start=0):
    nd = ndim_of(x)
    axis = axis % nd
    start = start + nd if start < 0 else start
    if axis < start:
        start -= 1
    if axis == start:
        return x
    order = [i for i in range(nd) if i != axis]
    order.insert(start, axis)
    return R.transpose(x, axes=tuple(order))


@implements(np.dstack)
def _np_dstack(arrays):
    return _ops.concatenate([_ops._atleast(a, 3) for a in arrays], axis=2)


@implements(np.column_stack)
def _np_column_stack(arrays):
    cols = [R.reshape(a, shape=(-1, 1)) if ndim_of(a) < 2 else a for a in arrays]
    return _ops.concatenate(cols, axis=1)


@implements(np.append)
def _np_append(arr, values, axis=None):
    if axis is None:
        return _ops.concatenate([_ops.ravel(arr), _ops.ravel(values)], axis=0)
    return _ops.concatenate([arr, values], axis=axis)


def _split_at(x, bounds, axis):
    pick = (slice(None),) * axis
    return [R.getitem(x, index=pick + (slice(a, b),)) for a, b in bounds]


@implements(np.array_split)
def _np_array_split(x, indices_or_sections, axis=0):
    axis = int(axis) % ndim_of(x)
    n = shape_of(x)[axis]
    if isinstance(indices_or_sections, int | np.integer):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise ValueError("number sections must be larger than 0.")
        each, extra = divmod(n, sections)
        sizes = [each + 1] * extra + [each] * (sections - extra)
        cuts = np.cumsum([0] + sizes).tolist()
    else:
        cuts = [0] + [int(i) for i in indices_or_sections] + [n]
    bounds = [(builtins.min(a, n), builtins.min(builtins.max(a, b), n))
              for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    return _split_at(x, bounds, axis)


@implements(np.split)
def _np_split(x, indices_or_sections, axis=0):
    if isinstance(indices_or_sections, int | np.integer):
        n = shape_of(x)[int(axis) % ndim_of(x)]
        if n % int(indices_or_sections):
            raise ValueError("array split does not result in an equal division")
    return _np_array_split(x, indices_or_sections, axis)


@implements(np.hsplit)
def _np_hsplit(x, indices_or_sections):
    return _np_split(x, indices_or_sections, axis=1 if ndim_of(x) > 1 else 0)


@implements(np.vsplit)
def _np_vsplit(x, indices_or_sections):
    if ndim_of(x) < 2:
        raise ValueError("vsplit only works on arrays of 2 or more dimensions")
    return _np_split(x, indices_or_sections, axis=0)


@implements(np.dsplit)
def _np_dsplit(x, indices_or_sections):
    if ndim_of(x) < 3:
        raise ValueError("dsplit only works on arrays of 3 or more dimensions")
    return _np_split(x, indices_or_sections, axis=2)


@implements(np.tile)
def _np_tile(x, reps):
    reps = (int(reps),) if isinstance(reps, int | np.integer) else tuple(int(r) for r in reps)
    shape = shape_of(x)
    nd = builtins.max(len(shape), len(reps))
    shape = (1,) * (nd - len(shape)) + tuple(shape)
    reps = (1,) * (nd - len(reps)) + reps
    x = R.reshape(x, shape=tuple(v for n in shape for v in (1, n)))
    x = R.broadcast_to(x, shape=tuple(v for r, n in zip(reps, shape, strict=True)
                                      for v in (r, n)))
    return R.reshape(x, shape=tuple(r * n for r, n in zip(reps, shape, strict=True)))


@implements(np.repeat)
def _np_repeat(x, repeats, axis=None):
    x, axis = _axis_or_flat(x, axis)
    n = shape_of(x)[axis]
    index = np.repeat(np.arange(n), repeats)
    return R.getitem(x, index=(slice(None),) * axis + (index,))


@implements(np.roll)
def _np_roll(x, shift, axis=None):
    if axis is None:
        return R.reshape(_np_roll(_ops.ravel(x), shift, 0), shape=shape_of(x))
    shifts = np.broadcast_arrays(np.atleast_1d(shift), np.atleast_1d(axis))
    for s, a in zip(*shifts, strict=True):
        a = int(a) % ndim_of(x)
        n = shape_of(x)[a]
        if n:
            index = (np.arange(n) - int(s)) % n
            x = R.getitem(x, index=(slice(None),) * a + (index,))
    return x


@implements(np.flip)
def _np_flip(x, axis=None):
    axes = normalize_axis(axis, ndim_of(x))
    index = tuple(slice(None, None, -1) if i in axes else slice(None)
                  for i in range(ndim_of(x)))
    return R.getitem(x, index=index)


@implements(np.flipud)
def _np_flipud(x):
    return _np_flip(x, 0)


@implements(np.fliplr)
def _np_fliplr(x):
    return _np_flip(x, 1)


@implements(np.rot90)
def _np_rot90(x, k=1, axes=(0, 1)):
    k %= 4
    a, b = axes
    if k == 0:
        return x
    if k == 2:
        return _np_flip(_np_flip(x, a), b)
    if k == 1:
        return _ops.swapaxes(_np_flip(x, b), a, b)
    return _np_flip(_ops.swapaxes(x, a, b), b)


@implements(np.take)
def _np_take(x, indices, axis=None, out=None, mode="raise"):
    no_out("take", {"out": out})
    x, axis = _axis_or_flat(x, axis)
    n = shape_of(x)[axis]
    if mode == "wrap":
        indices = np.mod(indices, n)
    elif mode == "clip":
        indices = np.clip(indices, 0, n - 1)
    return R.getitem(x, index=(slice(None),) * axis + (indices,))


@implements(np.select)
def _np_select(condlist, choicelist, default=0):
    if len(condlist) != len(choicelist):
        raise ValueError("list of cases must be same length as list of conditions")
    out = default
    for cond, choice in reversed(list(zip(condlist, choicelist, strict=True))):
        out = R.where(cond, choice, out)
    return out


def _pad_width(pad_width, nd):
    pw = np.broadcast_to(np.asarray(pad_width, dtype=int), (nd, 2))  # NumPy's rule
    return [(int(a), int(b)) for a, b in pw]


@implements(np.pad)
def _np_pad(x, pad_width, mode="constant", **kwargs):
    nd = ndim_of(x)
    widths = _pad_width(pad_width, nd)
    if mode == "constant":
        shape = tuple(n + a + b for n, (a, b) in zip(shape_of(x), widths, strict=True))
        index = tuple(slice(a, a + n) for n, (a, _) in zip(shape_of(x), widths, strict=True))
        out = R.scatter_add(x, shape=shape, index=index)
        value = kwargs.get("constant_values", 0)
        if np.any(np.asarray(value) != 0):
            filler = np.pad(np.zeros(shape_of(x), dtype=dtype_of(x)), widths,
                            constant_values=value)
            out = out + filler
        return out
    if mode in ("edge", "reflect", "symmetric", "wrap"):
        # Each padded entry copies one entry of x: one fancy index per axis, computed by
        # padding the positions 0..n-1 themselves.
        for d, (a, b) in enumerate(widths):
            if a or b:
                index = np.pad(np.arange(shape_of(x)[d]), (a, b), mode=mode, **kwargs)
                x = R.getitem(x, index=(slice(None),) * d + (index,))
        return x
    raise TypeError(f"np.pad(mode={mode!r}) is not supported on traced values; the modes "
                    "'constant', 'edge', 'reflect', 'symmetric' and 'wrap' are")


@implements(np.linspace)
def _np_linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0,
                 *, device=None):
    num = int(num)
    div = (num - 1) if endpoint else num
    shape = np.broadcast_shapes(shape_of(start), shape_of(stop))
    steps = np.arange(num, dtype=float).reshape((-1,) + (1,) * len(shape))
    delta = stop - start
    step = delta / div if div > 0 else delta * np.nan
    y = start + steps * step if div > 0 else start + steps * delta
    if endpoint and num > 1:
        y = _ops.concatenate([R.getitem(y, index=slice(None, -1)),
                              R.reshape(R.broadcast_to(stop, shape=shape),
                                        shape=(1,) + tuple(shape))], axis=0)
    if axis != 0:
        y = _moveaxis(y, 0, axis)
    if dtype is not None:
        y = R.astype(y, dtype=np.dtype(dtype))
    return (y, step) if retstep else y


# --- diagonals and triangles ---------------------------------------------------------------


def _diag_positions(rows, cols, k):
    n = builtins.max(0, builtins.min(rows, cols - k) if k >= 0 else builtins.min(rows + k, cols))
    i = np.arange(n) + builtins.max(-k, 0)
    return i, i + k


@implements(np.diagonal)
def _np_diagonal(x, offset=0, axis1=0, axis2=1):
    nd = ndim_of(x)
    a1, a2 = int(axis1) % nd, int(axis2) % nd
    if a1 == a2:
        raise ValueError("axis1 and axis2 cannot be the same")
    order = [i for i in range(nd) if i not in (a1, a2)] + [a1, a2]
    if order != list(range(nd)):
        x = R.transpose(x, axes=tuple(order))
    rows, cols = shape_of(x)[-2:]
    i, j = _diag_positions(rows, cols, int(offset))
    return R.getitem(x, index=(Ellipsis, i, j))


@implements(np.diag)
def _np_diag(v, k=0):
    if ndim_of(v) == 1:
        n = shape_of(v)[0] + abs(int(k))
        i, j = _diag_positions(n, n, int(k))
        return R.scatter_add(v, shape=(n, n), index=(i, j))
    if ndim_of(v) == 2:
        return _np_diagonal(v, k)
    raise ValueError("Input must be 1- or 2-d.")


@implements(np.trace)
def _np_trace(x, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    no_out("trace", {"dtype": dtype, "out": out})
    return R.sum_(_np_diagonal(x, offset, axis1, axis2), axis=-1)


def _triangle(x, k, upper):
    rows, cols = shape_of(x)[-2:]
    mask = (np.triu if upper else np.tril)(np.ones((rows, cols), dtype=bool), k)
    return R.where(mask, x, 0.0)


@implements(np.triu)
def _np_triu(x, k=0):
    return _triangle(x, int(k), True)


@implements(np.tril)
def _np_tril(x, k=0):
    return _triangle(x, int(k), False)


# --- products ------------------------------------------------------------------------------


@implements(np.kron)
def _np_kron(a, b):
    nd = builtins.max(ndim_of(a), ndim_of(b))
    sa = (1,) * (nd - ndim_of(a)) + shape_of(a)
    sb = (1,) * (nd - ndim_of(b)) + shape_of(b)
    a = R.reshape(a, shape=tuple(v for n in sa for v in (n, 1)))
    b = R.reshape(b, shape=tuple(v for n in sb for v in (1, n)))
    return R.reshape(a * b, shape=tuple(m * n for m, n in zip(sa, sb, strict=True)))


@implements(np.cross)
def _np_cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = _moveaxis(a, axisa, -1), _moveaxis(b, axisb, -1)
    na, nb = shape_of(a)[-1], shape_of(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError("incompatible dimensions for cross product (dimension must be 2 or 3)")
    comp = lambda v, i, n: R.getitem(v, index=(Ellipsis, i)) if i < n else 0.0  # noqa: E731
    a0, a1, a2 = (comp(a, i, na) for i in range(3))
    b0, b1, b2 = (comp(b, i, nb) for i in range(3))
    z = a0 * b1 - a1 * b0
    if na == 2 and nb == 2:
        return z
    c = _ops.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, z], axis=-1)
    return _moveaxis(c, -1, axisc)


def _tensordot_axes(a, b, axes):
    if isinstance(axes, int | np.integer):
        n = int(axes)
        return (list(range(ndim_of(a) - n, ndim_of(a))), list(range(n)))
    xa, xb = axes
    xa = [xa] if isinstance(xa, int | np.integer) else list(xa)
    xb = [xb] if isinstance(xb, int | np.integer) else list(xb)
    return [int(i) % ndim_of(a) for i in xa], [int(i) % ndim_of(b) for i in xb]


@implements(np.tensordot)
def _np_tensordot(a, b, axes=2):
    xa, xb = _tensordot_axes(a, b, axes)
    if [shape_of(a)[i] for i in xa] != [shape_of(b)[i] for i in xb]:
        raise ValueError("shape-mismatch for sum")
    free_a = [i for i in range(ndim_of(a)) if i not in xa]
    free_b = [i for i in range(ndim_of(b)) if i not in xb]
    k = int(np.prod([shape_of(a)[i] for i in xa]))
    out_shape = tuple(shape_of(a)[i] for i in free_a) + tuple(shape_of(b)[i] for i in free_b)
    a2 = R.reshape(_ops.transpose(a, free_a + xa), shape=(-1, k))
    b2 = R.reshape(_ops.transpose(b, xb + free_b), shape=(k, -1))
    return R.reshape(R.matmul(a2, b2), shape=out_shape)


def _dot(x, y, out=None):
    no_out("dot", {"out": out})
    if ndim_of(x) == 0 or ndim_of(y) == 0:
        return R.mul(x, y)
    if ndim_of(x) <= 2 and ndim_of(y) <= 2:
        return R.matmul(x, y)
    return _np_tensordot(x, y, axes=([-1], [builtins.max(ndim_of(y) - 2, 0)]))


# Replaces _ops.dot (2-D only) with NumPy's full rule: the last axis of x against the
# second-to-last of y.
implements(np.dot)(_dot)


@implements(np.vdot)
def _np_vdot(a, b):
    a = _ops.ravel(a)
    if _is_complex(a):
        a = _ops.dispatch_table()[np.conjugate](a)
    return R.sum_(a * _ops.ravel(b))


@implements(np.inner)
def _np_inner(a, b):
    if ndim_of(a) == 0 or ndim_of(b) == 0:
        return R.mul(a, b)
    return _np_tensordot(a, b, axes=([-1], [-1]))


# --- complex parts -----------------------------------------------------------------------------
# Cotangents follow JAX's convention: the VJP of a holomorphic function multiplies by f'(z)
# (no conjugate), and for a real-valued f of z = x + iy the gradient is df/dx - i df/dy. A
# real value that meets complex cotangents keeps them until its leaf, where the real part
# is taken (every VJP rule is R-linear in g, so this equals taking it at once).


def _complex_dtype(x):
    dtype = np.dtype(dtype_of(x))
    return dtype if dtype.kind == "c" else np.result_type(dtype, np.complex64)


def _as_cotangent_of(g, x):
    """A real cotangent ``g`` as one of ``x``: complex when ``x`` is complex."""
    if np.dtype(dtype_of(x)).kind != "c":
        return g
    return R.astype(g, dtype=np.dtype(dtype_of(x)))


def _complex_test(rng):
    return [((_uniform(rng, s) + 1j * _uniform(rng, s),), {}) for s in _SHAPES]


def _real_test(rng):
    return [((_uniform(rng, s),), {}) for s in _SHAPES[1:]] + _complex_test(rng)


real = defprimitive("real", np.real, vjp=[lambda g, ans, x: _as_cotangent_of(real(g), x)],
                    linear=True, test=Examples(_real_test), elementwise=True)
imag = defprimitive(
    "imag", np.imag,
    vjp=[lambda g, ans, x: R.mul(_as_cotangent_of(real(g), x), -1j)
         if _is_complex(x) else R.mul(real(g), 0.0)],
    linear=True, test=Examples(_real_test), elementwise=True)
conj = defprimitive("conj", np.conjugate, vjp=[lambda g, ans, x: conj(g)], linear=True,
                    test=Examples(_real_test), numpy=(np.conj,))


def _safe_complex(z):
    zero = R.equal(z, 0)
    return zero, R.where(zero, 1.0, z)


def _complex_abs_vjp(g, ans, z):
    # |z| is real: gradient (x - iy) / |z|, and 0 at z = 0 (the real abs's convention).
    zero, safe = _safe_complex(z)
    return R.where(zero, 0.0, real(g) * (conj(safe) / complex_abs(safe)))


def _complex_abs_jvp(t, ans, z):
    zero, safe = _safe_complex(z)
    return R.where(zero, 0.0, real(conj(safe) * t[0]) / complex_abs(safe))


complex_abs = defprimitive("complex_abs", np.abs, vjp=[_complex_abs_vjp],
                           jvp=_complex_abs_jvp, test=Examples(_complex_test), numpy=())


def _angle_impl(z):
    return np.angle(z)


def _angle_vjp(g, ans, z):
    # angle = atan2(y, x): gradient (-y - ix) / |z|^2 = -i / z; 0 for a real input.
    if not _is_complex(z):
        return R.mul(real(g), 0.0)
    zero, safe = _safe_complex(z)
    return R.where(zero, 0.0, real(g) * (-1j / safe))


def _angle_jvp(t, ans, z):
    if not _is_complex(z):
        return None
    zero, safe = _safe_complex(z)
    return R.where(zero, 0.0, imag(t[0] / safe))


angle = defprimitive("angle", _angle_impl, vjp=[_angle_vjp], jvp=_angle_jvp,
                     test=Examples(_complex_test), elementwise=True)


@implements(np.angle)
def _np_angle(z, deg=False):
    out = angle(z)
    return out * (180.0 / math.pi) if deg else out


@implements(np.abs, np.absolute)
def _np_abs(x, **kwargs):
    no_out("abs", kwargs)
    return complex_abs(x) if _is_complex(x) else R.abs_(x)


@implements(np.real)
def _np_real(x):
    return real(x) if _is_complex(x) else x


@implements(np.imag)
def _np_imag(x):
    return imag(x)
