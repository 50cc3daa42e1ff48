"""The array namespace that holds a value: NumPy now, any Array-API library later.

Primitive implementations call NumPy's ufuncs and functions, which forward to the
array's own library through NumPy's dispatch protocols (``__array_ufunc__``,
``__array_function__``: CuPy and Dask implement both). Only functions that *create*
arrays cannot dispatch on an argument; they ask ``namespace_of`` for the library.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def namespace_of(x: Any) -> Any:
    """The module whose functions make arrays like ``x`` (``numpy`` for plain values)."""
    get = getattr(type(x), "__array_namespace__", None)
    if get is None or isinstance(x, np.ndarray | np.generic):
        return np
    return get(x)


def zeros(shape: tuple[int, ...], dtype: Any, like: Any) -> Any:
    return namespace_of(like).zeros(shape, dtype=dtype)


def ones(shape: tuple[int, ...], dtype: Any, like: Any) -> Any:
    return namespace_of(like).ones(shape, dtype=dtype)
