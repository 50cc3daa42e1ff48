"""scipy.special's ufuncs on traced values (SciPy is the optional extra `scipy`)."""

import numpy as np
import pytest

import glassgrad as gg

sc = pytest.importorskip("scipy.special")

X = np.array([0.3, 1.2, 2.5])


@pytest.mark.parametrize("f, df", [
    (sc.gammaln, sc.digamma), (sc.digamma, lambda x: sc.polygamma(1, x)),
    (sc.erf, lambda x: 2 / np.sqrt(np.pi) * np.exp(-x ** 2)),
    (sc.expit, lambda x: sc.expit(x) * (1 - sc.expit(x))),
    (lambda x: sc.logit(x / 3), lambda x: 1 / (x * (1 - x / 3))),
    (sc.ndtr, lambda x: np.exp(-x ** 2 / 2) / np.sqrt(2 * np.pi)),
    (lambda x: sc.xlogy(x, x + 1), lambda x: np.log(x + 1) + x / (x + 1)),
])
def test_scipy_special_dispatches_to_its_rows(f, df):
    np.testing.assert_allclose(gg.grad(lambda x: np.sum(f(x)))(X), df(X), rtol=1e-10)
    np.testing.assert_allclose(gg.jit(gg.grad(lambda x: np.sum(f(x))))(X), df(X), rtol=1e-10)
    t = gg.tensor(X, requires_grad=True)
    np.sum(f(t)).backward()
    np.testing.assert_allclose(t.grad, df(X), rtol=1e-10)


def test_log_ndtr_gradient_stays_finite_far_left():
    g = gg.grad(lambda x: np.sum(sc.log_ndtr(x)))(np.array([-40.0]))
    assert np.isfinite(g).all() and g[0] == pytest.approx(40.0, rel=1e-2)
