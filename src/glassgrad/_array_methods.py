"""Operators, methods and NumPy protocols shared by every traced value.

``Tensor`` (reverse mode, eager or inside a transform) and ``Dual`` (forward mode) both
behave like NumPy arrays: the operators, the familiar methods, and NumPy's dispatch
protocols all route to primitives.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _ops
from . import _rules as R
from ._primitive import Primitive, Traced
from ._rules import raw


def _concrete_index(index: Any) -> Any:
    """Indices may hold traced integer arrays or masks; only their values matter."""
    if isinstance(index, tuple):
        return tuple(_concrete_index(i) for i in index)
    if isinstance(index, Traced):
        return raw(index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


_NO_PARAMS: dict = {}


def _binary(prim: Primitive, x: Any, y: Any) -> Any:
    if isinstance(x, Traced):
        if isinstance(y, Traced):
            return prim(x, y)
        return x._process(prim, (x, y), _NO_PARAMS)
    return y._process(prim, (x, y), _NO_PARAMS)


class ArrayMethods(Traced):
    __slots__ = ()

    # --- subclasses provide ----------------------------------------------------------------
    def _raw(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _concretize_error(self, what: str) -> TypeError:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- array attributes ------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return np.shape(raw(self))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def dtype(self) -> np.dtype:
        return np.asarray(raw(self)).dtype

    @property
    def T(self) -> Any:
        return R.transpose(self, axes=None)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # --- arithmetic ------------------------------------------------------------------------
    # With a constant on the other side, self owns the operation: skip the level search.
    def __add__(self, other): return _binary(R.add, self, other)
    def __radd__(self, other): return _binary(R.add, other, self)
    def __sub__(self, other): return _binary(R.sub, self, other)
    def __rsub__(self, other): return _binary(R.sub, other, self)
    def __mul__(self, other): return _binary(R.mul, self, other)
    def __rmul__(self, other): return _binary(R.mul, other, self)
    def __truediv__(self, other): return _binary(R.div, self, other)
    def __rtruediv__(self, other): return _binary(R.div, other, self)
    def __pow__(self, other): return _binary(R.power, self, other)
    def __rpow__(self, other): return _binary(R.power, other, self)
    def __matmul__(self, other): return _ops.matmul(self, other)
    def __rmatmul__(self, other): return _ops.matmul(other, self)
    def __neg__(self): return R.neg(self)
    def __pos__(self): return self
    def __abs__(self): return R.abs_(self)

    # Comparisons look at values only and give plain boolean arrays (as PyTorch masks do).
    def __lt__(self, other): return raw(self) < raw(other)
    def __le__(self, other): return raw(self) <= raw(other)
    def __gt__(self, other): return raw(self) > raw(other)
    def __ge__(self, other): return raw(self) >= raw(other)
    def __eq__(self, other): return raw(self) == raw(other)  # type: ignore[override]
    def __ne__(self, other): return raw(self) != raw(other)  # type: ignore[override]
    __hash__ = object.__hash__  # identity, so traced values can key dicts and sets

    def __getitem__(self, index: Any) -> Any:
        return R.getitem(self, index=_concrete_index(index))

    def __bool__(self) -> bool:
        # Python control flow on concrete values is allowed in every transform.
        return bool(raw(self))

    # --- methods ---------------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False): return _ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _ops.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return _ops.max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return _ops.min(self, axis, keepdims)
    def reshape(self, *shape): return _ops.reshape(self, *shape)
    def flatten(self): return _ops.ravel(self)
    def ravel(self): return _ops.ravel(self)
    def squeeze(self, axis=None): return _ops.squeeze(self, axis)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], tuple | list):
            axes = tuple(axes[0])
        return _ops.transpose(self, axes or None)

    def exp(self): return R.exp(self)
    def log(self): return R.log(self)
    def sqrt(self): return R.sqrt(self)
    def sin(self): return R.sin(self)
    def cos(self): return R.cos(self)
    def tanh(self): return R.tanh(self)
    def relu(self): return R.relu(self)
    def abs(self): return R.abs_(self)
    def dot(self, other): return _ops.dot(self, other)

    def sigmoid(self, a: float = 1.0):
        """1 / (1 + exp(-a * s)), stable for any magnitude of ``a * s``."""
        return R.sigmoid(self, a=a)

    def clip(self, lo=None, hi=None): return _ops.clip(self, lo, hi)

    def astype(self, dtype, copy=True):
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"astype({dtype}) would cut the graph; only float dtypes keep it")
        return self if dtype == self.dtype and not copy else R.astype(self, dtype=dtype)

    # --- NumPy protocols -------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        op = _ops.UFUNCS.get(ufunc)
        if op is None or method != "__call__" or kwargs:
            return self._unusual_ufunc(ufunc, method, inputs, kwargs)
        if len(inputs) == 1 and type(op) is Primitive:
            return self._process(op, inputs, _NO_PARAMS)  # self is the only input
        return op(*inputs)

    def _unusual_ufunc(self, ufunc, method, inputs, kwargs):
        if method != "__call__":
            raise TypeError(f"np.{ufunc.__name__}.{method} is not supported on traced "
                            "values; use the matching reduction (np.sum, np.max, ...)")
        if ufunc in _ops.NONDIFFERENTIABLE_UFUNCS:
            return ufunc(*[raw(x) for x in inputs], **kwargs)
        if ufunc not in _ops.UFUNCS:
            raise TypeError(f"np.{ufunc.__name__} is not supported on traced values "
                            "(no derivative rule); see gg.extend.defprimitive to add one")
        _ops._no_out(ufunc.__name__, kwargs)
        return _ops.UFUNCS[ufunc](*inputs)

    def __array_function__(self, func, types, args, kwargs):
        if func in _ops.NONDIFFERENTIABLE_FUNCTIONS:
            return func(*_raw_tree(args), **_raw_tree(kwargs))
        op = _ops.FUNCTIONS.get(func)
        if op is None:
            raise TypeError(f"{_numpy_name(func)} is not supported on traced values (no "
                            "derivative rule); see gg.extend.defprimitive to add one")
        return op(*args, **kwargs)

    def __array__(self, dtype=None, copy=None):
        raise self._concretize_error("np.asarray()")

    def __float__(self) -> float:
        raise self._concretize_error("float()")

    def __int__(self) -> int:
        raise self._concretize_error("int()")

    def __index__(self) -> int:
        raise self._concretize_error("use as an index")

    def __complex__(self) -> complex:
        raise self._concretize_error("complex()")


def _numpy_name(func: Any) -> str:
    module = getattr(func, "__module__", "numpy") or "numpy"
    parts = [p for p in module.split(".") if not p.startswith("_")]
    return ".".join(["np", *parts[1:], func.__name__])


def _raw_tree(x: Any) -> Any:
    if isinstance(x, tuple | list):
        return type(x)(_raw_tree(i) for i in x)
    if isinstance(x, dict):
        return {k: _raw_tree(v) for k, v in x.items()}
    return raw(x)
