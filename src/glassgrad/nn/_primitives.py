"""The primitives the layers add to the rule table: ``unfold``/``fold`` and ``normal_cdf``.

``unfold`` gathers the sliding windows of a convolution or a pooling layer into one array
(im2col), so a convolution is one matmul. It is linear, and its adjoint ``fold`` (col2im)
adds every window back where it came from; each is the other's VJP, so derivatives of any
order come from these two rows. They are primitives rather than a composition of
``getitem`` with an integer index array because that index's adjoint is ``np.add.at``,
which measured ten times slower than ``fold``'s one slice-add per kernel offset (no loop
over pixels in either direction).

Layout: ``x`` is ``(N, C, *spatial)`` (PyTorch's NCL / NCHW); the windows come out as one
matrix, a row per output position and, along the row, the window channels last
(``(N * prod(out_spatial), prod(kernel) * C)``), ready for the matmul; every slice
``fold`` adds is then a run of whole channel vectors.

``normal_cdf`` is the standard normal CDF ``0.5 * (1 + erf(x / sqrt(2)))`` that the exact
GELU needs; NumPy has no ``erf``, so it is computed here (SciPy's when installed).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import _backend as backend
from .. import _rules as R
from .._primitive import PRIMITIVES, Examples
from .._rules import defprimitive

__all__ = ["fold", "normal_cdf", "out_size", "unfold"]

Ints = tuple[int, ...]


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """The output length of a window of ``kernel`` sliding by ``stride`` (PyTorch's floor)."""
    return (size + 2 * padding - kernel) // stride + 1


def _channels_last_padded(x: np.ndarray, padding: Ints) -> np.ndarray:
    """``x`` as ``(N, *spatial + 2 * padding, C)``, zero-padded (one copy)."""
    moved = np.moveaxis(x, 1, -1)
    if not any(padding):
        return moved
    shape = (x.shape[0], *(n + 2 * p for n, p in zip(x.shape[2:], padding, strict=True)),
             x.shape[1])
    out = np.zeros_like(x, shape=shape)  # *_like: a CuPy or Dask input stays one
    inner = tuple(slice(p, p + n) for p, n in zip(padding, x.shape[2:], strict=True))
    out[(slice(None), *inner)] = moved
    return out


def _unfold_impl(x, *, kernel: Ints, stride: Ints, padding: Ints):
    d = len(kernel)
    xp = _channels_last_padded(x, padding)
    n, c = x.shape[0], x.shape[1]
    out_shape = tuple(out_size(s, k, st, p) for s, k, st, p
                      in zip(x.shape[2:], kernel, stride, padding, strict=True))
    if c >= 8 and backend.is_numpy_array(xp):
        # whole windows at once from a strided view: fast when channels make long runs
        windows = sliding_window_view(xp, kernel, axis=tuple(range(1, d + 1)))
        windows = windows[(slice(None), *(slice(None, None, s) for s in stride))]
        axes = (0, *range(1, d + 1), *range(d + 2, 2 * d + 2), d + 1)
        cols = np.ascontiguousarray(windows.transpose(axes))
    else:
        # few channels: one strided copy per kernel offset beats an element-wise gather
        cols = np.empty_like(x, shape=(n, *out_shape, *kernel, c))
        for offset in np.ndindex(*kernel):
            cols[(slice(None),) * (d + 1) + offset] = xp[(slice(None), *_window(offset, stride,
                                                                                 out_shape))]
    return cols.reshape(n * int(np.prod(out_shape)), -1)


def _window(offset: Ints, stride: Ints, out_shape: Ints) -> tuple[slice, ...]:
    """The input positions that kernel entry ``offset`` meets, one per output position."""
    return tuple(slice(o, o + s * (m - 1) + 1, s)
                 for o, s, m in zip(offset, stride, out_shape, strict=True))


def _fold_impl(g, *, shape: Ints, kernel: Ints, stride: Ints, padding: Ints):
    d = len(kernel)
    n, c, *spatial = shape
    out_shape = tuple(out_size(s, k, st, p) for s, k, st, p
                      in zip(spatial, kernel, stride, padding, strict=True))
    g = g.reshape(n, *out_shape, *kernel, c)
    padded = (n, *(s + 2 * p for s, p in zip(spatial, padding, strict=True)), c)
    out = np.zeros_like(g, shape=padded)
    for offset in np.ndindex(*kernel):
        out[(slice(None), *_window(offset, stride, out_shape))] += g[
            (slice(None),) * (d + 1) + offset]
    inner = tuple(slice(p, p + s) for p, s in zip(padding, spatial, strict=True))
    return np.moveaxis(out[(slice(None), *inner)], -1, 1)


def _unfold_test(rng):
    return [((rng.uniform(-2, 2, (2, 3, 5)),), {"kernel": (3,), "stride": (2,), "padding": (1,)}),
            ((rng.uniform(-2, 2, (2, 2, 4, 5)),),
             {"kernel": (2, 3), "stride": (1, 2), "padding": (1, 0)}),
            ((rng.uniform(-2, 2, (2, 9, 2, 2)),),  # enough channels for the strided path
             {"kernel": (2, 2), "stride": (1, 1), "padding": (0, 0)})]


def _fold_test(rng):
    return [((rng.uniform(-2, 2, (6, 9)),),
             {"shape": (2, 3, 5), "kernel": (3,), "stride": (2,), "padding": (1,)}),
            ((rng.uniform(-2, 2, (20, 12)),),
             {"shape": (2, 2, 4, 5), "kernel": (2, 3), "stride": (1, 2), "padding": (1, 0)}),
            ((rng.uniform(-2, 2, (2, 36)),),
             {"shape": (2, 9, 2, 2), "kernel": (2, 2), "stride": (1, 1), "padding": (0, 0)})]


def _to_front(x: Any, dim: int) -> Any:
    nd = R.ndim_of(x)
    dim %= nd
    if dim == 0:
        return x
    return R.transpose(x, axes=(dim, *(i for i in range(nd) if i != dim)))


def _unfold_batch(args, dims, *, kernel, stride, padding):
    # vmap: the examples of the batch become more images of one larger batch
    x = _to_front(args[0], dims[0])
    b, n, *rest = R.shape_of(x)
    rows = unfold(R.reshape(x, shape=(b * n, *rest)), kernel=kernel, stride=stride,
                  padding=padding)
    return R.reshape(rows, shape=(b, -1, R.shape_of(rows)[-1])), 0


def _fold_batch(args, dims, *, shape, kernel, stride, padding):
    g = _to_front(args[0], dims[0])
    b = R.shape_of(g)[0]
    images = fold(R.reshape(g, shape=(-1, R.shape_of(g)[-1])), shape=(b * shape[0], *shape[1:]),
                  kernel=kernel, stride=stride, padding=padding)
    return R.reshape(images, shape=(b, *shape)), 0


unfold = defprimitive(
    "unfold", _unfold_impl,
    vjp=[lambda g, ans, x, *, kernel, stride, padding:
         fold(g, shape=R.shape_of(x), kernel=kernel, stride=stride, padding=padding)],
    linear=True, test=Examples(_unfold_test), batch=_unfold_batch,
)
fold = defprimitive(
    "fold", _fold_impl,
    vjp=[lambda g, ans, cols, *, shape, kernel, stride, padding:
         unfold(g, kernel=kernel, stride=stride, padding=padding)],
    linear=True, test=Examples(_fold_test), batch=_fold_batch,
)


# --- the normal CDF ------------------------------------------------------------------


def _erf(z: np.ndarray) -> np.ndarray:
    """``erf`` to about 1e-16, vectorised, for NumPy without SciPy.

    Below 3 the series ``2z/sqrt(pi) exp(-z^2) sum (2z^2)^n / (2n+1)!!`` (all terms
    positive, so no cancellation); above, the continued fraction of ``erfc``.
    """
    z = np.asarray(z)
    a = np.abs(z)
    small = np.minimum(a, 3.0)
    z2 = small * small
    term = np.ones_like(small)
    total = np.ones_like(small)
    for n in range(1, 60):
        term = term * (2.0 * z2) / (2 * n + 1)
        total = total + term
    series = 2.0 / math.sqrt(math.pi) * small * np.exp(-z2) * total
    large = np.maximum(a, 3.0)
    frac = large
    for k in range(60, 0, -1):  # erfc(z) = exp(-z^2)/sqrt(pi) / (z + (1/2)/(z + 1/(z + ...)))
        frac = large + (k / 2.0) / frac
    tail = 1.0 - np.exp(-large * large) / (math.sqrt(math.pi) * frac)
    return np.sign(z) * np.where(a < 3.0, series, tail)


def _normal_cdf_impl(x):
    try:
        from scipy.special import ndtr
    except ImportError:
        x = np.asarray(x)
        return (0.5 * (1.0 + _erf(x / math.sqrt(2.0)))).astype(x.dtype, copy=False)
    return ndtr(x)


def _normal_pdf(ans, x):
    return R.exp(R.mul(-0.5, R.mul(x, x))) * (1.0 / math.sqrt(2.0 * math.pi))


normal_cdf = PRIMITIVES.get("normal_cdf") or defprimitive(
    "normal_cdf", _normal_cdf_impl, derivatives=[_normal_pdf],
    test=Examples(lambda rng: [((rng.uniform(-4, 4, s),), {}) for s in [(), (3,), (2, 3)]]),
)

