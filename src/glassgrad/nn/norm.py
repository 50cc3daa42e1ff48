"""Normalisation: ``BatchNorm1d``, ``BatchNorm2d`` and ``LayerNorm``, as in PyTorch.

Batch norm normalises each channel with the batch's mean and biased variance while
training, and keeps running estimates (momentum 0.1, the *unbiased* variance, as PyTorch
does) that it uses instead after ``.eval()``. The running statistics are buffers: they
are in ``state_dict()`` and ``load_state_dict()`` but are not parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _backend as backend
from .. import _rules as R
from .._primitive import Traced
from .._tensor import Tensor
from .layers import _float_dtype
from .module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


def _normalise(x: Any, axes: tuple[int, ...], eps: float) -> tuple[Any, Any, Any]:
    """``(x - mean) / sqrt(var + eps)`` over ``axes``, with the mean and biased variance."""
    mean = R.mean(x, axis=axes, keepdims=True)
    centred = R.sub(x, mean)
    var = R.mean(R.mul(centred, centred), axis=axes, keepdims=True)
    return R.div(centred, R.sqrt(R.add(var, eps))), mean, var


class _BatchNorm(Module):
    _ndims: tuple[int, ...] = (2,)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 dtype: Any = np.float64) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        dtype = _float_dtype(dtype)
        if affine:
            self.weight = Tensor(np.ones(num_features, dtype), requires_grad=True)
            self.bias = Tensor(np.zeros(num_features, dtype), requires_grad=True)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))

    def forward(self, x: Any) -> Any:
        shape = backend.shape_of(x)
        if len(shape) not in self._ndims or shape[1] != self.num_features:
            raise ValueError(f"{self!r} expects inputs with {self._ndims[0]} or "
                             f"{self._ndims[-1]} axes and {self.num_features} channels on "
                             f"axis 1, got shape {shape}")
        axes = (0, *range(2, len(shape)))
        channel = (1, -1) + (1,) * (len(shape) - 2)  # broadcasts a (C,) vector over x
        if self.training or not self.track_running_stats:
            if int(np.prod([shape[a] for a in axes])) < 2 and self.training:
                raise ValueError(f"{type(self).__name__} needs more than one value per channel "
                                 f"to train, got input of shape {shape}")
            y, mean, var = _normalise(x, axes, self.eps)
            if self.training and self.track_running_stats:
                self._update_running(mean, var, n=int(np.prod([shape[a] for a in axes])))
        else:
            mean = np.reshape(self.running_mean, channel)
            scale = 1.0 / np.sqrt(np.reshape(self.running_var, channel) + self.eps)
            y = R.mul(R.sub(x, mean), scale.astype(backend.dtype_of(x), copy=False))
        if self.affine:
            y = R.add(R.mul(y, R.reshape(self.weight, shape=channel)),
                      R.reshape(self.bias, shape=channel))
        return y

    def _update_running(self, mean: Any, var: Any, n: int) -> None:
        mean, var = backend.concrete(mean), backend.concrete(var)
        if isinstance(mean, Traced):
            raise TypeError(f"{type(self).__name__} in training mode inside gg.jit (TrainStep, "
                            "fit(jit=True)) or gg.vmap cannot update its running statistics; "
                            "train it eagerly, or call .eval() before compiling")
        self.num_batches_tracked += 1
        momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                    else self.momentum)
        unbiased = np.ravel(var) * (n / max(n - 1, 1))
        self.running_mean *= 1.0 - momentum
        self.running_mean += momentum * np.ravel(mean)
        self.running_var *= 1.0 - momentum
        self.running_var += momentum * unbiased

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over inputs ``(N, C)`` or ``(N, C, L)``: per channel ``C``,
    ``(x - mean) / sqrt(var + eps) * weight + bias``.

    >>> import numpy as np, glassgrad as gg
    >>> bn = gg.nn.BatchNorm1d(2)
    >>> y = bn(np.array([[1.0, 10.0], [3.0, 30.0]]))
    >>> y.data.round(3), bn.running_mean
    (array([[-1., -1.],
           [ 1.,  1.]]), array([0.2, 2. ]))
    """

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over inputs ``(N, C, H, W)``, per channel ``C``.

    >>> import numpy as np, glassgrad as gg
    >>> bn = gg.nn.BatchNorm2d(3)
    >>> bn(np.random.default_rng(0).normal(size=(4, 3, 5, 5))).shape
    (4, 3, 5, 5)
    >>> sorted(bn.state_dict())
    ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    _ndims = (4,)


class LayerNorm(Module):
    """Normalise over the last axes, ``normalized_shape``, of each sample, then scale by
    ``weight`` and shift by ``bias`` (both of that shape); no running statistics.

    >>> import numpy as np, glassgrad as gg
    >>> gg.nn.LayerNorm(2)(np.array([[1.0, 3.0]])).data.round(3)
    array([[-1.,  1.]])
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True,
                 dtype: Any = np.float64) -> None:
        super().__init__()
        shape = ((normalized_shape,) if isinstance(normalized_shape, int | np.integer)
                 else tuple(normalized_shape))
        self.normalized_shape, self.eps = tuple(int(n) for n in shape), float(eps)
        dtype = _float_dtype(dtype)
        self.weight = (Tensor(np.ones(self.normalized_shape, dtype), requires_grad=True)
                       if elementwise_affine else None)
        self.bias = (Tensor(np.zeros(self.normalized_shape, dtype), requires_grad=True)
                     if elementwise_affine and bias else None)

    def forward(self, x: Any) -> Any:
        shape, k = backend.shape_of(x), len(self.normalized_shape)
        if tuple(shape[len(shape) - k:]) != self.normalized_shape:
            raise ValueError(f"{self!r} expects inputs ending in {self.normalized_shape}, "
                             f"got shape {shape}")
        y, _, _ = _normalise(x, tuple(range(len(shape) - k, len(shape))), self.eps)
        if self.weight is not None:
            y = R.mul(y, self.weight)
        if self.bias is not None:
            y = R.add(y, self.bias)
        return y

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"
