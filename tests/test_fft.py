"""numpy.fft on traced values: NumPy's values, and gradients of real losses against
finite differences, for real and complex inputs (JAX's convention for the latter)."""

import numpy as np
import pytest

import glassgrad as gg

rng = np.random.default_rng(5)
X = rng.normal(size=(4, 6))
Z = rng.normal(size=(4, 5)) + 1j * rng.normal(size=(4, 5))
W = rng.normal(size=(8, 8))

CASES = {
    "fft": (lambda x: np.fft.fft(x), X),
    "fft_n_axis": (lambda x: np.fft.fft(x, n=5, axis=0, norm="ortho"), X),
    "ifft_pad": (lambda x: np.fft.ifft(x, n=9), X),
    "fft2": (lambda x: np.fft.fft2(x, s=(3, 7)), X),
    "ifft2": (lambda x: np.fft.ifft2(x, norm="forward"), X),
    "fftn": (lambda x: np.fft.fftn(x, axes=(0,)), X),
    "ifftn": (lambda x: np.fft.ifftn(x), X),
    "rfft": (lambda x: np.fft.rfft(x), X),
    "rfft_n": (lambda x: np.fft.rfft(x, n=9, axis=0), X),
    "rfftn": (lambda x: np.fft.rfftn(x, norm="ortho"), X),
    "rfft2": (lambda x: np.fft.rfft2(x), X),
    "irfft": (lambda x: np.fft.irfft(x), X),
    "irfft_n": (lambda x: np.fft.irfft(x, n=7, axis=0), X),
    "irfftn": (lambda x: np.fft.irfftn(x, s=(3, 8), axes=(0, 1)), X),
    "irfft2": (lambda x: np.fft.irfft2(x, norm="forward"), X),
    "fftshift": (lambda x: np.fft.fftshift(x) + np.fft.ifftshift(x, axes=1), X),
    "complex_fft": (lambda z: np.fft.fft(z), Z),
    "complex_irfft": (lambda z: np.fft.irfft(z, n=8), Z),
    "complex_ifftn": (lambda z: np.fft.ifftn(z, axes=(1,)), Z),
    "roundtrip": (lambda x: np.fft.irfft(np.fft.rfft(x) * np.arange(4.0)), X),
}


def _loss(f, w):
    return lambda x: np.sum(np.real(f(x)) * w) + np.sum(np.imag(f(x)) * w[::-1])


def _numeric(loss, x, eps=1e-6):
    out = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        for step, part in ((1.0, 1.0), (1j, -1j)) if np.iscomplexobj(x) else ((1.0, 1.0),):
            up, down = x.copy(), x.copy()
            up[k] += eps * step
            down[k] -= eps * step
            out[k] += part * (loss(up) - loss(down)) / (2 * eps)
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_fft_values_and_gradients(name):
    f, x = CASES[name]
    want = f(x)
    np.testing.assert_allclose(gg.jit(f)(x), want, rtol=1e-12, atol=1e-12)
    w = np.random.default_rng(1).normal(size=np.shape(want))
    loss = _loss(f, w)
    g = gg.grad(loss)(x)
    assert g.dtype == x.dtype
    np.testing.assert_allclose(g, _numeric(loss, x), rtol=1e-6, atol=1e-7)
    t = rng.normal(size=x.shape) + (1j * rng.normal(size=x.shape) if np.iscomplexobj(x) else 0)
    _, t_out = gg.jvp(loss, (x,), (t,))
    np.testing.assert_allclose(t_out, np.real(np.sum(g * t)), rtol=1e-9)
    assert np.array_equal(gg.jit(gg.grad(loss))(x), g)


def test_parseval_gradient_on_a_tensor():
    x = gg.tensor(W, requires_grad=True)
    (np.sum(np.abs(np.fft.fft2(x)) ** 2) / 64).backward()
    np.testing.assert_allclose(x.grad, 2 * W)
