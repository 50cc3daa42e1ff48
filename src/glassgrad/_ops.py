"""NumPy's dispatch onto the rule table, and operations composed from primitives.

What a traced value does with a NumPy call is looked up in one table, built from the
rule table itself: every primitive's row names the NumPy callables it implements (a ufunc
implementation names itself), and the few NumPy functions whose arguments need
normalising first (``np.sum(x, axis=[0, 1])``, ``np.stack``, ``np.clip``) are composites
registered here with ``@implements``. Any other NumPy call on a traced value raises
``TypeError`` naming the function; nothing is computed on the side.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _backend as backend
from . import _rules as R
from ._backend import dtype_of, ndim_of, shape_of
from ._primitive import PRIMITIVES, Primitive, _Registry
from ._rules import normalize_axis

# NumPy callable -> a function of the same signature made of primitives.
_COMPOSITES: dict[Callable[..., Any], Callable[..., Any]] = {}


def implements(*numpy_functions: Callable[..., Any]) -> Callable[[Callable], Callable]:
    """Register a composite as what ``numpy_functions`` do on traced values."""
    def register(fun: Callable) -> Callable:
        for f in numpy_functions:
            _COMPOSITES[f] = fun
        return fun

    return register


_table_cache: tuple[Any, dict] = (None, {})


def dispatch_table() -> dict[Callable[..., Any], Primitive | Callable[..., Any]]:
    """NumPy callable -> primitive or composite, derived from the rule table's rows.

    Rebuilt whenever the table changes (a row registered or removed, built in or through
    ``gg.extend``), so a new row is reachable from NumPy at once. Every NumPy call on a
    traced value asks, so the common case is one comparison.
    """
    version, table = _table_cache
    if version == _Registry.version and (_SCIPY_DONE or "scipy.special" not in sys.modules):
        return table
    return _rebuilt_table()


def _rebuilt_table() -> dict[Callable[..., Any], Primitive | Callable[..., Any]]:
    global _table_cache
    _scipy_rows()
    table: dict = {}
    for prim in PRIMITIVES.values():
        for f in prim.numpy:
            table[f] = prim
    table.update(_COMPOSITES)
    _table_cache = (_Registry.version, table)
    return table


def unsupported(func: Any) -> TypeError:
    return TypeError(f"{numpy_name(func)} is not supported on traced values (no rule in the "
                     "table); see gg.extend.defprimitive to add one")


def numpy_name(func: Any) -> str:
    if isinstance(func, np.ufunc):
        return f"np.{func.__name__}"
    module = getattr(func, "__module__", "numpy") or "numpy"
    parts = [p for p in module.split(".") if not p.startswith("_")]
    return ".".join(["np", *parts[1:], getattr(func, "__name__", repr(func))])


def no_out(name: str, kwargs: dict) -> None:
    bad = {k: v for k, v in kwargs.items() if v is not None and k != "keepdims"}
    if bad:
        raise TypeError(f"np.{name} on a traced value does not support the arguments "
                        f"{sorted(bad)} (in-place output and dtype changes cut the graph)")


def _axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


# --- reductions ----------------------------------------------------------------------------


@implements(np.sum)
def sum(x, axis=None, dtype=None, out=None, keepdims=False, **kwargs):  # noqa: A001
    no_out("sum", {"dtype": dtype, "out": out, **kwargs})
    return R.sum_(x, axis=_axis(axis), keepdims=bool(keepdims))


@implements(np.mean)
def mean(x, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    no_out("mean", {"dtype": dtype, "out": out, **kwargs})
    return R.mean(x, axis=_axis(axis), keepdims=bool(keepdims))


@implements(np.max, np.amax)
def max(x, axis=None, out=None, keepdims=False, **kwargs):  # noqa: A001
    no_out("max", {"out": out, **kwargs})
    return R.max_(x, axis=_axis(axis), keepdims=bool(keepdims))


@implements(np.min, np.amin)
def min(x, axis=None, out=None, keepdims=False, **kwargs):  # noqa: A001
    no_out("min", {"out": out, **kwargs})
    return R.min_(x, axis=_axis(axis), keepdims=bool(keepdims))


@implements(np.argmax)
def argmax(x, axis=None, out=None, keepdims=False):
    no_out("argmax", {"out": out})
    return R.argmax(x, axis=axis, keepdims=bool(keepdims))


@implements(np.argmin)
def argmin(x, axis=None, out=None, keepdims=False):
    no_out("argmin", {"out": out})
    return R.argmin(x, axis=axis, keepdims=bool(keepdims))


@implements(np.argsort)
def argsort(x, axis=-1, kind=None, order=None, stable=None):
    if order is not None:
        raise TypeError("np.argsort(order=...) is for structured arrays")
    return R.argsort(x, axis=axis, kind=kind, stable=stable)


@implements(np.any)
def any(x, axis=None, out=None, keepdims=False, **kwargs):  # noqa: A001
    no_out("any", {"out": out, **kwargs})
    return R.any_(x, axis=_axis(axis), keepdims=bool(keepdims))


@implements(np.all)
def all(x, axis=None, out=None, keepdims=False, **kwargs):  # noqa: A001
    no_out("all", {"out": out, **kwargs})
    return R.all_(x, axis=_axis(axis), keepdims=bool(keepdims))


@implements(np.count_nonzero)
def count_nonzero(x, axis=None, keepdims=False):
    return R.count_nonzero(x, axis=_axis(axis), keepdims=bool(keepdims))


@implements(np.nonzero)
def nonzero(x):
    return R.nonzero(x)


@implements(np.isclose)
def isclose(x, y, rtol=1e-05, atol=1e-08, equal_nan=False):
    return R.isclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan)


@implements(np.allclose)
def allclose(x, y, rtol=1e-05, atol=1e-08, equal_nan=False):
    # A Python bool: a concrete value is needed, so jit refuses it (naming the line).
    return bool(R.all_(isclose(x, y, rtol, atol, equal_nan)))


@implements(np.array_equal)
def array_equal(x, y, equal_nan=False):
    if shape_of(x) != shape_of(y):
        return False
    same = R.equal(x, y)
    if equal_nan:
        same = R.logical_or(same, R.logical_and(R.isnan(x), R.isnan(y)))
    return bool(R.all_(same))


@implements(np.round, np.around)
def round(x, decimals=0, out=None):  # noqa: A001
    no_out("round", {"out": out})
    return R.round_(x, decimals=int(decimals))


# --- shapes --------------------------------------------------------------------------------


@implements(np.reshape)
def reshape(x, shape=None, *more: int, order="C", newshape=None, copy=None):
    if order != "C":
        raise TypeError("reshape of a traced value supports only order='C'")
    shape = newshape if shape is None else shape
    if more or isinstance(shape, int | np.integer):
        shape = (shape, *more)
    return R.reshape(x, shape=tuple(int(s) for s in shape))


@implements(np.transpose)
def transpose(x, axes=None):
    if axes is not None:
        axes = tuple(int(a) % ndim_of(x) for a in axes)
    return R.transpose(x, axes=axes)


@implements(np.swapaxes)
def swapaxes(x, axis1, axis2):
    axes = list(range(ndim_of(x)))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return R.transpose(x, axes=tuple(axes))


@implements(np.expand_dims)
def expand_dims(x, axis):
    axes = axis if isinstance(axis, tuple | list) else (axis,)
    out_ndim = ndim_of(x) + len(axes)
    # Negative axes count from the end of the *result*, as NumPy does.
    positions = normalize_axis(tuple(axes), out_ndim)
    if len(positions) != len(axes):
        raise ValueError(f"repeated axis in expand_dims: {axis}")
    rest = iter(shape_of(x))
    shape = tuple(1 if i in positions else next(rest) for i in range(out_ndim))
    return R.reshape(x, shape=shape)


@implements(np.squeeze)
def squeeze(x, axis=None):
    shape = shape_of(x)
    axes = normalize_axis(axis, len(shape)) if axis is not None else tuple(
        i for i, n in enumerate(shape) if n == 1)
    if builtins.any(shape[a] != 1 for a in axes):
        raise ValueError(f"cannot squeeze axis {axis} of shape {shape}: its size is not 1")
    return R.reshape(x, shape=tuple(n for i, n in enumerate(shape) if i not in axes))


@implements(np.ravel)
def ravel(x, order="C"):
    return reshape(x, (-1,), order=order)


@implements(np.broadcast_to)
def broadcast_to(x, shape, subok=False):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return x if shape_of(x) == shape else R.broadcast_to(x, shape=shape)


def _check_dtype(name: str, dtype: Any, casting: Any = None) -> None:
    if dtype is not None and np.dtype(dtype).kind not in "fc":
        raise TypeError(f"np.{name}(dtype={np.dtype(dtype)}) would cut the graph; use a "
                        "float dtype, or cast the result with .astype")


def _cast_all(arrays: list, dtype: Any) -> list:
    if dtype is None:
        return arrays
    return [R.astype(a, dtype=np.dtype(dtype)) if dtype_of(a) != np.dtype(dtype) else a
            for a in arrays]


@implements(np.concatenate)
def concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    no_out("concatenate", {"out": out})
    _check_dtype("concatenate", dtype)
    arrays = _cast_all(list(arrays), dtype)
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    return R.concatenate(*arrays, axis=int(axis))


@implements(np.stack)
def stack(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    no_out("stack", {"out": out})
    _check_dtype("stack", dtype)
    arrays = _cast_all(list(arrays), dtype)
    if not arrays:
        raise ValueError("need at least one array to stack")
    shapes = {shape_of(a) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"all input arrays must have the same shape, got {sorted(shapes)}")
    return R.concatenate(*[expand_dims(a, axis) for a in arrays], axis=int(axis))


def _atleast(x, ndim):
    shape = shape_of(x)
    if len(shape) >= ndim:
        return x
    if ndim == 3 and len(shape) == 2:
        return reshape(x, shape + (1,))
    if ndim == 3:
        return reshape(x, (1,) + (shape or (1,)) + (1,))
    return reshape(x, (1,) * (ndim - len(shape)) + shape)


@implements(np.hstack)
def hstack(arrays, dtype=None, casting="same_kind"):
    arrays = [_atleast(a, 1) for a in arrays]
    return concatenate(arrays, axis=0 if ndim_of(arrays[0]) == 1 else 1, dtype=dtype)


@implements(np.vstack)
def vstack(arrays, dtype=None, casting="same_kind"):
    return concatenate([_atleast(a, 2) for a in arrays], axis=0, dtype=dtype)


@implements(np.where)
def where(cond, x=None, y=None):
    if x is None and y is None:
        return R.nonzero(cond)  # the one-argument form gives indices
    if x is None or y is None:
        raise ValueError("either both or neither of x and y should be given")
    return R.where(cond, x, y)


@implements(np.clip)
def clip(x, a_min=None, a_max=None, out=None, *, min=None, max=None, **kwargs):  # noqa: A002
    no_out("clip", {"out": out, **kwargs})
    lo = a_min if min is None else min
    hi = a_max if max is None else max
    if lo is None and hi is None:
        raise ValueError("one of max or min must be given")
    return R.clip(x, backend.as_constant(lo), backend.as_constant(hi))


# --- products ------------------------------------------------------------------------------


def matmul(x, y, **kwargs):
    no_out("matmul", kwargs)
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


implements(np.matmul)(matmul)


@implements(np.dot)
def dot(x, y, out=None):
    no_out("dot", {"out": out})
    if ndim_of(x) == 0 or ndim_of(y) == 0:
        return R.mul(x, y)
    if ndim_of(x) <= 2 and ndim_of(y) <= 2:
        return R.matmul(x, y)
    raise TypeError("np.dot of arrays with more than 2 dimensions is not supported on "
                    "traced values; use np.matmul")


@implements(np.outer)
def outer(x, y, out=None):
    no_out("outer", {"out": out})
    return R.mul(reshape(x, (-1, 1)), reshape(y, (1, -1)))


# --- elementwise composites ------------------------------------------------------------------


@implements(np.square)
def square(x, **kwargs):
    no_out("square", kwargs)
    return R.mul(x, x)


@implements(np.reciprocal)
def reciprocal(x, **kwargs):
    no_out("reciprocal", kwargs)
    return R.div(1.0, x)


@implements(np.positive)
def positive(x, **kwargs):
    no_out("positive", kwargs)
    return x


@implements(np.divmod)
def divmod_(x, y, **kwargs):
    no_out("divmod", kwargs)
    return R.floor_divide(x, y), R.remainder(x, y)


@implements(np.modf)
def modf(x, **kwargs):
    no_out("modf", kwargs)
    whole = R.trunc(x)
    return x - whole, whole


# --- metadata: shapes and dtypes are static, so reading them cuts nothing ------------------


@implements(np.shape)
def _shape(x):
    return shape_of(x)


@implements(np.ndim)
def _ndim(x):
    return ndim_of(x)


@implements(np.size)
def _size(x, axis=None):
    shape = shape_of(x)
    return int(np.prod(shape)) if axis is None else shape[axis]


@implements(np.result_type)
def _result_type(*arrays_and_dtypes):
    return np.result_type(*[dtype_of(a) if hasattr(a, "dtype") else a
                            for a in arrays_and_dtypes])


@implements(np.iscomplexobj)
def _iscomplexobj(x):
    return dtype_of(x).kind == "c"


@implements(np.isrealobj)
def _isrealobj(x):
    return dtype_of(x).kind != "c"


def _like(fill_value: Any):
    def like(x, dtype=None, order="K", subok=True, shape=None, **kwargs):
        out_shape = shape_of(x) if shape is None else shape
        dtype = dtype or dtype_of(x)
        value = kwargs.get("fill_value", fill_value)
        return backend.full(out_shape, value, dtype, like=backend.concrete(x))

    return like


implements(np.zeros_like)(_like(0))
implements(np.ones_like)(_like(1))
implements(np.empty_like)(_like(0))


@implements(np.full_like)
def _full_like(x, fill_value, dtype=None, order="K", subok=True, shape=None):
    return _like(fill_value)(x, dtype=dtype, shape=shape)


# --- stable compositions -------------------------------------------------------------------


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """log(sum(exp(x))) without overflow: the maximum is shifted out first.

    >>> import numpy as np, glassgrad as gg
    >>> float(gg.logsumexp(np.array([1000.0, 1000.0])))
    1000.6931471805599
    """
    shift = R.stop_gradient(R.max_(x, axis=_axis(axis), keepdims=True))
    shift = R.where(R.isfinite(shift), shift, 0.0)
    out = R.log(R.sum_(R.exp(x - shift), axis=_axis(axis), keepdims=True)) + shift
    return out if keepdims else squeeze(out, axis=axis) if axis is not None else reshape(out, ())


def softmax(x: Any, axis: int = -1) -> Any:
    """exp(x) / sum(exp(x)) along ``axis``, stable for large inputs.

    >>> import numpy as np, glassgrad as gg
    >>> gg.softmax(np.array([0.0, 0.0]))
    array([0.5, 0.5])
    """
    z = R.exp(x - R.stop_gradient(R.max_(x, axis=axis, keepdims=True)))
    return z / R.sum_(z, axis=axis, keepdims=True)


def log_softmax(x: Any, axis: int = -1) -> Any:
    """log(softmax(x)), computed as x - logsumexp(x) so it stays finite.

    >>> import numpy as np, glassgrad as gg
    >>> gg.log_softmax(np.array([1e4, 0.0]))
    array([     0., -10000.])
    """
    return x - logsumexp(x, axis=axis, keepdims=True)


def stop_gradient(x: Any) -> Any:
    """``x`` with no derivative in any mode or at any level (JAX's ``stop_gradient``).

    >>> import numpy as np, glassgrad as gg
    >>> float(gg.grad(lambda x: x * gg.stop_gradient(x))(3.0))
    3.0
    """
    return R.stop_gradient(x)


# --- more of NumPy: rows and composites by area (each module registers on import) ----------

from . import _rules_fft, _rules_linalg, _rules_more  # noqa: E402,F401  (they use the above)


def _scipy_rows() -> bool:
    """Register scipy.special's rows (the optional extra ``scipy``) once SciPy is in use.

    A scipy.special ufunc can only meet a traced value after the user imported it, so the
    rows are registered then (on the next dispatch), and importing glassgrad does not pay
    for importing SciPy.
    """
    global _SCIPY_DONE
    if not _SCIPY_DONE and "scipy.special" in sys.modules:
        _SCIPY_DONE = True
        try:
            from . import _rules_scipy  # noqa: F401
        except ImportError:  # pragma: no cover - a broken SciPy
            pass
    return _SCIPY_DONE


_SCIPY_DONE = False
_scipy_rows()
