"""Complex numbers: transforms follow JAX and HIPS autograd (grad = df/dx - i df/dy),
eager Tensor.backward follows PyTorch (.grad = df/dx + i df/dy); holomorphic=True gives
f'(z); real-to-complex Jacobians are complex in both modes."""

import numpy as np
import pytest

import glassgrad as gg

Z0 = 1.0 + 2.0j


def test_spec_example_both_conventions():
    f = lambda z: np.abs(z) ** 2  # noqa: E731
    assert gg.grad(f)(Z0) == pytest.approx(2 - 4j)
    t = gg.tensor(Z0, requires_grad=True)
    f(t).backward()
    assert complex(t.grad) == pytest.approx(2 + 4j)


@pytest.mark.parametrize("f, df", [
    (np.sin, np.cos), (np.exp, np.exp), (lambda z: z ** 3, lambda z: 3 * z ** 2),
    (lambda z: 1 / z, lambda z: -1 / z ** 2), (np.log, lambda z: 1 / z),
    (np.tanh, lambda z: 1 - np.tanh(z) ** 2), (np.sqrt, lambda z: 0.5 / np.sqrt(z)),
])
def test_holomorphic_grad_and_jacobian_give_the_complex_derivative(f, df):
    assert gg.grad(f, holomorphic=True)(Z0) == pytest.approx(df(Z0))
    z = np.array([0.5 + 1j, -1.2 + 0.3j])
    for mode in ("reverse", "forward"):
        np.testing.assert_allclose(gg.jacobian(f, holomorphic=True, mode=mode)(z),
                                   np.diag(df(z)), rtol=1e-12)


def _numeric(loss, z, eps=1e-6):
    dx = (loss(z + eps) - loss(z - eps)) / (2 * eps)
    dy = (loss(z + 1j * eps) - loss(z - 1j * eps)) / (2 * eps)
    return dx, dy


@pytest.mark.parametrize("loss", [
    lambda z: np.real(z * np.conj(z) * np.exp(z)),
    lambda z: np.angle(z) * np.abs(z),
    lambda z: np.imag(np.sin(z)) ** 2 + np.real(z),
    lambda z: np.abs(np.conjugate(z) ** 2 - 1j),
    lambda z: np.sum(np.abs(z * np.array([1.0, 2.0]) + 0.5j)),
], ids=["conj_exp", "angle_abs", "imag_sin", "conjugate", "broadcast"])
def test_real_losses_of_complex_inputs(loss):
    dx, dy = _numeric(loss, Z0)
    assert gg.grad(loss)(Z0) == pytest.approx(dx - 1j * dy, rel=1e-6)
    t = gg.tensor(Z0, requires_grad=True)
    loss(t).backward()
    assert complex(t.grad) == pytest.approx(dx + 1j * dy, rel=1e-6)
    # jvp along 1 and i gives the two partials; jit gives the same bits.
    assert gg.jvp(loss, (Z0,), (1.0 + 0j,))[1] == pytest.approx(dx, rel=1e-6)
    assert gg.jvp(loss, (Z0,), (1j,))[1] == pytest.approx(dy, rel=1e-6)
    assert gg.jit(gg.grad(loss))(Z0) == gg.grad(loss)(Z0)


def test_real_to_complex_jacobian_is_complex_in_both_modes():
    f = lambda x: np.exp(1j * x) * x  # noqa: E731
    x = np.array([0.3, -0.7])
    want = np.diag(np.exp(1j * x) * (1j * x + 1))
    for mode in ("reverse", "forward"):
        np.testing.assert_allclose(gg.jacobian(f, mode=mode)(x), want, rtol=1e-12)


def test_complex_outputs_and_inputs_need_holomorphic():
    with pytest.raises(TypeError, match="holomorphic=True"):
        gg.grad(np.sin)(Z0)
    with pytest.raises(TypeError, match="holomorphic=True"):
        gg.jacobian(lambda z: np.abs(z), mode="forward")(np.array([Z0]))
    with pytest.raises(TypeError, match="holomorphic=True"):
        gg.jacobian(np.sin)(np.array([Z0]))
    with pytest.raises(TypeError, match="inputs with complex dtype"):
        gg.grad(lambda x: x * 1j, holomorphic=True)(1.0)
    with pytest.raises(TypeError, match="outputs with complex dtype"):
        gg.grad(lambda z: np.abs(z), holomorphic=True)(Z0)
    # As JAX's jacrev: complex inputs of a real-valued function give gradient rows.
    z = np.array([Z0, 0.5 - 1j])
    np.testing.assert_allclose(gg.jacobian(lambda z: np.abs(z) ** 2)(z), np.diag(2 * z.conj()))
    with pytest.raises(RuntimeError, match="real scalar"):
        (gg.tensor(Z0, requires_grad=True) * 2).backward()


def test_real_input_meeting_complex_values_gets_a_real_gradient():
    f = lambda x: np.real(np.exp(1j * x) * x)  # noqa: E731
    g = gg.grad(f)(0.4)
    assert isinstance(g, float | np.floating)
    assert g == pytest.approx(np.cos(0.4) - 0.4 * np.sin(0.4))
    x = gg.tensor(np.float32(0.4), requires_grad=True)
    f(x).backward()
    assert x.grad.dtype == np.float32


def test_vjp_cotangent_convention_is_jax():
    # vjp of a holomorphic f pulls g back to g * f'(z), with no conjugate.
    out, pull = gg.vjp(lambda z: z ** 2, Z0)
    assert pull(1j)[0] == pytest.approx(1j * 2 * Z0)


def test_tensor_methods_for_complex_values():
    t = gg.tensor(np.array([Z0, 3 - 1j]), requires_grad=True)
    loss = np.sum(t.real ** 2 + t.imag * 3 + abs(t.conj()))
    loss.backward()
    want = 2 * np.real(t.data) + 3j + t.data / np.abs(t.data)
    np.testing.assert_allclose(t.grad, want)
