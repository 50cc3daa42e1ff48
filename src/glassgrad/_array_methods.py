"""Operators, methods and NumPy protocols shared by every traced value.

``Tensor`` (reverse mode, eager or inside a transform) and ``Dual`` (forward mode) both
behave like NumPy arrays: the operators, the familiar methods, and NumPy's dispatch
protocols all route to primitives.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _backend as backend
from . import _ops
from . import _rules as R
from ._primitive import Primitive, Traced


def _concrete_index(index: Any) -> Any:
    """Indices carry no derivative: derivative tracers give up their values, while a jit
    tracer stays (the program recomputes the index); lists become arrays."""
    if isinstance(index, tuple):
        return tuple(_concrete_index(i) for i in index)
    if isinstance(index, Traced):
        return backend.concrete(index)
    if isinstance(index, list):
        return backend.as_array(index)
    return index


_NO_PARAMS: dict = {}


def _binary(prim: Primitive, x: Any, y: Any) -> Any:
    if isinstance(x, Traced):
        if isinstance(y, Traced):
            return prim(x, y)
        if type(y) is not float and type(y) is not int:  # a Python number is a constant
            y = backend.as_constant(y)
        return x._process(prim, (x, y), _NO_PARAMS)
    if type(x) is not float and type(x) is not int:
        x = backend.as_constant(x)
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
        return backend.shape_of(self._raw())

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def dtype(self) -> np.dtype:
        return backend.dtype_of(self._raw())

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
    def __floordiv__(self, other): return _binary(R.floor_divide, self, other)
    def __rfloordiv__(self, other): return _binary(R.floor_divide, other, self)
    def __mod__(self, other): return _binary(R.remainder, self, other)
    def __rmod__(self, other): return _binary(R.remainder, other, self)
    def __divmod__(self, other): return _ops.divmod_(self, other)
    def __rdivmod__(self, other): return _ops.divmod_(other, self)
    def __pow__(self, other): return _binary(R.power, self, other)
    def __rpow__(self, other): return _binary(R.power, other, self)
    def __matmul__(self, other): return _ops.matmul(self, other)
    def __rmatmul__(self, other): return _ops.matmul(other, self)
    def __neg__(self): return R.neg(self)
    def __pos__(self): return self
    def __abs__(self): return R.abs_(self) if self.dtype.kind != "c" else np.abs(self)

    # Comparisons and logic are primitives without derivatives: plain boolean arrays on
    # eager tensors (as PyTorch masks are), recorded under jit, batched under vmap.
    def __lt__(self, other): return _binary(R.less, self, other)
    def __le__(self, other): return _binary(R.less_equal, self, other)
    def __gt__(self, other): return _binary(R.greater, self, other)
    def __ge__(self, other): return _binary(R.greater_equal, self, other)
    def __eq__(self, other): return _binary(R.equal, self, other)  # type: ignore[override]
    def __ne__(self, other): return _binary(R.not_equal, self, other)  # type: ignore[override]
    def __and__(self, other): return _binary(R.bitwise_and, self, other)
    def __rand__(self, other): return _binary(R.bitwise_and, other, self)
    def __or__(self, other): return _binary(R.bitwise_or, self, other)
    def __ror__(self, other): return _binary(R.bitwise_or, other, self)
    def __xor__(self, other): return _binary(R.bitwise_xor, self, other)
    def __rxor__(self, other): return _binary(R.bitwise_xor, other, self)
    def __invert__(self): return R.invert(self)
    __hash__ = object.__hash__  # identity, so traced values can key dicts and sets

    def __getitem__(self, index: Any) -> Any:
        return R.getitem(self, index=_concrete_index(index))

    def __bool__(self) -> bool:
        # Python control flow on concrete values is allowed in derivative transforms;
        # interpreters without concrete values (jit) refuse it.
        return bool(backend.concrete(self))

    # --- methods ---------------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False, *, dim=None):
        return _ops.sum(self, _dim(axis, dim), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False, *, dim=None):
        return _ops.mean(self, _dim(axis, dim), keepdims=keepdims)

    def max(self, axis=None, keepdims=False, *, dim=None):
        return _ops.max(self, _dim(axis, dim), keepdims=keepdims)

    def min(self, axis=None, keepdims=False, *, dim=None):
        return _ops.min(self, _dim(axis, dim), keepdims=keepdims)

    def argmax(self, axis=None, keepdims=False, *, dim=None):
        return _ops.argmax(self, _dim(axis, dim), keepdims=keepdims)

    def argmin(self, axis=None, keepdims=False, *, dim=None):
        return _ops.argmin(self, _dim(axis, dim), keepdims=keepdims)

    def reshape(self, *shape): return _ops.reshape(self, *shape)

    def view(self, *shape):
        """PyTorch's name for ``reshape`` (a traced value has no storage to alias)."""
        return _ops.reshape(self, *shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        shape = self.shape
        if not shape:
            return _ops.reshape(self, (1,))
        start, end = start_dim % len(shape), end_dim % len(shape)
        merged = int(np.prod(shape[start:end + 1]))
        return _ops.reshape(self, shape[:start] + (merged,) + shape[end + 1:])

    def ravel(self): return _ops.ravel(self)

    def squeeze(self, axis=None, *, dim=None): return _ops.squeeze(self, _dim(axis, dim))

    def unsqueeze(self, dim: int): return _ops.expand_dims(self, dim)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], tuple | list):
            axes = tuple(axes[0])
        return _ops.transpose(self, axes or None)

    def pow(self, exponent): return _binary(R.power, self, exponent)
    def exp(self): return R.exp(self)
    def log(self): return R.log(self)
    def sqrt(self): return R.sqrt(self)
    def sin(self): return R.sin(self)
    def cos(self): return R.cos(self)
    def tanh(self): return R.tanh(self)
    def relu(self): return R.relu(self)
    def abs(self): return abs(self)
    def conj(self): return np.conjugate(self)
    def conjugate(self): return np.conjugate(self)

    @property
    def real(self) -> Any:
        return np.real(self)

    @property
    def imag(self) -> Any:
        return np.imag(self)
    def dot(self, other): return _ops.dot(self, other)

    def sigmoid(self, a: float = 1.0):
        """1 / (1 + exp(-a * s)), stable for any magnitude of ``a * s``."""
        return R.sigmoid(self, a=a)

    def clip(self, lo=None, hi=None): return _ops.clip(self, lo, hi)

    def astype(self, dtype, copy=True):
        """A float dtype keeps the derivative; an integer or boolean cast carries none
        (as in JAX)."""
        dtype = np.dtype(dtype)
        if dtype.kind not in "fc":
            return R.cast(self, dtype=dtype)
        return self if dtype == self.dtype and not copy else R.astype(self, dtype=dtype)

    def float(self): return self.astype(np.float32, copy=False)
    def double(self): return self.astype(np.float64, copy=False)

    # --- NumPy protocols -------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        op = _ops.dispatch_table().get(ufunc)
        if op is None or method != "__call__":
            return self._unusual_ufunc(ufunc, method, inputs, kwargs)
        if kwargs:
            _ops.no_out(ufunc.__name__, kwargs)
        if type(op) is Primitive:
            if len(inputs) == 1:
                return self._process(op, inputs, _NO_PARAMS)  # self is the only input
            if len(inputs) == 2:
                return _binary(op, *inputs)
        return op(*[backend.as_constant(x) for x in inputs])

    def _unusual_ufunc(self, ufunc, method, inputs, kwargs):
        if method != "__call__":
            raise TypeError(f"np.{ufunc.__name__}.{method} is not supported on traced "
                            "values; use the matching reduction (np.sum, np.max, ...)")
        raise _ops.unsupported(ufunc)

    def __array_function__(self, func, types, args, kwargs):
        op = _ops.dispatch_table().get(func)
        if op is None:
            raise _ops.unsupported(func)
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


def _dim(axis: Any, dim: Any) -> Any:
    """PyTorch's ``dim=`` is NumPy's ``axis=``."""
    if dim is not None and axis is not None:
        raise TypeError("give axis or dim, not both")
    return axis if dim is None else dim
