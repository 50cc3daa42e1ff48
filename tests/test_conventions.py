"""The conventions at non-smooth points, one test each (see docs/conventions.md)."""

import warnings

import numpy as np
import pytest

import glassgrad as gg

grad = gg.grad


def test_abs_and_relu_at_zero_have_derivative_zero():
    assert grad(np.abs)(0.0) == 0.0
    assert grad(lambda x: x.relu())(0.0) == 0.0
    assert grad(lambda x: np.maximum(x, 0.0))(0.0) == 0.5  # a tie, not relu: shared
    x = gg.tensor([0.0, 2.0, -1.0], requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0])
    assert grad(lambda x: np.sum(np.abs(x)))(np.zeros(2)).tolist() == [0.0, 0.0]


def test_max_min_and_maximum_ties_share_equally():
    np.testing.assert_array_equal(grad(np.max)(np.array([2.0, 2.0, 1.0])), [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(grad(np.min)(np.array([1.0, 1.0, 1.0, 5.0])),
                                  [1 / 3, 1 / 3, 1 / 3, 0.0])
    assert grad(lambda x: np.maximum(x, 1.0))(1.0) == 0.5
    assert grad(lambda x: np.minimum(x, 1.0))(1.0) == 0.5


def test_sqrt_at_zero_is_infinite_and_norm_at_zero_is_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isposinf(grad(np.sqrt)(0.0))
        g = grad(lambda x: np.sqrt(np.sum(x ** 2)))(np.zeros(3))
    assert np.all(np.isnan(g))
    # The documented safe norm: gradient 0 at the origin, exact elsewhere.
    def safe_norm(x):
        sq = np.sum(x ** 2)
        nonzero = sq > 0
        return np.where(nonzero, np.sqrt(np.where(nonzero, sq, 1.0)), 0.0)

    np.testing.assert_array_equal(grad(safe_norm)(np.zeros(3)), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(grad(safe_norm)(np.array([3.0, 4.0])), [0.6, 0.8])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_power_conventions():
    assert grad(lambda x: x ** 0)(0.0) == 0.0
    assert grad(lambda x: x ** 0.0)(0.0) == 0.0
    assert grad(lambda x: x ** np.zeros(()))(0.0) == 0.0
    assert grad(lambda x: x ** 2)(0.0) == 0.0
    assert grad(lambda y: 0.0 ** y, argnums=0)(2.0) == 0.0
    assert grad(lambda x, y: x ** y, argnums=1)(2.0, 3.0) == pytest.approx(np.log(2) * 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isnan(grad(lambda y: (-2.0) ** y)(2.0))


def test_clip_passes_the_gradient_at_its_bounds():
    g = grad(lambda x: np.sum(np.clip(x, -1.0, 1.0)))(np.array([-2.0, -1.0, 0.0, 1.0, 2.0]))
    np.testing.assert_array_equal(g, [0.0, 1.0, 1.0, 1.0, 0.0])


def test_where_gives_exact_zeros_to_the_unused_branch_and_the_double_where_fix():
    g = grad(lambda x: np.sum(np.where(x > 0, x ** 2, np.exp(x))))(np.array([-1.0, 2.0]))
    np.testing.assert_allclose(g, [np.exp(-1.0), 4.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        trap = grad(lambda x: np.sum(np.where(x > 0, np.sqrt(x), 0.0)))(np.array([0.0, 4.0]))
    assert np.isnan(trap[0]) and trap[1] == 0.25

    def fixed(x):
        positive = x > 0
        return np.sum(np.where(positive, np.sqrt(np.where(positive, x, 1.0)), 0.0))

    np.testing.assert_array_equal(grad(fixed)(np.array([0.0, 4.0])), [0.0, 0.25])
