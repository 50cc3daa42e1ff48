"""A strict stand-in for a device array library (CuPy), for tests without a GPU.

``StrictArray`` holds a NumPy array but behaves like an array of another library: it
speaks NumPy's dispatch protocols (``__array_ufunc__``, ``__array_function__``) and
``__array_namespace__`` (a namespace that wraps NumPy), and it refuses, as CuPy does,
every implicit conversion to NumPy: ``np.asarray(x)`` raises, and so does mixing it
with a NumPy array of one or more elements in a ufunc or function. Only the explicit
``x.get()`` transfers to NumPy. So a test that runs the engine on it catches any hidden
host conversion or NumPy constant as long as the data, without a GPU.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

# Functions that build an array from host data or from a shape: they may take NumPy
# values (as cupy.asarray does); every other function refuses them.
_CREATION = {np.asarray, np.array, np.asanyarray, np.ascontiguousarray, np.zeros, np.ones,
             np.full, np.empty, np.eye, np.arange, np.zeros_like, np.ones_like,
             np.full_like, np.empty_like, np.linspace, np.identity}


class StrictConversionError(TypeError):
    """An implicit conversion of a StrictArray to NumPy (CuPy raises TypeError too)."""


class StrictArray(NDArrayOperatorsMixin):
    __slots__ = ("_a",)

    def __init__(self, a: Any):
        if isinstance(a, StrictArray):
            a = a._a
        self._a = np.array(a)

    # --- explicit transfer, and the conversions CuPy refuses -------------------------------
    def get(self) -> np.ndarray:
        """The explicit transfer to host memory (``cupy.ndarray.get``)."""
        return self._a.copy()

    def __array__(self, dtype=None, copy=None):
        raise StrictConversionError(
            "StrictArray refuses implicit conversion to a NumPy array (as CuPy does); "
            "use .get() to transfer explicitly")

    # --- attributes ------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    T = property(lambda self: StrictArray(self._a.T))

    def __len__(self) -> int:
        return len(self._a)

    def __repr__(self) -> str:
        return f"StrictArray({self._a!r})"

    def __float__(self) -> float:  # a 0-d device value read on purpose (CuPy allows it)
        return float(self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def item(self) -> Any:
        return self._a.item()

    def __getitem__(self, index: Any) -> StrictArray:
        return _wrap(self._a[_unwrap(index, allow_host=True)])

    def __setitem__(self, index: Any, value: Any) -> None:
        self._a[_unwrap(index, allow_host=True)] = _unwrap(value)

    def __array_namespace__(self, api_version: Any = None) -> types.SimpleNamespace:
        return NAMESPACE

    # --- methods, as NumPy's functions -----------------------------------------------------
    def astype(self, dtype: Any, copy: bool = True) -> StrictArray:
        return StrictArray(self._a.astype(dtype, copy=copy))

    def copy(self) -> StrictArray:
        return StrictArray(self._a.copy())

    def reshape(self, *shape: Any, **kwargs: Any) -> StrictArray:
        return _wrap(self._a.reshape(*shape, **kwargs))

    def transpose(self, *axes: Any) -> StrictArray:
        return _wrap(self._a.transpose(*axes))

    def ravel(self) -> StrictArray:
        return _wrap(self._a.ravel())

    def sum(self, *a, **k): return np.sum(self, *a, **k)
    def mean(self, *a, **k): return np.mean(self, *a, **k)
    def max(self, *a, **k): return np.max(self, *a, **k)
    def min(self, *a, **k): return np.min(self, *a, **k)
    def prod(self, *a, **k): return np.prod(self, *a, **k)
    def any(self, *a, **k): return np.any(self, *a, **k)
    def all(self, *a, **k): return np.all(self, *a, **k)
    def dot(self, other): return np.dot(self, other)

    # --- NumPy's protocols -----------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if not all(_known(x) for x in inputs + tuple(kwargs.get("out", ()))):
            return NotImplemented
        what = f"np.{ufunc.__name__}"
        if method == "at":  # indices may come from the host, as in x[index]
            inputs = (_unwrap(inputs[0], what=what), _unwrap(inputs[1], allow_host=True),
                      *_unwrap(inputs[2:], what=what))
        else:
            inputs = _unwrap(inputs, what=what)
        kwargs = _unwrap(kwargs, what=what)
        out = getattr(ufunc, method)(*inputs, **kwargs)
        if method == "at":
            return None
        return _wrap(out)

    def __array_function__(self, func, types_, args, kwargs):
        if not all(issubclass(t, StrictArray | np.ndarray) for t in types_):
            return NotImplemented
        host = func in _CREATION
        args = _unwrap(args, allow_host=host, what=f"np.{func.__name__}")
        kwargs = _unwrap(kwargs, allow_host=host, what=f"np.{func.__name__}")
        kwargs.pop("like", None)
        return _wrap(func(*args, **kwargs))


def _known(x: Any) -> bool:
    """Operands this type computes with; others (tracers) take the call themselves."""
    return not hasattr(type(x), "__array_ufunc__") or isinstance(x, StrictArray | np.ndarray
                                                                  | np.generic)


def _unwrap(x: Any, allow_host: bool = False, what: str = "") -> Any:
    if isinstance(x, StrictArray):
        return x._a
    if isinstance(x, np.ndarray) and not allow_host:  # 0-d too: CuPy takes only scalars
        raise StrictConversionError(
            f"{what} mixes a StrictArray with a NumPy array of shape {x.shape}: a device "
            "library (CuPy) refuses host arrays here; create the constant with the "
            "array's own namespace")
    if isinstance(x, tuple | list):
        return type(x)(_unwrap(i, allow_host, what) for i in x)
    if isinstance(x, dict):
        return {k: _unwrap(v, allow_host, what) for k, v in x.items()}
    return x


def _wrap(x: Any) -> Any:
    if isinstance(x, np.ndarray | np.generic):
        return StrictArray(x)
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # NumPy's named results (eigh, svd)
        return type(x)(*(_wrap(i) for i in x))
    if isinstance(x, tuple | list):
        return type(x)(_wrap(i) for i in x)
    return x


def _namespace_function(func: Any) -> Any:
    def call(*args, **kwargs):
        return _wrap(func(*_unwrap(args, allow_host=True), **_unwrap(kwargs, allow_host=True)))

    call.__name__ = getattr(func, "__name__", "function")
    return call


class _Namespace(types.SimpleNamespace):
    """``numpy`` with every function returning StrictArrays (CuPy's ``cupy`` module)."""

    def __getattr__(self, name: str) -> Any:
        value = getattr(np, name)
        if callable(value) and not isinstance(value, type):
            return _namespace_function(value)
        return value


NAMESPACE = _Namespace()


def strict(x: Any) -> StrictArray:
    """A StrictArray copy of host data (``cupy.asarray``)."""
    return StrictArray(np.asarray(x))
