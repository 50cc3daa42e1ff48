"""Convolution and pooling: ``Conv1d``, ``Conv2d``, ``MaxPool2d``, ``AvgPool2d``.

PyTorch's layouts and defaults: inputs ``(N, C, L)`` or ``(N, C, H, W)`` (or without the
batch axis), weights ``(out_channels, in_channels, *kernel_size)``, the same output sizes
(floor division), and the same initialisation bounds. A layer gathers its sliding windows
with one ``unfold`` (a strided view, copied once) and, for a convolution, multiplies them
with the weights in one matmul; there is no Python loop over pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _backend as backend
from .. import _rules as R
from .._tensor import Tensor
from ._primitives import out_size, unfold
from .layers import RNG, _float_dtype
from .module import Module

__all__ = ["AvgPool2d", "Conv1d", "Conv2d", "MaxPool2d"]


def _tuple(value: int | tuple[int, ...], d: int, name: str, minimum: int) -> tuple[int, ...]:
    values = (value,) * d if isinstance(value, int | np.integer) else tuple(value)
    if len(values) != d or not all(isinstance(v, int | np.integer) and v >= minimum
                                   for v in values):
        raise ValueError(f"{name} must be an int >= {minimum} or a tuple of {d} of them, "
                         f"got {value!r}")
    return tuple(int(v) for v in values)


def _batched(x: Any, d: int, channels: int | None, layer: Module) -> tuple[Any, bool]:
    """``x`` with a batch axis (added if missing, as PyTorch accepts), after checking it."""
    shape = backend.shape_of(x)
    names = ("N", "C", "L") if d == 1 else ("N", "C", "H", "W")
    if len(shape) not in (d + 1, d + 2) or (channels is not None and shape[-d - 1] != channels):
        want = f"({', '.join(names)})" + (f" with C = {channels}" if channels else "")
        raise ValueError(f"{layer!r} expects inputs of shape {want} (or without N), "
                         f"got shape {shape}")
    if len(shape) == d + 1:
        return R.reshape(x, shape=(1, *shape)), True
    return x, False


class _ConvNd(Module):
    _d = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, ...],
                 stride: int | tuple[int, ...] = 1, padding: int | tuple[int, ...] = 0,
                 bias: bool = True, rng: RNG = None, dtype: Any = np.float64) -> None:
        super().__init__()
        d = self._d
        for what, n in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(n, int | np.integer) or n < 1:
                raise ValueError(f"{type(self).__name__}: {what} must be a positive int, "
                                 f"got {n!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _tuple(kernel_size, d, "kernel_size", 1)
        self.stride = _tuple(stride, d, "stride", 1)
        self.padding = _tuple(padding, d, "padding", 0)
        dtype = _float_dtype(dtype)
        gen = np.random.default_rng(rng)
        # PyTorch's default, kaiming_uniform_(a=sqrt(5)), works out to U(-1/sqrt(fan_in), ..)
        bound = 1.0 / np.sqrt(in_channels * int(np.prod(self.kernel_size)))
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self.weight = Tensor(gen.uniform(-bound, bound, shape).astype(dtype), requires_grad=True)
        self.bias = (Tensor(gen.uniform(-bound, bound, out_channels).astype(dtype),
                            requires_grad=True) if bias else None)

    def forward(self, x: Any) -> Any:
        d = self._d
        x, added = _batched(x, d, self.in_channels, self)
        shape = backend.shape_of(x)
        out_shape = tuple(out_size(n, k, s, p) for n, k, s, p in zip(
            shape[2:], self.kernel_size, self.stride, self.padding, strict=True))
        rows = unfold(x, kernel=self.kernel_size, stride=self.stride, padding=self.padding)
        # the weight as a matrix in the rows' layout: (*kernel, in) down, out across
        w = R.transpose(self.weight, axes=(*range(2, d + 2), 1, 0))
        y = R.matmul(rows, R.reshape(w, shape=(-1, self.out_channels)))
        if self.bias is not None:
            y = R.add(y, self.bias)
        y = R.reshape(y, shape=(shape[0], *out_shape, self.out_channels))
        y = R.transpose(y, axes=(0, d + 1, *range(1, d + 1)))  # a view: memory stays NHWC
        return R.reshape(y, shape=backend.shape_of(y)[1:]) if added else y

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


class Conv1d(_ConvNd):
    """1-d convolution (cross-correlation, as in PyTorch) over inputs ``(N, C, L)``.

    ``weight`` has shape ``(out_channels, in_channels, kernel_size)``, ``bias``
    ``(out_channels,)``; both start uniform in ``±1/sqrt(in_channels * kernel_size)``.

    >>> import numpy as np, glassgrad as gg
    >>> conv = gg.nn.Conv1d(2, 4, kernel_size=3, padding=1, rng=0)
    >>> conv.weight.shape, conv(np.ones((5, 2, 10))).shape
    ((4, 2, 3), (5, 4, 10))
    """

    _d = 1


class Conv2d(_ConvNd):
    """2-d convolution (cross-correlation, as in PyTorch) over inputs ``(N, C, H, W)``.

    ``weight`` has shape ``(out_channels, in_channels, kh, kw)``, ``bias``
    ``(out_channels,)``; both start uniform in ``±1/sqrt(in_channels * kh * kw)``, drawn
    from ``np.random.default_rng(rng)``. The output is ``(N, out_channels, H', W')`` with
    ``H' = (H + 2 * padding - kh) // stride + 1``.

    >>> import numpy as np, glassgrad as gg
    >>> conv = gg.nn.Conv2d(1, 16, 3, padding=1, rng=0)
    >>> conv.weight.shape, conv(np.ones((8, 1, 8, 8))).shape
    ((16, 1, 3, 3), (8, 16, 8, 8))
    """

    _d = 2


class _Pool2d(Module):
    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.kernel_size = _tuple(kernel_size, 2, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _tuple(stride, 2, "stride", 1)
        self.padding = _tuple(padding, 2, "padding", 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ValueError(f"padding {self.padding} must be at most half the kernel size "
                             f"{self.kernel_size}, as in PyTorch")

    def forward(self, x: Any) -> Any:
        x, added = _batched(x, 2, None, self)
        n, c, h, w = backend.shape_of(x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
        # channels last: after a convolution that is the memory order, so these are views
        x = R.transpose(x, axes=(0, 2, 3, 1))
        if (kh, kw) == (sh, sw) and not any(self.padding):
            # windows that tile the image: a reshape gathers them, no copy of windows
            if (oh * kh, ow * kw) != (h, w):
                x = R.getitem(x, index=(slice(None), slice(0, oh * kh), slice(0, ow * kw)))
            blocks = R.reshape(x, shape=(n, oh, kh, ow, kw, c))
            y = self._reduce(blocks, axis=(2, 4))
        else:
            x = R.transpose(self._pad(x), axes=(0, 3, 1, 2))
            rows = unfold(x, kernel=self.kernel_size, stride=self.stride, padding=(0, 0))
            y = self._reduce(R.reshape(rows, shape=(n, oh, ow, kh * kw, c)), axis=(3,))
        y = R.transpose(y, axes=(0, 3, 1, 2))
        return R.reshape(y, shape=backend.shape_of(y)[1:]) if added else y

    def _pad(self, x: Any) -> Any:
        return x

    def _reduce(self, windows: Any, axis: tuple[int, ...]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """The maximum of each ``kernel_size`` window, sliding by ``stride`` (default: the
    kernel size), over inputs ``(N, C, H, W)``; ``padding`` pads with ``-inf``.

    Where several entries of a window tie for the maximum, they share its gradient
    equally (glassgrad's rule for ``max``); PyTorch gives it all to one of them.

    >>> import numpy as np, glassgrad as gg
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> gg.nn.MaxPool2d(2)(x)
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """

    def _pad(self, x: Any) -> Any:
        (ph, pw), dtype = self.padding, backend.dtype_of(x)
        for axis, p in ((1, ph), (2, pw)):  # x is channels last here
            if p:
                shape = list(backend.shape_of(x))
                shape[axis] = p
                edge = np.full(shape, -np.inf, dtype=dtype)
                x = R.concatenate(edge, x, edge, axis=axis)
        return x

    def _reduce(self, windows: Any, axis: tuple[int, ...]) -> Any:
        return R.max_(windows, axis=axis, keepdims=False)


class AvgPool2d(_Pool2d):
    """The mean of each ``kernel_size`` window, sliding by ``stride`` (default: the kernel
    size); zero ``padding`` counts in the mean (PyTorch's ``count_include_pad=True``).

    >>> import numpy as np, glassgrad as gg
    >>> gg.nn.AvgPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    """

    def forward(self, x: Any) -> Any:
        if any(self.padding):
            x, added = _batched(x, 2, None, self)
            n, c, h, w = backend.shape_of(x)
            (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
            oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
            rows = unfold(x, kernel=self.kernel_size, stride=self.stride, padding=self.padding)
            y = R.mean(R.reshape(rows, shape=(n, oh, ow, kh * kw, c)), axis=3, keepdims=False)
            y = R.transpose(y, axes=(0, 3, 1, 2))
            return R.reshape(y, shape=backend.shape_of(y)[1:]) if added else y
        return super().forward(x)

    def _reduce(self, windows: Any, axis: tuple[int, ...]) -> Any:
        return R.mean(windows, axis=axis, keepdims=False)
