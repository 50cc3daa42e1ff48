"""Numerical gradients, gradient checks and anomaly detection (SPEC section 5)."""

import numpy as np
import pytest

import glassgrad as gg


def test_numerical_grad_central_and_forward():
    f = lambda x: np.sum(np.sin(x) * x)  # noqa: E731
    x = np.array([0.3, 1.2, -0.7])
    exact = np.cos(x) * x + np.sin(x)
    np.testing.assert_allclose(gg.numerical_grad(f, x), exact, rtol=1e-9)
    np.testing.assert_allclose(gg.numerical_grad(f, x, method="forward"), exact, rtol=1e-6)
    np.testing.assert_allclose(gg.numerical_grad(f, x, eps=1e-3), exact, rtol=1e-5)
    with pytest.raises(ValueError, match="method"):
        gg.numerical_grad(f, x, method="backward")


def test_numerical_grad_argnums_floats_and_float32():
    f = lambda a, b: a * b ** 2  # noqa: E731
    ga, gb = gg.numerical_grad(f, 3.0, 2.0, argnums=(0, 1))
    assert ga == pytest.approx(4.0) and gb == pytest.approx(12.0)
    g32 = gg.numerical_grad(lambda x: np.sum(x ** 2), np.ones(2, dtype=np.float32))
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, 2.0, rtol=1e-3)


def test_check_grad_passes_with_a_report():
    report = gg.check_grad(lambda w, x: np.sum(np.tanh(x @ w)),
                           np.ones((3, 2)) * 0.1, np.arange(6.0).reshape(2, 3), argnums=0)
    assert report.max_abs_error < 1e-8 and report.max_rel_error < 1e-6
    assert "passed" in str(report)


def test_check_grad_fails_naming_the_worst_index():
    wrong = gg.extend.defprimitive(
        "test_wrong_sin", np.sin, derivatives=[lambda ans, x: np.cos(x) * 1.01])
    try:
        with pytest.raises(gg.GradientCheckError) as info:
            gg.check_grad(lambda x: np.sum(wrong(x)), np.array([0.1, 0.2, 1.0]))
        assert isinstance(info.value, AssertionError)
        message = str(info.value)
        assert "index (0,)" in message and "autodiff" in message
        assert "finite differences" in message and "rel error" in message
    finally:
        gg.extend.primitives.pop("test_wrong_sin")


def test_check_grad_float32_input_compares_in_float64():
    x = np.array([0.5, 1.5], dtype=np.float32)
    report = gg.check_grad(lambda x: np.sum(x ** 3), x, rtol=1e-5)
    assert report.analytic.dtype == np.float32


def test_detect_anomaly_forward():
    with gg.detect_anomaly(), pytest.raises(FloatingPointError, match="'log'.*NaN"):
        gg.grad(lambda x: np.sum(np.log(x)))(np.array([-1.0, 1.0]))


def test_detect_anomaly_backward_names_user_level_operation():
    with gg.detect_anomaly(), pytest.raises(FloatingPointError, match="backward pass of 'sqrt'"):
        gg.grad(lambda x: np.sum(np.sqrt(x)))(np.array([0.0, 1.0]))
    x = gg.tensor([0.0, 4.0], requires_grad=True)
    with gg.detect_anomaly(), pytest.raises(FloatingPointError, match="'sqrt'"):
        x.sqrt().sum().backward()


def test_detect_anomaly_explains_the_where_trap():
    def f(x):
        return np.sum(np.where(x > 0, np.sqrt(x), 0.0))

    x = np.array([0.0, 4.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        assert np.isnan(gg.grad(f)(x)[0])  # the trap itself, outside anomaly mode
    with gg.detect_anomaly(), pytest.raises(FloatingPointError, match="where"):
        gg.grad(f)(x)


def test_anomaly_mode_is_off_outside_the_block():
    with gg.detect_anomaly():
        pass
    with np.errstate(divide="ignore"):
        g = gg.grad(lambda x: np.sum(np.sqrt(x)))(np.array([0.0, 1.0]))
    assert np.isinf(g[0])
