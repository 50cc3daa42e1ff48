"""The array boundary: the one place that decides what an array is, converts, and creates.

Primitive implementations call NumPy's ufuncs and functions, which forward to the
array's own library through NumPy's dispatch protocols (``__array_ufunc__``,
``__array_function__``: CuPy and Dask implement both). Functions that *create* arrays
cannot dispatch on an argument, so they come here and ask ``namespace_of`` for the
library that holds the value they imitate. Everything else in the package asks this
module whether a value is an array (``is_array``), what its shape and dtype are, and how
to turn user data into one (``as_array``); nowhere else tests ``isinstance(x, np.ndarray)``.

>>> import numpy as np
>>> from glassgrad import _backend as backend
>>> backend.zeros_like(np.ones((2,), dtype=np.float32))
array([0., 0.], dtype=float32)
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

# Python scalars that NumPy treats as weakly typed constants.
SCALAR_TYPES = (bool, int, float, complex)


def namespace_of(x: Any) -> Any:
    """The module whose functions make arrays like ``x`` (``numpy`` for plain values).

    A traced value answers for the array behind it. An array type with
    ``__array_namespace__`` (CuPy) gives its own; one that speaks only NumPy's dispatch
    protocols (Dask) gets creation functions that go through them (``LikeNamespace``).
    """
    x = _innermost(x)
    if type(x) is np.ndarray or isinstance(x, np.generic | numbers.Number):
        return np
    get = getattr(type(x), "__array_namespace__", None)
    if get is not None:
        return get(x)
    if is_foreign_array(x):
        return LikeNamespace(x)
    return np


def _innermost(x: Any) -> Any:
    """The array behind every traced value around ``x`` (itself for arrays)."""
    raw = getattr(x, "_raw", None)
    while raw is not None:
        inner = raw()
        if inner is x:
            break
        x = inner
        raw = getattr(x, "_raw", None)
    return x


class LikeNamespace:
    """Array creation for a library known only through NumPy's dispatch protocols.

    NumPy's ``like=`` argument (NEP 35) and its ``*_like`` functions hand each call to
    the library of ``like`` (``dask.array.zeros``, ...), so the result is of its type.
    An array of the same shape as ``like`` takes its layout (Dask: its chunks).
    """

    def __init__(self, like: Any):
        self.like = like

    def zeros(self, shape: Any, dtype: Any = None) -> Any:
        return self.full(shape, 0, dtype)

    def ones(self, shape: Any, dtype: Any = None) -> Any:
        return self.full(shape, 1, dtype)

    def full(self, shape: Any, value: Any, dtype: Any = None) -> Any:
        shape = tuple(shape) if isinstance(shape, tuple | list) else (int(shape),)
        if dtype is None:
            dtype = np.result_type(value)
        if shape == shape_of(self.like):
            return np.full_like(self.like, value, dtype=dtype)
        return np.full(shape, value, dtype=dtype, like=self.like)

    def asarray(self, value: Any, dtype: Any = None) -> Any:
        return np.asarray(value, dtype=dtype, like=self.like)

    def arange(self, *args: Any, **kwargs: Any) -> Any:
        return np.arange(*args, like=self.like, **kwargs)

    def eye(self, n: int, dtype: Any = None) -> Any:
        return self.asarray(np.eye(n, dtype=dtype))


def is_array(x: Any) -> bool:
    """True for NumPy arrays and scalars (``np.float64``), False for everything else."""
    return isinstance(x, np.ndarray | np.generic)


def is_numpy_array(x: Any) -> bool:
    """True for ``np.ndarray`` alone (not NumPy scalars)."""
    return isinstance(x, np.ndarray)


def is_foreign_array(x: Any) -> bool:
    """An array of another library that speaks NumPy's protocols (Dask, CuPy, ...)."""
    if is_array(x) or isinstance(x, numbers.Number):
        return False
    kind = type(x)
    return hasattr(kind, "__array_function__") and hasattr(x, "shape") and hasattr(x, "dtype")


def is_constant(x: Any) -> bool:
    """A value that may enter a computation as a constant: numbers and arrays."""
    return isinstance(x, numbers.Number | np.ndarray | np.generic) or is_foreign_array(x)


def shape_of(x: Any) -> tuple[int, ...]:
    shape = getattr(x, "shape", None)
    return np.shape(x) if shape is None else tuple(shape)


def ndim_of(x: Any) -> int:
    return len(shape_of(x))


def size_of(x: Any) -> int:
    return int(np.prod(shape_of(x), dtype=np.int64))


def dtype_of(x: Any) -> np.dtype:
    dtype = getattr(x, "dtype", None)
    return np.result_type(x) if dtype is None else np.dtype(dtype)


def float_dtype(dtype: Any) -> np.dtype:
    """``dtype`` if it is inexact, else float64 (the dtype a derivative of it has)."""
    dtype = np.dtype(dtype)
    return dtype if dtype.kind in "fc" else np.dtype(np.float64)


def refuse_unkept(x: Any, what: str = "the value") -> None:
    """``TypeError`` for an array of a library that glassgrad cannot keep.

    An array type keeps its type through the engine only if it speaks NumPy's dispatch
    protocols (``__array_ufunc__`` and ``__array_function__``, as Dask and CuPy do);
    one that offers only a conversion (``__array__``) would be silently turned into a
    NumPy array (for a lazy or device array: computed, or copied to the host).
    """
    if is_array(x) or isinstance(x, numbers.Number) or is_foreign_array(x):
        return
    kind = type(x)
    if any(hasattr(kind, a) for a in ("__array__", "__array_interface__",
                                      "__cuda_array_interface__", "__array_ufunc__")):
        raise TypeError(
            f"{what} is a {kind.__module__}.{kind.__qualname__}, an array type without "
            "NumPy's dispatch protocols (__array_ufunc__ and __array_function__), so "
            "glassgrad cannot keep its type and will not convert it silently; convert it "
            "yourself first (np.asarray(x), or the library's own transfer to NumPy)")


def as_array(data: Any, dtype: Any = None) -> Any:
    """User data as an array: foreign arrays keep their type, the rest becomes NumPy."""
    if is_foreign_array(data):
        return data if dtype is None else data.astype(dtype)
    refuse_unkept(data, "the data")
    arr = np.array(data, dtype=dtype)
    if arr.dtype == object or arr.dtype.kind in "USVM":
        raise TypeError(f"cannot make an array from {type(data).__name__} data of dtype "
                        f"{arr.dtype}; use numbers, nested lists of numbers or arrays")
    return arr


def as_constant(x: Any) -> Any:
    """A constant operand: NumPy and foreign arrays as they are, lists as NumPy arrays."""
    if isinstance(x, list | tuple):
        return as_array(x)
    return x


def zeros(shape: tuple[int, ...], dtype: Any, like: Any = None) -> Any:
    return namespace_of(like).zeros(shape, dtype=dtype)


def ones(shape: tuple[int, ...], dtype: Any, like: Any = None) -> Any:
    return namespace_of(like).ones(shape, dtype=dtype)


def full(shape: tuple[int, ...], value: Any, dtype: Any, like: Any = None) -> Any:
    return namespace_of(like).full(shape, value, dtype=dtype)


def zeros_like(x: Any) -> Any:
    """A zero array with the shape of ``x`` and its float dtype (a derivative's dtype).

    ``x`` may be a traced value: only its shape and dtype are read, and the zeros are a
    constant of the library that holds its concrete value. A scalar gets a NumPy scalar,
    which every array library takes as an operand (CuPy refuses 0-d NumPy arrays).
    """
    value = concrete(x)
    if isinstance(value, numbers.Number | np.generic):
        return float_dtype(dtype_of(x)).type(0)
    return zeros(shape_of(x), float_dtype(dtype_of(x)), like=value)


def ones_like(x: Any) -> Any:
    return ones(shape_of(x), float_dtype(dtype_of(x)), like=concrete(x))


def basis(shape: tuple[int, ...], dtype: Any, like: Any = None) -> Any:
    """All unit vectors of a space of ``shape``, stacked: shape ``(size,) + shape``."""
    n = int(np.prod(shape, dtype=np.int64))
    eye = namespace_of(like).eye(n, dtype=dtype)
    return eye.reshape((n,) + tuple(shape))


def scatter_add(shape: tuple[int, ...], index: Any, values: Any, repeats: bool = True) -> Any:
    """Zeros of ``shape`` with ``values`` added at ``index``; repeated indices accumulate
    (the transpose of ``x[index]``)."""
    dtype = np.result_type(dtype_of(values), np.float32)
    if (repeats and is_dask_array(values)) or any(is_dask_array(i) for i in _parts(index)):
        return _dask_scatter_add(shape, index, values, dtype)
    out = zeros(shape, dtype, like=values)
    if not repeats:
        if is_dask_array(out):  # Dask's assignment takes no None: drop those axes
            index = tuple(i for i in _parts(index) if i is not None)
            values = values.reshape(out[index].shape)
        out[index] = values
        return out
    try:  # NumPy's ufunc.at, which CuPy (and every library with __array_ufunc__) takes
        np.add.at(out, index, values)
    except TypeError:
        raise TypeError(f"scatter-add (the gradient of x[index] with repeated or array "
                        f"indices) is not supported for {type(out).__name__} arrays: "
                        "their library has no add.at") from None
    return out


def _parts(index: Any) -> tuple:
    return index if isinstance(index, tuple) else (index,)


def is_dask_array(x: Any) -> bool:
    """A Dask array (lazy: its values exist only once its graph is computed)."""
    return type(x).__module__.startswith("dask.") and hasattr(x, "__dask_graph__")


def _dask_scatter_add(shape: tuple[int, ...], index: Any, values: Any, dtype: Any) -> Any:
    """Dask has no ``add.at``: one task scatters the values with NumPy's, lazily (the
    index and values are computed where the task runs, never here)."""
    import dask
    import dask.array as da

    def scatter(index: Any, values: Any) -> np.ndarray:
        out = np.zeros(shape, dtype)
        np.add.at(out, index, values)
        return out

    task = dask.delayed(scatter, pure=True)(index, values)
    return da.from_delayed(task, shape, dtype=dtype)


def copy(x: Any) -> Any:
    return x.copy()


def to_numpy(x: Any) -> np.ndarray:
    """An explicit, named transfer to host memory (for printing and saving only)."""
    if is_array(x):
        return np.asarray(x)
    get = getattr(x, "get", None)  # CuPy
    if callable(get):
        return np.asarray(get())
    compute = getattr(x, "compute", None)  # Dask
    if callable(compute):
        return np.asarray(compute())
    return np.asarray(x)


def concrete(x: Any) -> Any:
    """The value behind every derivative tracer around ``x``.

    Under ``jit`` (or another non-derivative interpreter) that value is itself a tracer,
    which is what shape and dtype questions should see.
    """
    raw = getattr(x, "_raw", None)
    while raw is not None and getattr(x, "_differentiating", False):
        x = raw()
        raw = getattr(x, "_raw", None)
    return x
