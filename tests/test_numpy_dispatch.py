"""Plain NumPy code is differentiable (SPEC section 2), on tensors and in transforms."""

import numpy as np
import pytest

import glassgrad as gg

RNG = np.random.default_rng(3)
X = RNG.uniform(0.2, 1.5, size=(2, 3))
Y = RNG.uniform(0.2, 1.5, size=(2, 3))
V = RNG.uniform(0.2, 1.5, size=(3,))

# Every NumPy function the SPEC names, each used as a scalar function of X.
CALLS = {
    "sin": lambda x: np.sin(x), "cos": lambda x: np.cos(x), "tan": lambda x: np.tan(x),
    "arctan": lambda x: np.arctan(x), "exp": lambda x: np.exp(x), "log": lambda x: np.log(x),
    "log1p": lambda x: np.log1p(x), "expm1": lambda x: np.expm1(x),
    "sqrt": lambda x: np.sqrt(x), "square": lambda x: np.square(x),
    "power": lambda x: np.power(x, 3.0), "power_both": lambda x: np.power(x, x),
    "abs": lambda x: np.abs(x - 0.8), "tanh": lambda x: np.tanh(x),
    "maximum": lambda x: np.maximum(x, Y), "minimum": lambda x: np.minimum(Y, x),
    "where": lambda x: np.where(x > 0.7, x ** 2, -x),
    "clip": lambda x: np.clip(x, 0.4, 1.1), "sum": lambda x: np.sum(x, axis=0),
    "mean": lambda x: np.mean(x, axis=1), "max": lambda x: np.max(x, axis=1),
    "min": lambda x: np.min(x), "dot": lambda x: np.dot(x, V),
    "matmul": lambda x: np.matmul(x, X.T), "matmul_op": lambda x: V @ x.T,
    "outer": lambda x: np.outer(x[0], V), "reshape": lambda x: np.reshape(x, (3, 2)) * 2,
    "transpose": lambda x: np.transpose(x) @ Y,
    "concatenate": lambda x: np.concatenate([x, Y * x], axis=1),
    "stack": lambda x: np.stack([x, x ** 2], axis=1),
    "operators": lambda x: (2.0 - x) / (x + 1) * x ** 0.5 - (-x),
}


def scalar(fn):
    return lambda x: np.sum(fn(x) * np.arange(1, np.size(fn(X)) + 1).reshape(np.shape(fn(X))))


@pytest.mark.parametrize("name", sorted(CALLS))
def test_numpy_function_is_differentiable_in_transforms(name):
    f = scalar(CALLS[name])
    gg.check_grad(f, X, rtol=1e-6)
    tangent = RNG.normal(size=X.shape)
    _, jv = gg.jvp(f, (X,), (tangent,))
    np.testing.assert_allclose(jv, np.sum(gg.grad(f)(X) * tangent), rtol=1e-10)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_numpy_function_on_eager_tensors(name):
    x = gg.tensor(X, requires_grad=True)
    out = scalar(CALLS[name])(x)
    assert isinstance(out, gg.Tensor)
    out.backward()
    np.testing.assert_allclose(x.grad, gg.grad(scalar(CALLS[name]))(X), rtol=1e-12)


def test_ndarray_on_the_left_gives_a_tensor():
    x = gg.tensor(V, requires_grad=True)
    assert isinstance(V + x, gg.Tensor) and isinstance(V * x, gg.Tensor)
    assert isinstance(X @ x, gg.Tensor)


def test_unsupported_function_raises_type_error_naming_it():
    x = gg.tensor(V, requires_grad=True)
    with pytest.raises(TypeError, match="np.spacing"):
        np.spacing(x)
    with pytest.raises(TypeError, match="np.convolve"):
        np.convolve(x, x)
    with pytest.raises(TypeError, match="np.linalg.eig"):
        np.linalg.eig(gg.tensor(np.eye(2), requires_grad=True))


def test_out_argument_is_refused():
    x = gg.tensor(V, requires_grad=True)
    with pytest.raises(TypeError, match="out"):
        np.sin(x, out=np.empty(3))


def test_nondifferentiable_helpers_look_at_values():
    x = gg.tensor(V, requires_grad=True)
    assert np.argmax(x) == np.argmax(V)
    assert np.shape(x) == (3,) and np.ndim(x) == 1 and np.size(x) == 3
    assert np.allclose(x.detach(), V)
