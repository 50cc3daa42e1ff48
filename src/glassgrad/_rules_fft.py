"""``numpy.fft`` on traced values: three linear rows (complex FFT, real FFT, inverse real
FFT over given axes) and the composites that give NumPy's signatures (``n``/``s``
resizing, ``fft2``, shifts).

Cotangents follow JAX's convention (docs/conventions.md): the VJP of a complex-linear
map is its transpose, with no conjugate. A DFT matrix is symmetric, so the VJP of
``fftn`` is ``fftn`` and that of ``ifftn`` is ``ifftn``, with the same ``norm``. ``rfftn``
is the first half of ``fftn`` of a real input: its VJP zero-pads the cotangent and takes
the real part. ``irfftn`` reads a half spectrum as a Hermitian one: its VJP is the
conjugated half spectrum of the cotangent, doubled where an entry stands for two, with
the dual ``norm`` (JAX's ``_irfft_transpose``).
"""

from __future__ import annotations

import numpy as np

from . import _ops
from . import _rules as R
from ._backend import dtype_of, float_dtype, ndim_of, shape_of
from ._ops import implements
from ._primitive import Examples
from ._rules import _uniform, defprimitive
from ._rules_more import _np_roll, conj, leading_batch, real

_DUAL_NORM = {"backward": "forward", "forward": "backward", "ortho": "ortho"}


def _fftn_impl(x, *, axes, norm="backward", inverse=False):
    return (np.fft.ifftn if inverse else np.fft.fftn)(x, axes=axes, norm=norm)


fftn = defprimitive(
    "fftn", _fftn_impl,
    vjp=[lambda g, ans, x, *, axes, norm="backward", inverse=False:
         fftn(g, axes=axes, norm=norm, inverse=inverse)],
    linear=True, batch=leading_batch("fftn"),
    test=Examples(lambda rng: [
        ((_uniform(rng, (5,)),), {"axes": (-1,)}),
        ((_uniform(rng, (3, 4)),), {"axes": (-2, -1), "norm": "ortho", "inverse": True}),
        ((_uniform(rng, (2, 3, 4)),), {"axes": (-3,), "norm": "forward"}),
        ((_uniform(rng, (4,)) + 1j * _uniform(rng, (4,)),), {"axes": (-1,)})]),
)


def _rfftn_impl(x, *, axes, norm="backward"):
    return np.fft.rfftn(x, axes=axes, norm=norm)


def _rfftn_vjp(g, ans, x, *, axes, norm="backward"):
    last = axes[-1] % ndim_of(x)
    n, shape = shape_of(x)[last], list(shape_of(g))
    shape[last] = n
    index = (slice(None),) * last + (slice(0, shape_of(g)[last]),)
    padded = R.scatter_add(g, shape=tuple(shape), index=index)
    return real(fftn(padded, axes=axes, norm=norm))


rfftn = defprimitive(
    "rfftn", _rfftn_impl, vjp=[_rfftn_vjp], linear=True, batch=leading_batch("rfftn"),
    test=Examples(lambda rng: [
        ((_uniform(rng, (5,)),), {"axes": (-1,)}),
        ((_uniform(rng, (3, 4)),), {"axes": (-2, -1), "norm": "ortho"}),
        ((_uniform(rng, (2, 3, 4)),), {"axes": (-2,), "norm": "forward"})]),
)


def _irfftn_impl(c, *, axes, n, norm="backward"):
    s = [shape_of(c)[a] for a in axes[:-1]] + [n]
    return np.fft.irfftn(c, s=s, axes=axes, norm=norm)


def _irfftn_vjp(g, ans, c, *, axes, n, norm="backward"):
    last = axes[-1] % ndim_of(g)
    half = rfftn(g, axes=axes, norm=_DUAL_NORM[norm])
    m = shape_of(half)[last]
    weights = np.full(m, 2.0, dtype=float_dtype(dtype_of(g)))
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    weights = weights.reshape((-1,) + (1,) * (ndim_of(g) - 1 - last))
    return conj(half * weights)


def _half_spectrum(rng, shape):
    return _uniform(rng, shape) + 1j * _uniform(rng, shape)


irfftn = defprimitive(
    "irfftn", _irfftn_impl, vjp=[_irfftn_vjp], linear=True, batch=leading_batch("irfftn"),
    test=Examples(lambda rng: [
        ((_half_spectrum(rng, (4,)),), {"axes": (-1,), "n": 6}),
        ((_half_spectrum(rng, (4,)),), {"axes": (-1,), "n": 7, "norm": "ortho"}),
        ((_half_spectrum(rng, (3, 3)),), {"axes": (-2, -1), "n": 4, "norm": "forward"}),
        ((_uniform(rng, (2, 3)),), {"axes": (-2, -1), "n": 5})]),
)


# --- NumPy's signatures ------------------------------------------------------------------------


def _norm(norm):
    return "backward" if norm is None else norm


def _negative_axes(x, axes):
    nd = ndim_of(x)
    return tuple(int(a) % nd - nd for a in axes)


def _resize(x, axis, n):
    """``x`` cut or zero-padded to length ``n`` along ``axis`` (what ``n=``/``s=`` do)."""
    axis = axis % ndim_of(x)
    have = shape_of(x)[axis]
    if n == have:
        return x
    index = (slice(None),) * axis + (slice(0, min(n, have)),)
    if n < have:
        return R.getitem(x, index=index)
    shape = list(shape_of(x))
    shape[axis] = n
    return R.scatter_add(x, shape=tuple(shape), index=index)


def _axes_and_sizes(x, s, axes, default_axes):
    if axes is None:
        axes = default_axes if s is None else tuple(range(-len(s), 0))
    axes = _negative_axes(x, axes)
    if s is not None:
        for a, n in zip(axes, s, strict=True):
            x = _resize(x, a, int(n))
    return x, axes


def _c2c(inverse):
    def one(a, n=None, axis=-1, norm=None, out=None):
        _ops.no_out("fft", {"out": out})
        a, axes = _axes_and_sizes(a, None if n is None else (n,), (axis,), (axis,))
        return fftn(a, axes=axes, norm=_norm(norm), inverse=inverse)

    def many(a, s=None, axes=None, norm=None, out=None):
        _ops.no_out("fftn", {"out": out})
        a, axes = _axes_and_sizes(a, s, axes, tuple(range(-ndim_of(a), 0)))
        return fftn(a, axes=axes, norm=_norm(norm), inverse=inverse)

    def two(a, s=None, axes=(-2, -1), norm=None, out=None):
        return many(a, s, axes, norm, out)

    return one, two, many


_fft, _fft2, _fftn = _c2c(False)
_ifft, _ifft2, _ifftn = _c2c(True)
implements(np.fft.fft)(_fft)
implements(np.fft.fft2)(_fft2)
implements(np.fft.fftn)(_fftn)
implements(np.fft.ifft)(_ifft)
implements(np.fft.ifft2)(_ifft2)
implements(np.fft.ifftn)(_ifftn)


@implements(np.fft.rfftn)
def _np_rfftn(a, s=None, axes=None, norm=None, out=None):
    _ops.no_out("rfftn", {"out": out})
    a, axes = _axes_and_sizes(a, s, axes, tuple(range(-ndim_of(a), 0)))
    return rfftn(a, axes=axes, norm=_norm(norm))


@implements(np.fft.rfft)
def _np_rfft(a, n=None, axis=-1, norm=None, out=None):
    return _np_rfftn(a, None if n is None else (n,), (axis,), norm, out)


@implements(np.fft.rfft2)
def _np_rfft2(a, s=None, axes=(-2, -1), norm=None, out=None):
    return _np_rfftn(a, s, axes, norm, out)


@implements(np.fft.irfftn)
def _np_irfftn(a, s=None, axes=None, norm=None, out=None):
    _ops.no_out("irfftn", {"out": out})
    if axes is None:
        axes = tuple(range(-ndim_of(a), 0)) if s is None else tuple(range(-len(s), 0))
    axes = _negative_axes(a, axes)
    if s is None:
        s = [shape_of(a)[x] for x in axes[:-1]] + [2 * (shape_of(a)[axes[-1]] - 1)]
    s = [int(v) for v in s]
    for ax, n in zip(axes[:-1], s[:-1], strict=True):
        a = _resize(a, ax, n)
    a = _resize(a, axes[-1], s[-1] // 2 + 1)
    return irfftn(a, axes=axes, n=s[-1], norm=_norm(norm))


@implements(np.fft.irfft)
def _np_irfft(a, n=None, axis=-1, norm=None, out=None):
    return _np_irfftn(a, None if n is None else (n,), (axis,), norm, out)


@implements(np.fft.irfft2)
def _np_irfft2(a, s=None, axes=(-2, -1), norm=None, out=None):
    return _np_irfftn(a, s, axes, norm, out)


def _shift(x, axes, inverse):
    axes = range(ndim_of(x)) if axes is None else (
        (axes,) if isinstance(axes, int | np.integer) else axes)
    axes = [int(a) % ndim_of(x) for a in axes]
    shifts = [-(shape_of(x)[a] // 2) if inverse else shape_of(x)[a] // 2 for a in axes]
    return _np_roll(x, shifts, axes) if axes else x


@implements(np.fft.fftshift)
def _np_fftshift(x, axes=None):
    return _shift(x, axes, False)


@implements(np.fft.ifftshift)
def _np_ifftshift(x, axes=None):
    return _shift(x, axes, True)
